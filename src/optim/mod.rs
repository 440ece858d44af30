//! Optimizers read each parameter's gradient and update its value; schedules set the
//! learning rate step by step.

mod adam;
mod lookahead;
mod schedule;
mod sgd;

pub use adam::Adam;
pub use lookahead::{Lookahead, LookaheadSchedule};
pub use schedule::Schedule;
pub use sgd::Sgd;

use crate::layers::ParamKind;
use crate::model::Sequential;

/// An optimizer's update rule and hyper-parameters, for backends that apply it with their
/// own kernels (the learning rate and step count stay with the optimizer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    /// [`Sgd`].
    Sgd {
        /// Momentum `μ` (0: no buffers).
        momentum: f32,
        /// L2 weight decay.
        weight_decay: f32,
        /// Nesterov momentum.
        nesterov: bool,
        /// Which parameters are decayed.
        decay_filter: DecayFilter,
    },
    /// [`Adam`] and AdamW.
    Adam {
        /// `(β₁, β₂)`.
        betas: (f32, f32),
        /// `ε`.
        eps: f32,
        /// Weight decay.
        weight_decay: f32,
        /// Decoupled (AdamW) decay.
        decoupled: bool,
        /// Which parameters are decayed.
        decay_filter: DecayFilter,
    },
}

/// What every optimizer offers the training loop.
pub trait Optimizer: Send {
    /// Updates every parameter of `model` from its gradient.
    fn step(&mut self, model: &mut Sequential);
    /// The learning rate the optimizer was configured with: the one source of truth for
    /// the rate. A schedule scales it step by step ([`Optimizer::set_lr_scale`]).
    fn lr(&self) -> f32;
    /// Sets the configured learning rate.
    fn set_lr(&mut self, lr: f32);
    /// The factor the schedule applies to [`Optimizer::lr`] (1 until a schedule sets it).
    fn lr_scale(&self) -> f32;
    /// Sets the schedule's factor for the next steps (the training loop calls this
    /// before each step, from [`crate::train::Plan::lr_scale_at`]).
    fn set_lr_scale(&mut self, scale: f32);
    /// The rate the next step uses: `lr · lr_scale`.
    fn current_lr(&self) -> f32 {
        self.lr() * self.lr_scale()
    }
    /// Number of steps taken.
    fn steps(&self) -> u64;
    /// Sets the step count (when resuming from a checkpoint).
    fn set_steps(&mut self, steps: u64);
    /// One line, e.g. `SGD(momentum 0.9, nesterov, wd 5e-4)`.
    fn describe(&self) -> String;
    /// The optimizer's state tensors (momentum buffers, Adam moments), named after the
    /// parameters of `model` (`momentum.3.weight`, `exp_avg.3.weight`, …), allocated
    /// (zeros) if no step was taken yet, so a checkpoint can save or restore them.
    fn state(&mut self, model: &Sequential) -> Vec<(String, &mut Vec<f32>)>;
    /// The update rule, so another backend can apply the same steps.
    fn rule(&self) -> UpdateRule;
}

/// Which parameters get weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecayFilter {
    /// Every parameter (PyTorch's default).
    All,
    /// Weights only: biases and normalisation scales/shifts are exempt.
    WeightsOnly,
}

impl DecayFilter {
    /// The decay to apply to a parameter of kind `kind`.
    pub fn decay_for(self, kind: ParamKind, wd: f32) -> f32 {
        match (self, kind) {
            (DecayFilter::WeightsOnly, ParamKind::Bias | ParamKind::Norm) => 0.0,
            _ => wd,
        }
    }
}
