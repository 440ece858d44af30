//! Ready-made networks, each a one-liner to build.

use crate::error::Result;
use crate::layers::{
    BatchNorm2d, Conv2d, Dense, Flatten, Gelu, GlobalMaxPool, Layer, MaxPool2d, ReLU, Residual,
    Scale,
};
use crate::model::Sequential;

/// A boxed layer list, as [`Sequential::new`] takes it.
pub type Layers = Vec<Box<dyn Layer>>;

/// The article's network, the classic PyTorch CIFAR-10 tutorial classifier:
/// conv 3→6 5×5, ReLU, pool 2, conv 6→16 5×5, ReLU, pool 2, dense 400→120→84→10.
///
/// Its parameters carry the tutorial's names (`conv1`, `conv2`, `fc1`, `fc2`, `fc3`), so
/// the tutorial's `state_dict`, saved with `safetensors.torch.save_file`, loads with
/// [`Sequential::load_weights`].
pub fn seed_net(seed: u64) -> Result<Sequential> {
    seed_net_for([3, 32, 32], 10, seed)
}

/// Side of a `k×k` valid convolution's output followed by a 2×2 pool, or 0 when the
/// input is too small.
fn conv_pool(side: usize, k: usize) -> usize {
    side.checked_sub(k - 1).map_or(0, |s| s / 2)
}

/// [`seed_net`] for `[C, H, W]` images and `classes` classes: `fc1` takes what the two
/// conv-pool stages leave (`16·5·5` at 32×32).
pub fn seed_net_for(input: [usize; 3], classes: usize, seed: u64) -> Result<Sequential> {
    let [c, h, w] = input;
    let flat = 16 * conv_pool(conv_pool(h, 5), 5) * conv_pool(conv_pool(w, 5), 5);
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("conv1", Box::new(Conv2d::new(c, 6, 5))),
        ("relu1", Box::new(ReLU::new())),
        ("pool1", Box::new(MaxPool2d::new(2, 2))),
        ("conv2", Box::new(Conv2d::new(6, 16, 5))),
        ("relu2", Box::new(ReLU::new())),
        ("pool2", Box::new(MaxPool2d::new(2, 2))),
        ("flatten", Box::new(Flatten::new())),
        ("fc1", Box::new(Dense::new(flat, 120))),
        ("relu3", Box::new(ReLU::new())),
        ("fc2", Box::new(Dense::new(120, 84))),
        ("relu4", Box::new(ReLU::new())),
        ("fc3", Box::new(Dense::new(84, classes))),
    ];
    Sequential::named(&input, layers, seed)
}

/// The TensorFlow CNN tutorial's network: conv 32, 64, 64 (3×3, valid), max-pool after
/// the first two, dense 64, dense 10; ReLU throughout.
pub fn keras_net(seed: u64) -> Result<Sequential> {
    keras_net_for([3, 32, 32], 10, seed)
}

/// [`keras_net`] for `[C, H, W]` images and `classes` classes (the first dense layer
/// takes what the convolutions leave: `64·4·4` at 32×32).
pub fn keras_net_for(input: [usize; 3], classes: usize, seed: u64) -> Result<Sequential> {
    let [c, h, w] = input;
    let side = |s: usize| conv_pool(conv_pool(s, 3), 3).saturating_sub(2);
    let layers: Layers = vec![
        Box::new(Conv2d::new(c, 32, 3)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(32, 64, 3)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(64, 64, 3)),
        Box::new(ReLU::new()),
        Box::new(Flatten::new()),
        Box::new(Dense::new(64 * side(h) * side(w), 64)),
        Box::new(ReLU::new()),
        Box::new(Dense::new(64, classes)),
    ];
    Sequential::new(&input, layers, seed)
}

/// 3×3 convolution (pad 1, no bias) → batch norm → ReLU.
fn conv_bn(cin: usize, cout: usize) -> Layers {
    vec![
        Box::new(Conv2d::new(cin, cout, 3).padding(1).bias(false)),
        Box::new(BatchNorm2d::new(cout)),
        Box::new(ReLU::new()),
    ]
}

/// `x + conv_bn(conv_bn(x))` at width `c`.
fn residual(c: usize) -> Residual {
    let mut branch = conv_bn(c, c);
    branch.extend(conv_bn(c, c));
    Residual::new(branch)
}

/// The ResNet-9-style network of the "fast CIFAR-10" family (DAWNBench), widths
/// 64/128/256, as in the PyTorch throughput reference script: prep conv; conv, pool,
/// residual; conv, pool, residual; global max-pool; linear. ~0.30 GMAC per image.
pub fn resnet9(seed: u64) -> Result<Sequential> {
    let mut layers: Layers = conv_bn(3, 64);
    layers.extend(conv_bn(64, 128));
    layers.push(Box::new(MaxPool2d::new(2, 2)));
    layers.push(Box::new(residual(128)));
    layers.extend(conv_bn(128, 256));
    layers.push(Box::new(MaxPool2d::new(2, 2)));
    layers.push(Box::new(residual(256)));
    layers.push(Box::new(GlobalMaxPool::new()));
    layers.push(Box::new(Dense::new(256, 10).bias(false)));
    Sequential::new(&[3, 32, 32], layers, seed)
}

/// One airbench-style group: conv (pad 1) → max-pool 2 → BN → act → conv → BN → act.
fn airbench_group(cin: usize, cout: usize, act: Activation) -> Layers {
    airbench_group_bn(cin, cout, act, &BatchNorm2d::new)
}

