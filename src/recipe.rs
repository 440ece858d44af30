//! Recipes: a preset network with the training settings that go with it, as the CLI
//! examples use them, so an embedding program trains with exactly the same recipe.
//!
//! ```
//! use ferroconv::recipe::Recipe;
//! let mut r = Recipe::preset("seed").unwrap(); // the article's recipe
//! r.epochs = 2;                                 // every field can be overridden
//! let model = r.build_model(&[3, 32, 32], 10, 0).unwrap();
//! assert_eq!(model.output_shape(), &[10]);
//! ```

mod airbench;

pub use airbench::{Airbench, whitening_filters};

use crate::data::{Augment, Dataset};
use crate::error::{Error, Result};
use crate::layers::{ParamKind, Role};
use crate::model::Sequential;
use crate::models;
use crate::optim::{Adam, DecayFilter, Lookahead, Optimizer, Schedule, Sgd};
use crate::train::{Plan, Tta};

/// Name of the quick preset: airbench94's recipe at widths [`QUICK_WIDTHS`], batch
/// [`QUICK_BATCH`] (the rate scaled with it, as airbench's is) for [`QUICK_EPOCHS`] epochs,
/// sized for 90% in minutes on two CPU cores (docs/results.md).
pub const QUICK: &str = "airbench90";
/// Widths of the quick preset's three groups.
pub const QUICK_WIDTHS: [usize; 3] = [32, 128, 128];
/// Epochs of the quick preset.
pub const QUICK_EPOCHS: u64 = 5;
/// Batch of the quick preset: twice the steps of airbench94's 1024 per epoch.
pub const QUICK_BATCH: usize = 512;

/// The presets [`Recipe::preset`] knows, with one line each.
pub const PRESETS: [(&str, &str); 5] = [
    (
        "seed",
        "the article's network and recipe (SGD lr 0.001, momentum 0.9, batch 4, 10 epochs)",
    ),
    (
        "keras",
        "the TensorFlow CNN tutorial's network, Adam, batch 32, 10 epochs",
    ),
    (
        "fast",
        "an airbench-style conv-pool-batch-norm net (no residual connections), \
         Nesterov one-cycle, batch 512, 12 epochs, augmentation and test-time flips",
    ),
    (
        "airbench94",
        "airbench94 (KellerJordan/cifar10-airbench): whitened 2×2 stem, GELU, widths \
         64/256/256, Nesterov triangle, batch 1024, 10 epochs, lookahead, alternating \
         flip + translate, flip-and-translate TTA at the end",
    ),
    (
        QUICK,
        "airbench94's recipe on a narrower network (widths 32/128/128), batch 512, 5 \
         epochs: the quick preset, 90% in minutes",
    ),
];

/// A model and everything its training recipe sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// The preset network: `seed`, `keras` or `fast`, or a zoo architecture
    /// (`resnet18`, … see [`crate::zoo::ARCHS`]).
    pub model: String,
    /// Epochs to train.
    pub epochs: u64,
    /// Images per mini-batch.
    pub batch_size: usize,
    /// (Peak) learning rate.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// `sgd`, `nesterov`, `adam` or `adamw`.
    pub optimizer: String,
    /// `constant`, `step`, `cosine` or `onecycle`.
    pub schedule: String,
    /// Weight decay (L2; decoupled for AdamW).
    pub weight_decay: f32,
    /// Decay biases and batch-norm parameters too.
    pub decay_all: bool,
    /// Label smoothing of the loss.
    pub label_smoothing: f32,
    /// Random crops and flips while training.
    pub augment: bool,
    /// Average each test image's prediction with its mirror image's.
    pub tta: bool,
    /// airbench94's own settings (whitening, lookahead, …); `None` for other presets.
    pub airbench: Option<Airbench>,
}

