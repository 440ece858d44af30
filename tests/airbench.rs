//! The airbench94 preset's pieces, each against what it must do: the Jacobi eigen-solver,
//! the whitening (patch covariance ≈ identity), the lookahead arithmetic, the alternating
//! flip and reflect translate, the test-time views, the triangle schedule, frozen tensors
//! and the bias rate; then the whole recipe: bit-identical on 1 and 2 threads, and a run
//! resumed after the lookahead started ends with the same bits as one that never stopped.

mod common;
use common::*;

use ferroconv::data::{
    Augment, Batch, Cifar10, Dataset, Split, View, alternating_flip, shift_flip_reflect,
};
use ferroconv::driver::{RunConfig, run};
use ferroconv::layers::{BatchNorm2d, Conv2d, Flatten, Layer, Mode};
use ferroconv::linalg::symmetric_eigen;
use ferroconv::optim::{Lookahead, LookaheadSchedule, Optimizer, Schedule, Sgd, UpdateRule};
use ferroconv::recipe::{Airbench, Recipe, whitening_filters};
use ferroconv::train::{Plan, Tta, for_each_batch, tta_logits};
use ferroconv::{Sequential, Tensor};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

fn uniform(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[test]
fn jacobi_eigen_decomposes_symmetric_matrices() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    for n in [1usize, 2, 5, 12] {
        let mut a = vec![0.0f64; n * n];
        for i in 0..n {
            for j in i..n {
                let v = uniform(&mut rng);
                a[i * n + j] = v;
                a[j * n + i] = v;
            }
        }
        let e = symmetric_eigen(&a, n).unwrap();
        assert!(
            e.values.windows(2).all(|w| w[0] >= w[1]),
            "sorted, largest first"
        );
        for (k, (lambda, v)) in e.values.iter().zip(&e.vectors).enumerate() {
            for i in 0..n {
                let av: f64 = (0..n).map(|j| a[i * n + j] * v[j]).sum();
                assert!((av - lambda * v[i]).abs() < 1e-10, "n {n}: A·v{k} ≠ λ·v{k}");
            }
            for (m, w) in e.vectors.iter().enumerate() {
                let dot: f64 = v.iter().zip(w).map(|(x, y)| x * y).sum();
                let want = if m == k { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-10, "n {n}: v{k}·v{m} = {dot}");
            }
        }
        let trace: f64 = (0..n).map(|i| a[i * n + i]).sum();
        assert!((trace - e.values.iter().sum::<f64>()).abs() < 1e-10);
    }
    // Known eigenvalues, with a repeated one.
    let e = symmetric_eigen(&[2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 3.0], 3).unwrap();
    for (got, want) in e.values.iter().zip([3.0, 3.0, 1.0]) {
        assert!((got - want).abs() < 1e-12, "{:?}", e.values);
    }
    assert!(symmetric_eigen(&[1.0, f64::NAN, f64::NAN, 1.0], 2).is_err());
    assert!(symmetric_eigen(&[1.0, 2.0, 3.0], 2).is_err());
}

/// Smooth random images (neighbouring pixels and channels correlated), `[n, 3, 8, 8]`.
fn correlated_images(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * 192);
    for _ in 0..n {
        let base: Vec<f64> = (0..81).map(|_| uniform(&mut rng)).collect();
        for c in 0..3 {
            for y in 0..8 {
                for x in 0..8 {
                    let b = |dy: usize, dx: usize| base[(y + dy) * 9 + x + dx];
                    let v = b(0, 0) + 0.8 * b(1, 0) + 0.6 * b(0, 1) + 0.3 * uniform(&mut rng);
                    out.push((v * (1.0 + 0.3 * c as f64) + 0.1 * c as f64) as f32);
                }
            }
        }
    }
    out
}

