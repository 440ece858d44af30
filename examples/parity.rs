//! Parity with PyTorch: loads the files `tools/parity/export.py` wrote for each
//! torchvision architecture, runs the same batch here and compares.
//!
//! ```text
//! ~/.cache/ferroconv-torch-venv/bin/python tools/parity/export.py DIR [ARCH ...]
//! cargo run --release --example parity -- DIR [ARCH ...]
//! ```
//!
//! Checks, for every architecture (all ten unless named): the torchvision `state_dict`
//! loads unchanged ([`Sequential::load_weights`]), and the eval-mode logits agree within
//! [`TOL`] relative to the largest reference logit, `max|ours − torch| / max|torch|`.
//! For resnet18 and vgg11_bn also in training mode (dropout off, batch statistics, on the
//! export's smaller training batch): the cross-entropy loss within `TOL` relative, and
//! every parameter's gradient `g` within `TOL` of PyTorch's `r`: `‖g − r‖₂ / ‖r‖₂`.
//! Except for gradients that are zero in exact arithmetic (a convolution bias before a
//! training-mode batch norm, which subtracts it again: PyTorch's float64 gradient is below
//! [`ZERO`] times `s = rms · √len`, `rms` the root mean square of all the model's
//! reference gradient entries): both float32 results are rounding noise there, and the
//! check is `‖g‖₂ / s ≤ TOL`, noise below `TOL` of a typical gradient of that size.
//! Beside the result: how far ours and PyTorch's float32 gradients are from PyTorch's
//! float64 ones (docs/zoo.md explains why the training check is not at 224×224).
//! A missing file is a failure, not a skip: the exit status is non-zero unless every
//! check passed.

use ferroconv::checkpoint::SafeTensors;
use ferroconv::layers::Mode;
use ferroconv::zoo::{self, ARCHS};
use ferroconv::{Error, Result, Sequential, SoftmaxCrossEntropy, Tensor};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Largest relative difference accepted.
const TOL: f64 = 1e-4;

/// The tolerance in force: [`TOL`], or `$PARITY_TOL` (CI loosens it for the run where
/// 3×3 convolutions take the Winograd F(4×4,3×3) path, which costs about one digit).
fn tol() -> f64 {
    std::env::var("PARITY_TOL")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(TOL)
}
/// Below this many times a typical gradient norm, a float64 reference gradient is zero in
/// exact arithmetic (see the module docs).
const ZERO: f64 = 1e-6;
/// Classes the export uses.
const CLASSES: usize = 100;
/// Architectures whose training pass is checked too.
const TRAIN: [&str; 2] = ["resnet18", "vgg11_bn"];

/// The architecture `arch`; for the training check, on `[3, side, side]` inputs with
/// dropout off (as the export has it).
fn build(arch: &str, train: Option<usize>) -> Result<Sequential> {
    match (arch, train) {
        ("vgg11_bn", Some(side)) => {
            return zoo::vgg(zoo::VGG11_CONFIG, true, CLASSES, 0.0, side, 0);
        }
        ("resnet18", Some(side)) => return zoo::resnet(18, CLASSES, side, 0),
        _ => {}
    }
    match arch {
        "alexnet" => zoo::alexnet(CLASSES, 0),
        "vgg11" => zoo::vgg11(CLASSES, 0),
        "vgg11_bn" => zoo::vgg11_bn(CLASSES, 0),
        "vgg16" => zoo::vgg16(CLASSES, 0),
        "vgg16_bn" => zoo::vgg16_bn(CLASSES, 0),
        "resnet18" => zoo::resnet18(CLASSES, 0),
        "resnet34" => zoo::resnet34(CLASSES, 0),
        "resnet50" => zoo::resnet50(CLASSES, 0),
        "googlenet" => zoo::googlenet(CLASSES, 0),
        "inception_v3" => zoo::inception_v3(CLASSES, 0),
        other => Err(Error::Invalid(format!(
            "unknown architecture {other:?}; known: {ARCHS:?}"
        ))),
    }
}

/// `‖got − want‖₂ / max(‖want‖₂, floor)`.
fn rel_err_l2(got: &[f32], want: &[f32], floor: f64) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    diff.sqrt() / norm.sqrt().max(floor)
}

/// `max|got − want| / max|want|`.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|b| (*b as f64).abs()).fold(0.0, f64::max);
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    if scale == 0.0 { diff } else { diff / scale }
}

/// The F32 tensor `name` of `st`, or an error naming the file.
fn tensor<'a>(
    st: &'a SafeTensors,
    name: &str,
    path: &Path,
) -> Result<&'a ferroconv::checkpoint::StoredTensor> {
    st.tensors.get(name).ok_or_else(|| Error::Format {
        path: path.to_path_buf(),
        detail: format!("no tensor {name:?}"),
    })
}

/// Eval-mode check of one architecture; returns the relative logit error and the seconds
/// the forward pass took.
fn check_eval(dir: &Path, arch: &str) -> Result<(f64, f64)> {
    let mut model = build(arch, None)?;
    model.load_weights(dir.join(format!("{arch}.safetensors")))?;
    let path = dir.join(format!("{arch}.ref.safetensors"));
    let st = SafeTensors::read(&path)?;
    let input = tensor(&st, "input", &path)?;
    let want = tensor(&st, "logits", &path)?;
    let x = Tensor::from_vec(&input.shape, input.data.clone())?;
    let t = Instant::now();
    let got = model.forward(&x, Mode::Eval)?;
    let secs = t.elapsed().as_secs_f64();
    got.expect_shape("logits", &want.shape)?;
    Ok((rel_err(got.data(), &want.data), secs))
}

