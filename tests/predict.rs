//! The `predict` example and its image readers: PNG (every colour type), PPM (P3/P6),
//! resizing, and a bad file among good ones.

mod common;
use common::*;

#[path = "../examples/support/image.rs"]
mod image;

use ferroconv::checkpoint::{SafeTensors, model_tensors};
use std::path::Path;
use std::process::Command;

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
fn png_colour_types_decode_to_rgb() {
    let rgb = png_bytes(
        2,
        1,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &[10, 20, 30, 40, 50, 60],
    );
    assert_eq!(
        image::decode_png(&rgb).unwrap().pixels,
        vec![10, 20, 30, 40, 50, 60]
    );
    let gray = png_bytes(
        2,
        1,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[7, 9],
    );
    assert_eq!(
        image::decode_png(&gray).unwrap().pixels,
        vec![7, 7, 7, 9, 9, 9]
    );
    let rgba = png_bytes(
        1,
        1,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &[1, 2, 3, 4],
    );
    assert_eq!(image::decode_png(&rgba).unwrap().pixels, vec![1, 2, 3]);
    let deep = png_bytes(
        1,
        1,
        png::ColorType::Rgb,
        png::BitDepth::Sixteen,
        &[255, 0, 128, 0, 0, 0],
    );
    assert_eq!(image::decode_png(&deep).unwrap().pixels, vec![255, 128, 0]);
    assert!(
        image::decode_png(&rgb[..rgb.len() / 2]).is_err(),
        "truncated PNG"
    );
}

#[test]
fn ppm_binary_and_ascii() {
    let p6 = [b"P6\n# comment\n2 1\n255\n".as_slice(), &[1, 2, 3, 4, 5, 6]].concat();
    assert_eq!(
        image::decode_ppm(&p6).unwrap().pixels,
        vec![1, 2, 3, 4, 5, 6]
    );
    let p3 = b"P3 1 1 15  15 0 5";
    assert_eq!(image::decode_ppm(p3).unwrap().pixels, vec![255, 0, 85]);
    assert!(
        image::decode_ppm(b"P6 2 2 255\n\x01\x02").is_err(),
        "short pixel data"
    );
    assert!(image::decode_ppm(b"P6 0 2 255\n").is_err(), "zero width");
}

#[test]
fn resize_averages_and_keeps_uniform_colour() {
    let img = image::Rgb {
        width: 64,
        height: 48,
        pixels: [9u8, 99, 199].repeat(64 * 48),
    };
    let small = image::resize(&img, 32);
    assert_eq!((small.width, small.height), (32, 32));
    assert!(small.pixels.chunks(3).all(|p| p == [9, 99, 199]));
    let tiny = image::Rgb {
        width: 2,
        height: 2,
        pixels: vec![0, 0, 0, 255, 255, 255, 0, 0, 0, 255, 255, 255],
    };
    let big = image::resize(&tiny, 32);
    assert_eq!(&big.pixels[..3], &[0, 0, 0]);
    assert_eq!(&big.pixels[31 * 3..32 * 3], &[255, 255, 255]);
    let planar = image::to_planar(&tiny);
    assert_eq!(planar, vec![0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255]);
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
    let st = SafeTensors {
        tensors: model_tensors(&mut model),
        metadata: [("model".to_string(), "seed".to_string())].into(),
        ..Default::default()
    };
    st.write(&dir.join("checkpoint.safetensors")).unwrap();
    let png_path = dir.join("a.png");
    let pixels: Vec<u8> = (0..40 * 30 * 3).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(
        &png_path,
        png_bytes(40, 30, png::ColorType::Rgb, png::BitDepth::Eight, &pixels),
    )
    .unwrap();
    let ppm_path = dir.join("b.ppm");
    std::fs::write(
        &ppm_path,
        [b"P6 32 32 255\n".as_slice(), &[128u8; 32 * 32 * 3]].concat(),
    )
    .unwrap();
    let bad_path = dir.join("c.png");
    std::fs::write(&bad_path, b"\x89PNG this is not really a png").unwrap();

    let out = Command::new(&bin)
        .arg("--model")
        .arg(&dir)
        .args([&png_path, &bad_path, &ppm_path])
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
    for (line, name) in lines.iter().zip(["a.png", "b.ppm"]) {
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
        stderr.contains("c.png") && stderr.contains("bad PNG"),
        "{stderr}"
    );

    // A checkpoint of another shape is a clear one-line error.
    let mut st2 = st.clone();
    st2.tensors.remove("0.weight");
    st2.write(&dir.join("checkpoint.safetensors")).unwrap();
    let out = Command::new(&bin)
        .arg("--model")
        .arg(&dir)
        .arg(&ppm_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing tensor \"0.weight\""));
    std::fs::remove_dir_all(dir).unwrap();
}
