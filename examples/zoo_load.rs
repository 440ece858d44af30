//! Loads a torchvision `state_dict` (saved as safetensors, e.g. by
//! `tools/pth_to_safetensors.py`) into the zoo's model of the same architecture, and
//! prints the model's layers, or what does not match.
//!
//! ```text
//! cargo run --release --example zoo_load -- resnet50 r50.safetensors [CLASSES]
//! ```
//! CLASSES defaults to 1000 (ImageNet). The exit status is non-zero on any error.

use ferroconv::{Error, Result, Sequential, zoo};
use std::process::ExitCode;

/// The zoo's model `arch` with `classes` outputs.
fn build(arch: &str, classes: usize) -> Result<Sequential> {
    match arch {
        "alexnet" => zoo::alexnet(classes, 0),
        "vgg11" => zoo::vgg11(classes, 0),
        "vgg11_bn" => zoo::vgg11_bn(classes, 0),
        "vgg16" => zoo::vgg16(classes, 0),
        "vgg16_bn" => zoo::vgg16_bn(classes, 0),
        "resnet18" => zoo::resnet18(classes, 0),
        "resnet34" => zoo::resnet34(classes, 0),
        "resnet50" => zoo::resnet50(classes, 0),
        "googlenet" => zoo::googlenet(classes, 0),
        "inception_v3" => zoo::inception_v3(classes, 0),
        other => Err(Error::Invalid(format!("unknown architecture {other:?}"))),
    }
}

fn run(args: &[String]) -> Result<()> {
    let [arch, file, rest @ ..] = args else {
        return Err(Error::Invalid(
            "usage: zoo_load ARCH FILE.safetensors [CLASSES]".into(),
        ));
    };
    let classes = match rest.first() {
        Some(c) => c
            .parse()
            .map_err(|_| Error::Invalid(format!("CLASSES {c:?} is not a number")))?,
        None => 1000,
    };
    let mut model = build(arch, classes)?;
    model.load_weights(file)?;
    print!("{}", model.summary());
    println!("{file}: loaded into {arch}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
