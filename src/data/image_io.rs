//! Reading one photo and preparing it at a square size `S`: decoding with limits
//! (JPEG and PNG, through the `image` crate), anti-aliased resizing (`fast_image_resize`),
//! torchvision's centre crop and random-resized crop.
//!
//! Every image is first brought to a *base*: resized so that its shorter side is
//! `B = round(S / eval_resize_ratio)` (aspect kept, torchvision's `Resize(B)`). Evaluation
//! takes the centre `S×S` of the base (`CenterCrop(S)`); training takes a random-resized
//! crop of the base and resizes it to `S×S`. [`crate::data::ImageFolder`] caches bases.

use crate::data::ResizedCrop;
use crate::error::{Error, Result};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use rand::{Rng, RngExt};
use std::io::BufReader;
use std::path::Path;

/// Limits that refuse an image before its pixels are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (width × height) an image may declare; checked against the header, so
    /// a decompression bomb (a small file declaring a huge size) costs nothing. Also
    /// bounds the base an image is resized to (an extreme aspect ratio).
    pub max_pixels: u64,
    /// Largest file read, in bytes.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    /// 100 Mpixel and 256 MiB.
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
            max_bytes: 256 << 20,
        }
    }
}

/// An 8-bit RGB image, pixels interleaved (`[H, W, 3]`, row-major).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Rgb8 {
    /// Checked constructor: `pixels.len()` must be `width · height · 3`, both sides at
    /// least 1.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self> {
        let want = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(3));
        if width == 0 || height == 0 || want != Some(pixels.len()) {
            return Err(Error::Shape {
                context: "Rgb8::new pixels".into(),
                expected: vec![height as usize, width as usize, 3],
                got: vec![pixels.len()],
            });
        }
        Ok(Rgb8 {
            width,
            height,
            pixels,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The interleaved RGB bytes, `[H, W, 3]`.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.pixels.len()
    }
}

/// Decodes a JPEG or PNG file (recognised by its signature, not its name) into RGB.
///
/// Greyscale is replicated to three channels, alpha is dropped (as PIL's
/// `convert("RGB")`), 16-bit samples are scaled to 8 bits, palettes are expanded, CMYK
/// JPEGs are converted to RGB by the decoder, and a JPEG's EXIF orientation is applied.
/// An empty file, a file over `limits.max_bytes`, a header declaring more than
/// `limits.max_pixels`, an unrecognised format or damaged data is an [`Error::Format`]
/// naming the file; a file that cannot be opened is an [`Error::Io`].
pub fn decode_image(path: &Path, limits: &DecodeLimits) -> Result<Rgb8> {
    let format = |detail: String| Error::Format {
        path: path.to_path_buf(),
        detail,
    };
    let io = |what, source| Error::Io {
        path: path.to_path_buf(),
        what,
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| io("cannot open image", e))?;
    let len = file
        .metadata()
        .map_err(|e| io("cannot stat image", e))?
        .len();
    if len == 0 {
        return Err(format("empty file (0 bytes), not an image".into()));
    }
    if len > limits.max_bytes {
        return Err(format(format!(
            "file of {len} bytes is over the limit of {} bytes",
            limits.max_bytes
        )));
    }
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| io("cannot read image", e))?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png) => {}
        Some(other) => {
            return Err(format(format!(
                "{other:?} images are not supported (JPEG and PNG are)"
            )));
        }
        None => return Err(format("not a JPEG or PNG (unrecognised signature)".into())),
    }
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(side);
    image_limits.max_image_height = Some(side);
    // The largest decoded buffer: 16-bit RGBA, 8 bytes a pixel.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format(format!("cannot decode: {e}")))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels {
        return Err(format(format!(
            "declares {w}×{h} = {pixels} pixels, over the limit of {} \
             (a decompression bomb, or raise DecodeLimits::max_pixels)",
            limits.max_pixels
        )));
    }
    if pixels == 0 {
        return Err(format(format!("declares an empty {w}×{h} image")));
    }
    // A damaged EXIF block is no reason to refuse the pixels: keep them unrotated.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format(format!("cannot decode: {e}")))?;
    image.apply_orientation(orientation);
    let rgb = image.into_rgb8();
    let (w, h) = rgb.dimensions();
    Rgb8::new(w, h, rgb.into_raw())
}

/// A source rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CropBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The side of the base, `round(size / eval_resize_ratio)`.
pub(crate) fn base_side(size: usize, eval_resize_ratio: f32) -> usize {
    (size as f64 / f64::from(eval_resize_ratio)).round() as usize
}

