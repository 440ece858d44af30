//! Adam and AdamW (PyTorch's `torch.optim.Adam` / `AdamW`).

use super::{DecayFilter, Optimizer};
use crate::backend as k;
use crate::model::Sequential;

/// Adam: `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²`,
/// `p ← p − lr·m̂/(√v̂ + ε)` with `m̂ = m/(1−β₁ᵗ)`, `v̂ = v/(1−β₂ᵗ)`.
///
/// Weight decay is L2 (`g += wd·p`, Adam) or decoupled (`p ← p·(1 − lr·wd)`, AdamW).
pub struct Adam {
    /// Learning rate (a schedule scales it, see [`Optimizer::set_lr_scale`]).
    pub lr: f32,
    /// `β₁`, `β₂`.
    pub betas: (f32, f32),
    /// `ε`.
    pub eps: f32,
    /// Weight decay.
    pub weight_decay: f32,
    /// Decoupled (AdamW) rather than L2 (Adam) weight decay.
    pub decoupled: bool,
    /// Which parameters are decayed.
    pub decay_filter: DecayFilter,
    /// First and second moments per parameter, in visiting order.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    steps: u64,
    /// The schedule's factor on `lr`.
    scale: f32,
}

impl Adam {
    /// Adam with `lr`, betas (0.9, 0.999), ε 1e-8, no weight decay.
    pub fn new(lr: f32) -> Self {
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            decay_filter: DecayFilter::All,
            moments: Vec::new(),
            steps: 0,
            scale: 1.0,
        }
    }

    /// AdamW with `lr` and decoupled weight decay `wd` (PyTorch's default wd is 0.01).
    pub fn adamw(lr: f32, wd: f32) -> Self {
        Adam {
            weight_decay: wd,
            decoupled: true,
            ..Adam::new(lr)
        }
    }

    /// Sets the weight decay (L2 for Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.weight_decay = wd;
        self
    }

    /// Sets which parameters are decayed.
    pub fn decay_filter(mut self, filter: DecayFilter) -> Self {
        self.decay_filter = filter;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &mut Sequential) {
        self.steps += 1;
        let t = self.steps as i32;
        let (b1, b2) = self.betas;
        let hp = k::AdamStep {
            lr: self.current_lr(),
            b1,
            b2,
            eps: self.eps,
            bias1: 1.0 - b1.powi(t),
            bias2: 1.0 - b2.powi(t),
            weight_decay: 0.0,
            decoupled: self.decoupled,
        };
        let (wd, filter) = (self.weight_decay, self.decay_filter);
        let moments = &mut self.moments;
        // Frozen parameters are skipped: no update, no decay, their moments untouched.
        model.visit_trainable(&mut |i, _, factor, p| {
            if moments.len() <= i {
                moments.resize_with(i + 1, Default::default);
            }
            let (m, v) = &mut moments[i];
            if m.len() != p.value.len() {
                *m = vec![0.0; p.value.len()];
                *v = vec![0.0; p.value.len()];
            }
            let hp = k::AdamStep {
                lr: hp.lr * factor,
                weight_decay: filter.decay_for(p.kind, wd),
                ..hp
            };
            k::adam_update(p.value, p.grad, m, v, &hp);
        });
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
        self.moments.resize_with(names.len(), Default::default);
        let mut out = Vec::new();
        for ((m, v), (name, len)) in self.moments.iter_mut().zip(names) {
            m.resize(len, 0.0);
            v.resize(len, 0.0);
            out.push((format!("exp_avg.{name}"), m));
            out.push((format!("exp_avg_sq.{name}"), v));
        }
        out
    }

    fn rule(&self) -> super::UpdateRule {
        super::UpdateRule::Adam {
            betas: self.betas,
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled: self.decoupled,
            decay_filter: self.decay_filter,
        }
    }

    fn describe(&self) -> String {
        let name = if self.decoupled { "AdamW" } else { "Adam" };
        format!("{name}(betas {:?}, wd {})", self.betas, self.weight_decay)
    }
}
