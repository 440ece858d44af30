//! Batch normalisation over the channels of `[N, C, H, W]` (PyTorch's `BatchNorm2d`).
//!
//! Per channel `c`, over its `M = N·H·W` values:
//! - train: `μ, σ² = mean, biased variance of the batch`; `x̂ = (x − μ)/√(σ² + ε)`;
//!   `y = γ·x̂ + β`; running stats `r ← (1 − m)·r + m·batch` (variance unbiased, `m = 0.1`).
//! - eval: the same with the running `μ, σ²`; a frozen batch norm (fine-tuning) computes
//!   this in training too, and its running statistics stay as they are.
//! - backward (train): `dβ = Σ dy`, `dγ = Σ dy·x̂`,
//!   `dx = γ/√(σ²+ε) · (dy − dβ/M − x̂·dγ/M)`; (eval): `dx = γ/√(σ²+ε) · dy`.
//! - synchronised (data-parallel training, `dist::SyncedBatchNorm`): the sums
//!   behind `μ`, `σ²`, and `dβ`, `dγ` in `dx`, run over every rank's shard of the batch
//!   (PyTorch's `SyncBatchNorm`); `dβ`, `dγ` as gradients stay this shard's, since the
//!   gradient sum over the ranks adds them.

use super::{
    BufferVisitor, Layer, Mode, Param, ParamKind, ParamVisitor, Role, Spec, ValueVisitor, emit,
    emit_value, try_zeros,
};
use crate::backend::norm;
use crate::tensor::Tensor;
use rand::Rng;

