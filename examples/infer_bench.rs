//! Inference images/s of a zoo network in eval mode, for comparison with PyTorch under
//! `torch.inference_mode()` (`tools/infer_pytorch.py`; `tools/infer_side_by_side.sh` runs
//! both alternately).
//!
//! `cargo run --release --example infer_bench -- --arch resnet50 --batch 32 [--side 224]
//!  [--threads 2] [--iters 5] [--fold bn|none] [--json PATH]`
//!
//! Random weights (the layers' default initialisation) and random inputs. By default
//! batch norm is folded into the convolutions and ReLUs fused into them first
//! (`Sequential::fuse_for_inference`); `--fold bn` folds batch norm only
//! (`Sequential::fold_batch_norm`), `--fold none` runs the model as built.
//! One warm-up pass, then `--iters` timed passes (at least 1.5 s in all when a pass is
//! short); the median pass gives images/s (`tools/infer_pytorch.py` times the same way).

use ferroconv::layers::Mode;
use ferroconv::{Sequential, Tensor};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// A zoo network by torchvision's name (1000 classes), for `side×side` inputs where the
/// family allows.
fn build(arch: &str, side: usize) -> Result<Sequential, String> {
    ferroconv::zoo::build(arch, 1000, side, 0).map_err(|e| e.to_string())
}

/// The median (the mean of the middle two for an even count, as Python's).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let h = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[h - 1] + v[h]) / 2.0
    } else {
        v[h]
    }
}

fn run() -> Result<(), String> {
    let (mut arch, mut batch, mut side) = ("resnet50".to_string(), 1usize, 224usize);
    let (mut threads, mut iters, mut fold, mut json) = (None, 5usize, "all".to_string(), None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--arch" => arch = value()?,
            "--batch" => batch = num(value()?)?.max(1),
            "--side" => side = num(value()?)?,
            "--threads" => threads = Some(num(value()?)?),
            "--iters" => iters = num(value()?)?.max(1),
            "--fold" => fold = value()?,
            "--json" => json = Some(value()?),
            "--help" | "-h" => {
                println!(
                    "Usage: infer_bench [--arch resnet50|vgg16|…] [--batch N] [--side 224] \
                     [--threads N] [--iters N] [--fold all|bn|none] [--json PATH]"
                );
                return Ok(());
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    if let Some(t) = threads {
        ferroconv::set_threads(t).map_err(|e| e.to_string())?;
    }
    let mut model = build(&arch, side)?;
    let folded = match fold.as_str() {
        "all" => model.fuse_for_inference(),
        "bn" => model.fold_batch_norm(),
        "none" => 0,
        _ => return Err(format!("--fold {fold:?}: all, bn or none")),
    };
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let len = 3 * side * side;
    let x = Tensor::from_vec(
        &[batch, 3, side, side],
        (0..batch * len).map(|_| rand()).collect(),
    )
    .map_err(|e| e.to_string())?;
    let t = Instant::now();
    model.forward(&x, Mode::Eval).map_err(|e| e.to_string())?;
    let warm = t.elapsed().as_secs_f64();
    // Enough passes for about 1.5 s when one pass is short.
    let iters = iters.max((1.5 / warm.max(1e-6)).ceil() as usize).min(200);
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        model.forward(&x, Mode::Eval).map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64());
    }
    let med = median(times.clone());
    // The fastest pass: on a shared host, the least disturbed by other tenants.
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let ips = batch as f64 / med;
    let isa = ferroconv::cpu::gemm::best_kernel_name();
    let threads = rayon::current_num_threads();
    println!(
        "{arch}@{batch} {side}×{side}: {ips:.2} images/s (median of {iters} passes, {:.1} ms; \
         best {:.1} ms; warm-up {:.1} ms; {threads} threads; gemm {isa}; fold {fold}: {folded} layers removed)",
        med * 1e3,
        best * 1e3,
        warm * 1e3
    );
    if let Some(path) = json {
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        writeln!(
            f,
            "{{\"arch\":\"{arch}\",\"batch\":{batch},\"side\":{side},\"threads\":{threads},\
             \"images_per_sec\":{ips:.3},\"median_ms\":{:.3},\"best_ms\":{:.3},\"iters\":{iters},\
             \"fold\":\"{fold}\",\"removed\":{folded},\"gemm\":\"{isa}\"}}",
            med * 1e3,
            best * 1e3
        )
        .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
