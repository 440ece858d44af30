//! Trains the article's network on CIFAR-10 with the article's recipe.
//!
//! `cargo run --release --example cifar10 -- --help`

use ferroconv::data::{CLASSES, Cifar10, Split};
use ferroconv::train::{EpochStats, evaluate, train_epoch};
use ferroconv::{Sgd, SoftmaxCrossEntropy};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "support/download.rs"]
mod download;

const HELP: &str = "\
Train the article's CNN on CIFAR-10 (conv 3→6 5×5, pool, conv 6→16 5×5, pool, dense 400→120→84→10).

Usage: cargo run --release --example cifar10 -- [options]

Options:
  --data DIR         CIFAR-10 binary folder (default: $CIFAR10_DIR, else ./data/cifar-10-batches-bin;
                     downloaded there when missing)
  --epochs N         epochs (default 10)
  --batch-size N     mini-batch size (default 4)
  --lr X             learning rate (default 0.001)
  --momentum X       SGD momentum (default 0.9)
  --weight-decay X   L2 weight decay (default 0)
  --seed N           seed for initialisation and shuffling (default 0)
  --threads N        worker threads (default: all cores); results do not depend on it
  --limit-train N    train on the first N training images only
  --limit-test N     evaluate on the first N test images only
  --json PATH        write one JSON object per epoch, one per line
  --help             this text";

struct Args {
    data: PathBuf,
    data_given: bool,
    epochs: u64,
    batch_size: usize,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    seed: u64,
    threads: Option<usize>,
    limit_train: Option<usize>,
    limit_test: Option<usize>,
    json: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>, String> {
    let env_dir = std::env::var_os("CIFAR10_DIR").map(PathBuf::from);
    let mut a = Args {
        data_given: env_dir.is_some(),
        data: env_dir.unwrap_or_else(|| PathBuf::from("data/cifar-10-batches-bin")),
        epochs: 10,
        batch_size: 4,
        lr: 0.001,
        momentum: 0.9,
        weight_decay: 0.0,
        seed: 0,
        threads: None,
        limit_train: None,
        limit_test: None,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => {
                a.data = PathBuf::from(value()?);
                a.data_given = true;
            }
            "--epochs" => a.epochs = num(&flag, &value()?)?,
            "--batch-size" => a.batch_size = positive(&flag, &value()?)?,
            "--lr" => a.lr = num(&flag, &value()?)?,
            "--momentum" => a.momentum = num(&flag, &value()?)?,
            "--weight-decay" => a.weight_decay = num(&flag, &value()?)?,
            "--seed" => a.seed = num(&flag, &value()?)?,
            "--threads" => a.threads = Some(positive(&flag, &value()?)?),
            "--limit-train" => a.limit_train = Some(positive(&flag, &value()?)?),
            "--limit-test" => a.limit_test = Some(positive(&flag, &value()?)?),
            "--json" => a.json = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option {flag:?} (see --help)")),
        }
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        return Err(format!("--lr must be a positive number, got {}", a.lr));
    }
    if !(0.0..1.0).contains(&a.momentum) {
        return Err(format!("--momentum must be in [0, 1), got {}", a.momentum));
    }
    Ok(Some(a))
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

fn positive(flag: &str, v: &str) -> Result<usize, String> {
    match num::<usize>(flag, v)? {
        0 => Err(format!("{flag} must be at least 1")),
        n => Ok(n),
    }
}

/// Makes sure the data is there: downloads it into the default folder when it is not.
fn ensure_data(args: &Args) -> Result<(), String> {
    if download::has_cifar10(&args.data) {
        return Ok(());
    }
    eprintln!(
        "CIFAR-10 not found in {}; downloading {} ...",
        args.data.display(),
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
    match download::download_cifar10(url, download::CIFAR10_MD5, &args.data, &mut progress) {
        Ok(()) => {
            eprintln!("\n  unpacked into {}", args.data.display());
            Ok(())
        }
        Err(e) => Err(format!("{e}\n{}", download::offline_help(&args.data))),
    }
}

fn run(args: Args) -> Result<(), String> {
    if let Some(t) = args.threads {
        ferroconv::set_threads(t).map_err(|e| e.to_string())?;
    }
    ensure_data(&args)?;
    let mut train = Cifar10::load(&args.data, Split::Train).map_err(|e| e.to_string())?;
    let mut test = Cifar10::load(&args.data, Split::Test).map_err(|e| e.to_string())?;
    if let Some(n) = args.limit_train {
        train.truncate(n);
    }
    if let Some(n) = args.limit_test {
        test.truncate(n);
    }
    let mut model = ferroconv::models::seed_net(args.seed).map_err(|e| e.to_string())?;
    print!("{}", model.summary());
    println!(
        "data: {} ({} train, {} test); batch {}, lr {}, momentum {}, seed {}, {} threads",
        args.data.display(),
        train.len(),
        test.len(),
        args.batch_size,
        args.lr,
        args.momentum,
        args.seed,
        rayon::current_num_threads()
    );
    let mut json = match &args.json {
        Some(p) => Some(
            std::fs::File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut loss = SoftmaxCrossEntropy::new();
    let mut opt = Sgd::new(args.lr, args.momentum).weight_decay(args.weight_decay);
    println!(
        "{:>5} {:>10} {:>9} {:>8} {:>8} {:>8}",
        "epoch", "train_loss", "train_acc", "test_acc", "seconds", "img/s"
    );
    let mut last_eval = None;
    for epoch in 1..=args.epochs {
        let mut no_progress = |_: usize, _: f64| {};
        let s: EpochStats = train_epoch(
            &mut model,
            &mut loss,
            &mut opt,
            &train,
            args.batch_size,
            (args.seed, epoch),
            &mut no_progress,
        )
        .map_err(|e| e.to_string())?;
        let eval = evaluate(&mut model, &test, 1000).map_err(|e| e.to_string())?;
        println!(
            "{epoch:>5} {:>10.4} {:>8.2}% {:>7.2}% {:>8.2} {:>8.0}",
            s.train_loss,
            s.train_acc * 100.0,
            eval.accuracy * 100.0,
            s.seconds,
            s.images_per_sec
        );
        if let Some(f) = json.as_mut() {
            writeln!(
                f,
                "{{\"epoch\":{epoch},\"train_loss\":{},\"train_acc\":{},\"test_acc\":{},\"seconds\":{},\"images_per_sec\":{}}}",
                s.train_loss, s.train_acc, eval.accuracy, s.seconds, s.images_per_sec
            )
            .and_then(|_| f.flush())
            .map_err(|e| format!("cannot write --json file: {e}"))?;
        }
        last_eval = Some(eval);
    }
    if let Some(eval) = last_eval {
        println!("\nper-class test accuracy:");
        for (c, name) in CLASSES.iter().enumerate() {
            println!("  {name:<10} {:>6.2}%", eval.class_accuracy(c) * 100.0);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => {
            println!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
