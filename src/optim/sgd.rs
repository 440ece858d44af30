//! Stochastic gradient descent with momentum, Nesterov and weight decay (PyTorch's rule).

use crate::backend as k;
use crate::layers::ParamKind;
use crate::model::Sequential;

/// SGD as in `torch.optim.SGD` (dampening 0):
/// `g = ∇ + wd·p`, `buf = μ·buf + g` (`buf = g` at the first step),
/// `p ← p − lr·buf`, or with Nesterov `p ← p − lr·(g + μ·buf)`.
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum `μ` (0 disables the buffers).
    pub momentum: f32,
    /// L2 weight decay `wd`, added to the gradient.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// When false, biases get no weight decay.
    pub decay_biases: bool,
    /// One momentum buffer per parameter, in visiting order.
    buffers: Vec<Vec<f32>>,
    steps: u64,
}

impl Sgd {
    /// SGD with learning rate `lr` and momentum `momentum`, no weight decay.
    pub fn new(lr: f32, momentum: f32) -> Self {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            nesterov: false,
            decay_biases: true,
            buffers: Vec::new(),
            steps: 0,
        }
    }

    /// Sets L2 weight decay.
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// Turns Nesterov momentum on or off.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Updates every parameter of `model` from its gradient.
    pub fn step(&mut self, model: &mut Sequential) {
        let first = self.steps == 0;
        let mut i = 0;
        let (lr, mu, nesterov) = (self.lr, self.momentum, self.nesterov);
        let buffers = &mut self.buffers;
        model.visit_params(&mut |_, p| {
            if buffers.len() <= i {
                buffers.push(vec![0.0; p.value.len()]);
            }
            let wd = if p.kind == ParamKind::Bias && !self.decay_biases {
                0.0
            } else {
                self.weight_decay
            };
            k::sgd_update(
                p.value,
                p.grad,
                &mut buffers[i],
                lr,
                mu,
                wd,
                nesterov,
                first,
            );
            i += 1;
        });
        self.steps += 1;
    }
}
