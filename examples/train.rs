//! Trains a CNN on a folder of your own images, torchvision's `ImageFolder` layout:
//! `root/<class>/<image>` (or `root/train/<class>/…` with `root/val/` or `root/test/`).
//! Flags and terminal output only; the data source is `ferroconv::data::ImageFolder` and
//! the training is `ferroconv::driver::run`, as for the `cifar10` example.
//!
//! `cargo run --release --example train -- --data photos/ --size 64 --epochs 10`, or
//! fine-tuning torchvision weights:
//! `cargo run --release --example train -- --data photos/ --pretrained r18.safetensors
//! --arch resnet18 --freeze backbone --size 224`

use clap::Parser;
use ferroconv::data::{Dataset, DecodeLimits, ImageFolder, ImageFolderOptions, Normalize};
use std::path::PathBuf;
use std::process::ExitCode;

#[path = "support/cli.rs"]
mod cli;

/// Train a CNN on a folder of JPEG and PNG images, one sub-folder per class.
#[derive(Parser, Debug)]
#[command(name = "train", args_override_self = true)]
struct Flags {
    /// The image folder: ROOT/<class>/<image>, or ROOT/train/<class>/… with ROOT/val/
    /// (or ROOT/test/) for the evaluation images.
    #[arg(long, value_name = "ROOT")]
    data: PathBuf,
    /// Side of the square images the model sees (resized with an anti-aliased filter);
    /// default 64, or the architecture's ImageNet size for --arch (224, 299 for
    /// inception_v3).
    #[arg(long, value_name = "S")]
    size: Option<usize>,
    /// Fraction of each class held out for evaluation when there is no val/ folder.
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f32,
    /// Memory for decoded images kept between epochs, in MiB (0: decode every time).
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    cache_mb: usize,
    /// Stop at the first file that cannot be read (default: skip it, name it, count it).
    #[arg(long)]
    strict: bool,
    /// Normalise with ImageNet's mean and deviation (for pretrained weights) instead of
    /// the training images' own (the default with --pretrained).
    #[arg(long)]
    imagenet_norm: bool,
    /// With --pretrained: normalise with the training images' own statistics instead of
    /// ImageNet's.
    #[arg(long, conflicts_with = "imagenet_norm")]
    own_norm: bool,
    /// Refuse images that declare more pixels than this (decompression bombs).
    #[arg(long, default_value_t = DecodeLimits::default().max_pixels)]
    max_pixels: u64,
    #[command(flatten)]
    train: cli::TrainFlags,
}

fn run(flags: Flags) -> Result<(), String> {
    let mut config = flags.train.config()?;
    let size = flags.size.unwrap_or(match flags.train.model.as_str() {
        "inception_v3" => 299,
        m if ferroconv::zoo::ARCHS.contains(&m) => 224,
        _ => 64,
    });
    let opts = ImageFolderOptions {
        size,
        val_fraction: flags.val_fraction,
        seed: flags.train.seed,
        cache_bytes: flags.cache_mb.saturating_mul(1 << 20),
        normalize: (flags.imagenet_norm || (flags.train.pretrained.is_some() && !flags.own_norm))
            .then(Normalize::imagenet),
        strict: flags.strict,
        limits: DecodeLimits {
            max_pixels: flags.max_pixels,
            ..DecodeLimits::default()
        },
        ..ImageFolderOptions::default()
    };
    let splits = ImageFolder::open(&flags.data, &opts).map_err(|e| e.to_string())?;
    let (train, val) = (&splits.train, &splits.val);
    config
        .tags
        .insert("data".into(), flags.data.display().to_string());
    config.tags.insert("size".into(), size.to_string());
    let line = format!(
        "{} ({} classes, {} train, {} eval, {}×{})",
        flags.data.display(),
        train.classes().len(),
        train.len(),
        val.len(),
        size,
        size
    );
    let result = cli::train_and_report(&flags.train, &config, train, val, &line);
    let skipped: Vec<_> = train.skipped().into_iter().chain(val.skipped()).collect();
    if !skipped.is_empty() {
        eprintln!("skipped {} unreadable files:", skipped.len());
        for (path, why) in skipped.iter().take(20) {
            eprintln!("  {}: {why}", path.display());
        }
        if skipped.len() > 20 {
            eprintln!("  … and {} more", skipped.len() - 20);
        }
    }
    result.map(|_| ())
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
