//! Stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch's rule).

use super::{DecayFilter, Optimizer};
use crate::backend as k;
use crate::layers::ParamKind;
use crate::model::Sequential;

/// SGD as in `torch.optim.SGD` (dampening 0):
/// `g = ∇ + wd·p`, `buf = μ·buf + g` (`buf = g` at the first step),
/// `p ← p − lr·buf`, or with Nesterov `p ← p − lr·(g + μ·buf)`.
pub struct Sgd {
    /// Learning rate (a schedule scales it, see [`Optimizer::set_lr_scale`]).
    pub lr: f32,
    /// Momentum `μ` (0 disables the buffers).
    pub momentum: f32,
    /// L2 weight decay `wd`, added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Which parameters are decayed.
    pub decay_filter: DecayFilter,
    /// One momentum buffer per parameter, in visiting order.
    buffers: Vec<Vec<f32>>,
    /// Factor on the rate of normalisation parameters, with their decay divided by it.
    norm_lr_scale: f32,
    /// `(parameter name, first step it is left alone)`.
    frozen: Vec<(String, u64)>,
    steps: u64,
    /// The schedule's factor on `lr`.
    scale: f32,
}

impl Sgd {
    /// SGD with learning rate `lr` and momentum `momentum`, no weight decay.
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            nesterov: false,
            decay_filter: DecayFilter::All,
            buffers: Vec::new(),
            norm_lr_scale: 1.0,
            frozen: Vec::new(),
            steps: 0,
            scale: 1.0,
        }
    }

    /// Sets L2 weight decay.
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// Sets which parameters are decayed.
    pub fn decay_filter(mut self, filter: DecayFilter) -> Self {
        self.decay_filter = filter;
        self
    }

    /// Multiplies the rate of normalisation parameters ([`ParamKind::Norm`]) by `scale`
    /// and divides their weight decay by it, so the decay per step stays the same
    /// (airbench's `bias_scaler`).
    pub fn norm_lr_scale(mut self, scale: f32) -> Self {
        self.norm_lr_scale = scale;
        self
    }

    /// Leaves the parameter `name` alone from step `from_step` on (0-based: 0 freezes it
    /// from the start): no update, no decay, no momentum, as PyTorch does for a tensor
    /// without `requires_grad`.
    pub fn freeze(mut self, name: &str, from_step: u64) -> Self {
        self.frozen.push((name.to_string(), from_step));
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut Sequential) {
        let first = self.steps == 0;
        let (lr, mu, nesterov, wd, filter) = (
            self.current_lr(),
            self.momentum,
            self.nesterov,
            self.weight_decay,
            self.decay_filter,
        );
        let (buffers, frozen, steps) = (&mut self.buffers, &self.frozen, self.steps);
        let norm_scale = self.norm_lr_scale;
        // Parameters frozen in the model are not visited: no update, no decay, their
        // buffer untouched; those this optimizer freezes from a step on are skipped too.
        model.visit_trainable(&mut |i, name, factor, p| {
            if buffers.len() <= i {
                buffers.resize_with(i + 1, Vec::new);
            }
            if buffers[i].len() != p.value.len() {
                buffers[i] = vec![0.0; p.value.len()];
            }
            let skip = frozen.iter().any(|(n, from)| n == name && steps >= *from);
            if !skip {
                let wd = filter.decay_for(p.kind, wd);
                let (lr, wd) = match p.kind {
                    ParamKind::Norm if norm_scale != 1.0 => (lr * norm_scale, wd / norm_scale),
                    _ => (lr, wd),
                };
                k::sgd_update(
                    p.value,
                    p.grad,
                    &mut buffers[i],
                    lr * factor,
                    mu,
                    wd,
                    nesterov,
                    first,
                );
            }
        });
        self.steps += 1;
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn lr_scale(&self) -> f32 {
        self.scale
    }

    fn set_lr_scale(&mut self, scale: f32) {
        self.scale = scale;
    }

    fn steps(&self) -> u64 {
        self.steps
    }

    fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    fn state(&mut self, model: &Sequential) -> Vec<(String, &mut Vec<f32>)> {
        let names = model.param_names();
        if self.momentum == 0.0 {
            return Vec::new();
        }
        self.buffers.resize_with(names.len(), Vec::new);
        let it = self.buffers.iter_mut().zip(names);
        it.map(|(buf, (name, len))| {
            buf.resize(len, 0.0);
            (format!("momentum.{name}"), buf)
        })
        .collect()
    }

    fn rule(&self) -> super::UpdateRule {
        super::UpdateRule::Sgd {
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            nesterov: self.nesterov,
            decay_filter: self.decay_filter,
        }
    }

    fn describe(&self) -> String {
        let nesterov = if self.nesterov { ", nesterov" } else { "" };
        let norm = if self.norm_lr_scale != 1.0 {
            format!(", norm lr ×{}", self.norm_lr_scale)
        } else {
            String::new()
        };
        let frozen = if self.frozen.is_empty() {
            String::new()
        } else {
            format!(", {} frozen", self.frozen.len())
        };
        format!(
            "SGD(momentum {}{nesterov}, wd {}{norm}{frozen})",
            self.momentum, self.weight_decay
        )
    }
}
