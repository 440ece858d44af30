//! Training and inference throughput on synthetic data, the same configurations as
//! the PyTorch reference script (`throughput_pytorch.py`), for side-by-side comparison
//! (`tools/side_by_side.sh` runs both, alternately).
//!
//! `cargo run --release --example throughput -- [--configs seed@4,seed@64,tfcnn@64,resnet@128]
//!  [--threads N] [--repeats N] [--json PATH]`

use ferroconv::layers::Mode;
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::{Sequential, SoftmaxCrossEntropy, Tensor};
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// Builds a model by its throughput-script name.
fn build(name: &str) -> Result<Sequential, String> {
    let m = match name {
        "seed" => ferroconv::models::seed_net(0),
        "tfcnn" | "keras" => ferroconv::models::keras_net(0),
        "resnet" => ferroconv::models::resnet9(0),
        "airbench" => ferroconv::models::fast_net(0),
        "airbench94" => {
            ferroconv::models::airbench_net([64, 256, 256], ferroconv::models::Activation::Gelu, 0)
        }
        // The quick preset's body (`--model airbench90`); no PyTorch counterpart.
        "airbench90" => ferroconv::models::airbench_net(
            ferroconv::recipe::QUICK_WIDTHS,
            ferroconv::models::Activation::Gelu,
            0,
        ),
        _ => {
            return Err(format!(
                "unknown model {name:?}: seed, tfcnn, resnet, airbench, airbench94, airbench90"
            ));
        }
    };
    m.map_err(|e| e.to_string())
}

/// Median of a list of timings.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median training and inference images per second of one configuration.
struct Result1 {
    config: String,
    train_ips: f64,
    infer_ips: f64,
}

fn measure(config: &str, repeats: usize) -> Result<Result1, String> {
    let (name, batch) = config
        .split_once('@')
        .ok_or_else(|| format!("config {config:?} is not model@batch"))?;
    let batch: usize = batch
        .parse()
        .map_err(|_| format!("bad batch in {config:?}"))?;
    let mut model = build(name)?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let x = Tensor::from_vec(
        &[batch, 3, 32, 32],
        (0..batch * 3072).map(|_| rand()).collect(),
    )
    .map_err(|e| e.to_string())?;
    let labels: Vec<u32> = (0..batch).map(|i| (i % 10) as u32).collect();
    let mut loss = SoftmaxCrossEntropy::new();
    let mut opt = Sgd::new(0.001, 0.9);
    // Steps per timed repeat: about 0.3 s of work each, at least one.
    let mut train_step = |model: &mut Sequential| -> Result<(), String> {
        let logits = model.forward(&x, Mode::Train).map_err(|e| e.to_string())?;
        loss.forward(logits, &labels).map_err(|e| e.to_string())?;
        model.backward(loss.grad()).map_err(|e| e.to_string())?;
        opt.step(model);
        Ok(())
    };
    let t = Instant::now();
    train_step(&mut model)?;
    train_step(&mut model)?;
    let per_step = t.elapsed().as_secs_f64() / 2.0;
    let steps = ((0.3 / per_step) as usize).max(1);
    let mut timed = || -> Result<Vec<f64>, String> {
        let mut train = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            for _ in 0..steps {
                train_step(&mut model)?;
            }
            train.push((steps * batch) as f64 / t.elapsed().as_secs_f64());
        }
        Ok(train)
    };
    // As `train_epoch` does for such batches: the pool's workers poll for jobs.
    let train = if batch <= ferroconv::train::HOT_MAX_BATCH {
        ferroconv::cpu::spin::with_hot_pool(timed)?
    } else {
        timed()?
    };
    let mut infer = Vec::new();
    model.forward(&x, Mode::Eval).map_err(|e| e.to_string())?;
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..steps {
            model.forward(&x, Mode::Eval).map_err(|e| e.to_string())?;
        }
        infer.push((steps * batch) as f64 / t.elapsed().as_secs_f64());
    }
    Ok(Result1 {
        config: config.into(),
        train_ips: median(train),
        infer_ips: median(infer),
    })
}

fn run() -> Result<(), String> {
    let mut configs = "seed@4,seed@64,tfcnn@64,resnet@128".to_string();
    let (mut threads, mut repeats, mut json) = (None, 5usize, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--configs" => configs = value()?,
            "--threads" => threads = Some(value()?.parse::<usize>().map_err(|e| e.to_string())?),
            "--repeats" => repeats = value()?.parse::<usize>().map_err(|e| e.to_string())?.max(1),
            "--json" => json = Some(value()?),
            "--help" | "-h" => {
                println!(
                    "Usage: throughput [--configs seed@4,seed@64,tfcnn@64,resnet@128,airbench@512,airbench94@512] \
                     [--threads N] [--repeats N] [--json PATH]"
                );
                return Ok(());
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    if let Some(t) = threads {
        ferroconv::set_threads(t).map_err(|e| e.to_string())?;
    }
    println!("threads: {}", rayon::current_num_threads());
    let mut out = Vec::new();
    for config in configs.split(',') {
        let r = measure(config.trim(), repeats)?;
        println!("train/{}: {:.1} img/s", r.config, r.train_ips);
        println!("infer/{}: {:.1} img/s", r.config, r.infer_ips);
        out.push(format!(
            "{{\"config\":\"{}\",\"threads\":{},\"train_images_per_sec\":{:.2},\"infer_images_per_sec\":{:.2}}}",
            r.config,
            rayon::current_num_threads(),
            r.train_ips,
            r.infer_ips
        ));
    }
    if let Some(path) = json {
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
        for line in out {
            writeln!(f, "{line}").map_err(|e| format!("{path}: {e}"))?;
        }
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
