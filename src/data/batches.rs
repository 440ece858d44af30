//! Seeded shuffling and mini-batch iteration.

use crate::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;

/// The order in which epoch `epoch` visits `n` items under `seed`.
///
/// Each epoch's order depends only on `(seed, epoch)`, so a run resumed at any epoch
/// sees the same orders as one that never stopped.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mixed = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(mixed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// A mini-batch: normalised images `[n, 3, 32, 32]` and their labels.
#[derive(Default)]
pub struct Batch {
    /// The images.
    pub images: Tensor,
    /// The labels, one per image.
    pub labels: Vec<u32>,
}

/// Walks an index order in chunks of `batch_size` (the last may be shorter).
pub struct Batches<'a> {
    order: &'a [usize],
    batch_size: usize,
    pos: usize,
}

impl<'a> Batches<'a> {
    /// Iterates `order` in chunks of `batch_size` (at least 1).
    pub fn new(order: &'a [usize], batch_size: usize) -> Self {
        Batches {
            order,
            batch_size: batch_size.max(1),
            pos: 0,
        }
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = &'a [usize];

    fn next(&mut self) -> Option<&'a [usize]> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let chunk = &self.order[self.pos..end];
        self.pos = end;
        Some(chunk)
    }
}
