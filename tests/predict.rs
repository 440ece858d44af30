//! The `predict` example: PNG and JPEG of any size, a corrupt file and a decompression
//! bomb among good ones, a model of another shape, a model with NaN weights.

mod common;
use common::*;

use ferroconv::checkpoint::SafeTensors;
use ferroconv::data::Normalize;
use std::path::Path;
use std::process::Command;

/// A valid PNG header declaring `w × h` RGB pixels, followed by a tiny compressed stream:
/// a decompression bomb's signature.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = png_bytes(1, 1, png::ColorType::Rgb, png::BitDepth::Eight, &[1, 2, 3]);
    // IHDR's width and height sit at bytes 16..24; its CRC follows the 13 data bytes.
    out[16..20].copy_from_slice(&w.to_be_bytes());
    out[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out.resize(1200, 0);
    out
}

/// CRC-32 (PNG's chunk checksum), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn png_bytes(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        enc.write_header().unwrap().write_image_data(data).unwrap();
    }
    out
}

#[test]
fn predict_answers_good_images_and_reports_bad_ones() {
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/predict");
    assert!(
        bin.is_file(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    let dir = temp_dir("e2e");
    let mut model = ferroconv::models::seed_net(1).unwrap();
    model.set_normalization(Normalize::half()).unwrap();
    let names: Vec<String> = ferroconv::data::CLASSES
        .iter()
        .map(|c| c.to_string())
        .collect();
    model.set_classes(names).unwrap();
    model.save(dir.join("checkpoint.safetensors")).unwrap();
    let st = SafeTensors::read(&dir.join("checkpoint.safetensors")).unwrap();
    let png_path = dir.join("a.png");
    let pixels: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(
        &png_path,
        png_bytes(40, 30, png::ColorType::Rgb, png::BitDepth::Eight, &pixels),
    )
    .unwrap();
    // A progressive JPEG of another size and aspect (a committed fixture).
    let ppm_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/progressive.jpg");
    let bad_path = dir.join("c.png");
    std::fs::write(&bad_path, b"\x89PNG this is not really a png").unwrap();
    // 1.2 KB of PNG that declares 100000×100000 pixels: refused before any allocation.
    let bomb_path = dir.join("bomb.png");
    std::fs::write(&bomb_path, bomb_png(100_000, 100_000)).unwrap();

    let out = Command::new(&bin)
        .arg("--model")
        .arg(&dir)
        .args([&png_path, &bad_path, &bomb_path, &ppm_path])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !out.status.success(),
        "a bad image makes the exit status non-zero"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (line, name) in lines.iter().zip(["a.png", "progressive.jpg"]) {
        assert!(
            line.contains(name) && line.matches('%').count() == 3,
            "{line}"
        );
        let total: f64 = line
            .split(", ")
            .map(|p| {
                p.rsplit(' ')
                    .next()
                    .unwrap()
                    .trim_end_matches('%')
                    .parse::<f64>()
                    .unwrap()
            })
            .sum();
        assert!(total <= 100.05, "{line}");
    }
    assert!(
        stderr.contains("c.png") && stderr.contains("not a JPEG or PNG"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bomb.png") && stderr.contains("100000"),
        "{stderr}"
    );

    // A checkpoint of another shape is a clear one-line error.
    let mut st2 = st.clone();
    st2.tensors.remove("conv1.weight");
    st2.write(&dir.join("checkpoint.safetensors")).unwrap();
    let out = Command::new(&bin)
        .arg("--model")
        .arg(&dir)
        .arg(&ppm_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 missing") && err.contains("conv1.weight"),
        "{err}"
    );

    // A model with NaN weights is refused, not answered with NaN%.
    let mut st3 = st.clone();
    st3.tensors.get_mut("fc3.bias").unwrap().data.fill(f32::NAN);
    st3.write(&dir.join("checkpoint.safetensors")).unwrap();
    let out = Command::new(&bin)
        .arg("--model")
        .arg(&dir)
        .arg(&ppm_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (err, stdout) = (
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    assert!(
        err.contains("fc3.bias") && err.contains("not finite"),
        "{err}"
    );
    assert!(!stdout.contains("NaN"), "{stdout}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The model shipped in examples/weights/, which `predict` uses when given no `--model`.
fn shipped() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/weights/cifar10-airbench94.safetensors")
}

/// A number in the shipped card's `accuracy` JSON, e.g. `"plain":0.9391`.
fn card_accuracy(card: &str, key: &str) -> f64 {
    let at = card
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in the card's accuracy {card}"));
    let rest = &card[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().unwrap()
}

#[test]
fn shipped_model_is_small_and_describes_itself() {
    let path = shipped();
    let bytes = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len();
    assert!(bytes <= 10 << 20, "{bytes} bytes: over 10 MiB");
    let model = ferroconv::Sequential::load(&path).unwrap();
    assert_eq!(model.input_shape(), &[3, 32, 32]);
    let classes: Vec<&str> = model
        .classes()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(classes, ferroconv::data::CLASSES);
    assert_eq!(model.normalization(), Some(&Normalize::half()));
    let card = model.card();
    for key in ["accuracy", "recipe", "dataset", "command", "cpu", "trained"] {
        assert!(card.contains_key(key), "the card has no {key:?}: {card:?}");
    }
    assert!(card["recipe"].contains("airbench94"), "{}", card["recipe"]);
    let acc = &card["accuracy"];
    assert!(acc.contains("\"images\":10000"), "{acc}");
    assert!(card_accuracy(acc, "mirror_translate") >= 0.93, "{acc}");
    // Weights only: a training checkpoint's optimizer state stays behind.
    let st = SafeTensors::read(&path).unwrap();
    assert!(
        st.tensors
            .keys()
            .all(|k| !k.starts_with("momentum.") && !k.starts_with("lookahead.")),
        "optimizer state shipped"
    );
}

#[test]
fn shipped_model_scores_on_cifar10_test_images_as_its_card_says() {
    let Some(dir) = data_dir() else { return };
    let mut model = ferroconv::Sequential::load(shipped()).unwrap();
    let card_plain = card_accuracy(&model.card()["accuracy"], "plain");
    let test =
        ferroconv::data::Cifar10::load_first(&dir, ferroconv::data::Split::Test, 1000).unwrap();
    let eval = ferroconv::train::evaluate(&mut model, &test, 250, false).unwrap();
    // 1000 of the card's 10,000 images: within 3 points (±3.5 standard errors).
    assert!(
        (eval.accuracy - card_plain).abs() <= 0.03,
        "{} on the first 1000 test images, the card says {card_plain} on all 10,000",
        eval.accuracy
    );
}

#[test]
fn predict_answers_with_the_shipped_model_out_of_the_box() {
    let Some(dir) = data_dir() else { return };
    let test =
        ferroconv::data::Cifar10::load_first(&dir, ferroconv::data::Split::Test, 20).unwrap();
    let tmp = temp_dir("shipped");
    let mut paths = Vec::new();
    for i in 0..test.len() {
        // The binary file is planar RGB; a PNG is interleaved.
        let planar = test.image(i).unwrap();
        let rgb: Vec<u8> = (0..32 * 32)
            .flat_map(|p| [planar[p], planar[1024 + p], planar[2048 + p]])
            .collect();
        let path = tmp.join(format!("{i}.png"));
        let png = png_bytes(32, 32, png::ColorType::Rgb, png::BitDepth::Eight, &rgb);
        std::fs::write(&path, png).unwrap();
        paths.push(path);
    }
    let out = Command::new(example_binary("predict"))
        .args(&paths)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), test.len(), "{stdout}");
    let right = lines
        .iter()
        .zip(test.labels())
        .filter(|&(line, label)| {
            let first = line.split(": ").nth(1).unwrap().split(' ').next().unwrap();
            first == ferroconv::data::CLASSES[*label as usize]
        })
        .count();
    // A ≥ 93% model gets at least 16 of 20 (a 10% model would get ~2).
    assert!(right >= 16, "{right} of 20 right:\n{stdout}");
}
