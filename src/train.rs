//! The training and evaluation loops shared by the examples and the tests.

use crate::data::{
    Augment, Batch, Batches, Dataset, View, alternating_flip, augment_key, epoch_permutation,
    reflect_index,
};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::layers::Mode;
use crate::loss::SoftmaxCrossEntropy;
use crate::model::Sequential;
use crate::optim::{Optimizer, Schedule};
use crate::tensor::Tensor;
use std::sync::mpsc;
use std::time::Instant;

/// How to train: batch size, seed, learning-rate schedule and augmentation.
///
/// The learning rate itself belongs to the optimizer ([`Optimizer::lr`]); the schedule
/// scales it step by step.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Images per mini-batch (at least 1).
    pub batch_size: usize,
    /// Seed of the shuffles and augmentations (the model has its own).
    pub seed: u64,
    /// Learning-rate schedule over the whole run, as a factor on the optimizer's rate.
    pub schedule: Schedule,
    /// Optimizer steps in the whole run (for the schedule).
    pub total_steps: u64,
    /// Augmentation of the training images.
    pub augment: Augment,
}

impl Plan {
    /// A plan with the optimizer's rate held constant and no augmentation.
    pub fn constant(batch_size: usize, seed: u64) -> Self {
        Plan {
            batch_size,
            seed,
            schedule: Schedule::Constant,
            total_steps: 0,
            augment: Augment::default(),
        }
    }

    /// The schedule's factor on the optimizer's rate for the step that follows `steps`
    /// steps.
    pub fn lr_scale_at(&self, steps: u64) -> f32 {
        self.schedule.lr(1.0, steps, self.total_steps)
    }

    /// Steps per epoch over `n` images.
    pub fn steps_per_epoch(&self, n: usize) -> u64 {
        n.div_ceil(self.batch_size.max(1)) as u64
    }

    /// An error unless the plan can run on `data` for epoch `epoch` (epochs count from 1).
    pub fn check(&self, data: &dyn Dataset, epoch: u64) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Invalid("Plan: batch size 0".into()));
        }
        if epoch == 0 {
            return Err(Error::Invalid("epochs count from 1, got epoch 0".into()));
        }
        if data.is_empty() {
            return Err(Error::Invalid("no training images".into()));
        }
        Ok(())
    }
}

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
    /// Learning rate of the epoch's last step.
    pub lr: f32,
}

/// What the training loop reports after each mini-batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The epoch (from 1).
    pub epoch: u64,
    /// Optimizer steps taken so far in the whole run, this one included.
    pub step: u64,
    /// Images of this epoch done so far.
    pub images: usize,
    /// Images in the epoch.
    pub epoch_images: usize,
    /// This step's mean loss over its batch.
    pub loss: f64,
    /// Mean loss over the epoch's images so far.
    pub mean_loss: f64,
    /// The learning rate this step used.
    pub lr: f32,
}

/// Progress after each mini-batch.
pub type Progress<'a> = &'a mut (dyn FnMut(&StepReport) + Send);

/// Largest mini-batch for which [`train_epoch`] keeps the pool's workers polling for jobs
/// (`crate::cpu::spin`), when it reads unaugmented images from memory: then even small
/// convolutions split between cores. Larger steps are long enough to wake a worker.
pub const HOT_MAX_BATCH: usize = 16;

/// Shards of each step of [`train_epoch`] at batches of at most [`HOT_MAX_BATCH`] read
/// from memory ([`Sequential::set_shards`]): one per core of the two-core machines this
/// crate is measured on.
pub const STEP_SHARDS: usize = 2;

/// Whether [`train_epoch`] runs the steps of `plan` over `data` with the pool's workers
/// polling (small unaugmented batches read from memory), so that they keep every core busy.
pub(crate) fn runs_hot(plan: &Plan, data: &dyn Dataset) -> bool {
    plan.batch_size <= HOT_MAX_BATCH && plan.augment.is_identity() && data.fills_from_memory()
}

/// Batches kept in flight between the loader thread and the training loop.
const PREFETCH: usize = 3;