/// What the training-mode check found.
struct TrainCheck {
    loss_err: f64,
    /// Worst gradient error and its parameter.
    worst: (f64, String),
    /// Worst distance from PyTorch's float64 gradients: ours, and PyTorch's float32 ones.
    from_f64: (f64, f64),
    /// Parameters whose gradient is zero in exact arithmetic.
    zeros: usize,
    params: usize,
}

/// Training-mode check against PyTorch's float64 loss and gradients.
fn check_train(dir: &Path, arch: &str) -> Result<TrainCheck> {
    let path = dir.join(format!("{arch}.train.safetensors"));
    let st = SafeTensors::read(&path)?;
    let input = tensor(&st, "input", &path)?.clone();
    let mut model = build(arch, Some(input.shape.last().copied().unwrap_or(0)))?;
    model.load_weights(dir.join(format!("{arch}.safetensors")))?;
    let labels: Vec<u32> = tensor(&st, "labels", &path)?
        .data
        .iter()
        .map(|&v| v as u32)
        .collect();
    let x = Tensor::from_vec(&input.shape, input.data)?;
    let mut loss = SoftmaxCrossEntropy::new();
    let logits = model.forward(&x, Mode::Train)?;
    let stats = loss.forward(logits, &labels)?;
    model.backward(loss.grad())?;
    let want_loss = tensor(&st, "loss", &path)?.data[0] as f64;
    let loss_err = (stats.loss - want_loss).abs() / want_loss.abs().max(f64::MIN_POSITIVE);
    let mut grads: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    model.visit_params(&mut |name, p| {
        grads.insert(name.to_string(), p.grad.to_vec());
    });
    let theirs: Vec<&String> = st
        .tensors
        .keys()
        .filter(|k| k.starts_with("grad."))
        .collect();
    if theirs.len() != grads.len() {
        return Err(Error::Invalid(format!(
            "{arch}: {} parameters here, {} gradients in {}",
            grads.len(),
            theirs.len(),
            path.display()
        )));
    }
    // rms of every reference gradient entry, for the floor.
    let (mut sq, mut count) = (0.0f64, 0usize);
    for name in grads.keys() {
        let want = tensor(&st, &format!("grad.{name}"), &path)?;
        sq += want.data.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
        count += want.data.len();
    }
    let rms = (sq / count.max(1) as f64).sqrt();
    let (mut worst, mut worst_name) = (0.0f64, String::new());
    let (mut ours_worst, mut torch_worst, mut zeros) = (0.0f64, 0.0f64, 0usize);
    for (name, g) in &grads {
        let want = tensor(&st, &format!("grad.{name}"), &path)?;
        let exact = tensor(&st, &format!("grad64.{name}"), &path)?;
        let typical = rms * (want.data.len() as f64).sqrt();
        let zero = exact
            .data
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            .sqrt()
            <= ZERO * typical;
        let e = if zero {
            g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt() / typical
        } else {
            rel_err_l2(g, &want.data, 0.0)
        };
        zeros += usize::from(zero);
        if e > worst || worst_name.is_empty() {
            (worst, worst_name) = (e, name.clone());
        }
        let theirs = tensor(&st, &format!("torch_f32_err.{name}"), &path)?.data[0] as f64;
        let ours64 = rel_err_l2(g, &exact.data, typical * ZERO);
        if !zero {
            torch_worst = torch_worst.max(theirs);
            ours_worst = ours_worst.max(ours64);
        }
        if std::env::var_os("PARITY_VERBOSE").is_some() {
            println!(
                "  {name:<36} vs PyTorch {e:.2e}{}; from float64: ours {ours64:.2e}, \
                 PyTorch float32 {theirs:.2e}",
                if zero {
                    " (zero in exact arithmetic)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(TrainCheck {
        loss_err,
        worst: (worst, worst_name),
        from_f64: (ours_worst, torch_worst),
        zeros,
        params: grads.len(),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: parity DIR [ARCH ...]   (DIR from tools/parity/export.py)");
        return ExitCode::FAILURE;
    };
    let dir = Path::new(dir);
    let archs: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        ARCHS.to_vec()
    };
    let mut failed = 0;
    for arch in archs {
        match check_eval(dir, arch) {
            Ok((e, secs)) => {
                let ok = e <= tol();
                failed += usize::from(!ok);
                println!(
                    "{arch:<13} eval  logits rel err {e:.2e}  forward {secs:.2} s  {}",
                    if ok { "ok" } else { "FAIL" }
                );
            }
            Err(e) => {
                failed += 1;
                println!("{arch:<13} eval  FAIL: {e}");
            }
        }
        if !TRAIN.contains(&arch) {
            continue;
        }
        match check_train(dir, arch) {
            Ok(c) => {
                let ok = c.loss_err <= tol() && c.worst.0 <= tol();
                failed += usize::from(!ok);
                println!(
                    "{arch:<13} train loss rel err {:.2e}  worst of {} gradients ({} zero) {:.2e} \
                     ({}; from float64 at worst: ours {:.2e}, PyTorch float32 {:.2e})  {}",
                    c.loss_err,
                    c.params,
                    c.zeros,
                    c.worst.0,
                    c.worst.1,
                    c.from_f64.0,
                    c.from_f64.1,
                    if ok { "ok" } else { "FAIL" }
                );
            }
            Err(e) => {
                failed += 1;
                println!("{arch:<13} train FAIL: {e}");
            }
        }
    }
    if failed > 0 {
        println!("{failed} check(s) failed");
        return ExitCode::FAILURE;
    }
    println!("all checks passed (tolerance {:e})", tol());
    ExitCode::SUCCESS
}
