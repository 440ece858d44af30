//! Reading PNG and PPM images into 32×32 RGB for the `predict` example.
//! PNG decoding uses the `png` crate (a dev-dependency); PPM (P3/P6) is parsed here.
#![allow(dead_code)]

use std::path::Path;

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
pub struct Rgb {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` bytes.
    pub pixels: Vec<u8>,
}

/// Largest image decoded by default: 64 megapixels (an 8K photo is 33).
pub const MAX_PIXELS: u64 = 64 << 20;

/// Reads a PNG or PPM file (told apart by their magic bytes), refusing images that
/// declare more than `max_pixels` pixels before decoding them (a decompression bomb).
pub fn read_image(path: &Path, max_pixels: u64) -> Result<Rgb, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.starts_with(b"\x89PNG") {
        decode_png_limited(&bytes, max_pixels)
    } else if bytes.starts_with(b"P6") || bytes.starts_with(b"P3") {
        decode_ppm(&bytes)
    } else {
        Err("not a PNG or PPM (P3/P6) image".into())
    }
}

/// Decodes a PNG of any colour type and bit depth to 8-bit RGB (at most [`MAX_PIXELS`]).
pub fn decode_png(bytes: &[u8]) -> Result<Rgb, String> {
    decode_png_limited(bytes, MAX_PIXELS)
}

/// [`decode_png`] refusing images of more than `max_pixels` pixels before allocating.
pub fn decode_png_limited(bytes: &[u8], max_pixels: u64) -> Result<Rgb, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    let (w, h) = (reader.info().width, reader.info().height);
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!(
            "declares {w}×{h} pixels, more than the limit of {max_pixels} \
             (a decompression bomb? --max-pixels raises the limit)"
        ));
    }
    let size = reader.output_buffer_size().ok_or("PNG too large")?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("bad PNG: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("indexed PNG was not expanded".into()),
    };
    let mut pixels = Vec::with_capacity(w * h * 3);
    for px in buf[..w * h * channels].chunks_exact(channels) {
        match channels {
            1 | 2 => pixels.extend_from_slice(&[px[0]; 3]),
            _ => pixels.extend_from_slice(&px[..3]),
        }
    }
    Ok(Rgb {
        width: w,
        height: h,
        pixels,
    })
}

/// Decodes a binary (P6) or ASCII (P3) PPM with any maxval up to 65535.
pub fn decode_ppm(bytes: &[u8]) -> Result<Rgb, String> {
    let mut pos = 2;
    let mut field = |what: &str| -> Result<usize, String> {
        loop {
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if bytes.get(pos) == Some(&b'#') {
                while pos < bytes.len() && bytes[pos] != b'\n' {
                    pos += 1;
                }
            } else {
                break;
            }
        }
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        std::str::from_utf8(&bytes[start..pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad PPM: no {what}"))
    };
    let (w, h, max) = (field("width")?, field("height")?, field("maxval")?);
    if w == 0 || h == 0 || w > 1 << 14 || h > 1 << 14 || max == 0 || max > 65535 {
        return Err(format!("bad PPM: {w}×{h}, maxval {max}"));
    }
    let n = w * h * 3;
    let scale = |v: usize| ((v.min(max) * 255 + max / 2) / max) as u8;
    let pixels = if bytes.starts_with(b"P6") {
        let data = bytes.get(pos + 1..).ok_or("bad PPM: no pixel data")?;
        let per = if max < 256 { 1 } else { 2 };
        if data.len() < n * per {
            return Err(format!(
                "bad PPM: {} pixel bytes, {w}×{h} needs {}",
                data.len(),
                n * per
            ));
        }
        (0..n)
            .map(|i| match per {
                1 => scale(data[i] as usize),
                _ => scale(((data[2 * i] as usize) << 8) | data[2 * i + 1] as usize),
            })
            .collect()
    } else {
        (0..n)
            .map(|_| field("pixel value").map(scale))
            .collect::<Result<Vec<u8>, _>>()?
    };
    Ok(Rgb {
        width: w,
        height: h,
        pixels,
    })
}

/// Resizes to `side × side` by averaging each output pixel's source box (area resampling,
/// which also handles enlargement by taking the nearest pixel).
pub fn resize(img: &Rgb, side: usize) -> Rgb {
    if img.width == side && img.height == side {
        return Rgb {
            width: side,
            height: side,
            pixels: img.pixels.clone(),
        };
    }
    let mut pixels = vec![0u8; side * side * 3];
    for oy in 0..side {
        let (y0, y1) = (
            oy * img.height / side,
            ((oy + 1) * img.height)
                .div_ceil(side)
                .max(oy * img.height / side + 1),
        );
        for ox in 0..side {
            let (x0, x1) = (
                ox * img.width / side,
                ((ox + 1) * img.width)
                    .div_ceil(side)
                    .max(ox * img.width / side + 1),
            );
            for c in 0..3 {
                let mut sum = 0usize;
                for y in y0..y1.min(img.height) {
                    for x in x0..x1.min(img.width) {
                        sum += img.pixels[(y * img.width + x) * 3 + c] as usize;
                    }
                }
                let count = (y1.min(img.height) - y0) * (x1.min(img.width) - x0);
                pixels[(oy * side + ox) * 3 + c] = ((sum + count / 2) / count) as u8;
            }
        }
    }
    Rgb {
        width: side,
        height: side,
        pixels,
    }
}

/// Interleaved RGB → CIFAR-10's planar `[3, 32, 32]` bytes.
pub fn to_planar(img: &Rgb) -> Vec<u8> {
    let n = img.width * img.height;
    let mut out = vec![0u8; 3 * n];
    for (i, px) in img.pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * n + i] = px[c];
        }
    }
    out
}
