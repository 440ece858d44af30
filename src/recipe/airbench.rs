//! airbench94's settings beyond the common ones, and the whitening initialisation of its
//! first layer (KellerJordan/cifar10-airbench, `airbench94.py`).

use crate::data::{Batch, Dataset, View};
use crate::error::{Error, Result};
use crate::linalg::symmetric_eigen;
use crate::model::Sequential;
use crate::models::BnSettings;
use crate::optim::LookaheadSchedule;
use crate::train::Tta;
use rayon::prelude::*;

/// What the `airbench94` preset sets beyond [`super::Recipe`]'s common fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Airbench {
    /// Widths of the network's three groups (airbench94: 64/256/256).
    pub widths: [usize; 3],
    /// The learning rate is the rate at this many images per batch; another batch size
    /// scales it linearly (airbench states its rate per 1024 images, for a summed loss;
    /// our loss is the batch mean, so the rate at 1024 is airbench's
    /// `11.5 / (1 + 1/(1 − momentum))` = 1.5).
    pub lr_batch: usize,
    /// Factor on the batch-norm biases' rate, with their decay divided by it (64).
    pub bias_lr_scale: f32,
    /// Batch-norm momentum and ε; the batch norms' scales are frozen at 1.
    pub bn: BnSettings,
    /// Factor on the logits (1/9).
    pub logit_scale: f32,
    /// Whitening: images it is computed from (the first 5000 training images).
    pub whiten_images: usize,
    /// Whitening: added to each eigenvalue, in units of the mean per-channel pixel
    /// variance (airbench standardises each channel, so its `5e-4` is in these units;
    /// our CIFAR-10 pixels are `(v/255 − ½)/½`, variance ≈ 0.25).
    pub whiten_eps: f32,
    /// Epochs during which the whitening layer's bias trains; frozen after (3). Its
    /// weight is frozen from the start.
    pub whiten_bias_epochs: u64,
    /// The triangle schedule: start and end as fractions of the peak, and where the
    /// peak is as a fraction of the run (0.2, 0.07, 0.23).
    pub triangle: (f32, f32, f32),
    /// Lookahead: epochs before it starts (3), steps between averages (5), decay base
    /// (0.95) and power of the progress (3).
    pub lookahead: (u64, u64, f32, f32),
    /// Test-time augmentation of the last epoch's evaluation (mirror + translate).
    pub final_tta: Tta,
}

impl Default for Airbench {
    /// airbench94's values.
    fn default() -> Self {
        Airbench {
            widths: [64, 256, 256],
            lr_batch: 1024,
            bias_lr_scale: 64.0,
            bn: BnSettings {
                momentum: 0.4,
                eps: 1e-12,
            },
            logit_scale: 1.0 / 9.0,
            whiten_images: 5000,
            whiten_eps: 5e-4,
            whiten_bias_epochs: 3,
            triangle: (0.2, 0.07, 0.23),
            lookahead: (3, 5, 0.95, 3.0),
            final_tta: Tta::MirrorTranslate,
        }
    }
}

impl Airbench {
    /// An error naming the first setting out of range.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(format!("airbench settings: {m}")));
        let (_, every, base, pow) = self.lookahead;
        if self.widths.contains(&0) {
            return bad(format!("widths {:?} must be ≥ 1", self.widths));
        }
        if self.lr_batch == 0 || self.whiten_images == 0 || every == 0 {
            return bad("lr_batch, whiten_images and the lookahead interval must be ≥ 1".into());
        }
        if !(self.bias_lr_scale.is_finite() && self.bias_lr_scale > 0.0) {
            return bad(format!("bias_lr_scale {} must be > 0", self.bias_lr_scale));
        }
        if !(self.whiten_eps.is_finite() && self.whiten_eps >= 0.0) {
            return bad(format!("whiten_eps {} must be ≥ 0", self.whiten_eps));
        }
        if !((0.0..=1.0).contains(&base) && pow.is_finite() && pow >= 0.0) {
            return bad(format!(
                "lookahead decay base {base} or power {pow} out of range"
            ));
        }
        Ok(())
    }

    /// The lookahead schedule of a run of `steps_per_epoch · epochs` steps.
    pub fn lookahead_schedule(&self, steps_per_epoch: u64, epochs: u64) -> LookaheadSchedule {
        let (start, every, decay_base, decay_pow) = self.lookahead;
        LookaheadSchedule {
            start_step: start * steps_per_epoch,
            every,
            decay_base,
            decay_pow,
            total_steps: steps_per_epoch * epochs,
            steps_per_epoch,
        }
    }

    /// Fills layer `0` of `model` (a `[2·C·k², C, k, k]` conv) with the whitening
    /// filters of the first [`Airbench::whiten_images`] images of `train`
    /// ([`whitening_filters`]).
    pub fn init_whitening(&self, model: &mut Sequential, train: &dyn Dataset) -> Result<()> {
        let mut shape = None;
        model.visit_params(&mut |name, p| {
            if name == "0.weight" {
                shape = Some(p.shape.clone());
            }
        });
        let Some(&[out, c, k, k2]) = shape.as_deref() else {
            return Err(Error::Invalid(
                "airbench whitening: the model has no layer-0 conv weight".into(),
            ));
        };
        if k != k2 || out != 2 * c * k * k {
            return Err(Error::Invalid(format!(
                "airbench whitening: layer 0 is {out}×{c}×{k}×{k2}, expected {}×{c}×k×k",
                2 * c * k * k
            )));
        }
        let n = self.whiten_images.min(train.len());
        let indices: Vec<usize> = (0..n).collect();
        let mut batch = Batch::default();
        train.fill_batch(&indices, View::Plain, &mut batch)?;
        let filters = whitening_filters(
            &batch.images.shape()[1..],
            batch.images.data(),
            k,
            self.whiten_eps,
        )?;
        model.visit_params(&mut |name, p| {
            if name == "0.weight" {
                p.value.copy_from_slice(&filters);
            }
        });
        Ok(())
    }
}