/// One pass over `data` (epochs count from 1) in the order `epoch_permutation(len, seed, epoch)`.
///
/// With augmentation, a loader thread prepares the next batches while the current one trains.
/// The learning rate of each step comes from the plan's schedule at the optimizer's step
/// count, so a resumed run continues the schedule where it stopped.
pub fn train_epoch(
    model: &mut Sequential,
    loss: &mut SoftmaxCrossEntropy,
    opt: &mut dyn Optimizer,
    data: &dyn Dataset,
    plan: &Plan,
    epoch: u64,
    progress: Progress<'_>,
) -> Result<EpochStats> {
    plan.check(data, epoch)?;
    let start = Instant::now();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    // Small steps read from memory: keep the pool's other workers polling for jobs, so
    // that the convolutions can split even 4 images between cores (`cpu::spin`), while a
    // tuner finds that faster than one core.
    let hot = runs_hot(plan, data);
    let mut tuner = hot.then(crate::cpu::spin::SplitTuner::default);
    // And cut those steps in two for the leading convolutional layers, one half per core
    // (`Sequential::set_shards`): a choice made by the plan, so the same on any thread count.
    let shards_before = model.shards();
    if hot {
        model.set_shards(STEP_SHARDS)?;
    }
    let mut epoch_loop = || {
        for_each_batch(data, plan, epoch, &mut |batch| {
            opt.set_lr_scale(plan.lr_scale_at(opt.steps()));
            model.set_step(opt.steps());
            let mut step = || -> Result<_> {
                let logits = model.forward(&batch.images, Mode::Train)?;
                let stats = loss.forward(logits, &batch.labels)?;
                // A diverged step stops the run before the update, so the weights (and any
                // checkpoint written from them) stay finite.
                check_loss(stats.loss, epoch, opt.steps() + 1)?;
                model.backward(loss.grad())?;
                opt.step(model);
                Ok(stats)
            };
            let stats = match tuner.as_mut() {
                Some(tuner) => tuner.step(step)?,
                None => step()?,
            };
            let n = batch.labels.len();
            loss_sum += stats.loss * n as f64;
            correct += stats.correct;
            seen += n;
            progress(&StepReport {
                epoch,
                step: opt.steps(),
                images: seen,
                epoch_images: data.len(),
                loss: stats.loss,
                mean_loss: loss_sum / seen as f64,
                lr: opt.current_lr(),
            });
            Ok(())
        })
    };
    let ran = if hot {
        crate::cpu::spin::with_hot_pool(epoch_loop)
    } else {
        epoch_loop()
    };
    model.set_shards(shards_before)?;
    ran?;
    Ok(EpochStats::new(
        loss_sum,
        correct,
        seen,
        start,
        opt.current_lr(),
    ))
}

/// An [`Error::NonFinite`] naming the epoch and step when a training loss is NaN or
/// infinite (Keras's `TerminateOnNaN`).
pub fn check_loss(loss: f64, epoch: u64, step: u64) -> Result<()> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(Error::NonFinite {
            what: format!("the training loss ({loss}) at epoch {epoch}, step {step}"),
        })
    }
}

impl EpochStats {
    /// Stats of an epoch that started at `start` and saw `seen` images.
    pub(crate) fn new(loss_sum: f64, correct: usize, seen: usize, start: Instant, lr: f32) -> Self {
        let seconds = start.elapsed().as_secs_f64();
        EpochStats {
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            seconds,
            images_per_sec: seen as f64 / seconds,
            lr,
        }
    }
}

/// Calls `step` on each mini-batch of one epoch (epochs count from 1), in the order
/// `epoch_permutation(len, seed, epoch)`, augmented as the plan says.
///
/// With augmentation, a loader thread prepares the next batches while `step` runs. Every
/// training loop (CPU or GPU) gets its batches from here, so they see the same images.
pub fn for_each_batch(
    data: &dyn Dataset,
    plan: &Plan,
    epoch: u64,
    step: &mut dyn FnMut(&Batch) -> Result<()>,
) -> Result<()> {
    for_each_part(data, plan, epoch, (0, 1, 1), &mut |batch, _| step(batch))
}

