//! Per-channel normalisation of 8-bit images: `x = (v/255 − mean[c]) / std[c]`,
//! torchvision's `ToTensor()` followed by `Normalize(mean, std)`.

use crate::error::{Error, Result};

/// Per-channel mean and standard deviation, on the `[0, 1]` scale of `v/255`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (all positive).
    pub std: Vec<f32>,
}

impl Normalize {
    /// Checked constructor: as many means as deviations, all finite, deviations positive.
    pub fn new(mean: &[f32], std: &[f32]) -> Result<Self> {
        if mean.len() != std.len() || mean.is_empty() {
            return Err(Error::Invalid(format!(
                "Normalize: {} means and {} deviations",
                mean.len(),
                std.len()
            )));
        }
        if let Some(bad) = mean.iter().chain(std).find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("Normalize: {bad} is not finite")));
        }
        if let Some(bad) = std.iter().find(|&&s| s <= 0.0) {
            return Err(Error::Invalid(format!(
                "Normalize: a standard deviation of {bad}"
            )));
        }
        Ok(Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }

    /// `(v/255 − 0.5)/0.5` on three channels, which maps `[0, 255]` onto `[−1, 1]`: the
    /// PyTorch CIFAR-10 tutorial's normalisation, used by the CIFAR-10 loader.
    pub fn half() -> Self {
        Normalize {
            mean: vec![0.5; 3],
            std: vec![0.5; 3],
        }
    }

    /// ImageNet's statistics, which torchvision's pretrained weights expect.
    pub fn imagenet() -> Self {
        Normalize {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Writes the normalised floats of `image` (`[C, H, W]` bytes, planes in channel
    /// order) into `out` (same length). An error when the lengths differ or do not split
    /// into this many channel planes.
    pub fn apply(&self, image: &[u8], out: &mut [f32]) -> Result<()> {
        let c = self.channels();
        if image.len() != out.len() || !image.len().is_multiple_of(c) {
            return Err(Error::Invalid(format!(
                "Normalize::apply: {} bytes into {} floats, {c} channels",
                image.len(),
                out.len()
            )));
        }
        self.apply_planes(image, out);
        Ok(())
    }

    /// [`Normalize::apply`] on lengths the caller has checked.
    pub(crate) fn apply_planes(&self, image: &[u8], out: &mut [f32]) {
        apply_tables(&self.tables(), image, out);
    }

    /// Each channel's 256 values, for [`apply_tables`] (a source that normalises many
    /// images computes them once).
    pub(crate) fn tables(&self) -> Vec<[f32; 256]> {
        (0..self.channels()).map(|c| self.table(c)).collect()
    }

    /// The 256 values one channel's bytes map to, computed as `(v/255 − mean)/std` in f32.
    fn table(&self, c: usize) -> [f32; 256] {
        let mut t = [0.0f32; 256];
        for (v, out) in t.iter_mut().enumerate() {
            *out = (v as f32 / 255.0 - self.mean[c]) / self.std[c];
        }
        t
    }
}

/// Maps the bytes of each channel plane of `image` through that channel's table into
/// `out` (same length, a whole number of planes, one table per plane).
pub(crate) fn apply_tables(tables: &[[f32; 256]], image: &[u8], out: &mut [f32]) {
    let plane = image.len() / tables.len();
    for (table, (src, dst)) in tables
        .iter()
        .zip(image.chunks_exact(plane).zip(out.chunks_exact_mut(plane)))
    {
        for (d, &b) in dst.iter_mut().zip(src) {
            *d = table[b as usize];
        }
    }
}
