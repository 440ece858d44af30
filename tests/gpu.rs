//! The wgpu path against the CPU kernels (feature `wgpu`; in CI on Mesa's lavapipe).
//!
//! Every kernel of `kernels/*.wgsl` runs on random shapes beside its CPU counterpart.
//! Tolerances: copies and selections (im2col, permute, pooling, ReLU) must match exactly;
//! sums compare within `1e-5·terms·(1 + |cpu|)` (f32, another order); the loss, updates
//! and transcendental functions within `1e-5` relative (`1e-4` for the loss, whose GPU
//! sum is f32 where the CPU's is f64).
#![cfg(feature = "wgpu")]

mod common;
use common::{data_dir, values};

use ferroconv::cpu::elementwise::{
    AdamStep, adam_update, add_bias_cols, add_bias_rows, relu_backward, relu_forward, sgd_update,
    sum_cols, sum_rows,
};
use ferroconv::cpu::gemm::gemm_naive;
use ferroconv::cpu::im2col::{ConvGeometry, col2im_naive, im2col_naive};
use ferroconv::cpu::pool::{maxpool_backward, maxpool_forward_naive, pooled};
use ferroconv::cpu::softmax::softmax_xent;
use ferroconv::data::{Cifar10, Split};
use ferroconv::gpu::{Dispatch, Gpu, GpuBuffer, GpuNet};
use ferroconv::optim::{Adam, Optimizer, Sgd};
use ferroconv::{Mode, SoftmaxCrossEntropy, Tensor, models};
use proptest::prelude::*;
use std::sync::OnceLock;

/// One device for all tests (opening one takes a while on lavapipe).
fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let g = Gpu::new()
            .expect("no GPU adapter: install Mesa's lavapipe (mesa-vulkan-drivers libvulkan1)");
        eprintln!("GPU: {}", g.adapter_name());
        g
    })
}

/// Runs `op` and reads back the first `len` values of `out`.
fn run(op: &Dispatch, out: &GpuBuffer, len: usize) -> Vec<f32> {
    gpu().run([op]).unwrap();
    gpu().download(out, len).unwrap()
}

fn up(data: &[f32]) -> GpuBuffer {
    gpu().upload(data).unwrap()
}

fn close(
    got: &[f32],
    want: &[f32],
    tol: impl Fn(f32) -> f32,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g - w).abs() <= tol(*w),
            "{}[{}]: gpu {} cpu {}",
            what,
            i,
            g,
            w
        );
    }
    Ok(())
}

