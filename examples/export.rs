//! Turns a finished CIFAR-10 training run into a model file to ship: the weights and
//! batch-norm statistics (no optimizer state), and a model card with the recipe and the
//! test accuracy, which this program measures itself on the CIFAR-10 test set, plainly
//! and with test-time augmentation.
//!
//! ```text
//! cargo run --release --example export -- --run runs/airbench94-seed0 --recipe airbench94 \
//!     --out models/cifar10-airbench94.safetensors --card command="cargo run …"
//! ```
//!
//! `predict` then reads the file alone (see `Sequential::card`).

use clap::Parser;
use ferroconv::data::{Cifar10, Split};
use ferroconv::recipe::Recipe;
use ferroconv::train::{Tta, evaluate_tta};
use ferroconv::{Sequential, driver};
use std::path::PathBuf;
use std::process::ExitCode;

/// Export a training run's model with its card, measuring its test accuracy.
#[derive(Parser, Debug)]
#[command(name = "export", args_override_self = true)]
struct Flags {
    /// The run's save folder (`cifar10 --save DIR`), or a model file.
    #[arg(long, value_name = "PATH")]
    run: PathBuf,
    /// The preset the run trained with (recorded in the card with all its settings).
    #[arg(long)]
    recipe: String,
    /// Where to write the model (atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// CIFAR-10 binary folder (default: $CIFAR10_DIR, else ./data/cifar-10-batches-bin).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// More card entries, `key=value` (e.g. the training command, its wall time, the CPU);
    /// not `accuracy`, `recipe` or `dataset`, which this program writes itself.
    #[arg(long, value_name = "KEY=VALUE")]
    card: Vec<String>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// The card entries this program measures or knows itself.
const MEASURED: [&str; 3] = ["accuracy", "recipe", "dataset"];

fn run(flags: &Flags) -> Result<(), String> {
    // Checked before the minutes of evaluation, as are the keys (below).
    let mut extra = Vec::new();
    for entry in &flags.card {
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| format!("--card {entry:?}: expected key=value"))?;
        if MEASURED.contains(&k) {
            return Err(format!("--card {k}=…: {k:?} is measured here, not given"));
        }
        extra.push((k, v));
    }
    if let Some(n) = flags.threads {
        ferroconv::set_threads(n).map_err(|e| e.to_string())?;
    }
    let recipe = Recipe::preset(&flags.recipe).map_err(|e| e.to_string())?;
    let file = if flags.run.is_dir() {
        flags.run.join(driver::CHECKPOINT)
    } else {
        flags.run.clone()
    };
    // A training checkpoint loads as a model; its optimizer state stays behind.
    let mut model = Sequential::load(&file).map_err(|e| e.to_string())?;
    // The given entries first: a bad key is refused before the evaluation.
    for (k, v) in extra {
        model.set_card(k, v).map_err(|e| e.to_string())?;
    }
    let dir = flags.data.clone().unwrap_or_else(Cifar10::default_dir);
    let test = Cifar10::load(&dir, Split::Test).map_err(|e| e.to_string())?;
    let mut measured = Vec::new();
    for (name, tta) in [
        ("plain", Tta::None),
        ("mirror_translate", Tta::MirrorTranslate),
    ] {
        let eval = evaluate_tta(&mut model, &test, 500, tta).map_err(|e| e.to_string())?;
        println!(
            "{name:>17}: {:.2}% of {} test images",
            100.0 * eval.accuracy,
            test.len()
        );
        measured.push(format!("\"{name}\":{:.4}", eval.accuracy));
    }
    let card = |model: &mut Sequential, k: &str, v: String| {
        model.set_card(k, v).map_err(|e| e.to_string())
    };
    card(
        &mut model,
        "accuracy",
        format!(
            "{{\"data\":\"CIFAR-10 test\",\"images\":{},{}}}",
            test.len(),
            measured.join(",")
        ),
    )?;
    card(&mut model, "recipe", format!("{recipe:?}"))?;
    card(
        &mut model,
        "dataset",
        "CIFAR-10 training set (50,000 images)".into(),
    )?;
    model.save(&flags.out).map_err(|e| e.to_string())?;
    let bytes = std::fs::metadata(&flags.out)
        .map_err(|e| e.to_string())?
        .len();
    println!("wrote {} ({bytes} bytes)", flags.out.display());
    Ok(())
}

fn main() -> ExitCode {
    match run(&Flags::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
