//! Layers: one file each, every one a forward/backward pair.
//!
//! The verbs are uniform: [`Layer::forward`] computes the output and keeps what backward
//! needs; [`Layer::backward`] takes `∂L/∂output`, sets `∂L/∂parameter` for every
//! parameter (overwriting last step's), and returns `∂L/∂input`. Optimizers then read
//! values and gradients through [`Layer::visit_params`].
//!
//! Shapes in comments: `N` batch, `C` channels, `H×W` spatial, `F` features.

mod activations;
mod adaptive_pool;
mod avgpool2d;
mod batchnorm2d;
mod block;
mod concat;
mod conv2d;
mod conv2d_algo;
mod conv2d_direct;
mod dense;
mod dropout;
mod flatten;
mod global_pool;
mod maxpool2d;
mod relu;
mod resblock;
mod residual;
mod scale;
mod spec;

pub use activations::Gelu;
pub use adaptive_pool::AdaptiveAvgPool2d;
pub use avgpool2d::AvgPool2d;
pub use batchnorm2d::BatchNorm2d;
pub use block::{Block, Child};
pub use concat::Concat;
pub use conv2d::Conv2d;
pub use conv2d_algo::ConvAlgo;
pub use dense::Dense;
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use global_pool::{GlobalAvgPool, GlobalMaxPool};
pub use maxpool2d::MaxPool2d;
pub use relu::ReLU;
pub use resblock::ResBlock;
pub use residual::Residual;
pub use scale::Scale;
pub use spec::{Setting, Spec, from_spec};

use crate::tensor::Tensor;
use rand::Rng;

/// Training or evaluation: layers such as dropout and batch norm behave differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: keep what backward needs, use batch statistics.
    Train,
    /// Inference: nothing kept for backward.
    Eval,
}

/// What a parameter is, so optimizers can treat weights and biases differently
/// (e.g. no weight decay on biases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A multiplicative weight (conv kernel, dense matrix).
    Weight,
    /// An additive bias.
    Bias,
    /// A normalisation layer's scale or shift (often exempt from weight decay).
    Norm,
}

/// A parameter's values and gradient, lent to an optimizer or a checkpoint writer.
pub struct Param<'a> {
    /// Shape, PyTorch's layout (`[out, in, kh, kw]` for conv, `[out, in]` for dense).
    pub shape: Vec<usize>,
    /// The values.
    pub value: &'a mut [f32],
    /// `∂L/∂value` from the last backward pass.
    pub grad: &'a mut [f32],
    /// Weight or bias.
    pub kind: ParamKind,
}

/// Receives `(full name, parameter)`, e.g. `("3.weight", …)`.
pub type ParamVisitor<'a> = dyn FnMut(&str, Param<'_>) + 'a;

/// Receives `(full name, buffer)` for non-trainable state.
pub type BufferVisitor<'a> = dyn FnMut(&str, &mut [f32]) + 'a;

/// What a stored tensor is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A trainable parameter of this kind.
    Param(ParamKind),
    /// Non-trainable state (batch-norm running statistics).
    Buffer,
}

/// A tensor lent read-only: its full name, shape, values and role.
pub struct Value<'a> {
    /// `prefix + name`, e.g. `conv1.weight`.
    pub name: &'a str,
    /// Shape, PyTorch's layout.
    pub shape: &'a [usize],
    /// The values.
    pub values: &'a [f32],
    /// Parameter or buffer.
    pub role: Role,
}

/// Receives every parameter and buffer, read-only.
pub type ValueVisitor<'a> = dyn FnMut(Value<'_>) + 'a;

/// Hands `values` to `f` under the name `prefix + name`, leaving `prefix` as it was.
pub(crate) fn emit_value(
    prefix: &mut String,
    (name, role): (&str, Role),
    shape: &[usize],
    values: &[f32],
    f: &mut ValueVisitor<'_>,
) {
    let len = prefix.len();
    prefix.push_str(name);
    f(Value {
        name: prefix,
        shape,
        values,
        role,
    });
    prefix.truncate(len);
}

/// A zeroed parameter vector of `n` floats, or a message when it cannot be had: a size
/// from a model description or a constructor must not abort the process.
pub(crate) fn try_zeros(n: usize, what: &str) -> Result<Vec<f32>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        format!(
            "cannot allocate {n} floats ({:.1} GiB) for the {what}",
            n as f64 * 4.0 / (1u64 << 30) as f64
        )
    })?;
    v.resize(n, 0.0);
    Ok(v)
}

/// `a · b · …` of sizes, or a message naming `what` when it overflows.
pub(crate) fn checked_product(dims: &[usize], what: &str) -> Result<usize, String> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("the {what} size {dims:?} overflows"))
}

