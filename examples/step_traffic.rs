//! A fixed number of training steps of one network on synthetic data, single-threaded and
//! with nothing else in the process: the workload `tools/bytes_moved.sh` runs under
//! valgrind's cachegrind to count the memory traffic of a training step (issue 13 §2).
//!
//! The process builds the model, makes one synthetic batch, runs `--warmup` training steps
//! (forward, softmax cross-entropy, backward, SGD with momentum: the same library calls as
//! `examples/throughput.rs`) and then `--steps` more. Two runs that differ only in
//! `--steps` differ only by those extra steps, so the difference of their counts divided by
//! the difference of their step counts is the cost of one step in the steady state (set-up,
//! first-touch allocation and the warm-up cancel out).
//!
//! ```text
//! cargo run --release --example step_traffic -- [--model seed] [--batch 4] [--steps 10]
//!     [--warmup 2] [--threads 1] [--unfuse-relu]
//! ```
//!
//! Models are named as in `examples/throughput.rs`: `seed` (the article's network),
//! `tfcnn`, `resnet` (resnet9), `airbench` (the `fast` preset's batch-norm body),
//! `airbench94`, `airbench90`. The convolution algorithm follows `FERROCONV_CONV_ALGO`
//! (`im2col`, `direct`, `winograd2`, `winograd4`, `auto`) and the GEMM microkernel
//! `FERROCONV_GEMM_KERNEL` (`avx512`, `avx2`, `portable`); the header line says which
//! instruction sets the run-time dispatch sees (under valgrind 3.19: no AVX-512).
//!
//! `--unfuse-relu` rebuilds the model from its layer specs with every top-level ReLU hidden
//! behind a wrapper of another kind, so that no convolution applies the ReLU after it
//! (`Layer::fuse_next_relu`): the ReLU layers then run as separate passes, as before that
//! fusion. The weights are initialised from the same seed, in the same order.

use ferroconv::layers::{Layer, Mode, from_spec};
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::{Sequential, SoftmaxCrossEntropy, Tensor};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "Usage: step_traffic [--model seed|tfcnn|resnet|airbench|airbench94|airbench90] \
                     [--batch N] [--steps N] [--warmup N] [--threads N] [--unfuse-relu]";

/// Builds a model by its throughput-script name.
fn build(name: &str) -> Result<Sequential, String> {
    use ferroconv::models::{self, Activation};
    let m = match name {
        "seed" => models::seed_net(0),
        "tfcnn" | "keras" => models::keras_net(0),
        "resnet" => models::resnet9(0),
        "airbench" | "fast" => models::fast_net(0),
        "airbench94" => models::airbench_net([64, 256, 256], Activation::Gelu, 0),
        "airbench90" => models::airbench_net(ferroconv::recipe::QUICK_WIDTHS, Activation::Gelu, 0),
        _ => {
            return Err(format!(
                "unknown model {name:?}: seed, tfcnn, resnet, airbench, airbench94, airbench90"
            ));
        }
    };
    m.map_err(|e| e.to_string())
}

/// A ReLU layer under another kind, so that the convolution before it does not apply it.
struct SeparateReLU(Box<dyn Layer>);

impl Layer for SeparateReLU {
    fn describe(&self) -> String {
        "ReLU (separate)".into()
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.0.output_shape(input)
    }
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        self.0.forward(x, mode)
    }
    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        self.0.backward(grad_out, need_input_grad)
    }
}

/// `model` rebuilt from its specs with every top-level ReLU layer wrapped in
/// [`SeparateReLU`]; the other layers are rebuilt as they were.
fn unfuse_relus(model: &Sequential) -> Result<(Sequential, usize), String> {
    let mut wrapped = 0;
    let mut layers: Vec<(String, Box<dyn Layer>)> = Vec::new();
    for (name, spec) in model.specs() {
        let layer = from_spec(&spec).map_err(|e| format!("layer {name:?}: {e}"))?;
        if spec.kind == "ReLU" {
            wrapped += 1;
            layers.push((name, Box::new(SeparateReLU(layer))));
        } else {
            layers.push((name, layer));
        }
    }
    let m = Sequential::named(model.input_shape(), layers, 0).map_err(|e| e.to_string())?;
    Ok((m, wrapped))
}

struct Args {
    model: String,
    batch: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
    unfuse_relu: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        model: "seed".into(),
        batch: 4,
        steps: 10,
        warmup: 2,
        threads: 1,
        unfuse_relu: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let mut count = |min: usize| -> Result<usize, String> {
            let v = value()?;
            match v.parse::<usize>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(format!("{flag} {v:?}: expected an integer ≥ {min}")),
            }
        };
        match flag.as_str() {
            "--model" => a.model = value()?,
            "--batch" => a.batch = count(1)?,
            "--steps" => a.steps = count(0)?,
            "--warmup" => a.warmup = count(0)?,
            "--threads" => a.threads = count(1)?,
            "--unfuse-relu" => a.unfuse_relu = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    Ok(Some(a))
}

fn run() -> Result<(), String> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    ferroconv::set_threads(args.threads).map_err(|e| e.to_string())?;
    let mut model = build(&args.model)?;
    let mut wrapped = 0;
    if args.unfuse_relu {
        (model, wrapped) = unfuse_relus(&model)?;
    }
    let fused = model.summary().matches("(done by the layer above)").count();
    println!(
        "model {} batch {} warmup {} steps {} threads {}",
        args.model,
        args.batch,
        args.warmup,
        args.steps,
        rayon::current_num_threads()
    );
    println!(
        "isa: avx512f {} avx2 {} gemm kernel {}; FERROCONV_CONV_ALGO={}; ReLUs fused into \
         the layer above: {fused}, kept separate: {wrapped}",
        ferroconv::cpu::avx512::available(),
        ferroconv::cpu::avx2::available(),
        ferroconv::cpu::gemm::best_kernel_name(),
        std::env::var("FERROCONV_CONV_ALGO").unwrap_or_else(|_| "(unset: auto)".into()),
    );

    // Synthetic data, as examples/throughput.rs makes it.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let mut shape = vec![args.batch];
    shape.extend_from_slice(model.input_shape());
    let n: usize = shape.iter().product();
    let x =
        Tensor::from_vec(&shape, (0..n).map(|_| rand()).collect()).map_err(|e| e.to_string())?;
    let labels: Vec<u32> = (0..args.batch).map(|i| (i % 10) as u32).collect();
    let mut loss = SoftmaxCrossEntropy::new();
    let mut opt = Sgd::new(0.001, 0.9);
    let mut step = |model: &mut Sequential| -> Result<f64, String> {
        let logits = model.forward(&x, Mode::Train).map_err(|e| e.to_string())?;
        let stats = loss.forward(logits, &labels).map_err(|e| e.to_string())?;
        model.backward(loss.grad()).map_err(|e| e.to_string())?;
        opt.step(model);
        Ok(stats.loss)
    };

    for _ in 0..args.warmup {
        step(&mut model)?;
    }
    let t = Instant::now();
    let mut last = f64::NAN;
    for _ in 0..args.steps {
        last = step(&mut model)?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} measured steps in {secs:.3} s ({:.3} ms/step); last loss {last:.4}",
        args.steps,
        if args.steps > 0 {
            1e3 * secs / args.steps as f64
        } else {
            0.0
        }
    );
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
