//! Classifies images with a saved model: any model, since the file says its architecture,
//! input size, normalisation and class names.
//!
//! `cargo run --release --example predict -- photo.jpg [more images…]` answers with the
//! shipped CIFAR-10 model ([`SHIPPED`], trained here with the airbench94 preset; its
//! card, `--about`, says how and how well). `--model DIR` takes a folder holding a
//! `checkpoint.safetensors` (e.g. from `cifar10 --save DIR`), `--model FILE` a file
//! written by `Sequential::save`.

use clap::Parser;
use ferroconv::data::{DecodeLimits, load_eval_image};
use ferroconv::{Sequential, Tensor};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The model shipped in the repository: airbench94 trained on CIFAR-10's training set.
const SHIPPED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/weights/cifar10-airbench94.safetensors"
);

/// Classify JPEG and PNG images of any size with a saved model: each is resized (shorter
/// side) and centre-cropped to the model's input, then normalised as the model was trained.
#[derive(Parser, Debug)]
#[command(name = "predict", args_override_self = true)]
struct Flags {
    /// A folder written by `cifar10 --save DIR`, or a model file (`Sequential::save`).
    /// Default: the shipped CIFAR-10 model (examples/weights/).
    #[arg(long, value_name = "PATH", default_value = SHIPPED)]
    model: PathBuf,
    /// Print the model's card (recipe, measured accuracy, …) first.
    #[arg(long)]
    about: bool,
    /// Average each image's probabilities with its mirror image's.
    #[arg(long)]
    mirror: bool,
    /// Classes to show per image.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    top: u64,
    /// Refuse images that declare more pixels than this (decompression bombs).
    #[arg(long, default_value_t = DecodeLimits::default().max_pixels)]
    max_pixels: u64,
    /// Resize the shorter side to S / RATIO before the centre crop of S (1: the crop takes
    /// the whole short side; 0.875 is torchvision's 256 → 224 for ImageNet models).
    #[arg(long, default_value_t = 1.0, value_name = "RATIO")]
    eval_resize_ratio: f32,
    /// The images.
    #[arg(required_unless_present = "about", value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

/// The model and what it needs to be usable here: a classifier over RGB images, with its
/// normalisation and class names, and finite weights.
fn load(path: &Path) -> Result<Sequential, String> {
    let file = if path.is_dir() {
        path.join("checkpoint.safetensors")
    } else {
        path.to_path_buf()
    };
    let model = Sequential::load(&file).map_err(|e| e.to_string())?;
    let fail = |why: &str| Err(format!("{}: {why}", file.display()));
    match model.input_shape() {
        [3, h, w] if h == w => {}
        other => return fail(&format!("takes {other:?} inputs, not square RGB images")),
    }
    if model.normalization().is_none() || model.classes().is_none() {
        return fail("saved without its normalisation and class names");
    }
    Ok(model)
}

fn run(flags: &Flags) -> Result<bool, String> {
    let mut model = load(&flags.model)?;
    let side = model.input_shape()[1];
    let classes = model.classes().expect("checked").to_vec();
    let norm = model.normalization().expect("checked").clone();
    let top = (flags.top as usize).min(classes.len());
    if flags.about {
        println!("model: {}", flags.model.display());
        for (key, value) in model.card() {
            println!("  {key}: {value}");
        }
    }
    let limits = DecodeLimits {
        max_pixels: flags.max_pixels,
        ..DecodeLimits::default()
    };
    let mut all_ok = true;
    for path in &flags.images {
        let planar = match load_eval_image(path, side, flags.eval_resize_ratio, &limits) {
            Ok(bytes) => bytes,
            Err(e) => {
                // The error names the file; the other images are still answered.
                eprintln!("{e}");
                all_ok = false;
                continue;
            }
        };
        let mut x = Tensor::zeros(&[1, 3, side, side]);
        norm.apply(&planar, x.data_mut())
            .map_err(|e| e.to_string())?;
        let mut probs = model.predict(&x).map_err(|e| e.to_string())?;
        if flags.mirror {
            mirror_rows(x.data_mut(), side);
            let flipped = model.predict(&x).map_err(|e| e.to_string())?;
            for (p, q) in probs.data_mut().iter_mut().zip(flipped.data()) {
                *p = 0.5 * (*p + q);
            }
        }
        let mut ranked: Vec<(usize, f32)> = probs.data().iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let answers: Vec<String> = ranked[..top]
            .iter()
            .map(|&(c, p)| format!("{} {:.1}%", classes[c], p * 100.0))
            .collect();
        println!("{}: {}", path.display(), answers.join(", "));
    }
    Ok(all_ok)
}

/// Mirrors planar `[C, side, side]` pixels left to right in place.
fn mirror_rows(pixels: &mut [f32], side: usize) {
    for row in pixels.chunks_exact_mut(side) {
        row.reverse();
    }
}

fn main() -> ExitCode {
    match run(&Flags::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