/// `W·Σ·Wᵀ` for filters `w[f, 12]` over the 2×2 patches of `images`.
fn whitened_covariance(images: &[f32], w: &[f32], filters: usize) -> Vec<f64> {
    let mut cov = vec![0.0f64; filters * filters];
    let mut count = 0.0;
    for img in images.chunks_exact(192) {
        for y in 0..7 {
            for x in 0..7 {
                let p: Vec<f64> = (0..12)
                    .map(|i| {
                        let (c, dy, dx) = (i / 4, (i / 2) % 2, i % 2);
                        img[c * 64 + (y + dy) * 8 + x + dx] as f64
                    })
                    .collect();
                let r: Vec<f64> = (0..filters)
                    .map(|f| (0..12).map(|i| w[f * 12 + i] as f64 * p[i]).sum())
                    .collect();
                for i in 0..filters {
                    for j in 0..filters {
                        cov[i * filters + j] += r[i] * r[j];
                    }
                }
                count += 1.0;
            }
        }
    }
    cov.iter().map(|v| v / count).collect()
}

#[test]
fn whitening_makes_the_patch_covariance_the_identity() {
    let images = correlated_images(300, 1);
    let w = whitening_filters(&[3, 8, 8], &images, 2, 0.0).unwrap();
    assert_eq!(w.len(), 24 * 12, "[24, 3, 2, 2]");
    for i in 0..12 * 12 {
        assert_eq!(
            w[12 * 12 + i],
            -w[i],
            "the second half is the first negated"
        );
    }
    let cov = whitened_covariance(&images, &w, 12);
    for i in 0..12 {
        for j in 0..12 {
            let want = if i == j { 1.0 } else { 0.0 };
            let got = cov[i * 12 + j];
            assert!((got - want).abs() < 1e-3, "whitened cov[{i}][{j}] = {got}");
        }
    }
    // The raw covariance was far from it (the test means something).
    let identity: Vec<f32> = (0..144).map(|i| f32::from(i / 12 == i % 12)).collect();
    let raw = whitened_covariance(&images, &identity, 12);
    assert!(
        raw[1].abs() > 0.1,
        "neighbouring pixels correlated: {}",
        raw[1]
    );
    // With ε, variances shrink to λ/(λ+ε·var), below 1 and the most for the smallest λ.
    let w = whitening_filters(&[3, 8, 8], &images, 2, 0.5).unwrap();
    let cov = whitened_covariance(&images, &w, 12);
    assert!(
        cov[0] < 1.0 && cov[0] > 0.9,
        "largest direction barely shrinks: {}",
        cov[0]
    );
    assert!(
        cov[143] < cov[0],
        "smallest direction shrinks most: {}",
        cov[143]
    );
    // Bad input is an error, not a panic.
    assert!(whitening_filters(&[3, 8, 8], &images[..100], 2, 0.0).is_err());
    assert!(whitening_filters(&[3, 8, 8], &vec![0.0; 192], 2, 0.0).is_err());
}

/// Adds 1 to every parameter at each step.
struct PlusOne(u64);

impl Optimizer for PlusOne {
    fn step(&mut self, model: &mut Sequential) {
        model.visit_params(&mut |_, p| p.value.iter_mut().for_each(|v| *v += 1.0));
        self.0 += 1;
    }
    fn lr(&self) -> f32 {
        1.0
    }
    fn set_lr(&mut self, _: f32) {}
    fn lr_scale(&self) -> f32 {
        1.0
    }
    fn set_lr_scale(&mut self, _: f32) {}
    fn steps(&self) -> u64 {
        self.0
    }
    fn set_steps(&mut self, s: u64) {
        self.0 = s;
    }
    fn describe(&self) -> String {
        "plus one".into()
    }
    fn state(&mut self, _: &Sequential) -> Vec<(String, &mut Vec<f32>)> {
        Vec::new()
    }
    fn rule(&self) -> UpdateRule {
        Sgd::new(1.0, 0.0).rule()
    }
}

fn one_weight_model() -> Sequential {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Flatten::new()),
        Box::new(ferroconv::layers::Dense::new(1, 1).bias(false)),
    ];
    let mut m = Sequential::new(&[1, 1, 1], layers, 0).unwrap();
    m.visit_params(&mut |_, p| p.value[0] = 0.0);
    m
}

fn weight(m: &mut Sequential) -> f32 {
    let mut w = 0.0;
    m.visit_params(&mut |_, p| w = p.value[0]);
    w
}

