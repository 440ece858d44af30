//! The transfer experiment: pretrain on CIFAR-10's first 5 classes (airplane, automobile,
//! bird, cat, deer; all their training images), then fine-tune on the other 5 (dog, frog,
//! horse, ship, truck) from 100 training images each, beside training the same network from
//! scratch on the same 500 images for the same epochs; test accuracy on those 5 classes'
//! 5,000 test images, for each seed. Flags and terminal output only: the runs are
//! `ferroconv::driver::run` with `ferroconv::finetune::FineTune`, the class subsets
//! `ferroconv::data::Subset`.
//!
//! `cargo run --release --example transfer -- --seeds 0,1,2 --json runs/transfer.jsonl`

use clap::Parser;
use ferroconv::data::{Cifar10, Dataset, Split, Subset};
use ferroconv::driver::{RunConfig, run};
use ferroconv::finetune::{FineTune, Freeze};
use ferroconv::recipe::Recipe;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Pretrain on 5 CIFAR-10 classes, fine-tune on the other 5 from few images, compare with
/// training from scratch.
#[derive(Parser, Debug)]
#[command(name = "transfer")]
struct Flags {
    /// The CIFAR-10 binary folder (default: $CIFAR10_DIR, else data/cifar-10-batches-bin).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The network and recipe (a preset: seed, keras, fast).
    #[arg(long, default_value = "keras")]
    model: String,
    /// Epochs of pretraining on the first 5 classes.
    #[arg(long, default_value_t = 5)]
    pretrain_epochs: u64,
    /// Epochs of fine-tuning, and of training from scratch, on the few images.
    #[arg(long, default_value_t = 15)]
    epochs: u64,
    /// Training images per class of the second 5 classes (the first ones of each).
    #[arg(long, default_value_t = 100)]
    per_class: usize,
    /// Also fine-tune with this frozen (e.g. backbone: train the head only).
    #[arg(long, value_name = "WHAT")]
    freeze: Option<String>,
    /// Seeds, comma-separated: one pretraining, fine-tuning and scratch run each.
    #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
    seeds: Vec<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Write one JSON object per seed to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// One seed's test accuracies: fine-tuned, fine-tuned with the freeze, from scratch.
type Row = (f64, Option<f64>, f64);

/// The last test accuracy of a run.
fn accuracy(config: &RunConfig, train: &dyn Dataset, test: &dyn Dataset) -> Result<f64, String> {
    let report = run(config, train, test, &mut |_| {}).map_err(|e| e.to_string())?;
    Ok(report.last_eval().map_or(0.0, |e| e.accuracy))
}

fn main_result(flags: Flags) -> Result<(), String> {
    if let Some(t) = flags.threads {
        ferroconv::set_threads(t).map_err(|e| format!("--threads: {e}"))?;
    }
    let freeze = flags
        .freeze
        .as_deref()
        .map(Freeze::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let dir = flags.data.clone().unwrap_or_else(Cifar10::default_dir);
    let load = |split| Cifar10::load(&dir, split).map_err(|e| e.to_string());
    let (train, test) = (load(Split::Train)?, load(Split::Test)?);
    let labels = |set: &Cifar10| {
        set.labels()
            .iter()
            .map(|&l| u32::from(l))
            .collect::<Vec<_>>()
    };
    let (train_labels, test_labels) = (labels(&train), labels(&test));
    let (first, second) = ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9]);
    let sub = |set: &'static str, keep: &[usize], cap| {
        let (data, labels): (&dyn Dataset, &[u32]) = match set {
            "train" => (&train, &train_labels),
            _ => (&test, &test_labels),
        };
        Subset::of_classes(data, labels, keep, cap).map_err(|e| e.to_string())
    };
    let (pre_train, pre_test) = (sub("train", &first, None)?, sub("test", &first, None)?);
    let few = sub("train", &second, Some(flags.per_class))?;
    let target_test = sub("test", &second, None)?;
    let mut base = Recipe::preset(&flags.model).map_err(|e| e.to_string())?;
    base.batch_size = base.batch_size.min(few.len());
    let tmp = std::env::temp_dir().join(format!("ferroconv-transfer-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut json = match &flags.json {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    println!(
        "model {}: pretrain {} epochs on {} images ({}), then {} epochs on {} images ({}); \
         test on {} images; {} threads",
        flags.model,
        flags.pretrain_epochs,
        pre_train.len(),
        pre_train.classes().join(", "),
        flags.epochs,
        few.len(),
        few.classes().join(", "),
        target_test.len(),
        rayon::current_num_threads()
    );
    let start = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    for &seed in &flags.seeds {
        let t0 = Instant::now();
        let mut pre = RunConfig::new(
            Recipe {
                epochs: flags.pretrain_epochs,
                ..Recipe::preset(&flags.model).map_err(|e| e.to_string())?
            },
            seed,
        );
        pre.eval_batch = 1000;
        let report = run(&pre, &pre_train, &pre_test, &mut |_| {}).map_err(|e| e.to_string())?;
        let pre_acc = report.last_eval().map_or(0.0, |e| e.accuracy);
        let weights = tmp.join(format!("pretrained-{seed}.safetensors"));
        report.model.save(&weights).map_err(|e| e.to_string())?;

        let target = Recipe {
            epochs: flags.epochs,
            ..base.clone()
        };
        let mut tuned = RunConfig::new(target.clone(), seed);
        tuned.fine_tune = FineTune {
            pretrained: Some(weights.clone()),
            fresh_head: true,
            ..FineTune::default()
        };
        let fine = accuracy(&tuned, &few, &target_test)?;
        let frozen = match &freeze {
            Some(f) => {
                tuned.fine_tune.freeze = f.clone();
                Some(accuracy(&tuned, &few, &target_test)?)
            }
            None => None,
        };
        let scratch = accuracy(&RunConfig::new(target, seed), &few, &target_test)?;
        let secs = t0.elapsed().as_secs_f64();
        let frozen_txt = frozen.map_or(String::new(), |a| {
            format!(
                ", fine-tuned with {} frozen {:.2}%",
                flags.freeze.as_deref().unwrap_or(""),
                100.0 * a
            )
        });
        println!(
            "seed {seed}: pretrained {:.2}% on its 5 classes; target classes: fine-tuned {:.2}%{frozen_txt}, \
             from scratch {:.2}% ({secs:.0} s)",
            100.0 * pre_acc,
            100.0 * fine,
            100.0 * scratch
        );
        if let Some(f) = json.as_mut() {
            let frozen_json = frozen.map_or("null".to_string(), |a| a.to_string());
            writeln!(
                f,
                "{{\"seed\":{seed},\"model\":\"{}\",\"pretrain_epochs\":{},\"epochs\":{},\"per_class\":{},\"pretrain_acc\":{pre_acc},\"finetune_acc\":{fine},\"frozen_acc\":{frozen_json},\"scratch_acc\":{scratch},\"seconds\":{secs}}}",
                flags.model, flags.pretrain_epochs, flags.epochs, flags.per_class
            )
            .map_err(|e| format!("--json: {e}"))?;
        }
        rows.push((fine, frozen, scratch));
        let _ = std::fs::remove_file(&weights);
    }
    let n = rows.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / n;
    print!(
        "mean over {} seeds: fine-tuned {:.2}%",
        rows.len(),
        100.0 * mean(&|r| r.0)
    );
    if freeze.is_some() {
        print!(", frozen {:.2}%", 100.0 * mean(&|r| r.1.unwrap_or(0.0)));
    }
    println!(
        ", from scratch {:.2}%; total {:.0} s",
        100.0 * mean(&|r| r.2),
        start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir(&tmp);
    Ok(())
}

fn main() -> ExitCode {
    match main_result(Flags::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
