//! Data augmentation on raw `[3, 32, 32]` images: random crop after zero padding, and
//! horizontal flip. Seeded per image, so any thread may do the work and a resumed run
//! draws the same augmentations.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

/// Which augmentations to apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Pad every side by this many black pixels, then crop 32×32 at a random offset
    /// (0 disables; 4 is the classic CIFAR-10 recipe).
    pub crop_pad: usize,
    /// Mirror left-right with probability ½.
    pub flip: bool,
}

impl Augment {
    /// The classic CIFAR-10 recipe: 4-pixel pad + random crop, random flip.
    pub fn standard() -> Self {
        Augment {
            crop_pad: 4,
            flip: true,
        }
    }

    /// True when nothing is applied.
    pub fn is_identity(&self) -> bool {
        self.crop_pad == 0 && !self.flip
    }

    /// Writes an augmented copy of `src` (`[3, side, side]` bytes) into `dst`; the draw
    /// depends only on `key` (e.g. seed, epoch and position in the epoch).
    pub fn apply(&self, src: &[u8], dst: &mut [u8], side: usize, key: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(key);
        let r = rng.next_u64();
        let span = 2 * self.crop_pad as u64 + 1;
        let dy = (r % span) as isize - self.crop_pad as isize;
        let dx = ((r >> 16) % span) as isize - self.crop_pad as isize;
        let flip = self.flip && (r >> 40) & 1 == 1;
        shift_flip(src, dst, side, (dy, dx), flip);
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

/// Mixes a seed, an epoch and an index into one generator key.
pub fn augment_key(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut z = seed
        ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407)
        ^ index.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