/// [`for_each_batch`] for one process of a data-parallel run: of each global mini-batch,
/// cut into `shards` contiguous shards ([`crate::dist::shard_bounds`]), only shards
/// `first..end` are assembled, and `step` gets them (as one batch) with the global batch's
/// size. An image's augmentation is keyed on its position in the global epoch order, so it
/// gets the same crop and flip whatever the number of shards.
fn for_each_part(
    data: &dyn Dataset,
    plan: &Plan,
    epoch: u64,
    (first, end, shards): (usize, usize, usize),
    step: &mut dyn FnMut(&Batch, usize) -> Result<()>,
) -> Result<()> {
    let order = epoch_permutation(data.len(), plan.seed, epoch);
    // The positions (in the global batch) of this process's part of a batch of `b`.
    let part = move |b: usize| {
        crate::dist::shard_start(b, shards, first)..crate::dist::shard_start(b, shards, end)
    };
    if plan.augment.is_identity() && data.fills_from_memory() {
        // Assembling a batch is a table look-up per pixel: do it inline, the next batch's
        // images pulled towards the cache while this one trains (shuffled images are
        // scattered over the whole set: each would otherwise start with cache misses).
        let mut batch = Batch::default();
        let mut batches = Batches::new(&order, plan.batch_size).peekable();
        while let Some(indices) = batches.next() {
            data.fill_batch(&indices[part(indices.len())], View::Plain, &mut batch)?;
            if let Some(next) = batches.peek() {
                data.prefetch(&next[part(next.len())]);
            }
            step(&batch, indices.len())?;
        }
        return Ok(());
    }
    // Augmentation and decoding run on a loader thread, a few batches ahead of training.
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<(Batch, usize)>>(PREFETCH);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    for _ in 0..PREFETCH {
        empty_tx.send(Batch::default()).expect("receiver alive");
    }
    std::thread::scope(|scope| -> Result<()> {
        let order = &order;
        scope.spawn(move || {
            let mut pos = 0;
            for indices in Batches::new(order, plan.batch_size) {
                let Ok(mut batch) = empty_rx.recv() else {
                    return;
                };
                let mine = part(indices.len());
                let offset = pos + mine.start;
                let ours = &indices[mine];
                let key = |k: usize| {
                    let key = augment_key(plan.seed, epoch, (offset + k) as u64);
                    if plan.augment.alternating_flip {
                        // The lowest bit carries the image's flip for this epoch.
                        let image = ours[k] as u64;
                        let flip = alternating_flip(plan.seed, image, epoch);
                        (key & !1) | u64::from(flip)
                    } else {
                        key
                    }
                };
                let view = if plan.augment.is_identity() {
                    View::Plain
                } else {
                    View::Augmented {
                        augment: &plan.augment,
                        key: &key,
                    }
                };
                let filled = data
                    .fill_batch(ours, view, &mut batch)
                    .map(|_| (batch, indices.len()));
                pos += indices.len();
                let failed = filled.is_err();
                if full_tx.send(filled).is_err() || failed {
                    return;
                }
            }
        });
        // Both channel ends move into this closure, so an early return drops them and the
        // loader thread, blocked on either, stops instead of waiting forever.
        let empty_tx = empty_tx;
        for filled in full_rx {
            let (batch, global) = filled?;
            step(&batch, global)?;
            let _ = empty_tx.send(batch);
        }
        Ok(())
    })
}

/// How a data-parallel epoch splits each global mini-batch of `batch_size` images: into
/// `shards` contiguous shards, the gradients of which are added in shard order.
///
/// With one process (`comm.size() == 1`) it trains every shard itself, one after the
/// other, and adds their gradients in order: the same arithmetic as `shards` ranks
/// (`shards == comm.size()`, one shard each) whose gradients [`Comm::sum_in_rank_order`]
/// adds. So for a network without batch norm (whose statistics are per shard) the two
/// give the same weights bit for bit.
pub struct DataParallel<'a> {
    /// The processes training together.
    pub comm: &'a dyn Comm,
    /// Shards per global mini-batch: 1 or `comm.size()` when several processes train;
    /// any count from 1 for one process.
    pub shards: usize,
}