/// Hands `p` to `f` under the name `prefix + name`, leaving `prefix` as it was.
pub fn emit(prefix: &mut String, name: &str, p: Param<'_>, f: &mut ParamVisitor<'_>) {
    let len = prefix.len();
    prefix.push_str(name);
    f(prefix, p);
    prefix.truncate(len);
}

/// The values and gradient of one parameter tensor, as a layer stores them.
pub(crate) struct Weights<'a> {
    pub(crate) shape: Vec<usize>,
    pub(crate) value: &'a mut [f32],
    pub(crate) grad: &'a mut [f32],
}

/// Hands a layer's `weight` and (if it has one, i.e. non-empty) `bias` to `f`.
pub(crate) fn emit_weight_bias(
    prefix: &mut String,
    weight: Weights<'_>,
    bias: Weights<'_>,
    f: &mut ParamVisitor<'_>,
) {
    let (shape, value, grad) = (weight.shape, weight.value, weight.grad);
    emit(
        prefix,
        "weight",
        Param {
            shape,
            value,
            grad,
            kind: ParamKind::Weight,
        },
        f,
    );
    if !bias.value.is_empty() {
        let (shape, value, grad) = (bias.shape, bias.value, bias.grad);
        emit(
            prefix,
            "bias",
            Param {
                shape,
                value,
                grad,
                kind: ParamKind::Bias,
            },
            f,
        );
    }
}

/// What a layer computes, in terms another backend can run without the layer's code
/// (the wgpu path builds its kernels from this). Parameters are visited in the order
/// `weight`, then `bias` when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// [`Conv2d`]: square kernel, same stride and padding both ways.
    Conv2d {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        padding: usize,
        /// Whether there is a bias.
        bias: bool,
    },
    /// [`Dense`].
    Dense {
        /// Input features.
        inputs: usize,
        /// Output features.
        outputs: usize,
        /// Whether there is a bias.
        bias: bool,
    },
    /// [`ReLU`].
    ReLU,
    /// [`MaxPool2d`].
    MaxPool2d {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// [`Flatten`].
    Flatten,
    /// Anything else: only the layer's own (CPU) code runs it.
    Other,
}

/// A network layer: a forward/backward pair plus its parameters.
pub trait Layer: Send {
    /// One-line description, e.g. `Conv2d(3→6, 5×5, stride 1, pad 0)`.
    fn describe(&self) -> String;

    /// Output shape of one item (no batch dimension) for input shape `input`, or a
    /// message saying why that input does not fit this layer.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String>;

    /// Allocates the parameters and draws their initial values (PyTorch's defaults).
    /// Layers without parameters ignore it. An error (no abort) when the parameters
    /// cannot be allocated.
    fn init(&mut self, _rng: &mut dyn Rng) -> Result<(), String> {
        Ok(())
    }

    /// `x[N, ...] → output[N, ...]`. The input's item shape was checked when the model was
    /// built; the returned tensor lives in the layer and is reused next step.
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor;

    /// `∂L/∂output → ∂L/∂input`, setting every parameter's gradient on the way.
    /// When `need_input_grad` is false (first layer) the input gradient may be skipped and
    /// the returned tensor is then meaningless.
    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor;