/// [`airbench_group`] with batch norms from `bn(channels)`.
fn airbench_group_bn(
    cin: usize,
    cout: usize,
    act: Activation,
    bn: &dyn Fn(usize) -> BatchNorm2d,
) -> Layers {
    vec![
        Box::new(Conv2d::new(cin, cout, 3).padding(1).bias(false)),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(bn(cout)),
        act.layer(),
        Box::new(Conv2d::new(cout, cout, 3).padding(1).bias(false)),
        Box::new(bn(cout)),
        act.layer(),
    ]
}

/// The non-linearity of [`airbench_net`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `max(x, 0)`: cheapest on a CPU.
    Relu,
    /// `x·Φ(x)`, as airbench uses.
    Gelu,
}

impl Activation {
    fn layer(self) -> Box<dyn Layer> {
        match self {
            Activation::Relu => Box::new(ReLU::new()),
            Activation::Gelu => Box::new(Gelu::new()),
        }
    }
}

/// A fast CIFAR-10 network in the style of airbench (conv–pool–BN groups): a 2×2 stem
/// conv, three groups of `widths`, global max-pool, linear. With widths `[64, 256, 256]`
/// and GELU it is airbench94's body; the `--model fast` preset ([`fast_net`]) uses a
/// narrower one with ReLU, to fit two CPU cores.
pub fn airbench_net(widths: [usize; 3], act: Activation, seed: u64) -> Result<Sequential> {
    airbench_net_for(widths, act, [3, 32, 32], 10, seed)
}

/// [`airbench_net`] for `[C, H, W]` images and `classes` classes: the global max-pool
/// before the head takes any size the three pooling groups leave.
pub fn airbench_net_for(
    widths: [usize; 3],
    act: Activation,
    input: [usize; 3],
    classes: usize,
    seed: u64,
) -> Result<Sequential> {
    let stem = 24;
    let mut layers: Layers = vec![Box::new(Conv2d::new(input[0], stem, 2)), act.layer()];
    layers.extend(airbench_group(stem, widths[0], act));
    layers.extend(airbench_group(widths[0], widths[1], act));
    layers.extend(airbench_group(widths[1], widths[2], act));
    layers.push(Box::new(GlobalMaxPool::new()));
    layers.push(Box::new(Dense::new(widths[2], classes).bias(false)));
    Sequential::new(&input, layers, seed)
}

/// Widths of [`fast_net`]'s three groups.
pub const FAST_NET_WIDTHS: [usize; 3] = [32, 128, 128];

/// The `--model fast` preset's network: [`airbench_net`] at widths
/// [`FAST_NET_WIDTHS`] with ReLU (~33 M multiply-adds per image), sized so ten epochs fit
/// half an hour on two CPU cores. It has no residual connections.
pub fn fast_net(seed: u64) -> Result<Sequential> {
    fast_net_for([3, 32, 32], 10, seed)
}

/// [`fast_net`] for `[C, H, W]` images and `classes` classes.
pub fn fast_net_for(input: [usize; 3], classes: usize, seed: u64) -> Result<Sequential> {
    airbench_net_for(FAST_NET_WIDTHS, Activation::Relu, input, classes, seed)
}

/// Batch-norm settings of [`airbench94_net_for`] (PyTorch's meaning of momentum: the
/// weight of the new batch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnSettings {
    /// Weight of each batch in the running statistics (airbench94: `1 − 0.6 = 0.4`).
    pub momentum: f32,
    /// Added to the variance (airbench94: `1e-12`).
    pub eps: f32,
}

/// airbench94's network (KellerJordan/cifar10-airbench, `airbench94.py`): a 2×2 stem
/// conv of `2·C·4` filters with bias (24 for RGB; the whitening layer, filled from data
/// by [`crate::recipe::Recipe::prepare`]), GELU, three groups of `widths` (airbench94: 64/256/256) with
/// batch norms of `bn`, global max-pool, linear without bias, times `logit_scale`
/// (airbench: 1/9). Initialised as airbench does: every 3×3 conv's first
/// `min(in, out)` filters are identity (Dirac) kernels, the rest PyTorch's default; the
/// stem's bias is 0.
pub fn airbench94_net_for(
    input: [usize; 3],
    classes: usize,
    widths: [usize; 3],
    bn: BnSettings,
    logit_scale: f32,
    seed: u64,
) -> Result<Sequential> {
    let act = Activation::Gelu;
    let stem = 2 * input[0] * 4;
    let norm = |c: usize| BatchNorm2d::new(c).momentum(bn.momentum).eps(bn.eps);
    let mut layers: Layers = vec![Box::new(Conv2d::new(input[0], stem, 2)), act.layer()];
    layers.extend(airbench_group_bn(stem, widths[0], act, &norm));
    layers.extend(airbench_group_bn(widths[0], widths[1], act, &norm));
    layers.extend(airbench_group_bn(widths[1], widths[2], act, &norm));
    layers.push(Box::new(GlobalMaxPool::new()));
    layers.push(Box::new(Dense::new(widths[2], classes).bias(false)));
    layers.push(Box::new(Scale::new(logit_scale)));
    let mut model = Sequential::new(&input, layers, seed)?;
    model.visit_params(&mut |name, p| {
        if let [out, inp, 3, 3] = p.shape[..] {
            dirac_rows(p.value, out.min(inp), inp);
        } else if name == "0.bias" {
            p.value.fill(0.0);
        }
    });
    Ok(model)
}

/// Sets the first `rows` filters of a `[out, inp, 3, 3]` kernel to identity kernels
/// (`w[o][i][1][1] = [o = i]`, every other tap 0), as `torch.nn.init.dirac_` does.
pub fn dirac_rows(w: &mut [f32], rows: usize, inp: usize) {
    for (o, filter) in w.chunks_exact_mut(inp * 9).take(rows).enumerate() {
        filter.fill(0.0);
        filter[o * 9 + 4] = 1.0;
    }
}
