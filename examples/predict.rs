//! Classifies images with a trained CIFAR-10 model.
//!
//! `cargo run --release --example predict -- --model DIR image.png [more images…]`
//! where DIR holds the `checkpoint.safetensors` written by `cifar10 --save DIR`.

use ferroconv::Tensor;
use ferroconv::checkpoint::{SafeTensors, load_model};
use ferroconv::data::CLASSES;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "support/image.rs"]
mod image;

const HELP: &str = "\
Classify images (PNG or PPM, any size: resized to 32×32) with a trained CIFAR-10 model.

Usage: cargo run --release --example predict -- --model DIR [--top K] IMAGE [IMAGE...]

  --model DIR   a folder written by `cifar10 --save DIR` (or a .safetensors file)
  --top K       classes to show per image (default 3)";

/// Loads the checkpoint and builds the network it was saved from.
fn load(model: &Path) -> Result<ferroconv::Sequential, String> {
    let path = if model.is_dir() {
        model.join("checkpoint.safetensors")
    } else {
        model.to_path_buf()
    };
    let st = SafeTensors::read(&path).map_err(|e| e.to_string())?;
    let name = st
        .metadata
        .get("model")
        .map(String::as_str)
        .unwrap_or("seed");
    let mut net = match name {
        "seed" => ferroconv::models::seed_net(0),
        "keras" => ferroconv::models::keras_net(0),
        "resnet" => ferroconv::models::fast_net(0),
        other => {
            return Err(format!(
                "{}: unknown model {other:?} in metadata",
                path.display()
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    load_model(&mut net, &st, &path).map_err(|e| e.to_string())?;
    Ok(net)
}

fn run() -> Result<bool, String> {
    let (mut model, mut top, mut images) = (None, 3usize, Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(true);
            }
            "--model" => model = Some(PathBuf::from(it.next().ok_or("--model needs a value")?)),
            "--top" => {
                let v = it.next().ok_or("--top needs a value")?;
                top = v
                    .parse()
                    .ok()
                    .filter(|&k| (1..=10).contains(&k))
                    .ok_or(format!("--top: {v:?} is not 1-10"))?;
            }
            f if f.starts_with("--") => return Err(format!("unknown option {f:?} (see --help)")),
            _ => images.push(PathBuf::from(a)),
        }
    }
    let model = model.ok_or("--model DIR is required (see --help)")?;
    if images.is_empty() {
        return Err("no images given (see --help)".into());
    }
    let mut net = load(&model)?;
    let mut all_ok = true;
    for path in &images {
        let img = match image::read_image(path) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                all_ok = false;
                continue;
            }
        };
        let planar = image::to_planar(&image::resize(&img, 32));
        let x: Vec<f32> = planar
            .iter()
            .map(|&b| (b as f32 / 255.0 - 0.5) / 0.5)
            .collect();
        let x = Tensor::from_vec(&[1, 3, 32, 32], x).map_err(|e| e.to_string())?;
        let probs = net.predict(&x).map_err(|e| e.to_string())?;
        let mut ranked: Vec<(usize, f32)> = probs.data().iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let answers: Vec<String> = ranked[..top]
            .iter()
            .map(|&(c, p)| format!("{} {:.1}%", CLASSES[c], p * 100.0))
            .collect();
        println!("{}: {}", path.display(), answers.join(", "));
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