    /// Lends each parameter with its gradient, in a fixed order, named `prefix + name`
    /// (see [`emit`]).
    fn visit_params(&mut self, _prefix: &mut String, _f: &mut ParamVisitor<'_>) {}

    /// Tells the layer which training step comes next (layers that draw random numbers,
    /// like dropout, key their draws on it so a resumed run draws the same).
    fn set_step(&mut self, _step: u64) {}

    /// Tells normalisation layers whether their parameters are frozen: a batch norm whose
    /// `weight`, named `prefix + "weight"`, is frozen by `frozen` normalises with its running
    /// statistics even in a training forward, and leaves them as they are (fine-tuning;
    /// see [`crate::Sequential::freeze_prefix`]). Composites pass it to their children
    /// under their names; other layers ignore it.
    fn freeze_norm(&mut self, _prefix: &mut String, _frozen: &dyn Fn(&str) -> bool) {}

    /// Lends each non-trainable state buffer (e.g. batch norm's running statistics),
    /// named like parameters, so checkpoints can keep them.
    fn visit_buffers(&mut self, _prefix: &mut String, _f: &mut BufferVisitor<'_>) {}

    /// Lends every parameter's and buffer's values read-only, named as
    /// [`Layer::visit_params`] and [`Layer::visit_buffers`] name them (for saving).
    fn visit_values(&self, _prefix: &mut String, _f: &mut ValueVisitor<'_>) {}

    /// Number of trainable scalars.
    fn num_params(&self) -> usize {
        0
    }

    /// The layer's kind and settings, enough to rebuild it ([`from_spec`]); saved with
    /// the model. A layer defined outside this crate keeps the default, a `Custom` spec
    /// that [`from_spec`] refuses: such a model reloads by building it in code and loading
    /// its weights.
    fn spec(&self) -> Spec {
        Spec::new(&format!("Custom({})", self.describe()))
    }

    /// What the layer computes, for backends that run it with their own kernels.
    fn kind(&self) -> LayerKind {
        LayerKind::Other
    }

    /// A batch norm's evaluation-mode map as a per-channel `(scale, shift)`,
    /// `y = scale·x + shift` (see [`crate::Sequential::fold_batch_norm`]); `None` for every other layer.
    fn eval_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        None
    }

    /// Makes this layer compute `scale[c]·y[c] + shift[c]` per output channel `c` in
    /// place of its output `y`, absorbing a following batch norm. `false` (and nothing
    /// changed) when it cannot (every layer but [`Conv2d`]).
    fn absorb_affine(&mut self, _scale: &[f32], _shift: &[f32]) -> bool {
        false
    }

    /// Makes this layer apply a ReLU to its output, absorbing a following [`ReLU`] layer;
    /// `false` (and nothing changed) when it cannot (every layer but [`Conv2d`]).
    fn absorb_relu(&mut self) -> bool {
        false
    }

    /// Makes this layer also apply the [`ReLU`] layer that directly follows it (`on`), in
    /// training as in evaluation, or stop doing so (`!on`). Returns whether it now does:
    /// then [`crate::Sequential`] skips that ReLU, saving a pass over the activations
    /// and their copy. Unlike [`Layer::absorb_relu`], the model's layers, spec and
    /// [`Layer::kind`] stay as they are; only the work moves. `false` (and nothing
    /// changed) for every layer but [`Conv2d`].
    fn fuse_next_relu(&mut self, _on: bool) -> bool {
        false
    }

    /// Composites: folds every batch norm that follows a convolution among the
    /// children, recursively, and (with `relu`) a ReLU after a convolution too (see
    /// [`crate::Sequential::fuse_for_inference`]). Returns how many layers were removed.
    fn fold_children(&mut self, _relu: bool) -> usize {
        0
    }

    /// A copy of this layer with the same settings and parameter values but none of its
    /// activations, to run a slice of a training batch on another core
    /// ([`crate::Sequential::set_shards`]). Only layers that treat each item of a batch on
    /// its own and keep no state from step to step (no running statistics, no random
    /// draws) give one: [`Conv2d`], [`MaxPool2d`], [`ReLU`] and [`Flatten`]. `None`, the
    /// default, keeps this layer and every one after it unsharded.
    fn replicate(&self) -> Option<Box<dyn Layer>> {
        None
    }
}

/// Folds batch norms (and, with `relu`, ReLUs) into the convolutions before them, in a
/// list of named layers: each child is folded inside first ([`Layer::fold_children`]);
/// then every `Conv2d → BatchNorm2d` pair becomes one convolution with weight
/// `W·scale` and bias `b·scale + shift` (`scale = γ/√(σ² + ε)`, `shift = β − μ·scale`,
/// the running statistics), and with `relu` every `Conv2d → ReLU` pair a convolution
/// that applies the ReLU itself. The absorbed layers are removed (the others keep their
/// names). Returns how many were removed.
///
/// Evaluation-mode outputs stay the same up to rounding; training the folded layers
/// trains a plain convolution (no batch statistics), so fold a model for inference.
pub(crate) fn fold_batch_norm(children: &mut Vec<Child>, relu: bool) -> usize {
    let mut removed = 0;
    for (_, layer) in children.iter_mut() {
        removed += layer.fold_children(relu);
    }
    let mut i = 0;
    while i + 1 < children.len() {
        let (head, tail) = children.split_at_mut(i + 1);
        let (conv, next) = (&mut head[i].1, &tail[0].1);
        let absorbed = match next.eval_affine() {
            Some((scale, shift)) => conv.absorb_affine(&scale, &shift),
            None => relu && next.kind() == LayerKind::ReLU && conv.absorb_relu(),
        };
        if absorbed {
            children.remove(i + 1);
            removed += 1;
        } else {
            i += 1;
        }
    }
    removed
}

/// PyTorch's default initialisation for conv and dense layers: weights from
/// Kaiming-uniform with `a = √5`, which is `U(−1/√fan_in, 1/√fan_in)`, and biases from
/// the same range.
pub(crate) fn init_uniform(values: &mut [f32], fan_in: usize, rng: &mut dyn Rng) {
    let bound = 1.0 / (fan_in as f32).sqrt();
    for v in values {
        *v = uniform(rng, -bound, bound);
    }
}

/// A uniform sample in `[lo, hi)` from 24 random bits.
pub(crate) fn uniform(rng: &mut dyn Rng, lo: f32, hi: f32) -> f32 {
    let u = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
    lo + (hi - lo) * u
}
