//! The parallel part of [`ImageFolder`]: running per-image work over a batch on a few
//! threads, recording the files that fail, the cache's byte budget, and the pass that
//! computes the normalisation.

use super::ImageFolder;
use crate::data::Normalize;
use crate::data::epoch_permutation;
use crate::data::image_io::{centre_box, to_planar};
use crate::error::{Error, Result};
use fast_image_resize::Resizer;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The memory the cache may still take, shared by both splits.
pub(super) struct Budget {
    pub(super) limit: usize,
    pub(super) used: AtomicUsize,
}

impl Budget {
    /// Takes `n` bytes if they fit.
    pub(super) fn reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }
}

/// Files found unreadable: in the order met, and by index for a quick "known bad".
#[derive(Default)]
pub(super) struct Skipped {
    pub(super) list: Vec<(PathBuf, String)>,
    pub(super) bad: HashSet<usize>,
}

/// Work on one image: `((position, index), resizer, output slice)`.
pub(super) type Work<'a, T> =
    dyn Fn((usize, usize), &mut Resizer, &mut [T]) -> Result<()> + Sync + 'a;

/// What became of one image of a batch.
pub(super) enum Outcome {
    Done,
    KnownBad,
    Failed(Error),
}

impl ImageFolder {
    /// Runs `work((position, index), resizer, out)` for each of `indices`, `out` being
    /// the position's `item`-long slice of `outs`, on up to `threads` threads over
    /// contiguous runs of positions (one thread when at most one image needs decoding).
    /// Known-bad images are not tried.
    pub(super) fn run<T: Send>(
        &self,
        indices: &[usize],
        item: usize,
        outs: &mut [T],
        work: &Work<'_, T>,
    ) -> Vec<Outcome> {
        let bad: Vec<bool> = {
            let skipped = self.lock_skipped();
            indices.iter().map(|i| skipped.bad.contains(i)).collect()
        };
        let to_decode = indices
            .iter()
            .zip(&bad)
            .filter(|&(&i, &b)| !b && self.cache[i].get().is_none())
            .count();
        let threads = self.threads.min(to_decode).max(1);
        let chunk = indices.len().div_ceil(threads).max(1);
        let mut outcomes: Vec<Outcome> = indices.iter().map(|_| Outcome::KnownBad).collect();
        let one = |first: usize, outs: &mut [T], outcomes: &mut [Outcome]| {
            let mut resizer = Resizer::new();
            for (k, (out, outcome)) in outs.chunks_mut(item).zip(outcomes).enumerate() {
                let pos = first + k;
                if !bad[pos] {
                    *outcome = match work((pos, indices[pos]), &mut resizer, out) {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Failed(e),
                    };
                }
            }
        };
        std::thread::scope(|scope| {
            let mut parts = outs
                .chunks_mut(chunk * item)
                .zip(outcomes.chunks_mut(chunk))
                .enumerate();
            let first = parts.next();
            for (c, (outs, outcomes)) in parts {
                scope.spawn(move || one(c * chunk, outs, outcomes));
            }
            if let Some((_, (outs, outcomes))) = first {
                one(0, outs, outcomes);
            }
        });
        outcomes
    }

    /// Records the failures among `outcomes` (for `indices`); with `strict`, returns the
    /// first as the error. Returns the positions that succeeded.
    pub(super) fn settle(&self, indices: &[usize], outcomes: Vec<Outcome>) -> Result<Vec<usize>> {
        let mut done = Vec::with_capacity(indices.len());
        let mut skipped = self.lock_skipped();
        for (pos, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Done => done.push(pos),
                Outcome::KnownBad => {}
                Outcome::Failed(e) => {
                    let i = indices[pos];
                    if skipped.bad.insert(i) {
                        skipped.list.push((self.files[i].clone(), e.to_string()));
                    }
                    if self.strict {
                        return Err(e);
                    }
                }
            }
        }
        Ok(done)
    }

    /// Mean and deviation of each channel over a seeded sample of up to `sample` images,
    /// seen as [`View::Plain`] does. Sums are integers, so neither the order nor the
    /// thread count changes them. A channel with no spread gets a deviation of 1.
    pub(super) fn compute_normalize(&self, sample: usize, seed: u64) -> Result<Normalize> {
        let mut order = epoch_permutation(self.files.len(), seed ^ 0x5EED_57A7, 0);
        order.truncate(sample.max(1));
        let s = self.size;
        let mut sums = vec![0u64; 6 * order.len()];
        let outcomes = self.run(&order, 6, &mut sums, &|(_, i), resizer, out| {
            let base = self.base(i, resizer)?;
            let mut planar = vec![0u8; 3 * s * s];
            to_planar(
                &base,
                centre_box(base.width(), base.height(), s as u32),
                false,
                &mut planar,
            );
            for (c, plane) in planar.chunks_exact(s * s).enumerate() {
                out[c] = plane.iter().map(|&v| u64::from(v)).sum();
                out[3 + c] = plane.iter().map(|&v| u64::from(v) * u64::from(v)).sum();
            }
            Ok(())
        });
        let done = self.settle(&order, outcomes)?;
        if done.is_empty() {
            return Err(Error::Format {
                path: self.root.clone(),
                detail: "no training image could be decoded; see the skipped files".into(),
            });
        }
        let n = (done.len() * s * s) as f64;
        let (mut mean, mut std) = (vec![0f32; 3], vec![0f32; 3]);
        for c in 0..3 {
            let sum: u64 = done.iter().map(|&p| sums[6 * p + c]).sum();
            let sq: u64 = done.iter().map(|&p| sums[6 * p + 3 + c]).sum();
            let m = sum as f64 / n / 255.0;
            let var = (sq as f64 / n / (255.0 * 255.0) - m * m).max(0.0);
            mean[c] = m as f32;
            std[c] = if var.sqrt() > 1e-6 {
                var.sqrt() as f32
            } else {
                1.0
            };
        }
        Normalize::new(&mean, &std)
    }
}