impl Recipe {
    /// The recipe of preset `name` (see [`PRESETS`]).
    pub fn preset(name: &str) -> Result<Recipe> {
        let base = Recipe {
            model: name.into(),
            epochs: 10,
            batch_size: 4,
            lr: 0.001,
            momentum: 0.9,
            optimizer: "sgd".into(),
            schedule: "constant".into(),
            weight_decay: 0.0,
            decay_all: true,
            label_smoothing: 0.0,
            augment: false,
            tta: false,
            airbench: None,
        };
        match name {
            "seed" => Ok(base),
            "keras" => Ok(Recipe {
                batch_size: 32,
                optimizer: "adam".into(),
                ..base
            }),
            "fast" => Ok(Recipe {
                epochs: 12,
                batch_size: 512,
                lr: 0.4,
                optimizer: "nesterov".into(),
                schedule: "onecycle".into(),
                weight_decay: 5e-4,
                decay_all: false,
                label_smoothing: 0.2,
                augment: true,
                tta: true,
                ..base
            }),
            // airbench94.py's hyper-parameters, in our terms (a mean loss): the rate is
            // airbench's 11.5/(1 + 1/(1 − 0.85)) at 1024 images; its decoupled decay
            // 0.0153 becomes the L2 coefficient 0.0153/11.5; 10 epochs for its 9.9.
            "airbench94" => Ok(Recipe {
                epochs: 10,
                batch_size: 1024,
                lr: 11.5 / (1.0 + 1.0 / (1.0 - 0.85)),
                momentum: 0.85,
                optimizer: "nesterov".into(),
                schedule: "triangle".into(),
                weight_decay: 0.0153 / 11.5,
                decay_all: true,
                label_smoothing: 0.2,
                augment: true,
                tta: false,
                airbench: Some(Airbench::default()),
                ..base
            }),
            // airbench94's recipe on a narrower network for fewer epochs: the quick preset.
            QUICK => Ok(Recipe {
                model: QUICK.into(),
                epochs: QUICK_EPOCHS,
                batch_size: QUICK_BATCH,
                airbench: Some(Airbench {
                    widths: QUICK_WIDTHS,
                    ..Airbench::default()
                }),
                ..Recipe::preset("airbench94")?
            }),
            zoo if crate::zoo::ARCHS.contains(&zoo) => Ok(Recipe::fine_tuning(zoo)),
            "resnet" => Err(Error::Invalid(
                "the preset \"resnet\" is now called \"fast\": it has no residual connections \
                 (models::resnet9 is the ResNet-9-style network)"
                    .into(),
            )),
            _ => {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                Err(Error::Invalid(format!(
                    "unknown model {name:?}: expected a preset ({}) or a torchvision \
                     architecture ({})",
                    names.join(", "),
                    crate::zoo::ARCHS.join(", ")
                )))
            }
        }
    }

    /// The recipe for fine-tuning the zoo architecture `arch` (e.g. `resnet18`, see
    /// [`crate::zoo::ARCHS`]) from pretrained weights: SGD momentum 0.9 at lr 0.01 with a
    /// cosine schedule, batch 32, 5 epochs, weight decay 1e-4 on weights only, and
    /// torchvision's random-resized crops and flips. [`Recipe::preset`] gives it for the
    /// zoo's names.
    pub fn fine_tuning(arch: &str) -> Recipe {
        Recipe {
            model: arch.into(),
            epochs: 5,
            batch_size: 32,
            lr: 0.01,
            momentum: 0.9,
            optimizer: "sgd".into(),
            schedule: "cosine".into(),
            weight_decay: 1e-4,
            decay_all: false,
            label_smoothing: 0.0,
            augment: true,
            tta: false,
            airbench: None,
        }
    }

