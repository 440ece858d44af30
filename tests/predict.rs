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