/// A convolution geometry whose window fits the padded input.
fn geometry() -> impl Strategy<Value = (ConvGeometry, usize)> {
    (
        1usize..4,
        1usize..11,
        1usize..11,
        1usize..4,
        1usize..4,
        0usize..3,
        1usize..4,
    )
        .prop_filter_map(
            "window fits",
            |(channels, height, width, kernel, stride, padding, batch)| {
                let g = ConvGeometry {
                    channels,
                    height,
                    width,
                    kernel_h: kernel,
                    kernel_w: kernel,
                    stride,
                    padding,
                };
                (kernel <= height + 2 * padding && kernel <= width + 2 * padding)
                    .then_some((g, batch))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Tolerance: |gpu − cpu| ≤ 1e-5·k·(1 + |cpu|) (f32 sums in another order; values in [−1, 1)).
    #[test]
    fn gemm_matches_cpu(
        m in 1usize..150, k in 1usize..150, n in 1usize..150,
        ta in any::<bool>(), tb in any::<bool>(), accumulate in any::<bool>(), seed in any::<u64>(),
    ) {
        let a = values(seed, m * k);
        let b = values(seed ^ 1, k * n);
        let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
        let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
        let c0 = values(seed ^ 2, m * n);
        let (mut want, mut got) = (c0.clone(), c0);
        gemm_naive(m, k, n, &a, rsa, csa, &b, rsb, csb, &mut want, n, accumulate);
        gpu().gemm(m, k, n, &a, (rsa, csa), &b, (rsb, csb), &mut got, n, accumulate).unwrap();
        close(&got, &want, |w| 1e-5 * k as f32 * (1.0 + w.abs()), "C")?;
    }

    /// Long k and few output blocks: the split-k path (partials, then their sum), both
    /// kernels (narrow below 48 rows or columns, tiled above).
    #[test]
    fn gemm_split_k_matches_cpu(
        m in 1usize..80, n in 1usize..80, k in 512usize..4000,
        accumulate in any::<bool>(), seed in any::<u64>(),
    ) {
        let (a, b) = (values(seed, m * k), values(seed ^ 1, k * n));
        let c0 = values(seed ^ 2, m * n);
        let (mut want, mut got) = (c0.clone(), c0);
        gemm_naive(m, k, n, &a, 1, m, &b, n, 1, &mut want, n, accumulate);
        gpu().gemm(m, k, n, &a, (1, m), &b, (n, 1), &mut got, n, accumulate).unwrap();
        close(&got, &want, |w| 1e-5 * k as f32 * (1.0 + w.abs()), "C")?;
    }

    /// The batch im2col equals the CPU's per-image im2col laid side by side, exactly.
    #[test]
    fn im2col_matches_cpu((g, n) in geometry(), seed in any::<u64>()) {
        let (r, p) = (g.col_rows(), g.col_cols());
        let x = values(seed, n * g.input_len());
        let mut want = vec![0.0; r * n * p];
        for j in 0..n {
            im2col_naive(&g, &x[j * g.input_len()..], &mut want[j * p..], n * p);
        }
        let cols = gpu().zeros(r * n * p).unwrap();
        let got = run(&gpu().im2col_op(&g, n, &up(&x), &cols).unwrap(), &cols, r * n * p);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn col2im_matches_cpu((g, n) in geometry(), seed in any::<u64>()) {
        let (r, p) = (g.col_rows(), g.col_cols());
        let dcols = values(seed, r * n * p);
        let mut want = vec![0.0; n * g.input_len()];
        for j in 0..n {
            col2im_naive(&g, &dcols[j * p..], n * p, &mut want[j * g.input_len()..]);
        }
        let dx = up(&values(seed ^ 9, want.len()));
        let got = run(&gpu().col2im_op(&g, n, &up(&dcols), &dx).unwrap(), &dx, want.len());
        let terms = (g.kernel_h * g.kernel_w) as f32;
        close(&got, &want, |w| 1e-5 * terms * (1.0 + w.abs()), "dx")?;
    }

    /// Values and winners exactly (ties included: inputs are rounded to few levels).
    #[test]
    fn maxpool_matches_cpu(
        planes in 1usize..6, h in 1usize..12, w in 1usize..12,
        kernel in 1usize..4, stride in 1usize..4, seed in any::<u64>(),
    ) {
        prop_assume!(kernel <= h && kernel <= w);
        let (oh, ow) = (pooled(h, kernel, stride), pooled(w, kernel, stride));
        let x: Vec<f32> = values(seed, planes * h * w).iter().map(|v| (v * 4.0).round()).collect();
        let (mut y, mut arg) = (vec![0.0; planes * oh * ow], vec![0u32; planes * oh * ow]);
        maxpool_forward_naive(&x, planes, (h, w), kernel, stride, &mut y, &mut arg);
        let (gy, garg) = (gpu().zeros(y.len()).unwrap(), gpu().zeros(y.len()).unwrap());
        let op = gpu().maxpool_forward_op(planes, (h, w), (kernel, stride), &up(&x), &gy, &garg).unwrap();
        prop_assert_eq!(run(&op, &gy, y.len()), y.clone());
        let got_arg: Vec<u32> = gpu().download(&garg, arg.len()).unwrap().iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(&got_arg, &arg);

        let dy = values(seed ^ 3, y.len());
        let mut dx = vec![0.0; x.len()];
        maxpool_backward(&dy, &arg, planes, (h, w), oh * ow, &mut dx);
        let gdx = up(&values(seed ^ 4, x.len()));
        let op = gpu().maxpool_backward_op(planes, (h, w), (kernel, stride), &up(&dy), &garg, &gdx).unwrap();
        let terms = kernel.div_ceil(stride).pow(2) as f32;
        close(&run(&op, &gdx, x.len()), &dx, |w| 1e-6 * terms * (1.0 + w.abs()), "dx")?;
    }

    #[test]
    fn relu_matches_cpu(len in 1usize..3000, seed in any::<u64>()) {
        let x = values(seed, len);
        let mut y = vec![0.0; len];
        relu_forward(&x, &mut y);
        let gy = gpu().zeros(len).unwrap();
        prop_assert_eq!(run(&gpu().relu_forward_op(len, &up(&x), &gy).unwrap(), &gy, len), y.clone());
        let dy = values(seed ^ 1, len);
        let mut dx = vec![0.0; len];
        relu_backward(&y, &dy, &mut dx);
        let gdx = gpu().zeros(len).unwrap();
        let op = gpu().relu_backward_op(len, &gy, &up(&dy), &gdx).unwrap();
        prop_assert_eq!(run(&op, &gdx, len), dx);
    }

    /// Per-channel bias on NCHW (`add_bias_rows` per image) and per-feature bias on `[N, F]`.
    #[test]
    fn bias_matches_cpu(n in 1usize..5, c in 1usize..9, plane in 1usize..40, seed in any::<u64>()) {
        let y0 = values(seed, n * c * plane);
        let b = values(seed ^ 1, c);
        let mut want = y0.clone();
        for img in want.chunks_exact_mut(c * plane) {
            add_bias_rows(img, &b, plane);
        }
        let gy = up(&y0);
        prop_assert_eq!(run(&gpu().add_bias_op(y0.len(), plane, &gy, &up(&b)).unwrap(), &gy, y0.len()), want);
        let mut want = y0.clone();
        add_bias_cols(&mut want[..n * c], &b);
        let gy = up(&y0[..n * c]);
        prop_assert_eq!(run(&gpu().add_bias_op(n * c, 1, &gy, &up(&b)).unwrap(), &gy, n * c), want[..n * c].to_vec());
    }

    /// Bias gradients: sums along rows (`sum_rows`) and down columns (`sum_cols`).
    #[test]
    fn sum_reduce_matches_cpu(rows in 1usize..20, cols in 1usize..700, seed in any::<u64>()) {
        let dy = values(seed, rows * cols);
        let mut want = vec![0.0; rows];
        sum_rows(&dy, cols, &mut want, false);
        let out = gpu().zeros(rows.max(cols)).unwrap();
        let got = run(&gpu().sum_reduce_op(rows, cols, (cols, 1), &up(&dy), &out).unwrap(), &out, rows);
        close(&got, &want, |w| 1e-5 * cols as f32 * (1.0 + w.abs()), "rows")?;
        let mut want = vec![0.0; cols];
        sum_cols(&dy, &mut want, false);
        let got = run(&gpu().sum_reduce_op(cols, rows, (1, cols), &up(&dy), &out).unwrap(), &out, cols);
        close(&got, &want, |w| 1e-5 * rows as f32 * (1.0 + w.abs()), "cols")?;
    }

    #[test]
    fn permute_matches_reference(a in 1usize..7, b in 1usize..7, inner in 1usize..30, seed in any::<u64>()) {
        let x = values(seed, a * b * inner);
        let mut want = vec![0.0; x.len()];
        for ai in 0..a {
            for bi in 0..b {
                for k in 0..inner {
                    want[(bi * a + ai) * inner + k] = x[(ai * b + bi) * inner + k];
                }
            }
        }
        let y = gpu().zeros(x.len()).unwrap();
        prop_assert_eq!(run(&gpu().permute_op((a, b, inner), &up(&x), &y).unwrap(), &y, x.len()), want);
    }

    #[test]
    fn softmax_xent_matches_cpu(
        n in 1usize..600, classes in 2usize..12, smoothing in prop_oneof![Just(0.0f32), 0.0f32..0.3],
        slot in 0usize..4, seed in any::<u64>(),
    ) {
        let logits: Vec<f32> = values(seed, n * classes).iter().map(|v| v * 8.0).collect();
        let labels: Vec<u32> = values(seed ^ 1, n).iter().map(|v| ((v + 1.0) * 0.5 * classes as f32) as u32 % classes as u32).collect();
        let scale = 1.0 / n as f32;
        let mut grad = vec![0.0; n * classes];
        let (loss, correct) = softmax_xent(&logits, &labels, classes, smoothing, scale, &mut grad);
        let g = gpu();
        let labels32: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        let (ggrad, stats, step) = (g.zeros(grad.len()).unwrap(), g.zeros(8).unwrap(), g.step_uniform());
        g.write_step(&step, 0.0, false, slot, (1.0, 1.0)).unwrap();
        let op = g.softmax_xent_op((n, classes), smoothing, scale, &up(&logits), &g.upload_u32(&labels32).unwrap(), &ggrad, &stats, &step).unwrap();
        close(&run(&op, &ggrad, grad.len()), &grad, |w| 1e-5 * (scale + w.abs()), "grad")?;
        let s = g.download(&stats, 8).unwrap();
        prop_assert!((f64::from(s[2 * slot]) - loss).abs() <= 1e-4 * (1.0 + loss.abs()), "loss gpu {} cpu {}", s[2 * slot], loss);
        prop_assert_eq!(s[2 * slot + 1] as usize, correct);
    }

    #[test]
    fn sgd_matches_cpu(
        len in 1usize..2000, momentum in prop_oneof![Just(0.0f32), 0.0f32..0.99],
        wd in prop_oneof![Just(0.0f32), 0.0f32..0.01], nesterov in any::<bool>(),
        first in any::<bool>(), seed in any::<u64>(),
    ) {
        let (w0, grad, buf0) = (values(seed, len), values(seed ^ 1, len), values(seed ^ 2, len));
        let lr = 0.05;
        let (mut w, mut buf) = (w0.clone(), buf0.clone());
        sgd_update(&mut w, &grad, &mut buf, lr, momentum, wd, nesterov, first);
        let g = gpu();
        let (gw, gbuf, step) = (up(&w0), up(&buf0), g.step_uniform());
        g.write_step(&step, lr, first, 0, (1.0, 1.0)).unwrap();
        let op = g.sgd_op((momentum, wd, nesterov), &gw, &up(&grad), &gbuf, &step).unwrap();
        close(&run(&op, &gw, len), &w, |v| 1e-6 * (1.0 + v.abs()), "w")?;
        close(&g.download(&gbuf, len).unwrap(), &buf, |v| 1e-6 * (1.0 + v.abs()), "momentum")?;
    }

    #[test]
    fn adam_matches_cpu(
        len in 1usize..2000, t in 1i32..50, wd in prop_oneof![Just(0.0f32), 0.0f32..0.1],
        decoupled in any::<bool>(), seed in any::<u64>(),
    ) {
        let (w0, grad) = (values(seed, len), values(seed ^ 1, len));
        let m0 = values(seed ^ 2, len);
        let v0: Vec<f32> = values(seed ^ 3, len).iter().map(|v| v.abs() * 0.01).collect();
        let s = AdamStep { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, bias1: 1.0 - 0.9f32.powi(t), bias2: 1.0 - 0.999f32.powi(t), weight_decay: wd, decoupled };
        let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
        adam_update(&mut w, &grad, &mut m, &mut v, &s);
        let g = gpu();
        let (gw, gm, gv, step) = (up(&w0), up(&m0), up(&v0), g.step_uniform());
        g.write_step(&step, s.lr, false, 0, (s.bias1, s.bias2)).unwrap();
        let op = g.adam_op((s.b1, s.b2, s.eps), (wd, decoupled), &gw, &up(&grad), &gm, &gv, &step).unwrap();
        close(&run(&op, &gw, len), &w, |x| 1e-5 * (1.0 + x.abs()), "w")?;
        close(&g.download(&gm, len).unwrap(), &m, |x| 1e-6 * (1.0 + x.abs()), "m")?;
        close(&g.download(&gv, len).unwrap(), &v, |x| 1e-6 * (1.0 + x.abs()), "v")?;
    }
}

#[test]
fn gemm_rejects_short_operands() {
    let mut c = vec![0.0; 4];
    let err = gpu()
        .gemm(
            2,
            2,
            2,
            &[1.0; 3],
            (2, 1),
            &[1.0; 4],
            (2, 1),
            &mut c,
            2,
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("A has 3 elements, needs 4"),
        "{err}"
    );
}

#[test]
fn ops_reject_short_buffers() {
    let g = gpu();
    let (x, y) = (g.zeros(10).unwrap(), g.zeros(5).unwrap());
    let err = g
        .relu_forward_op(10, &x, &y)
        .err()
        .expect("short y accepted");
    assert!(
        err.to_string().contains("y holds 5 values, needs 10"),
        "{err}"
    );
    let geom = ConvGeometry {
        channels: 1,
        height: 4,
        width: 4,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 0,
    };
    let err = g
        .im2col_op(&geom, 1, &x, &y)
        .err()
        .expect("short x accepted");
    assert!(
        err.to_string().contains("x holds 10 values, needs 16"),
        "{err}"
    );
}

/// A few steps of the article's network on the GPU land where the same steps on the CPU
/// land: weights within 1e-4 after 5 SGD-with-momentum steps, loss within 1e-4.
#[test]
fn training_steps_match_cpu() {
    let batch = 8;
    let x = Tensor::from_vec(&[batch, 3, 32, 32], values(7, batch * 3 * 32 * 32)).unwrap();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let mut cpu = models::seed_net(1).unwrap();
    let mut cpu_opt = Sgd::new(0.01, 0.9).weight_decay(5e-4).nesterov(true);
    let mut loss = SoftmaxCrossEntropy::new();
    let mut cpu_losses = Vec::new();
    let mut gpu_model = models::seed_net(1).unwrap();
    let mut gpu_opt = Sgd::new(0.01, 0.9).weight_decay(5e-4).nesterov(true);
    let mut net = GpuNet::new(Gpu::new().unwrap(), &mut gpu_model, &mut gpu_opt, 0.0).unwrap();
    let mut gpu_losses = Vec::new();
    for step in 0..5u64 {
        let logits = cpu.forward(&x, Mode::Train).unwrap();
        cpu_losses.push(loss.forward(logits, &labels).unwrap().loss);
        cpu.backward(loss.grad()).unwrap();
        cpu_opt.step(&mut cpu);
        net.train_step(&x, &labels, 0.01, step).unwrap();
        gpu_losses.push(net.take_totals().unwrap().loss_sum / batch as f64);
        gpu_opt.set_steps(step + 1);
    }
    for (c, g) in cpu_losses.iter().zip(&gpu_losses) {
        assert!(
            (c - g).abs() < 1e-4,
            "losses cpu {cpu_losses:?} gpu {gpu_losses:?}"
        );
    }
    assert!(
        gpu_losses[4] < gpu_losses[0],
        "loss did not fall: {gpu_losses:?}"
    );
    net.sync_to_host(&mut gpu_model, &mut gpu_opt).unwrap();
    let mut want = Vec::new();
    cpu.visit_params(&mut |name, p| want.push((name.to_string(), p.value.to_vec())));
    let mut i = 0;
    gpu_model.visit_params(&mut |name, p| {
        assert_eq!(name, want[i].0);
        for (g, c) in p.value.iter().zip(&want[i].1) {
            assert!((g - c).abs() < 1e-4, "{name}: gpu {g} cpu {c}");
        }
        i += 1;
    });
    // The optimizer state came back too: momentum buffers match the CPU's.
    let cpu_state: Vec<Vec<f32>> = cpu_opt
        .state(&mut cpu)
        .into_iter()
        .map(|(_, b)| b.clone())
        .collect();
    let gpu_state: Vec<Vec<f32>> = gpu_opt
        .state(&mut gpu_model)
        .into_iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert_eq!(cpu_state.len(), gpu_state.len());
    for (c, g) in cpu_state.iter().flatten().zip(gpu_state.iter().flatten()) {
        assert!((g - c).abs() < 1e-3, "momentum gpu {g} cpu {c}");
    }
}

/// Adam on the device follows Adam on the host (one conv, one dense layer, 4 steps).
#[test]
fn adam_training_matches_cpu() {
    use ferroconv::layers::{Conv2d, Dense, Flatten, MaxPool2d, ReLU};
    use ferroconv::{Layer, Sequential};
    let build = || {
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Conv2d::new(3, 4, 3).padding(1).stride(2)),
            Box::new(ReLU::new()),
            Box::new(MaxPool2d::new(3, 2)),
            Box::new(Flatten::new()),
            Box::new(Dense::new(4 * 3 * 3, 10).bias(false)),
        ];
        Sequential::new(&[3, 13, 13], layers, 5).unwrap()
    };
    let batch = 6;
    let x = Tensor::from_vec(&[batch, 3, 13, 13], values(3, batch * 3 * 13 * 13)).unwrap();
    let labels = [1u32, 4, 9, 0, 2, 2];
    let (mut cpu, mut gpu_model) = (build(), build());
    let (mut cpu_opt, mut gpu_opt) = (Adam::adamw(0.01, 0.05), Adam::adamw(0.01, 0.05));
    let mut loss = SoftmaxCrossEntropy::with_label_smoothing(0.1);
    let mut net = GpuNet::new(Gpu::new().unwrap(), &mut gpu_model, &mut gpu_opt, 0.1).unwrap();
    for step in 0..4 {
        let logits = cpu.forward(&x, Mode::Train).unwrap();
        let want = loss.forward(logits, &labels).unwrap().loss;
        cpu.backward(loss.grad()).unwrap();
        cpu_opt.step(&mut cpu);
        net.train_step(&x, &labels, 0.01, step).unwrap();
        let got = net.take_totals().unwrap().loss_sum / batch as f64;
        assert!(
            (got - want).abs() < 1e-4,
            "step {step}: loss gpu {got} cpu {want}"
        );
    }
    gpu_opt.set_steps(4);
    net.sync_to_host(&mut gpu_model, &mut gpu_opt).unwrap();
    let mut want = Vec::new();
    cpu.visit_params(&mut |_, p| want.extend_from_slice(p.value));
    let mut got = Vec::new();
    gpu_model.visit_params(&mut |_, p| got.extend_from_slice(p.value));
    for (g, c) in got.iter().zip(&want) {
        assert!((g - c).abs() < 1e-4, "gpu {g} cpu {c}");
    }
}

#[test]
fn unsupported_layers_are_named() {
    let mut model = models::keras_net(0).unwrap();
    let mut opt = Sgd::new(0.01, 0.9);
    let mut resnet = models::resnet9(0).unwrap();
    let err = GpuNet::new(Gpu::new().unwrap(), &mut resnet, &mut opt, 0.0)
        .err()
        .expect("batch norm accepted");
    assert!(err.to_string().contains("has no wgpu kernels yet"), "{err}");
    // The Keras tutorial network is all supported layers.
    GpuNet::new(Gpu::new().unwrap(), &mut model, &mut opt, 0.0).unwrap();
}

#[test]
fn bad_batches_are_errors() {
    let mut model = models::seed_net(0).unwrap();
    let mut opt = Sgd::new(0.01, 0.9);
    let mut net = GpuNet::new(Gpu::new().unwrap(), &mut model, &mut opt, 0.0).unwrap();
    let x = Tensor::zeros(&[2, 3, 32, 32]);
    let err = net.train_step(&x, &[1, 10], 0.01, 0).unwrap_err();
    assert!(err.to_string().contains("label 10 out of range"), "{err}");
    let err = net
        .train_step(&Tensor::zeros(&[2, 3, 28, 28]), &[1, 2], 0.01, 0)
        .unwrap_err();
    assert!(err.to_string().contains("GpuNet input"), "{err}");
}

/// Four epochs over 512 real CIFAR-10 images: the training loss falls, and a
/// second run from the same seed gives the same losses bit for bit.
#[test]
fn training_on_cifar10_loss_falls() {
    let Some(dir) = data_dir() else { return };
    let mut train = Cifar10::load(&dir, Split::Train).unwrap();
    train.truncate(512);
    let run = |epochs: u64| {
        let mut model = models::seed_net(0).unwrap();
        let mut opt = Sgd::new(0.01, 0.9);
        let mut net = GpuNet::new(Gpu::new().unwrap(), &mut model, &mut opt, 0.0).unwrap();
        let plan = ferroconv::train::Plan::constant(16, 0);
        let mut losses = Vec::new();
        for epoch in 1..=epochs {
            let s =
                ferroconv::gpu::train_epoch(&mut net, &mut opt, &train, &plan, epoch, &mut |_| {})
                    .unwrap();
            losses.push(s.train_loss);
        }
        losses
    };
    let first = run(4);
    eprintln!("GPU training losses: {first:?}");
    assert!(first[3] < first[0] - 0.05, "loss did not fall: {first:?}");
    assert_eq!(first[..1], run(1), "same seed, different losses");
}

/// `cifar10 --device wgpu` trains, names the adapter on every epoch line and in the JSON,
/// saves a checkpoint the CPU model loads, and resumes from it on the GPU.
#[test]
fn example_trains_saves_and_resumes_on_wgpu() {
    use std::process::Command;
    let Some(data) = data_dir() else { return };
    let dir = common::temp_dir("wgpu-example");
    let json = dir.join("log.jsonl");
    let run = |epochs: &str, extra: &[&str]| {
        let out = Command::new(common::example_binary("cifar10"))
            .args(["--device", "wgpu", "--data"])
            .arg(&data)
            .args([
                "--limit-train",
                "256",
                "--limit-test",
                "100",
                "--batch-size",
                "32",
            ])
            .args(["--lr", "0.01", "--epochs", epochs, "--save"])
            .arg(&dir)
            .arg("--json")
            .arg(&json)
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    let stdout = run("1", &[]);
    let epoch_lines: Vec<&str> = stdout.lines().filter(|l| l.contains("[wgpu: ")).collect();
    assert_eq!(epoch_lines.len(), 1, "{stdout}");
    let ckpt = dir.join("checkpoint.safetensors");
    let st = ferroconv::checkpoint::SafeTensors::read(&ckpt).unwrap();
    let mut model = models::seed_net(9).unwrap();
    ferroconv::checkpoint::load_model(&mut model, &st, &ckpt).unwrap();

    let resumed = run("2", &["--resume", dir.to_str().unwrap()]);
    assert!(resumed.contains("resumed"), "{resumed}");
    assert_eq!(
        resumed.lines().filter(|l| l.contains("[wgpu: ")).count(),
        1,
        "{resumed}"
    );
    let log = std::fs::read_to_string(&json).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.lines().all(|l| l.contains("\"device\":\"wgpu: ")),
        "{log}"
    );
}