#[test]
fn lookahead_arithmetic() {
    // Starts after step 2, every 2 steps, ρ = 0.5²·(s/9), 3 steps per epoch.
    let sch = LookaheadSchedule {
        start_step: 2,
        every: 2,
        decay_base: 0.5,
        decay_pow: 1.0,
        total_steps: 9,
        steps_per_epoch: 3,
    };
    let mut m = one_weight_model();
    let mut opt = Lookahead::new(Box::new(PlusOne(0)), sch);
    let mut got = Vec::new();
    for _ in 0..9 {
        opt.step(&mut m);
        got.push(weight(&mut m));
    }
    // By hand: steps 1–3 add 1 each; step 4 starts the average at 4; step 6:
    // ē = 4 + (1 − 0.25·6/9)·(6 − 4); step 8: ē' = ē + (1 − 0.25·8/9)·(ē + 2 − ē);
    // step 9 ends an epoch: w ← ē', dropping step 9's +1.
    let e6 = 4.0 + (1.0 - 0.25 * 6.0 / 9.0) * 2.0;
    let e8 = e6 + (1.0 - 0.25 * 8.0 / 9.0) * 2.0;
    let want = [1.0, 2.0, 3.0, 4.0, 5.0, e6, e6 + 1.0, e8, e8];
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w as f32).abs() < 1e-6,
            "after step {}: {g}, want {w}",
            i + 1
        );
    }
    assert!(opt.is_active());
    assert_eq!(opt.average("1.weight").unwrap(), &[e8 as f32]);
    // The state a checkpoint keeps names the average, and a restored step count says
    // whether it exists.
    let names: Vec<String> = opt.state(&m).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["lookahead.1.weight"]);
    let mut fresh = Lookahead::new(Box::new(PlusOne(0)), sch);
    fresh.set_steps(3);
    assert!(!fresh.is_active(), "no multiple of 2 in (2, 3]");
    fresh.set_steps(4);
    assert!(fresh.is_active());
}

#[test]
fn alternating_flip_alternates_and_translate_reflects() {
    let seed = 11;
    let mut first = 0;
    for i in 0..2000u64 {
        let e1 = alternating_flip(seed, i, 1);
        first += usize::from(e1);
        for e in 1..6 {
            assert_ne!(
                alternating_flip(seed, i, e),
                alternating_flip(seed, i, e + 1),
                "image {i}, epochs {e}, {}",
                e + 1
            );
        }
        assert_eq!(alternating_flip(seed, i, 1), alternating_flip(seed, i, 3));
    }
    assert!(
        (900..1100).contains(&first),
        "about half mirrored in epoch 1: {first}"
    );

    // Reflect padding: a 4×4 plane with v(y, x) = 10y + x, shifted by (−1, 2).
    let src: Vec<u8> = (0..3)
        .flat_map(|_| (0..16).map(|i| (10 * (i / 4) + i % 4) as u8))
        .collect();
    let mut dst = vec![0u8; 48];
    shift_flip_reflect(&src, &mut dst, 4, (-1, 2), false);
    // Row 0 reads row refl(−1) = 1; columns 2, 3, refl(4) = 2, refl(5) = 1.
    assert_eq!(&dst[..4], &[12, 13, 12, 11]);
    assert_eq!(&dst[4..8], &[2, 3, 2, 1], "row 1 reads row 0");
    shift_flip_reflect(&src, &mut dst, 4, (0, 0), true);
    assert_eq!(&dst[..4], &[3, 2, 1, 0], "mirrored");

    // Through the training loop: with no translation, an image's epoch-2 view is the
    // mirror of its epoch-1 view.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    let images: Vec<u8> = (0..6 * 3072).map(|_| rng.next_u32() as u8).collect();
    let data = Cifar10::from_raw(images, vec![0, 1, 2, 3, 4, 5]).unwrap();
    let plan = Plan {
        augment: Augment {
            crop_pad: 0,
            ..Augment::airbench()
        },
        ..Plan::constant(6, seed)
    };
    let views = |epoch: u64| {
        let mut out = vec![Vec::new(); 6];
        for_each_batch(&data, &plan, epoch, &mut |b| {
            for (img, &l) in b.images.data().chunks_exact(3072).zip(&b.labels) {
                out[l as usize] = img.to_vec();
            }
            Ok(())
        })
        .unwrap();
        out
    };
    let (e1, e2) = (views(1), views(2));
    let mut plain = Batch::default();
    data.fill_batch(&[0, 1, 2, 3, 4, 5], View::Plain, &mut plain)
        .unwrap();
    for i in 0..6 {
        let mirrored: Vec<f32> = e1[i]
            .chunks_exact(32)
            .flat_map(|row| row.iter().rev().copied())
            .collect();
        assert_eq!(e2[i], mirrored, "image {i}: epoch 2 mirrors epoch 1");
        let p = &plain.images.data()[i * 3072..(i + 1) * 3072];
        let flipped_in_1 = alternating_flip(seed, i as u64, 1);
        assert_eq!(
            e1[i] != p,
            flipped_in_1,
            "image {i}: epoch 1 as the coin says"
        );
    }
}

