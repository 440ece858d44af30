//! The `train` example on a folder of photos: trains, saves, resumes, and `predict` answers
//! from the saved model with the folder's class names.

mod common;
use common::*;

use ferroconv::data::{Cifar10, Split};
use std::process::Command;

/// Writes `n` CIFAR-10 test images as 40×48 PNGs (another size and aspect than the model's
/// input) into `root/<class>/`.
fn write_folder(root: &std::path::Path, data: &std::path::Path, n: usize) {
    let set = Cifar10::load_first(data, Split::Test, n).unwrap();
    for i in 0..n {
        let planar = set.image(i).unwrap();
        let class = ferroconv::data::CLASSES[set.labels()[i] as usize];
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        // Nearest-neighbour upscale to 48 wide, 40 high, interleaved RGB.
        let (w, h) = (48u32, 40u32);
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h as usize {
            for x in 0..w as usize {
                let (sy, sx) = (y * 32 / h as usize, x * 32 / w as usize);
                for c in 0..3 {
                    rgb.push(planar[c * 1024 + sy * 32 + sx]);
                }
            }
        }
        let mut bytes = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut bytes, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.write_header().unwrap().write_image_data(&rgb).unwrap();
        }
        std::fs::write(dir.join(format!("{i}.png")), bytes).unwrap();
    }
    // Files that must not count: a hidden one, a text file, and a corrupt "photo".
    std::fs::write(root.join("cat/.hidden.png"), b"x").unwrap();
    std::fs::write(root.join("cat/notes.txt"), b"not an image").unwrap();
    std::fs::write(root.join("dog/broken.png"), b"\x89PNG broken").unwrap();
}

#[test]
fn train_resume_and_predict_on_a_photo_folder() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("train-folder");
    let root = dir.join("photos");
    write_folder(&root, &data, 200);
    let save = dir.join("run");
    let base = |epochs: &str| {
        let mut c = Command::new(example_binary("train"));
        c.args([
            "--data",
            root.to_str().unwrap(),
            "--size",
            "32",
            "--epochs",
            epochs,
        ])
        .args(["--batch-size", "16", "--lr", "0.01", "--threads", "1"])
        .args(["--save", save.to_str().unwrap()]);
        c
    };
    let out = base("1")
        .arg("--json")
        .arg(dir.join("log.jsonl"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("10 classes"), "{stdout}");
    assert!(
        stderr.contains("skipped 1 unreadable files") && stderr.contains("broken.png"),
        "{stderr}"
    );
    let out = base("2").arg("--resume").arg(&save).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed at the end of epoch 1"));
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");

    // predict reads the input size, normalisation and class names from the checkpoint.
    let photo = root
        .join("ship")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = Command::new(example_binary("predict"))
        .arg("--model")
        .arg(&save)
        .arg(&photo)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let known = ferroconv::data::CLASSES
        .iter()
        .filter(|c| stdout.contains(*c))
        .count();
    assert_eq!(known, 3, "top 3 of the folder's class names: {stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `train --pretrained FILE --arch resnet18 --freeze backbone`: the backbone stays the
/// file's, bit for bit, the head is replaced for the folder's 10 classes under its
/// torchvision name, ImageNet normalisation is the default, and the run resumes only with
/// the same freezing.
#[test]
fn fine_tune_a_pretrained_resnet18_on_a_photo_folder() {
    let Some(data) = data_dir() else { return };
    let dir = temp_dir("finetune-folder");
    let root = dir.join("photos");
    write_folder(&root, &data, 60);
    // A torchvision-named resnet18 with ImageNet's 1000-class head, random weights.
    let pretrained = dir.join("r18.safetensors");
    ferroconv::zoo::resnet(18, 1000, 32, 3)
        .unwrap()
        .save(&pretrained)
        .unwrap();
    let save = dir.join("run");
    let base = |epochs: &str, freeze: bool| {
        let mut c = Command::new(example_binary("train"));
        c.args(["--data", root.to_str().unwrap(), "--size", "32"])
            .args([
                "--pretrained",
                pretrained.to_str().unwrap(),
                "--arch",
                "resnet18",
            ])
            .args(["--epochs", epochs, "--batch-size", "8", "--threads", "1"])
            .args(["--save", save.to_str().unwrap()]);
        if freeze {
            c.args(["--freeze", "backbone"]);
        }
        c
    };
    let out = base("1", true).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("model resnet18"), "{stdout}");
    let ckpt = save.join("checkpoint.safetensors");
    let model = ferroconv::Sequential::load(&ckpt).unwrap();
    let pre = ferroconv::Sequential::load(&pretrained).unwrap();
    assert_eq!(
        model.normalization(),
        Some(&ferroconv::data::Normalize::imagenet())
    );
    assert_eq!(model.classes().map(|c| c.len()), Some(10));
    let mut pre_values = std::collections::BTreeMap::new();
    pre.visit_values(&mut |v| {
        pre_values.insert(v.name.to_string(), v.values.to_vec());
    });
    let mut names = 0;
    model.visit_values(&mut |v| {
        names += 1;
        let old = &pre_values[v.name];
        if v.name.starts_with("fc.") {
            assert_eq!(v.shape[0], 10, "{}", v.name);
        } else {
            assert_eq!(v.values, &old[..], "{} changed though frozen", v.name);
        }
    });
    assert_eq!(names, pre_values.len(), "the same names, one to one");
    let out = base("2", false)
        .arg("--resume")
        .arg(&save)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("freeze"),
        "{stderr}"
    );
    let out = base("2", true).arg("--resume").arg(&save).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resumed at the end of epoch 1"));
    std::fs::remove_dir_all(dir).unwrap();
}