impl DataParallel<'_> {
    /// The shards this process trains: `first..end`.
    pub fn owned(&self) -> (usize, usize) {
        if self.comm.size() == 1 {
            (0, self.shards.max(1))
        } else {
            (self.comm.rank(), self.comm.rank() + 1)
        }
    }

    /// An error unless every mini-batch of an epoch over `n` images in batches of
    /// `batch_size` gives every shard at least one image.
    pub fn check(&self, batch_size: usize, n: usize) -> Result<()> {
        let (size, s) = (self.comm.size(), self.shards);
        if s == 0 || (size > 1 && s != size) {
            return Err(Error::Invalid(format!(
                "{s} shards on {size} processes: with several processes, one shard each"
            )));
        }
        if batch_size < s {
            return Err(Error::Invalid(format!(
                "a batch of {batch_size} cannot be split over {s} ranks: each needs at \
                 least one image (--batch-size is the global batch)"
            )));
        }
        let last = n % batch_size.max(1);
        if last != 0 && last < s {
            return Err(Error::Invalid(format!(
                "the last batch of an epoch over {n} images holds {last}, fewer than the \
                 {s} ranks: change --batch-size or the number of training images"
            )));
        }
        Ok(())
    }
}

/// [`train_epoch`] as one process of a data-parallel run (or as all of its shards, in
/// one process; see [`DataParallel`]): each step, the shards' gradients (loss divided by
/// the global batch) are added in shard order on this process, then across processes in
/// rank order, and every process takes the same optimizer step. One collective call a
/// step: the gradient sum. Each process checks its own shards' loss before the update (a
/// non-finite one is an error there, which under MPI stops every rank); the per-step
/// [`StepReport`] shows this process's shards, and the epoch's loss and accuracy, gathered
/// once at the end, are the global batches'.
pub fn train_epoch_parallel(
    model: &mut Sequential,
    loss: &mut SoftmaxCrossEntropy,
    opt: &mut dyn Optimizer,
    (data, plan, epoch): (&dyn Dataset, &Plan, u64),
    dp: &DataParallel<'_>,
    progress: Progress<'_>,
) -> Result<EpochStats> {
    plan.check(data, epoch)?;
    dp.check(plan.batch_size, data.len())?;
    let (first, end) = dp.owned();
    let start = Instant::now();
    let (mut seen, mut mine, mut local_loss) = (0usize, 0usize, 0.0f64);
    // This process's [loss × images, hits] of each step, gathered at the end.
    let mut parts: Vec<f64> = Vec::new();
    let (mut acc, mut grads, mut shard) = (Vec::new(), Vec::new(), Batch::default());
    for_each_part(
        data,
        plan,
        epoch,
        (first, end, dp.shards),
        &mut |batch, b| {
            opt.set_lr_scale(plan.lr_scale_at(opt.steps()));
            model.set_step(opt.steps());
            let at = |s: usize| crate::dist::shard_start(b, dp.shards, s);
            let base = at(first);
            // This process's [loss × images, hits], added in shard order from 0.
            let mut part = [0.0f64; 2];
            for s in first..end {
                let (lo, hi) = (at(s) - base, at(s + 1) - base);
                let input = if end - first == 1 {
                    batch
                } else {
                    copy_rows(batch, lo..hi, &mut shard);
                    &shard
                };
                let logits = model.forward(&input.images, Mode::Train)?;
                let stats = loss.forward_part(logits, &input.labels, b)?;
                // A diverged shard is caught below, on every rank, before the update.
                model.backward(loss.grad())?;
                if s == first {
                    gradients(model, &mut acc);
                } else {
                    gradients(model, &mut grads);
                    for (a, &g) in acc.iter_mut().zip(&grads) {
                        *a += g;
                    }
                }
                part[0] += stats.loss * (hi - lo) as f64;
                part[1] += stats.correct as f64;
            }
            let n = batch.labels.len();
            check_loss(part[0] / n as f64, epoch, opt.steps() + 1)?;
            dp.comm.sum_in_rank_order(&mut acc)?;
            set_gradients(model, &acc);
            opt.step(model);
            parts.extend_from_slice(&part);
            (seen, mine, local_loss) = (seen + b, mine + n, local_loss + part[0]);
            progress(&StepReport {
                epoch,
                step: opt.steps(),
                images: seen,
                epoch_images: data.len(),
                loss: part[0] / n as f64,
                mean_loss: local_loss / mine as f64,
                lr: opt.current_lr(),
            });
            Ok(())
        },
    )?;
    // Every rank's parts, step by step: summed per step in rank order, then over steps
    // (the order one process with all the shards adds them in).
    let all = dp.comm.all_gather_f64(&parts)?;
    let (ranks, steps) = (dp.comm.size(), parts.len() / 2);
    let (mut loss_sum, mut correct) = (0.0f64, 0.0f64);
    for t in 0..steps {
        let (mut l, mut c) = (0.0f64, 0.0f64);
        for r in 0..ranks {
            l += all[r * parts.len() + 2 * t];
            c += all[r * parts.len() + 2 * t + 1];
        }
        loss_sum += l;
        correct += c;
    }
    Ok(EpochStats::new(
        loss_sum,
        correct as usize,
        seen,
        start,
        opt.current_lr(),
    ))
}