#[test]
fn tta_averages_the_six_views() {
    // One 1×4×4 image, v(y, x) = 10y + x; the "classifier" returns the pixels.
    let img = Tensor::from_vec(
        &[1, 1, 4, 4],
        (0..16).map(|i| (10 * (i / 4) + i % 4) as f32).collect(),
    )
    .unwrap();
    let mut calls = 0;
    let mut f = |x: &Tensor, out: &mut Tensor| {
        calls += 1;
        out.reshape_to(&[1, 16]);
        out.data_mut().copy_from_slice(x.data());
        Ok(())
    };
    let mut logits = Tensor::default();
    tta_logits(&img, Tta::MirrorTranslate, &mut f, &mut logits).unwrap();
    assert_eq!(calls, 6);
    // Pixel (0, 0): plain 0, mirror v(0,3) = 3; up-left v(1,1) = 11 and its mirror
    // v(1,2) = 12; down-right v(1,1) = 11 and its mirror v(1, refl(4)) = v(1,2) = 12.
    let want = 0.25 * 0.0 + 0.25 * 3.0 + 0.125 * (11.0 + 12.0 + 11.0 + 12.0);
    assert!(
        (logits.data()[0] - want).abs() < 1e-6,
        "{}",
        logits.data()[0]
    );
    // Pixel (2, 1): plain 21, mirror 22; up-left v(1,0) = 10, mirrored v(1, 1) = 11;
    // down-right v(3,2) = 32, mirrored v(3, 3) = 33.
    let want = 0.25 * (21.0 + 22.0) + 0.125 * (10.0 + 11.0 + 32.0 + 33.0);
    assert!(
        (logits.data()[9] - want).abs() < 1e-5,
        "{}",
        logits.data()[9]
    );
    let mut calls = 0;
    let mut g = |x: &Tensor, out: &mut Tensor| {
        calls += 1;
        out.reshape_to(&[1, 16]);
        out.data_mut().copy_from_slice(x.data());
        Ok(())
    };
    tta_logits(&img, Tta::Mirror, &mut g, &mut logits).unwrap();
    assert_eq!(calls, 2);
    assert!((logits.data()[0] - 1.5).abs() < 1e-6);
    let weights: f32 = Tta::MirrorTranslate.views().iter().map(|v| v.0).sum();
    assert_eq!(weights, 1.0);
}

