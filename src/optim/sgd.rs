//! Stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch's rule).

use super::{DecayFilter, Optimizer};
use crate::backend as k;
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
        let buffers = &mut self.buffers;
        // Frozen parameters are skipped: no update, no decay, their buffer untouched.
        model.visit_trainable(&mut |i, factor, p| {
            if buffers.len() <= i {
                buffers.resize_with(i + 1, Vec::new);
            }
            if buffers[i].len() != p.value.len() {
                buffers[i] = vec![0.0; p.value.len()];
            }
            let wd = filter.decay_for(p.kind, wd);
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
        format!(
            "SGD(momentum {}{nesterov}, wd {})",
            self.momentum, self.weight_decay
        )
    }
}