/// Items `rows` of `from` into `to`.
fn copy_rows(from: &Batch, rows: std::ops::Range<usize>, to: &mut Batch) {
    let mut shape = from.images.shape().to_vec();
    shape[0] = rows.len();
    to.images.reshape_to(&shape);
    let len = from.images.item_len();
    to.images
        .data_mut()
        .copy_from_slice(&from.images.data()[rows.start * len..rows.end * len]);
    to.labels.clear();
    to.labels.extend_from_slice(&from.labels[rows]);
}

/// Every parameter gradient of `model`, in [`Sequential::visit_params`] order, into `out`.
fn gradients(model: &mut Sequential, out: &mut Vec<f32>) {
    out.clear();
    model.visit_params(&mut |_, p| out.extend_from_slice(p.grad));
}

/// The inverse of [`gradients`].
fn set_gradients(model: &mut Sequential, from: &[f32]) {
    let mut at = 0;
    model.visit_params(&mut |_, p| {
        p.grad.copy_from_slice(&from[at..at + p.grad.len()]);
        at += p.grad.len();
    });
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

/// Test-time augmentation: which views of each test image are scored, and averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tta {
    /// The image alone.
    #[default]
    None,
    /// The image and its mirror image, ½ each.
    Mirror,
    /// airbench's level 2: ½ for the mirror pair of the image, and ¼ for each mirror
    /// pair of the image translated by one pixel up-left and down-right (reflected
    /// borders): six views.
    MirrorTranslate,
}

impl From<bool> for Tta {
    /// `true` is [`Tta::Mirror`].
    fn from(mirror: bool) -> Self {
        if mirror { Tta::Mirror } else { Tta::None }
    }
}

impl Tta {
    /// The views as `(weight, (dy, dx), mirrored)`: a view's pixel `(y, x)` is the
    /// image's pixel `(y + dy, x' + dx)`, reflected at the borders, with `x' = W−1−x`
    /// when mirrored. The weights sum to 1.
    pub fn views(self) -> Vec<(f32, (isize, isize), bool)> {
        match self {
            Tta::None => vec![(1.0, (0, 0), false)],
            Tta::Mirror => vec![(0.5, (0, 0), false), (0.5, (0, 0), true)],
            Tta::MirrorTranslate => vec![
                (0.25, (0, 0), false),
                (0.25, (0, 0), true),
                (0.125, (-1, -1), false),
                (0.125, (-1, -1), true),
                (0.125, (1, 1), false),
                (0.125, (1, 1), true),
            ],
        }
    }
}

/// `images[N, C, H, W]` shifted by `(dy, dx)` with reflected borders, mirrored left-right
/// first when `mirror`: `out[n][c][y][x] = images[n][c][refl(y+dy)][refl(x'+dx)]`.
pub fn shift_mirror(images: &Tensor, (dy, dx): (isize, isize), mirror: bool, out: &mut Tensor) {
    out.reshape_to(images.shape());
    let &[.., h, w] = images.shape() else {
        out.data_mut().copy_from_slice(images.data());
        return;
    };
    let src = images.data();
    for (s, d) in src
        .chunks_exact(h * w)
        .zip(out.data_mut().chunks_exact_mut(h * w))
    {
        for y in 0..h {
            let sy = reflect_index(y as isize + dy, h);
            for x in 0..w {
                let xx = if mirror { w - 1 - x } else { x };
                d[y * w + x] = s[sy * w + reflect_index(xx as isize + dx, w)];
            }
        }
    }
}