/// Batch normalisation with learnable scale `γ` and shift `β` per channel.
pub struct BatchNorm2d {
    channels: usize,
    eps: f32,
    momentum: f32,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    grad_gamma: Vec<f32>,
    grad_beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    /// Per channel `1/√(σ² + ε)` of the last forward (batch or running statistics).
    inv_std: Vec<f32>,
    /// Mode of the last forward, which decides the backward formula.
    mode: Mode,
    /// Frozen (fine-tuning): every forward uses the running statistics and leaves them.
    frozen: bool,
    /// Values per channel in the last training forward's statistics (`M`; over every
    /// rank's shard with synchronised batch norm).
    count: f64,
    /// `x̂` of the last forward, `[N, C, H, W]`.
    xhat: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

impl BatchNorm2d {
    /// Batch norm over `channels` channels, `ε = 1e-5`, momentum 0.1; building the model
    /// allocates `γ = 1`, `β = 0` and the running statistics (mean 0, variance 1).
    pub fn new(channels: usize) -> Self {
        BatchNorm2d {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            gamma: Vec::new(),
            beta: Vec::new(),
            grad_gamma: Vec::new(),
            grad_beta: Vec::new(),
            running_mean: Vec::new(),
            running_var: Vec::new(),
            inv_std: Vec::new(),
            mode: Mode::Train,
            frozen: false,
            count: 0.0,
            xhat: Tensor::default(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Sets the running-statistics momentum (PyTorch's meaning: weight of the new batch).
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    /// Sets `ε`, added to the variance before the square root.
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Rebuilds a layer from [`Layer::spec`]'s description.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        Ok(BatchNorm2d::new(s.get_int("channels")?)
            .eps(s.get_float("eps")?)
            .momentum(s.get_float("momentum")?))
    }
}

impl Layer for BatchNorm2d {
    fn describe(&self) -> String {
        format!("BatchNorm2d({})", self.channels)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if !(self.eps > 0.0 && self.eps.is_finite() && (0.0..=1.0).contains(&self.momentum)) {
            return Err(format!(
                "eps must be positive and momentum in [0, 1], got {} and {}",
                self.eps, self.momentum
            ));
        }
        match input {
            [c, _, _] if *c == self.channels => Ok(input.to_vec()),
            _ => Err(format!(
                "expects [{}, H, W] items, got {input:?}",
                self.channels
            )),
        }
    }

    fn init(&mut self, _rng: &mut dyn Rng) -> Result<(), String> {
        let c = self.channels;
        let zeros = |what| try_zeros(c, what);
        self.gamma = zeros("BatchNorm2d weight")?;
        self.gamma.fill(1.0);
        self.beta = zeros("BatchNorm2d bias")?;
        self.grad_gamma = zeros("BatchNorm2d weight gradient")?;
        self.grad_beta = zeros("BatchNorm2d bias gradient")?;
        self.running_mean = zeros("BatchNorm2d running mean")?;
        self.running_var = zeros("BatchNorm2d running variance")?;
        self.running_var.fill(1.0);
        self.inv_std = zeros("BatchNorm2d scratch")?;
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let (n, ch) = (x.batch(), self.channels);
        let plane = x.item_len() / ch;
        let m = (n * plane) as f64;
        // A frozen batch norm is an affine map of fixed statistics, training or not.
        let mode = if self.frozen { Mode::Eval } else { mode };
        self.mode = mode;
        let (mut mean, inv) = (Vec::with_capacity(ch), &mut self.inv_std);
        if mode == Mode::Train {
            // Per channel mean and biased variance, in f64, in a fixed order; with
            // synchronised batch norm (`dist::SyncedBatchNorm`) over every rank's
            // shard: the sums (and the count, last) are added over the ranks first.
            let mut sums = norm::channel_sums(x.data(), ch, plane);
            sums.push(m);
            crate::dist::batch_norm_sum(&mut sums);
            let m = sums.pop().expect("the count");
            let means: Vec<f64> = sums.iter().map(|s| s / m).collect();
            let mut sq = norm::channel_sq_devs(x.data(), ch, plane, &means);
            crate::dist::batch_norm_sum(&mut sq);
            self.count = m;
            let mom = self.momentum;
            for (c, (&mu, &sq)) in means.iter().zip(&sq).enumerate() {
                let var = sq / m;
                inv[c] = (1.0 / (var + self.eps as f64).sqrt()) as f32;
                let unbiased = if m > 1.0 { var * m / (m - 1.0) } else { var };
                self.running_mean[c] = (1.0 - mom) * self.running_mean[c] + mom * mu as f32;
                self.running_var[c] = (1.0 - mom) * self.running_var[c] + mom * unbiased as f32;
                mean.push(mu as f32);
            }
        } else {
            for (i, &v) in inv.iter_mut().zip(&self.running_var) {
                *i = 1.0 / (v + self.eps).sqrt();
            }
            mean.extend_from_slice(&self.running_mean);
        }
        // x̂ = (x − μ)·inv and y = γ·x̂ + β in one pass.
        self.xhat.reshape_to(x.shape());
        self.output.reshape_to(x.shape());
        let (xh, y) = (self.xhat.data_mut(), self.output.data_mut());
        let affine = (&self.gamma[..], &self.beta[..]);
        norm::normalize_affine(x.data(), ch, plane, &mean, inv, affine, xh, y);
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let ch = self.channels;
        let plane = grad_out.item_len() / ch;
        let (dy, xh) = (grad_out.data(), self.xhat.data());
        // dβ = Σ dy, dγ = Σ dy·x̂ per channel, in f64 and a fixed order.
        let sums = norm::channel_grad_sums(dy, xh, ch, plane);
        // The parameter gradients are this shard's: the gradient sum over the ranks adds
        // them up.
        for (c, &(db, dg)) in sums.iter().enumerate() {
            self.grad_beta[c] = db as f32;
            self.grad_gamma[c] = dg as f32;
        }
        if !need_input_grad {
            return &self.grad_input;
        }
        // The input gradient needs the whole batch's sums (synchronised batch norm) or
        // this shard's, over the count of the forward's statistics.
        let means = (self.mode == Mode::Train).then(|| {
            let mut totals: Vec<f64> = sums.iter().flat_map(|&(db, dg)| [db, dg]).collect();
            crate::dist::batch_norm_sum(&mut totals);
            let m = self.count as f32;
            let mb: Vec<f32> = totals.iter().step_by(2).map(|&t| t as f32 / m).collect();
            let mg: Vec<f32> = totals
                .iter()
                .skip(1)
                .step_by(2)
                .map(|&t| t as f32 / m)
                .collect();
            (mb, mg)
        });
        let k: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.inv_std)
            .map(|(g, i)| g * i)
            .collect();
        self.grad_input.reshape_to(grad_out.shape());
        let means = means.as_ref().map(|(b, g)| (&b[..], &g[..]));
        norm::input_grad(dy, xh, ch, plane, &k, means, self.grad_input.data_mut());
        &self.grad_input
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        let shape = vec![self.channels];
        let p = Param {
            shape: shape.clone(),
            value: &mut self.gamma,
            grad: &mut self.grad_gamma,
            kind: ParamKind::Norm,
        };
        emit(prefix, "weight", p, f);
        let p = Param {
            shape,
            value: &mut self.beta,
            grad: &mut self.grad_beta,
            kind: ParamKind::Norm,
        };
        emit(prefix, "bias", p, f);
    }

    fn freeze_norm(&mut self, prefix: &mut String, frozen: &dyn Fn(&str) -> bool) {
        let len = prefix.len();
        prefix.push_str("weight");
        self.frozen = frozen(prefix);
        prefix.truncate(len);
    }

    fn visit_buffers(&mut self, prefix: &mut String, f: &mut BufferVisitor<'_>) {
        let len = prefix.len();
        prefix.push_str("running_mean");
        f(prefix, &mut self.running_mean);
        prefix.truncate(len);
        prefix.push_str("running_var");
        f(prefix, &mut self.running_var);
        prefix.truncate(len);
    }

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        let shape = [self.channels];
        emit_value(
            prefix,
            ("weight", Role::Param(ParamKind::Norm)),
            &shape,
            &self.gamma,
            f,
        );
        emit_value(
            prefix,
            ("bias", Role::Param(ParamKind::Norm)),
            &shape,
            &self.beta,
            f,
        );
        emit_value(
            prefix,
            ("running_mean", Role::Buffer),
            &shape,
            &self.running_mean,
            f,
        );
        emit_value(
            prefix,
            ("running_var", Role::Buffer),
            &shape,
            &self.running_var,
            f,
        );
    }

    fn num_params(&self) -> usize {
        self.channels.saturating_mul(2)
    }

    /// `scale = γ/√(σ² + ε)`, `shift = β − μ·scale` from the running statistics (in f64).
    fn eval_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        if self.gamma.len() != self.channels {
            return None;
        }
        let scale: Vec<f64> = (0..self.channels)
            .map(|c| self.gamma[c] as f64 / (self.running_var[c] as f64 + self.eps as f64).sqrt())
            .collect();
        let shift = (0..self.channels)
            .map(|c| (self.beta[c] as f64 - self.running_mean[c] as f64 * scale[c]) as f32)
            .collect();
        Some((scale.into_iter().map(|v| v as f32).collect(), shift))
    }

    fn spec(&self) -> Spec {
        Spec::new("BatchNorm2d")
            .int("channels", self.channels)
            .float("eps", self.eps)
            .float("momentum", self.momentum)
    }
}