#[test]
fn triangle_schedule_and_preset_settings() {
    let tri = Schedule::Triangle {
        start: 0.2,
        peak_at: 0.23,
        end: 0.07,
    };
    let total = 490;
    let top = (0.23f64 * 490.0) as u64; // 112
    assert!((tri.lr(1.0, 0, total) - 0.2).abs() < 1e-6);
    assert!((tri.lr(1.0, top, total) - 1.0).abs() < 1e-6);
    assert!((tri.lr(1.0, top / 2, total) - 0.6).abs() < 1e-6);
    assert!((tri.lr(1.0, total, total) - 0.07).abs() < 1e-6);
    assert!(
        (tri.lr(2.0, total + 5, total) - 0.14).abs() < 1e-6,
        "held after the end"
    );

    let r = Recipe::preset("airbench94").unwrap();
    r.check().unwrap();
    assert_eq!((r.batch_size, r.epochs, r.momentum), (1024, 10, 0.85));
    assert!((r.lr - 1.5).abs() < 1e-6, "11.5 / (1 + 1/0.15)");
    assert_eq!(r.label_smoothing, 0.2);
    assert_eq!(r.tta_for_epoch(9), Tta::None);
    assert_eq!(r.tta_for_epoch(10), Tta::MirrorTranslate);
    let model = r.build_model(&[3, 32, 32], 10, 0).unwrap();
    assert_eq!(model.output_shape(), &[10]);
    let (mut dirac, mut bn) = (0, 0);
    model.visit_values(&mut |v| {
        if v.shape.len() == 4 && v.shape[2] == 3 {
            let (o, i) = (v.shape[0], v.shape[1]);
            // Filter 0 is the identity on input channel 0.
            let f0 = &v.values[..i * 9];
            assert!(f0[4] == 1.0 && f0.iter().sum::<f32>() == 1.0, "{}", v.name);
            if o > i {
                assert!(v.values[i * i * 9..].iter().any(|&x| x != 0.0 && x != 1.0));
            }
            dirac += 1;
        }
        if v.name.ends_with("running_var") {
            bn += 1;
        }
    });
    assert_eq!((dirac, bn), (6, 6));
    let specs = model.specs();
    let bn_spec = specs.iter().find(|(_, s)| s.kind == "BatchNorm2d").unwrap();
    assert!(bn_spec.1.get_float("momentum").unwrap() == 0.4);
    assert!(bn_spec.1.get_float("eps").unwrap() == 1e-12);
    assert_eq!(
        specs.last().unwrap().1.get_float("factor").unwrap(),
        1.0 / 9.0
    );

    // The quick preset: the same recipe on a narrower net, batch 512, 5 epochs.
    let q = Recipe::preset(ferroconv::recipe::QUICK).unwrap();
    q.check().unwrap();
    assert_eq!(
        (q.model.as_str(), q.batch_size, q.epochs),
        ("airbench90", 512, 5)
    );
    let a = q.airbench.unwrap();
    assert_eq!(a.widths, [32, 128, 128]);
    assert_eq!(
        Airbench {
            widths: [64, 256, 256],
            ..a
        },
        r.airbench.unwrap()
    );
    let model = q.build_model(&[3, 32, 32], 10, 0).unwrap();
    let mut widths = Vec::new();
    model.visit_values(&mut |v| {
        if v.shape.len() == 4 && v.shape[2] == 3 {
            widths.push(v.shape[0]);
        }
    });
    assert_eq!(widths, [32, 32, 128, 128, 128, 128]);
    let zero = Airbench {
        widths: [0, 8, 8],
        ..a
    };
    assert!(zero.check().is_err());
}

#[test]
fn frozen_tensors_stay_and_norm_biases_move_faster() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(1, 2, 1)),
        Box::new(BatchNorm2d::new(2)),
    ];
    let mut m = Sequential::new(&[1, 2, 2], layers, 0).unwrap();
    let x = Tensor::from_vec(
        &[2, 1, 2, 2],
        (0..8).map(|i| i as f32 * 0.3 - 1.0).collect(),
    )
    .unwrap();
    let before = ferroconv::checkpoint::model_tensors(&m);
    // Frozen: conv weight always, conv bias from step 1. BN bias at 64× the rate.
    let mut opt = Sgd::new(0.1, 0.0)
        .norm_lr_scale(64.0)
        .freeze("0.weight", 0)
        .freeze("0.bias", 1)
        .freeze("1.weight", 0);
    let mut grads = std::collections::BTreeMap::new();
    for step in 0..2 {
        m.forward(&x, Mode::Train).unwrap();
        let up = Tensor::from_vec(
            &[2, 2, 2, 2],
            (0..16).map(|i| (i % 5) as f32 - 2.0).collect(),
        )
        .unwrap();
        m.backward(&up).unwrap();
        if step == 0 {
            m.visit_params(&mut |n, p| {
                grads.insert(n.to_string(), p.grad.to_vec());
            });
        }
        opt.step(&mut m);
    }
    let after = ferroconv::checkpoint::model_tensors(&m);
    assert_eq!(
        after["0.weight"].data, before["0.weight"].data,
        "frozen from the start"
    );
    assert_eq!(
        after["1.weight"].data, before["1.weight"].data,
        "BN scale frozen"
    );
    // The conv bias took step 0 only.
    for (k, (&a, &b)) in after["0.bias"]
        .data
        .iter()
        .zip(&before["0.bias"].data)
        .enumerate()
    {
        let want = b - 0.1 * grads["0.bias"][k];
        assert!((a - want).abs() < 1e-6, "conv bias {k}: one step");
    }
    // BN bias: two steps at 6.4 (its gradient does not depend on β).
    assert!(grads["1.bias"].iter().any(|g| g.abs() > 1e-3));
    let moved = (after["1.bias"].data[0] - before["1.bias"].data[0]) / grads["1.bias"][0];
    assert!(
        (moved + 2.0 * 6.4).abs() < 1e-3,
        "BN bias moved {moved}× its gradient"
    );
}