/// Resizes `box` of `src` to `out_w × out_h` with the anti-aliased bilinear filter (PIL's
/// `BILINEAR`, which torchvision uses: when shrinking, the filter widens so every source
/// pixel contributes). A box covering all of `src` at its own size is a plain copy.
pub(crate) fn resize(
    src: &Rgb8,
    crop: CropBox,
    out_w: u32,
    out_h: u32,
    resizer: &mut Resizer,
) -> Result<Rgb8> {
    let whole = CropBox {
        x: 0,
        y: 0,
        w: src.width,
        h: src.height,
    };
    if crop == whole && (out_w, out_h) == (src.width, src.height) {
        return Ok(src.clone());
    }
    let fail = |e: &dyn std::fmt::Display| Error::Invalid(format!("resizing an image: {e}"));
    let view =
        ImageRef::new(src.width, src.height, &src.pixels, PixelType::U8x3).map_err(|e| fail(&e))?;
    let mut out = Image::new(out_w, out_h, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(
            f64::from(crop.x),
            f64::from(crop.y),
            f64::from(crop.w),
            f64::from(crop.h),
        );
    resizer
        .resize(&view, &mut out, &options)
        .map_err(|e| fail(&e))?;
    Rgb8::new(out_w, out_h, out.into_vec())
}

/// torchvision's `Resize(side)`: the shorter side becomes `side`, the longer one
/// `floor(side · long / short)`. A result over `limits.max_pixels` (an extreme aspect
/// ratio) is an error.
pub(crate) fn resize_shorter(
    src: &Rgb8,
    side: usize,
    limits: &DecodeLimits,
    resizer: &mut Resizer,
) -> Result<Rgb8> {
    let (w, h) = (u64::from(src.width), u64::from(src.height));
    let (short, long) = (w.min(h), w.max(h));
    let side = side as u64;
    let long_out = (side * long / short).max(1);
    let (out_w, out_h) = if w <= h {
        (side, long_out)
    } else {
        (long_out, side)
    };
    if out_w * out_h > limits.max_pixels || out_w > u64::from(u32::MAX) {
        return Err(Error::Invalid(format!(
            "a {w}×{h} image resized to shorter side {side} would be {out_w}×{out_h}, \
             over the limit of {} pixels",
            limits.max_pixels
        )));
    }
    let whole = CropBox {
        x: 0,
        y: 0,
        w: src.width,
        h: src.height,
    };
    resize(src, whole, out_w as u32, out_h as u32, resizer)
}

/// torchvision's centre-crop offset, `int(round((len − size) / 2))` with Python's
/// round-half-to-even.
fn centre_offset(len: u32, size: u32) -> u32 {
    let d = len - size;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// The centre `size × size` box of a `w × h` image (both at least `size`).
pub(crate) fn centre_box(w: u32, h: u32, size: u32) -> CropBox {
    CropBox {
        x: centre_offset(w, size),
        y: centre_offset(h, size),
        w: size,
        h: size,
    }
}

/// Copies `crop` (of the image's size or smaller) of `src` into planar `dst`
/// (`[3, crop.h, crop.w]`), mirrored left-right when `flip`.
pub(crate) fn to_planar(src: &Rgb8, crop: CropBox, flip: bool, dst: &mut [u8]) {
    let (cw, ch) = (crop.w as usize, crop.h as usize);
    let plane = cw * ch;
    let stride = src.width as usize * 3;
    for y in 0..ch {
        let row = &src.pixels[(crop.y as usize + y) * stride + crop.x as usize * 3..][..cw * 3];
        for (x, px) in row.chunks_exact(3).enumerate() {
            let xo = if flip { cw - 1 - x } else { x };
            for (c, &v) in px.iter().enumerate() {
                dst[c * plane + y * cw + xo] = v;
            }
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params` on a `w × h` image: up to ten draws of an
/// area fraction (uniform in `scale`) and an aspect ratio (log-uniform in `ratio`), the
/// first box that fits placed uniformly; otherwise the centre box of the whole image with
/// its aspect clamped into `ratio`.
pub(crate) fn resized_crop_box(w: u32, h: u32, rc: &ResizedCrop, rng: &mut impl Rng) -> CropBox {
    let area = f64::from(w) * f64::from(h);
    let (lo, hi) = (f64::from(rc.ratio.0).ln(), f64::from(rc.ratio.1).ln());
    let (smin, smax) = (f64::from(rc.scale.0), f64::from(rc.scale.1));
    for _ in 0..10 {
        let target = area * (smin + (smax - smin) * rng.random::<f64>());
        let aspect = (lo + (hi - lo) * rng.random::<f64>()).exp();
        let cw = (target * aspect).sqrt().round();
        let ch = (target / aspect).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= f64::from(w) && ch <= f64::from(h) {
            let (cw, ch) = (cw as u32, ch as u32);
            let x = ((rng.random::<f64>() * f64::from(w - cw + 1)) as u32).min(w - cw);
            let y = ((rng.random::<f64>() * f64::from(h - ch + 1)) as u32).min(h - ch);
            return CropBox { x, y, w: cw, h: ch };
        }
    }
    let in_ratio = f64::from(w) / f64::from(h);
    let (rmin, rmax) = (f64::from(rc.ratio.0), f64::from(rc.ratio.1));
    let (cw, ch) = if in_ratio < rmin {
        (w, ((f64::from(w) / rmin).round() as u32).clamp(1, h))
    } else if in_ratio > rmax {
        (((f64::from(h) * rmax).round() as u32).clamp(1, w), h)
    } else {
        (w, h)
    };
    CropBox {
        x: (w - cw) / 2,
        y: (h - ch) / 2,
        w: cw,
        h: ch,
    }
}

/// Prepares one image for evaluation at `size`, as [`crate::data::ImageFolder`] does for
/// [`crate::data::View::Plain`]: resize the shorter side to `round(size /
/// eval_resize_ratio)`, take the centre `size × size`. Returns planar bytes `[3, size,
/// size]`, ready for [`crate::data::Normalize::apply`].
pub fn eval_image(image: &Rgb8, size: usize, eval_resize_ratio: f32) -> Result<Vec<u8>> {
    check_size(size, eval_resize_ratio)?;
    let base = resize_shorter(
        image,
        base_side(size, eval_resize_ratio),
        &DecodeLimits {
            max_pixels: u64::MAX,
            ..DecodeLimits::default()
        },
        &mut Resizer::new(),
    )?;
    let mut out = vec![0u8; 3 * size * size];
    let crop = centre_box(base.width, base.height, size as u32);
    to_planar(&base, crop, false, &mut out);
    Ok(out)
}

/// A square output size from 1 to 4096 and a resize ratio in (0, 1].
pub(crate) fn check_size(size: usize, eval_resize_ratio: f32) -> Result<()> {
    if !(1..=4096).contains(&size) {
        return Err(Error::Invalid(format!(
            "image size {size}: expected 1 to 4096 pixels"
        )));
    }
    if !(eval_resize_ratio > 0.0 && eval_resize_ratio <= 1.0) {
        return Err(Error::Invalid(format!(
            "eval_resize_ratio {eval_resize_ratio}: expected a value in (0, 1] \
             (1 resizes the shorter side to the size, 0.875 is torchvision's 256 → 224)"
        )));
    }
    if base_side(size, eval_resize_ratio) > 65_536 {
        return Err(Error::Invalid(format!(
            "image size {size} with eval_resize_ratio {eval_resize_ratio}: base side over 65536"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    #[test]
    fn centre_offset_rounds_half_to_even() {
        // (len − size)/2 = 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → 4, as Python's round.
        assert_eq!(centre_offset(33, 32), 0);
        assert_eq!(centre_offset(35, 32), 2);
        assert_eq!(centre_offset(37, 32), 2);
        assert_eq!(centre_offset(39, 32), 4);
        assert_eq!(centre_offset(40, 32), 4);
    }

    #[test]
    fn resized_crop_boxes_stay_inside() {
        let rc = ResizedCrop::default();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        for (w, h) in [(32, 32), (1, 1), (1, 500), (500, 1), (224, 300), (3, 2)] {
            for _ in 0..500 {
                let b = resized_crop_box(w, h, &rc, &mut rng);
                assert!(b.w >= 1 && b.h >= 1, "{b:?} in {w}×{h}");
                assert!(b.x + b.w <= w && b.y + b.h <= h, "{b:?} in {w}×{h}");
            }
        }
    }

    #[test]
    fn resize_shorter_keeps_aspect_and_refuses_extremes() {
        let img = Rgb8::new(40, 20, vec![9; 40 * 20 * 3]).unwrap();
        let mut r = Resizer::new();
        let out = resize_shorter(&img, 10, &DecodeLimits::default(), &mut r).unwrap();
        assert_eq!((out.width(), out.height()), (20, 10));
        // A flat image stays flat through the filter.
        assert!(out.pixels().iter().all(|&v| v == 9));
        let thin = Rgb8::new(1, 1000, vec![0; 3000]).unwrap();
        let limits = DecodeLimits {
            max_pixels: 10_000,
            ..DecodeLimits::default()
        };
        assert!(resize_shorter(&thin, 100, &limits, &mut r).is_err());
    }

    #[test]
    fn planar_copy_and_mirror() {
        // 2×2 image, pixel (x, y) = [10y + x, 100 + ·, 200 + ·].
        let mut px = Vec::new();
        for y in 0..2u8 {
            for x in 0..2u8 {
                let v = 10 * y + x;
                px.extend([v, 100 + v, 200 + v]);
            }
        }
        let img = Rgb8::new(2, 2, px).unwrap();
        let all = centre_box(2, 2, 2);
        let mut out = [0u8; 12];
        to_planar(&img, all, false, &mut out);
        assert_eq!(out, [0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211]);
        to_planar(&img, all, true, &mut out);
        assert_eq!(out[..4], [1, 0, 11, 10]);
    }
}