/// The test-time-augmented logits of `images[N, ...]`: the weighted sum of
/// `logits_of(view)` over [`Tta::views`], in their order, into `logits`.
pub fn tta_logits(
    images: &Tensor,
    tta: Tta,
    logits_of: &mut dyn FnMut(&Tensor, &mut Tensor) -> Result<()>,
    logits: &mut Tensor,
) -> Result<()> {
    if tta == Tta::None {
        return logits_of(images, logits);
    }
    let (mut view, mut part) = (Tensor::default(), Tensor::default());
    for (i, (weight, shift, mirror)) in tta.views().into_iter().enumerate() {
        let target = if i == 0 { &mut *logits } else { &mut part };
        if shift == (0, 0) && !mirror {
            logits_of(images, target)?;
        } else {
            shift_mirror(images, shift, mirror, &mut view);
            logits_of(&view, target)?;
        }
        if i == 0 {
            logits.data_mut().iter_mut().for_each(|a| *a *= weight);
        } else {
            for (a, &b) in logits.data_mut().iter_mut().zip(part.data()) {
                *a += weight * b;
            }
        }
    }
    Ok(())
}

/// Evaluates `model` on all of `data` in eval mode, `batch_size` images at a time.
/// With `tta`, each image's logits are averaged with those of its mirror image.
pub fn evaluate(
    model: &mut Sequential,
    data: &dyn Dataset,
    batch_size: usize,
    tta: bool,
) -> Result<Evaluation> {
    evaluate_tta(model, data, batch_size, Tta::from(tta))
}

/// [`evaluate`] with any [`Tta`].
pub fn evaluate_tta(
    model: &mut Sequential,
    data: &dyn Dataset,
    batch_size: usize,
    tta: Tta,
) -> Result<Evaluation> {
    let classes = model.output_shape().iter().product::<usize>();
    evaluate_with_tta(data, batch_size, tta, classes, &mut |images, logits| {
        let out = model.forward(images, Mode::Eval)?;
        logits.reshape_to(out.shape());
        logits.data_mut().copy_from_slice(out.data());
        Ok(())
    })
}

/// [`evaluate`] for any classifier: `logits_of(images[N, ...], logits)` must fill
/// `logits[N, classes]` (any backend: the CPU model, the GPU mirror, …).
pub fn evaluate_with(
    data: &dyn Dataset,
    batch_size: usize,
    tta: bool,
    classes: usize,
    logits_of: &mut dyn FnMut(&Tensor, &mut Tensor) -> Result<()>,
) -> Result<Evaluation> {
    evaluate_with_tta(data, batch_size, Tta::from(tta), classes, logits_of)
}

/// [`evaluate_with`] with any [`Tta`].
pub fn evaluate_with_tta(
    data: &dyn Dataset,
    batch_size: usize,
    tta: Tta,
    classes: usize,
    logits_of: &mut dyn FnMut(&Tensor, &mut Tensor) -> Result<()>,
) -> Result<Evaluation> {
    if batch_size == 0 {
        return Err(Error::Invalid("evaluate: batch size 0".into()));
    }
    if data.is_empty() {
        return Err(Error::Invalid("evaluate: no images".into()));
    }
    if classes != data.classes().len() {
        return Err(Error::Invalid(format!(
            "evaluate: the model scores {classes} classes, the data has {}",
            data.classes().len()
        )));
    }
    let mut confusion = vec![vec![0u32; classes]; classes];
    let order: Vec<usize> = (0..data.len()).collect();
    let (mut batch, mut logits) = (Batch::default(), Tensor::default());
    let mut loss = SoftmaxCrossEntropy::new();
    let (mut loss_sum, mut correct, mut seen) = (0.0, 0, 0usize);
    for indices in Batches::new(&order, batch_size) {
        data.fill_batch(indices, View::Plain, &mut batch)?;
        tta_logits(&batch.images, tta, logits_of, &mut logits)?;
        let stats = loss.forward(&logits, &batch.labels)?;
        // A source may drop an unreadable image from its batch: count what came back.
        seen += batch.labels.len();
        loss_sum += stats.loss * batch.labels.len() as f64;
        correct += stats.correct;
        for (row, &label) in logits.data().chunks_exact(classes).zip(&batch.labels) {
            confusion[label as usize][argmax(row)] += 1;
        }
    }
    let n = seen.max(1) as f64;
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