fn airbench_config(epochs: u64, seed: u64) -> RunConfig {
    let mut r = Recipe::preset("airbench94").unwrap();
    r.epochs = epochs;
    r.batch_size = 128;
    let mut config = RunConfig::new(r, seed);
    config.eval_batch = 100;
    config
}

fn values(m: &Sequential) -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();
    m.visit_values(&mut |v| {
        out.push((
            v.name.to_string(),
            v.values.iter().map(|x| x.to_bits()).collect(),
        ))
    });
    out
}

/// 512 training images at batch 128: 4 steps an epoch; the lookahead starts after
/// step 12 and first averages at step 15 (epoch 4).
#[test]
fn airbench94_is_bit_identical_across_threads_and_resume() {
    let Some(dir) = data_dir() else { return };
    let mut train = Cifar10::load_first(&dir, Split::Train, 512).unwrap();
    train.truncate(512);
    let mut test = Cifar10::load(&dir, Split::Test).unwrap();
    test.truncate(100);
    let in_pool = |threads: usize, f: &mut (dyn FnMut() + Send)| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    };
    // The 2-thread run saves; the checkpoint of epoch 4 (lookahead active) is copied
    // away when epoch 5 starts, and resumed from later.
    let (save, kept) = (temp_dir("airbench-save"), temp_dir("airbench-epoch4"));
    let ckpt = "checkpoint.safetensors";
    let mut reports = Vec::new();
    for threads in [1, 2] {
        in_pool(threads, &mut || {
            let mut c = airbench_config(5, 3);
            if threads == 2 {
                c.save = Some(save.clone());
            }
            let mut copied = false;
            let r = run(&c, &train, &test, &mut |e| {
                if let ferroconv::driver::Event::Step(s) = e
                    && threads == 2
                    && s.epoch == 5
                    && !copied
                {
                    std::fs::copy(save.join(ckpt), kept.join(ckpt)).unwrap();
                    copied = true;
                }
            })
            .unwrap();
            reports.push((values(&r.model), r.last_eval().unwrap().clone()));
        });
    }
    assert!(reports[0] == reports[1], "1 and 2 threads differ");

    let st = ferroconv::checkpoint::SafeTensors::read(&kept.join(ckpt)).unwrap();
    assert_eq!(st.metadata["epoch"], "4");
    assert!(
        st.tensors.contains_key("lookahead.0.bias"),
        "the average is saved"
    );
    in_pool(1, &mut || {
        let mut c = airbench_config(5, 3);
        c.save = Some(kept.clone());
        c.resume = Some(kept.clone());
        let r = run(&c, &train, &test, &mut |_| {}).unwrap();
        assert_eq!(r.resumed_after, Some(4));
        assert!(
            values(&r.model) == reports[0].0,
            "resumed after epoch 4 differs from the uninterrupted run"
        );
        assert_eq!(r.last_eval().unwrap(), &reports[0].1);
    });
    let (a, b) = (
        std::fs::read(save.join(ckpt)).unwrap(),
        std::fs::read(kept.join(ckpt)).unwrap(),
    );
    assert!(
        a == b,
        "the resumed run's last checkpoint differs from the uninterrupted run's"
    );
    std::fs::remove_dir_all(kept).unwrap();
    std::fs::remove_dir_all(save).unwrap();
}
