//! Convolution layer timings: `cargo bench --bench conv` (`CONV_BENCH_QUICK=1` for a short run).
//!
//! Prints `conv/<isa>/<name>/<fwd|bwd>/b<batch>: <ms> ms, <x> GFLOP/s` for the conv layers of the
//! article's net (`seed`), the Keras-style net (`tfcnn`) and ResNet-9 (`resnet`): the
//! median of several timed repetitions of `Conv2d::forward` (training mode) and of
//! `Conv2d::backward` (weight and input gradients, as in training; the first layer of a
//! net skips its input gradient). FLOPs count 2 per multiply-add: forward
//! `2·N·Cout·C·K²·OH·OW`, backward twice that (once without the input gradient).
//! `<isa>` is the GEMM microkernel's instruction set (`avx512f`, `avx2+fma`, `portable`):
//! the fastest this CPU has, or the one `FERROCONV_GEMM_KERNEL=avx512|avx2|portable`
//! forces. `CONV_BENCH_FILTER=<text>` runs only the lines whose name contains `<text>`.
//!
//! Every layer runs on im2col + GEMM (`conv/<isa>/<name>/…`); 3×3 stride-1 layers also by
//! Winograd `F(2,3)` and `F(4,3)` (`…/<name>/f2/…`, `…/<name>/f4/…`), their GFLOP/s counted
//! with the direct convolution's FLOPs (so they can exceed the machine's FMA peak), and
//! layers with at most 64 output channels also by the direct path (`…/<name>/direct/…`,
//! `ConvAlgo::Direct`, which `Auto` picks up to 16). `air_*`
//! are the `airbench@512` (`models::fast_net`) layers.
//!
//! Then `resnet50`'s convolutions at batch 1 in evaluation mode, as `infer_bench --batch 1`
//! runs them (`ConvAlgo::Auto`; bias, no ReLU): `conv/<isa>/r50_<shape>/eval/b1: <ms>
//! ms, <x> GFLOP/s, ×<count>`, one line per distinct shape with its count in the network,
//! and a last line `conv/<isa>/r50/eval/b1/sum` adding them up by count.

mod common;
use common::*;

use ferroconv::Tensor;
use ferroconv::layers::{Conv2d, ConvAlgo, Layer, Mode};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use std::hint::black_box;
use std::time::Duration;

/// One benchmarked layer: `cin → cout`, `k×k`, padding, on `hw×hw` inputs.
struct Case {
    name: &'static str,
    cin: usize,
    cout: usize,
    k: usize,
    pad: usize,
    hw: usize,
    batch: usize,
    /// Whether backward computes the input gradient (false for a net's first layer).
    input_grad: bool,
}

fn main() {
    let quick = std::env::var_os("CONV_BENCH_QUICK").is_some();
    let filter = std::env::var("CONV_BENCH_FILTER").unwrap_or_default();
    let (reps, target) = if quick {
        (5, Duration::from_millis(30))
    } else {
        (9, Duration::from_millis(200))
    };
    let c = |name, cin, cout, k, pad, hw, batch, input_grad| Case {
        name,
        cin,
        cout,
        k,
        pad,
        hw,
        batch,
        input_grad,
    };
    let cases = [
        c("seed1_3x32x32_6_5x5", 3, 6, 5, 0, 32, 4, false),
        c("seed2_6x14x14_16_5x5", 6, 16, 5, 0, 14, 4, true),
        c("seed1_3x32x32_6_5x5", 3, 6, 5, 0, 32, 64, false),
        c("seed2_6x14x14_16_5x5", 6, 16, 5, 0, 14, 64, true),
        c("tfcnn1_3x32x32_32_3x3", 3, 32, 3, 0, 32, 64, false),
        c("tfcnn2_32x15x15_64_3x3", 32, 64, 3, 0, 15, 64, true),
        c("tfcnn3_64x6x6_64_3x3", 64, 64, 3, 0, 6, 64, true),
        c("resnet_64x32x32_128_3x3p1", 64, 128, 3, 1, 32, 128, true),
        c("resnet_128x16x16_128_3x3p1", 128, 128, 3, 1, 16, 128, true),
        c("resnet_128x16x16_256_3x3p1", 128, 256, 3, 1, 16, 128, true),
        c("resnet_256x8x8_256_3x3p1", 256, 256, 3, 1, 8, 128, true),
        c("air_24x31x31_32_3x3p1", 24, 32, 3, 1, 31, 512, true),
        c("air_32x15x15_32_3x3p1", 32, 32, 3, 1, 15, 512, true),
        c("air_32x15x15_128_3x3p1", 32, 128, 3, 1, 15, 512, true),
        c("air_128x7x7_128_3x3p1", 128, 128, 3, 1, 7, 512, true),
        c("air_128x3x3_128_3x3p1", 128, 128, 3, 1, 3, 512, true),
    ];
    let isa = ferroconv::cpu::gemm::Kernel::selected().isa();
    println!(
        "threads: {}; gemm microkernel: {}",
        rayon::current_num_threads(),
        ferroconv::cpu::gemm::best_kernel_name()
    );
    let runs = cases.iter().flat_map(|case| {
        let mut algos = vec![("", ConvAlgo::Im2col)];
        if case.k == 3 {
            algos.push(("/f2", ConvAlgo::Winograd2));
            algos.push(("/f4", ConvAlgo::Winograd4));
        }
        if case.cout <= 64 {
            algos.push(("/direct", ConvAlgo::Direct));
        }
        algos
            .into_iter()
            .map(move |(suffix, algo)| (case, suffix, algo))
    });
    for (case, suffix, algo) in runs {
        let tag = format!("conv/{isa}/{}{suffix}", case.name);
        if !tag.contains(&filter) {
            continue;
        }
        let mut layer = Conv2d::new(case.cin, case.cout, case.k)
            .padding(case.pad)
            .algorithm(algo);
        // A layer gets its weights at `init` (a model does this when it is built).
        layer
            .init(&mut Xoshiro256PlusPlus::seed_from_u64(0))
            .expect("layer init");
        let x = Tensor::from_vec(
            &[case.batch, case.cin, case.hw, case.hw],
            values(1, case.batch * case.cin * case.hw * case.hw),
        )
        .expect("input shape");
        let oh = case.hw + 2 * case.pad - case.k + 1;
        let macs = (case.batch * case.cout * case.cin * case.k * case.k * oh * oh) as f64;
        let dy = Tensor::from_vec(
            &[case.batch, case.cout, oh, oh],
            values(2, case.batch * case.cout * oh * oh),
        )
        .expect("gradient shape");
        let fwd = median_secs(reps, target, || {
            black_box(layer.forward(black_box(&x), Mode::Train));
        });
        let bwd = median_secs(reps, target, || {
            layer.forward(&x, Mode::Train);
            black_box(layer.backward(black_box(&dy), case.input_grad));
        }) - fwd;
        let bwd_flops = if case.input_grad { 4.0 } else { 2.0 } * macs;
        for (dir, secs, flops) in [("fwd", fwd, 2.0 * macs), ("bwd", bwd, bwd_flops)] {
            println!(
                "{tag}/{dir}/b{}: {:.3} ms, {:.1} GFLOP/s",
                case.batch,
                secs * 1e3,
                flops / secs / 1e9
            );
        }
    }
    eval_r50(&filter, isa, reps, target);
}

