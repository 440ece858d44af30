//! Data augmentation on raw `[3, 32, 32]` images: random crop after zero (or reflect)
//! padding, and horizontal flip (random, or airbench's alternating flip). Seeded per
//! image, so any thread may do the work and a resumed run draws the same augmentations.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

/// Which augmentations to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augment {
    /// Pad every side by this many black pixels, then crop at a random offset back to
    /// the image's size (0 disables; 4 is the classic CIFAR-10 recipe).
    pub crop_pad: usize,
    /// Mirror left-right with probability ½.
    pub flip: bool,
    /// torchvision's `RandomResizedCrop`: a random part of the source image, resized to
    /// the output size. For sources that resize (image folders); the fixed-size CIFAR-10
    /// loader refuses it.
    pub resized_crop: Option<ResizedCrop>,
    /// Pad by reflecting the image (`dcb|abcd|cba`) instead of with black pixels.
    pub reflect: bool,
    /// airbench's alternating flip, instead of a fresh coin per epoch: each image is
    /// mirrored in every other epoch, starting from a seeded coin per image (see
    /// [`alternating_flip`]); the training loop encodes the decision in the key's lowest
    /// bit ([`Augment::apply`]). Needs `flip`.
    pub alternating_flip: bool,
}

/// The ranges a random-resized crop draws from (torchvision's defaults: area fraction
/// 0.08–1, aspect ratio ¾–4⁄3, drawn log-uniformly).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResizedCrop {
    /// Smallest and largest fraction of the source area the crop covers.
    pub scale: (f32, f32),
    /// Smallest and largest width/height ratio of the crop.
    pub ratio: (f32, f32),
}

impl Default for ResizedCrop {
    fn default() -> Self {
        ResizedCrop {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

impl Augment {
    /// The classic CIFAR-10 recipe: 4-pixel pad + random crop, random flip.
    pub fn standard() -> Self {
        Augment {
            crop_pad: 4,
            flip: true,
            resized_crop: None,
            reflect: false,
            alternating_flip: false,
        }
    }

    /// airbench94's: translate by up to 2 pixels each way after reflect padding, and
    /// the alternating flip.
    pub fn airbench() -> Self {
        Augment {
            crop_pad: 2,
            flip: true,
            resized_crop: None,
            reflect: true,
            alternating_flip: true,
        }
    }

    /// torchvision's standard for photos: random-resized crop and horizontal flip.
    pub fn photos() -> Self {
        Augment {
            crop_pad: 0,
            flip: true,
            resized_crop: Some(ResizedCrop::default()),
            reflect: false,
            alternating_flip: false,
        }
    }

    /// True when nothing is applied.
    pub fn is_identity(&self) -> bool {
        self.crop_pad == 0 && !self.flip && self.resized_crop.is_none()
    }

    /// Writes an augmented copy of `src` (`[3, side, side]` bytes) into `dst`; the draw
    /// depends only on `key` (e.g. seed, epoch and position in the epoch). With
    /// `alternating_flip`, the key's lowest bit says whether to mirror.
    pub fn apply(&self, src: &[u8], dst: &mut [u8], side: usize, key: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(key);
        let r = rng.next_u64();
        let span = 2 * self.crop_pad as u64 + 1;
        let dy = (r % span) as isize - self.crop_pad as isize;
        let dx = ((r >> 16) % span) as isize - self.crop_pad as isize;
        let flip = match (self.flip, self.alternating_flip) {
            (false, _) => false,
            (true, false) => (r >> 40) & 1 == 1,
            (true, true) => key & 1 == 1,
        };
        if self.reflect {
            shift_flip_reflect(src, dst, side, (dy, dx), flip);
        } else {
            shift_flip(src, dst, side, (dy, dx), flip);
        }
    }
}

/// `dst[c][y][x] = src[c][y + dy][x' + dx]` (black outside), with `x' = side−1−x` when
/// flipping.
pub fn shift_flip(src: &[u8], dst: &mut [u8], side: usize, (dy, dx): (isize, isize), flip: bool) {
    let plane = side * side;
    for (s, d) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
        for y in 0..side {
            let sy = y as isize + dy;
            let row = &mut d[y * side..(y + 1) * side];
            if sy < 0 || sy >= side as isize {
                row.fill(0);
                continue;
            }
            let srow = &s[sy as usize * side..(sy as usize + 1) * side];
            for (x, out) in row.iter_mut().enumerate() {
                let xx = if flip { side - 1 - x } else { x };
                let sx = xx as isize + dx;
                *out = if sx < 0 || sx >= side as isize {
                    0
                } else {
                    srow[sx as usize]
                };
            }
        }
    }
}

/// Reflects an index into `0..side` (`-1 → 1`, `side → side − 2`), as PyTorch's
/// `reflect` padding does, for shifts smaller than the side.
pub fn reflect_index(i: isize, side: usize) -> usize {
    let last = side as isize - 1;
    let r = if i < 0 {
        -i
    } else if i > last {
        2 * last - i
    } else {
        i
    };
    r.clamp(0, last.max(0)) as usize
}

/// [`shift_flip`] with reflected borders instead of black ones:
/// `dst[c][y][x] = src[c][refl(y + dy)][refl(x' + dx)]`.
pub fn shift_flip_reflect(
    src: &[u8],
    dst: &mut [u8],
    side: usize,
    (dy, dx): (isize, isize),
    flip: bool,
) {
    let plane = side * side;
    for (s, d) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
        for y in 0..side {
            let sy = reflect_index(y as isize + dy, side);
            let srow = &s[sy * side..(sy + 1) * side];
            for (x, out) in d[y * side..(y + 1) * side].iter_mut().enumerate() {
                let xx = if flip { side - 1 - x } else { x };
                *out = srow[reflect_index(xx as isize + dx, side)];
            }
        }
    }
}

/// airbench's alternating flip: whether image `index` is mirrored in `epoch` (from 1).
/// A seeded coin per image decides epoch 1; every later epoch flips the decision, so each
/// image is seen mirrored in every other epoch (airbench draws the coins once per run,
/// then mirrors the whole set on odd epochs).
pub fn alternating_flip(seed: u64, index: u64, epoch: u64) -> bool {
    let coin = augment_key(seed ^ 0xF11F_F11F_F11F_F11F, 0, index) >> 63 == 1;
    coin ^ epoch.is_multiple_of(2)
}

/// Mixes a seed, an epoch and an index into one generator key.
pub fn augment_key(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407)
        ^ index.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
