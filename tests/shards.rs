//! `Sequential::set_shards`: the leading per-item layers of a training step run shard by
//! shard, on copies of themselves. Checked against the whole batch (the same forward, the
//! same gradients up to the order of the sums), for the same bits on any thread count
//! inside and outside the hot pool, and for the cases that must run whole.

mod common;
use common::{on_threads, values};

use ferroconv::cpu::spin::with_hot_pool;
use ferroconv::layers::{BatchNorm2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, Mode, ReLU};
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::{Sequential, SoftmaxCrossEntropy, Tensor};

/// A network's named layers.
type Net = fn() -> Vec<(&'static str, Box<dyn Layer>)>;

fn batch(n: usize, seed: u64) -> (Tensor, Vec<u32>) {
    let x = Tensor::from_vec(&[n, 3, 32, 32], values(seed, n * 3 * 32 * 32)).unwrap();
    (x, (0..n as u32).map(|i| (i * 7 + 3) % 10).collect())
}

/// Logits and every parameter gradient of one training step.
fn step(model: &mut Sequential, x: &Tensor, labels: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let mut loss = SoftmaxCrossEntropy::new();
    let logits = model.forward(x, Mode::Train).unwrap().clone();
    loss.forward(&logits, labels).unwrap();
    model.backward(loss.grad()).unwrap();
    let mut grads = Vec::new();
    model.visit_params(&mut |_, p| grads.extend_from_slice(p.grad));
    (logits.data().to_vec(), grads)
}

/// Largest `|a − b|` over the largest `|b|`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `steps` SGD steps on batches of `n` with `shards`; every weight's bits after.
fn train_bits(shards: usize, n: usize, steps: u64) -> Vec<u32> {
    let mut model = ferroconv::models::seed_net(5).unwrap();
    model.set_shards(shards).unwrap();
    let mut loss = SoftmaxCrossEntropy::new();
    let mut opt = Sgd::new(0.05, 0.9);
    for s in 0..steps {
        let (x, labels) = batch(n, 100 + s);
        let logits = model.forward(&x, Mode::Train).unwrap();
        loss.forward(logits, &labels).unwrap();
        model.backward(loss.grad()).unwrap();
        opt.step(&mut model);
    }
    let mut out = Vec::new();
    model.visit_params(&mut |_, p| out.extend(p.value.iter().map(|v| v.to_bits())));
    out
}

#[test]
fn a_sharded_step_matches_the_whole_batch() {
    for (n, shards) in [(4, 2), (5, 2), (7, 3), (2, 2)] {
        let (x, labels) = batch(n, n as u64);
        let mut whole = ferroconv::models::seed_net(1).unwrap();
        let mut cut = ferroconv::models::seed_net(1).unwrap();
        cut.set_shards(shards).unwrap();
        assert_eq!(cut.shards(), shards);
        // Twice: the second step runs on the copies made by the first.
        for _ in 0..2 {
            let (y0, g0) = step(&mut whole, &x, &labels);
            let (y1, g1) = step(&mut cut, &x, &labels);
            assert!(rel_diff(&y1, &y0) < 1e-6, "n {n}: logits differ");
            let d = rel_diff(&g1, &g0);
            assert!(d < 1e-5, "n {n}, {shards} shards: gradients differ by {d}");
            assert!(
                g1 != g0 || n <= shards,
                "n {n}: the sums ran in the same order?"
            );
        }
    }
}

#[test]
fn sharded_training_is_bit_identical_on_any_thread_count_in_and_out_of_the_hot_pool() {
    for shards in [2, 3] {
        let one = on_threads(1, || train_bits(shards, 6, 5));
        for threads in [2, 3] {
            let hot = on_threads(threads, || with_hot_pool(|| train_bits(shards, 6, 5)));
            assert!(hot == one, "{shards} shards, {threads} threads, hot pool");
            let cold = on_threads(threads, || train_bits(shards, 6, 5));
            assert!(cold == one, "{shards} shards, {threads} threads");
        }
        assert!(one != train_bits(1, 6, 5), "sharding changed nothing?");
    }
}

#[test]
fn small_batches_and_evaluation_run_whole() {
    let mut whole = ferroconv::models::seed_net(2).unwrap();
    let mut cut = ferroconv::models::seed_net(2).unwrap();
    cut.set_shards(4).unwrap();
    // A batch smaller than the shard count runs whole: the same bits.
    let (x, labels) = batch(3, 9);
    assert_eq!(step(&mut cut, &x, &labels), step(&mut whole, &x, &labels));
    // Evaluation passes always run whole.
    let (x, _) = batch(8, 10);
    let a = whole.forward(&x, Mode::Eval).unwrap().clone();
    let b = cut.forward(&x, Mode::Eval).unwrap().clone();
    assert_eq!(a.data(), b.data());
    // Backward after an evaluation pass is still refused.
    assert!(cut.backward(&Tensor::zeros(&[8, 10])).is_err());
    assert!(cut.set_shards(0).is_err());
    assert_eq!(cut.shards(), 4, "a refused setting changes nothing");
}

#[test]
fn frozen_leading_layers_get_no_gradient_and_the_rest_match() {
    let (x, labels) = batch(4, 11);
    let mut whole = ferroconv::models::seed_net(3).unwrap();
    let mut cut = ferroconv::models::seed_net(3).unwrap();
    cut.set_shards(2).unwrap();
    for m in [&mut whole, &mut cut] {
        assert_eq!(m.freeze_if(&|n| n.starts_with("conv1.")), 2);
        // Mark conv1's gradient, which backward must leave alone.
        m.visit_params(&mut |n, p| {
            if n.starts_with("conv1.") {
                p.grad.fill(7.0);
            }
        });
    }
    let (_, g0) = step(&mut whole, &x, &labels);
    let (_, g1) = step(&mut cut, &x, &labels);
    let conv1 = 6 * 3 * 25 + 6;
    assert!(
        g1[..conv1].iter().all(|&g| g == 7.0),
        "conv1 got a gradient"
    );
    assert!(rel_diff(&g1[conv1..], &g0[conv1..]) < 1e-5);
}

#[test]
fn models_the_shards_cannot_cut_or_that_change_shape_train_correctly() {
    let (x, labels) = batch(4, 12);
    // A batch norm (which mixes the items) right after the first convolution: only that
    // convolution is sharded; a dense first layer: nothing is.
    let nets: Vec<Net> = vec![
        || {
            vec![
                (
                    "conv",
                    Box::new(Conv2d::new(3, 4, 3).padding(1)) as Box<dyn Layer>,
                ),
                ("bn", Box::new(BatchNorm2d::new(4))),
                ("relu", Box::new(ReLU::new())),
                ("pool", Box::new(MaxPool2d::new(2, 2))),
                ("flat", Box::new(Flatten::new())),
                ("fc", Box::new(Dense::new(4 * 16 * 16, 10))),
            ]
        },
        || {
            vec![
                ("flat", Box::new(Flatten::new()) as Box<dyn Layer>),
                ("fc", Box::new(Dense::new(3 * 32 * 32, 10))),
            ]
        },
    ];
    for (i, net) in nets.iter().enumerate() {
        let mut whole = Sequential::named(&[3, 32, 32], net(), 4).unwrap();
        let mut cut = Sequential::named(&[3, 32, 32], net(), 4).unwrap();
        cut.set_shards(2).unwrap();
        let (y0, g0) = step(&mut whole, &x, &labels);
        let (y1, g1) = step(&mut cut, &x, &labels);
        assert!(rel_diff(&y1, &y0) < 1e-6, "net {i}: logits");
        assert!(rel_diff(&g1, &g0) < 1e-5, "net {i}: gradients");
    }
    // Folding for inference changes the layers: the copies are made anew.
    let mut whole = ferroconv::models::seed_net(6).unwrap();
    let mut cut = ferroconv::models::seed_net(6).unwrap();
    cut.set_shards(2).unwrap();
    step(&mut cut, &x, &labels);
    assert!(whole.fuse_for_inference() > 0);
    assert!(cut.fuse_for_inference() > 0);
    let (y0, g0) = step(&mut whole, &x, &labels);
    let (y1, g1) = step(&mut cut, &x, &labels);
    assert!(rel_diff(&y1, &y0) < 1e-6 && rel_diff(&g1, &g0) < 1e-5);
}
