//! The wgpu path beside the CPU path: `cargo bench --features wgpu --bench gpu`.
//!
//! Prints, each the median of several timed runs:
//! - `gemm/wgpu/n<size>: <x> GFLOP/s`: square GEMM, operands already on the device, the
//!   kernel(s) alone (submit + wait);
//! - `train/<wgpu|cpu>/<net>@<batch>: <x> images/s`: training steps of the article's
//!   network (`seed`) and the Keras tutorial CNN (`tfcnn`), the same batches on both paths;
//!   the GPU figure includes uploading each batch and reading the loss back at the end.
//!
//! `GPU_BENCH_SIZES=256,512,4096` picks the GEMM sizes (default 256–2048);
//! `GPU_BENCH_QUICK=1` runs a short version (CI, lavapipe).

mod common;
use common::{median_secs, values};

use ferroconv::gpu::{GemmShape, Gpu, GpuNet};
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::{Mode, SoftmaxCrossEntropy, Tensor, models};
use std::time::{Duration, Instant};

fn main() {
    let quick = std::env::var_os("GPU_BENCH_QUICK").is_some();
    let sizes: Vec<usize> = match std::env::var("GPU_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("GPU_BENCH_SIZES: comma-separated sizes")
            })
            .collect(),
        Err(_) if quick => vec![256, 512],
        Err(_) => vec![256, 512, 1024, 2048],
    };
    let gpu = Gpu::new().expect("no GPU adapter");
    println!("# adapter: {}", gpu.adapter_name());
    for &n in &sizes {
        let a = gpu.upload(&values(1, n * n)).unwrap();
        let b = gpu.upload(&values(2, n * n)).unwrap();
        let c = gpu.zeros(n * n).unwrap();
        let shape = GemmShape {
            m: n,
            k: n,
            n,
            a: (n, 1),
            b: (n, 1),
            rsc: n,
            accumulate: false,
        };
        let ops = gpu.gemm_op(&shape, &a, &b, &c).unwrap();
        let reps = if quick { 3 } else { 5 };
        let s = median_secs(reps, Duration::from_millis(300), || {
            gpu.run(&ops).unwrap();
        });
        println!(
            "gemm/wgpu/n{n}: {:.2} GFLOP/s",
            2.0 * (n * n * n) as f64 / s / 1e9
        );
    }
    drop(gpu);

    let steps = |batch: usize| -> usize {
        let images = if quick { 256 } else { 2048 };
        (images / batch).max(4)
    };
    for (name, batch) in [("seed", 4), ("seed", 64), ("tfcnn", 64)] {
        let build = || match name {
            "seed" => models::seed_net(0).unwrap(),
            _ => models::keras_net(0).unwrap(),
        };
        let n_steps = steps(batch);
        let x = Tensor::from_vec(&[batch, 3, 32, 32], values(3, batch * 3 * 32 * 32)).unwrap();
        let labels: Vec<u32> = (0..batch).map(|i| (i % 10) as u32).collect();

        let (mut model, mut opt) = (build(), Sgd::new(0.001, 0.9));
        let mut net = GpuNet::new(Gpu::new().unwrap(), &mut model, &mut opt, 0.0).unwrap();
        let mut run_gpu = |steps: usize| {
            for s in 0..steps {
                net.train_step(&x, &labels, 0.001, s as u64).unwrap();
            }
            net.take_totals().unwrap();
        };
        run_gpu(2); // builds the step's dispatches
        let gpu_rate = rate(batch, n_steps, &mut run_gpu);
        println!("train/wgpu/{name}@{batch}: {gpu_rate:.0} images/s");

        let (mut model, mut opt) = (build(), Sgd::new(0.001, 0.9));
        let mut loss = SoftmaxCrossEntropy::new();
        let mut run_cpu = |steps: usize| {
            for _ in 0..steps {
                let logits = model.forward(&x, Mode::Train).unwrap();
                loss.forward(logits, &labels).unwrap();
                model.backward(loss.grad()).unwrap();
                opt.step(&mut model);
            }
        };
        run_cpu(2);
        let cpu_rate = rate(batch, n_steps, &mut run_cpu);
        println!("train/cpu/{name}@{batch}: {cpu_rate:.0} images/s");
    }
}

/// Median images/s over 3 runs of `steps` steps.
fn rate(batch: usize, steps: usize, run: &mut dyn FnMut(usize)) -> f64 {
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            run(steps);
            (batch * steps) as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    rates[1]
}
