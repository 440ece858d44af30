//! Trains a CNN on CIFAR-10: by default the article's network with the article's recipe.
//! Flags and terminal output only; the training is `ferroconv::driver::run`.
//!
//! `cargo run --release --example cifar10 -- --help`

use clap::Parser;
use ferroconv::data::{Cifar10, Split};
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/download.rs"]
mod download;

/// Train a CNN on CIFAR-10. The default is the article's network and recipe (conv 3→6
/// 5×5, pool, conv 6→16 5×5, pool, dense 400→120→84→10; SGD lr 0.001, momentum 0.9,
/// batch 4, 10 epochs).
#[derive(Parser, Debug)]
#[command(name = "cifar10", args_override_self = true)]
struct Flags {
    /// CIFAR-10 binary folder (default: $CIFAR10_DIR, else ./data/cifar-10-batches-bin;
    /// downloaded there when missing).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit_train: Option<u64>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit_test: Option<u64>,
    #[command(flatten)]
    train: cli::TrainFlags,
}

/// Makes sure the data is there: downloads it into the data folder when it is not.
fn ensure_data(dir: &std::path::Path) -> Result<(), String> {
    if download::has_cifar10(dir) {
        return Ok(());
    }
    eprintln!(
        "CIFAR-10 not found in {}; downloading {} ...",
        dir.display(),
        download::CIFAR10_URL
    );
    let mut last = 0;
    let mut progress = |done: u64, total: Option<u64>| {
        if done >= last + (16 << 20) || Some(done) == total {
            last = done;
            match total {
                Some(t) => eprint!("\r  {} / {} MiB", done >> 20, t >> 20),
                None => eprint!("\r  {} MiB", done >> 20),
            }
        }
    };
    let url = download::CIFAR10_URL;
    match download::download_cifar10(url, download::CIFAR10_MD5, dir, &mut progress) {
        Ok(()) => {
            eprintln!("\n  unpacked into {}", dir.display());
            Ok(())
        }
        Err(e) => Err(format!("{e}\n{}", download::offline_help(dir))),
    }
}

/// `n` images of a split (all of it without a limit), reading only the files needed.
fn load(dir: &std::path::Path, split: Split, limit: Option<u64>) -> Result<Cifar10, String> {
    let set = match limit {
        Some(n) => Cifar10::load_first(dir, split, usize::try_from(n).unwrap_or(usize::MAX)),
        None => Cifar10::load(dir, split),
    };
    set.map_err(|e| e.to_string())
}

fn run(flags: Flags) -> Result<(), String> {
    let mut config = flags.train.config()?;
    let dir = flags.data.clone().unwrap_or_else(Cifar10::default_dir);
    ensure_data(&dir)?;
    let train = load(&dir, Split::Train, flags.limit_train)?;
    let test = load(&dir, Split::Test, flags.limit_test)?;
    config.tags.insert("data".into(), "cifar10".into());
    let line = format!(
        "{} ({} train, {} test)",
        dir.display(),
        train.len(),
        test.len()
    );
    cli::train_and_report(&flags.train, &config, &train, &test, &line)?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Flags::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
