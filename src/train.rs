//! The training and evaluation loops shared by the examples and the tests.

use crate::data::{Batch, Batches, Cifar10, epoch_permutation};
use crate::error::Result;
use crate::layers::Mode;
use crate::loss::SoftmaxCrossEntropy;
use crate::model::Sequential;
use crate::optim::Sgd;
use std::time::Instant;

/// What one training epoch measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    /// Mean training loss over the epoch's images.
    pub train_loss: f64,
    /// Fraction of training images classified right (training-mode forward passes).
    pub train_acc: f64,
    /// Wall seconds of the epoch's training (no evaluation).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_sec: f64,
}

/// Progress reported after each mini-batch: images done so far and the running mean loss.
pub type Progress<'a> = &'a mut dyn FnMut(usize, f64);

/// One pass over `data` in the order `epoch_permutation(len, seed, epoch)`.
pub fn train_epoch(
    model: &mut Sequential,
    loss: &mut SoftmaxCrossEntropy,
    opt: &mut Sgd,
    data: &Cifar10,
    batch_size: usize,
    (seed, epoch): (u64, u64),
    progress: Progress<'_>,
) -> Result<EpochStats> {
    let start = Instant::now();
    let order = epoch_permutation(data.len(), seed, epoch);
    let mut batch = Batch::default();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    for indices in Batches::new(&order, batch_size) {
        data.fill_batch(indices, &mut batch.images, &mut batch.labels);
        let logits = model.forward(&batch.images, Mode::Train)?;
        let stats = loss.forward(logits, &batch.labels)?;
        model.backward(loss.grad())?;
        opt.step(model);
        loss_sum += stats.loss * indices.len() as f64;
        correct += stats.correct;
        seen += indices.len();
        progress(seen, loss_sum / seen as f64);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(EpochStats {
        train_loss: loss_sum / seen.max(1) as f64,
        train_acc: correct as f64 / seen.max(1) as f64,
        seconds,
        images_per_sec: seen as f64 / seconds,
    })
}

/// Accuracy and confusion matrix of a classifier on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Fraction of images classified right.
    pub accuracy: f64,
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u32>>,
}

impl Evaluation {
    /// Accuracy on the images whose true class is `class`.
    pub fn class_accuracy(&self, class: usize) -> f64 {
        let row = &self.confusion[class];
        let total: u32 = row.iter().sum();
        row[class] as f64 / total.max(1) as f64
    }
}

/// Evaluates `model` on all of `data` in eval mode, `batch_size` images at a time.
pub fn evaluate(model: &mut Sequential, data: &Cifar10, batch_size: usize) -> Result<Evaluation> {
    let classes = model.output_shape().iter().product::<usize>();
    let mut confusion = vec![vec![0u32; classes]; classes];
    let order: Vec<usize> = (0..data.len()).collect();
    let mut batch = Batch::default();
    let mut loss = SoftmaxCrossEntropy::new();
    let (mut loss_sum, mut correct) = (0.0, 0);
    for indices in Batches::new(&order, batch_size) {
        data.fill_batch(indices, &mut batch.images, &mut batch.labels);
        let logits = model.forward(&batch.images, Mode::Eval)?;
        let stats = loss.forward(logits, &batch.labels)?;
        loss_sum += stats.loss * indices.len() as f64;
        correct += stats.correct;
        for (row, &label) in logits.data().chunks_exact(classes).zip(&batch.labels) {
            confusion[label as usize][argmax(row)] += 1;
        }
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation {
        accuracy: correct as f64 / n,
        loss: loss_sum / n,
        confusion,
    })
}

/// Index of the largest value (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}