/// `resnet50`'s distinct convolution shapes at 224×224: `(cin, cout, k, stride, pad, hw,
/// count)`, `hw` the input side.
const R50: [(usize, usize, usize, usize, usize, usize, usize); 20] = [
    (3, 64, 7, 2, 3, 224, 1),
    (64, 64, 1, 1, 0, 56, 1),
    (256, 64, 1, 1, 0, 56, 2),
    (64, 64, 3, 1, 1, 56, 3),
    (64, 256, 1, 1, 0, 56, 4),
    (256, 128, 1, 1, 0, 56, 1),
    (128, 128, 3, 2, 1, 56, 1),
    (256, 512, 1, 2, 0, 56, 1),
    (512, 128, 1, 1, 0, 28, 3),
    (128, 128, 3, 1, 1, 28, 3),
    (128, 512, 1, 1, 0, 28, 4),
    (512, 256, 1, 1, 0, 28, 1),
    (256, 256, 3, 2, 1, 28, 1),
    (512, 1024, 1, 2, 0, 28, 1),
    (1024, 256, 1, 1, 0, 14, 5),
    (256, 256, 3, 1, 1, 14, 5),
    (256, 1024, 1, 1, 0, 14, 6),
    (1024, 512, 1, 1, 0, 14, 1),
    (512, 512, 3, 2, 1, 14, 1),
    (1024, 2048, 1, 2, 0, 14, 1),
];

/// The evaluation-mode, batch-1 lines (module docs). The remaining resnet50 shapes at 7×7
/// (`2048→512`, `512→512 3×3`, `512→2048`) follow the table.
fn eval_r50(filter: &str, isa: &str, reps: usize, target: Duration) {
    let tail = [
        (2048, 512, 1, 1, 0, 7, 2),
        (512, 512, 3, 1, 1, 7, 2),
        (512, 2048, 1, 1, 0, 7, 3),
    ];
    let (mut sum, mut ran) = (0.0, false);
    for (cin, cout, k, stride, pad, hw, count) in R50.into_iter().chain(tail) {
        let name = format!("r50_{cin}x{hw}x{hw}_{cout}_{k}x{k}s{stride}p{pad}");
        let tag = format!("conv/{isa}/{name}/eval/b1");
        if !tag.contains(filter) {
            continue;
        }
        ran = true;
        let mut layer = Conv2d::new(cin, cout, k).stride(stride).padding(pad);
        layer
            .init(&mut Xoshiro256PlusPlus::seed_from_u64(0))
            .expect("layer init");
        let x = Tensor::from_vec(&[1, cin, hw, hw], values(1, cin * hw * hw)).expect("input shape");
        let oh = (hw + 2 * pad - k) / stride + 1;
        let flops = 2.0 * (cout * cin * k * k * oh * oh) as f64;
        let secs = median_secs(reps, target, || {
            black_box(layer.forward(black_box(&x), Mode::Eval));
        });
        sum += secs * count as f64;
        println!(
            "{tag}: {:.3} ms, {:.1} GFLOP/s, ×{count}",
            secs * 1e3,
            flops / secs / 1e9
        );
    }
    if ran {
        println!(
            "conv/{isa}/r50/eval/b1/sum: {:.2} ms (the lines above)",
            sum * 1e3
        );
    }
}