/// airbench's whitening filters for `k×k` patches of `images` (`[N, C, H, W]` floats,
/// `item = [C, H, W]`): with `Σ = (1/P)·Σ_p p·pᵀ` over every `k×k` patch `p` (flattened
/// `(c, dy, dx)`, not centred, all positions, stride 1) and its eigenpairs `(λ_j, v_j)`,
/// largest first, the filters are `v_j / √(λ_j + ε)` followed by their negatives:
/// `[2·C·k², C, k, k]`. `ε = eps ·` the mean per-channel variance of the pixels.
///
/// Filter `j` then outputs unit-variance, mutually uncorrelated responses over the
/// patches (up to `λ_j/(λ_j+ε)`). The covariance is summed in `f64`, 64 images per part,
/// parts added in order: the same bits on any thread count.
pub fn whitening_filters(item: &[usize], images: &[f32], k: usize, eps: f32) -> Result<Vec<f32>> {
    let &[c, h, w] = item else {
        return Err(Error::Invalid(format!(
            "whitening: images must be [C, H, W], got {item:?}"
        )));
    };
    let per = c * h * w;
    if k == 0
        || k > h
        || k > w
        || per == 0
        || images.is_empty()
        || !images.len().is_multiple_of(per)
    {
        return Err(Error::Invalid(format!(
            "whitening: {} values are not [N, {c}, {h}, {w}] images with {k}×{k} patches",
            images.len()
        )));
    }
    let d = c * k * k;
    let (oh, ow) = (h - k + 1, w - k + 1);
    // (Σ p pᵀ, Σ x, Σ x²) of the images of one part.
    let part = |chunk: &[f32]| -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut cov = vec![0.0f64; d * d];
        let (mut sum, mut sq) = (vec![0.0f64; c], vec![0.0f64; c]);
        let mut p = vec![0.0f64; d];
        for img in chunk.chunks_exact(per) {
            for (ch, plane) in img.chunks_exact(h * w).enumerate() {
                for &v in plane {
                    sum[ch] += v as f64;
                    sq[ch] += v as f64 * v as f64;
                }
            }
            for y in 0..oh {
                for x in 0..ow {
                    for ch in 0..c {
                        for dy in 0..k {
                            for dx in 0..k {
                                p[(ch * k + dy) * k + dx] =
                                    img[ch * h * w + (y + dy) * w + x + dx] as f64;
                            }
                        }
                    }
                    for i in 0..d {
                        let pi = p[i];
                        let row = &mut cov[i * d..(i + 1) * d];
                        for (r, &pj) in row.iter_mut().zip(&p) {
                            *r += pi * pj;
                        }
                    }
                }
            }
        }
        (cov, sum, sq)
    };
    let parts: Vec<_> = images.par_chunks(64 * per).map(part).collect();
    let mut cov = vec![0.0f64; d * d];
    let (mut sum, mut sq) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (pc, ps, pq) in parts {
        cov.iter_mut().zip(&pc).for_each(|(a, b)| *a += b);
        sum.iter_mut().zip(&ps).for_each(|(a, b)| *a += b);
        sq.iter_mut().zip(&pq).for_each(|(a, b)| *a += b);
    }
    let n = images.len() / per;
    let patches = (n * oh * ow) as f64;
    cov.iter_mut().for_each(|v| *v /= patches);
    let pixels = (n * h * w) as f64;
    let variance: f64 = (0..c)
        .map(|ch| sq[ch] / pixels - (sum[ch] / pixels).powi(2))
        .sum::<f64>()
        / c as f64;
    let eps = eps as f64 * variance;
    let eig = symmetric_eigen(&cov, d).map_err(Error::Invalid)?;
    let mut out = Vec::with_capacity(2 * d * d);
    for sign in [1.0f64, -1.0] {
        for (lambda, v) in eig.values.iter().zip(&eig.vectors) {
            let s = sign / (lambda.max(0.0) + eps).sqrt();
            if !s.is_finite() {
                return Err(Error::Invalid(format!(
                    "whitening: eigenvalue {lambda} with eps {eps} gives no finite filter \
                     (constant images?)"
                )));
            }
            out.extend(v.iter().map(|&x| (x * s) as f32));
        }
    }
    Ok(out)
}