    /// An error naming the first setting out of range.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad("epochs and batch size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "the learning rate must be positive, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(format!(
                "label smoothing must be in [0, 1), got {}",
                self.label_smoothing
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if !["sgd", "nesterov", "adam", "adamw"].contains(&self.optimizer.as_str()) {
            return bad(format!("unknown optimizer {:?}", self.optimizer));
        }
        if !["constant", "step", "cosine", "onecycle", "triangle"].contains(&self.schedule.as_str())
        {
            return bad(format!("unknown schedule {:?}", self.schedule));
        }
        if let Some(a) = &self.airbench {
            a.check()?;
            if self.optimizer != "sgd" && self.optimizer != "nesterov" {
                return bad(format!(
                    "the airbench settings need SGD (sgd or nesterov), got {:?}",
                    self.optimizer
                ));
            }
        }
        Ok(())
    }

    /// The preset's network for images `[C, H, W]` and `classes` classes, initialised
    /// from `seed`. The article's and the Keras tutorial's networks size their first
    /// dense layer to the input; the fast network pools globally before its head.
    pub fn build_model(&self, input: &[usize], classes: usize, seed: u64) -> Result<Sequential> {
        let &[c, h, w] = input else {
            return Err(Error::Invalid(format!(
                "presets take [C, H, W] images, got {input:?}"
            )));
        };
        let shape = [c, h, w];
        match self.model.as_str() {
            "seed" => models::seed_net_for(shape, classes, seed),
            "keras" => models::keras_net_for(shape, classes, seed),
            "fast" => models::fast_net_for(shape, classes, seed),
            "airbench94" | QUICK => {
                let a = self.airbench.unwrap_or_default();
                models::airbench94_net_for(shape, classes, a.widths, a.bn, a.logit_scale, seed)
            }
            zoo if crate::zoo::ARCHS.contains(&zoo) => {
                if c != 3 || h != w {
                    return Err(Error::Invalid(format!(
                        "{zoo} takes square RGB images, got {input:?}"
                    )));
                }
                crate::zoo::build(zoo, classes, h, seed)
            }
            other => Err(Recipe::preset(other)
                .err()
                .unwrap_or_else(|| Error::Invalid(format!("no network for {other:?}")))),
        }
    }

    /// Initialisation that needs the training data, after [`Recipe::build_model`]: with
    /// airbench settings, the whitening of layer 0 ([`Airbench::init_whitening`]).
    /// Nothing for the other presets.
    pub fn prepare(&self, model: &mut Sequential, train: &dyn Dataset) -> Result<()> {
        match &self.airbench {
            Some(a) => a.init_whitening(model, train),
            None => Ok(()),
        }
    }

    /// The optimizer of a run of `plan` on `model`: [`Recipe::optimizer`], and with
    /// airbench settings also its frozen tensors (layer 0's weight and every
    /// batch-norm scale from the start, layer 0's bias after `whiten_bias_epochs`), the
    /// batch-norm biases' rate factor, and the lookahead.
    pub fn optimizer_for(
        &self,
        model: &Sequential,
        plan: &Plan,
        train_images: usize,
    ) -> Box<dyn Optimizer> {
        let Some(a) = &self.airbench else {
            return self.optimizer();
        };
        let per_epoch = plan.steps_per_epoch(train_images);
        // airbench trains only the batch norms' biases, and the whitening weight never.
        let mut scales = Vec::new();
        model.visit_values(&mut |v| {
            if v.role == Role::Param(ParamKind::Norm) && v.name.ends_with(".weight") {
                scales.push(v.name.to_string());
            }
        });
        let bias_steps = a.whiten_bias_epochs.saturating_mul(per_epoch);
        let mut sgd = self
            .airbench_sgd(a)
            .freeze("0.weight", 0)
            .freeze("0.bias", bias_steps);
        for name in &scales {
            sgd = sgd.freeze(name, 0);
        }
        Box::new(Lookahead::new(
            Box::new(sgd),
            a.lookahead_schedule(per_epoch, self.epochs),
        ))
    }

    /// SGD at the airbench rate for this batch size, with the bias rate factor.
    fn airbench_sgd(&self, a: &Airbench) -> Sgd {
        let lr = self.lr * self.batch_size as f32 / a.lr_batch as f32;
        Sgd::new(lr, self.momentum)
            .weight_decay(self.weight_decay)
            .nesterov(self.optimizer == "nesterov")
            .decay_filter(if self.decay_all {
                DecayFilter::All
            } else {
                DecayFilter::WeightsOnly
            })
            .norm_lr_scale(a.bias_lr_scale)
    }

    /// The test-time augmentation of epoch `epoch`'s evaluation: the airbench settings'
    /// `final_tta` after the last epoch; otherwise mirror images when `tta` is on.
    pub fn tta_for_epoch(&self, epoch: u64) -> Tta {
        match &self.airbench {
            Some(a) if epoch == self.epochs => a.final_tta,
            _ => Tta::from(self.tta),
        }
    }

    /// The recipe's optimizer, at its learning rate (for airbench settings without what
    /// depends on the run: [`Recipe::optimizer_for`] adds that).
    pub fn optimizer(&self) -> Box<dyn Optimizer> {
        if let Some(a) = &self.airbench {
            return Box::new(self.airbench_sgd(a));
        }
        let filter = if self.decay_all {
            DecayFilter::All
        } else {
            DecayFilter::WeightsOnly
        };
        let wd = self.weight_decay;
        match self.optimizer.as_str() {
            "adam" => Box::new(Adam::new(self.lr).weight_decay(wd).decay_filter(filter)),
            "adamw" => Box::new(Adam::adamw(self.lr, wd).decay_filter(filter)),
            name => Box::new(
                Sgd::new(self.lr, self.momentum)
                    .weight_decay(wd)
                    .nesterov(name == "nesterov")
                    .decay_filter(filter),
            ),
        }
    }

    /// The schedule over a run of `total_steps` steps.
    pub fn schedule(&self, total_steps: u64) -> Schedule {
        match self.schedule.as_str() {
            "step" => Schedule::Step {
                first: total_steps / 2,
                second: total_steps * 3 / 4,
                gamma: 0.1,
            },
            "cosine" => Schedule::Cosine {
                warmup: total_steps / 20,
            },
            "onecycle" => Schedule::OneCycle {
                warmup: total_steps / 5,
                div: 10.0,
                final_frac: 0.0,
            },
            "triangle" => {
                let (start, end, peak_at) = self.airbench.unwrap_or_default().triangle;
                Schedule::Triangle {
                    start,
                    peak_at,
                    end,
                }
            }
            _ => Schedule::Constant,
        }
    }

    /// The plan for `train_images` training images, shuffled and augmented from `seed`.
    /// `photos` picks torchvision's random-resized crops over CIFAR-10's pad-and-crop.
    pub fn plan(&self, train_images: usize, seed: u64, photos: bool) -> Plan {
        let total = (train_images.div_ceil(self.batch_size.max(1)) as u64) * self.epochs;
        Plan {
            batch_size: self.batch_size,
            seed,
            schedule: self.schedule(total),
            total_steps: total,
            augment: match (self.augment, photos) {
                (false, _) => Augment::default(),
                (true, false) if self.airbench.is_some() => Augment::airbench(),
                (true, false) => Augment::standard(),
                (true, true) => Augment::photos(),
            },
        }
    }
}
