//! Ready-made networks, each a one-liner to build.

use crate::error::Result;
use crate::layers::{
    BatchNorm2d, Conv2d, Dense, Flatten, Gelu, GlobalMaxPool, Layer, MaxPool2d, ReLU, Residual,
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
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("conv1", Box::new(Conv2d::new(3, 6, 5))),
        ("relu1", Box::new(ReLU::new())),
        ("pool1", Box::new(MaxPool2d::new(2, 2))),
        ("conv2", Box::new(Conv2d::new(6, 16, 5))),
        ("relu2", Box::new(ReLU::new())),
        ("pool2", Box::new(MaxPool2d::new(2, 2))),
        ("flatten", Box::new(Flatten::new())),
        ("fc1", Box::new(Dense::new(16 * 5 * 5, 120))),
        ("relu3", Box::new(ReLU::new())),
        ("fc2", Box::new(Dense::new(120, 84))),
        ("relu4", Box::new(ReLU::new())),
        ("fc3", Box::new(Dense::new(84, 10))),
    ];
    Sequential::named(&[3, 32, 32], layers, seed)
}

/// The TensorFlow CNN tutorial's network: conv 32, 64, 64 (3×3, valid), max-pool after
/// the first two, dense 64, dense 10; ReLU throughout.
pub fn keras_net(seed: u64) -> Result<Sequential> {
    let layers: Layers = vec![
        Box::new(Conv2d::new(3, 32, 3)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(32, 64, 3)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Conv2d::new(64, 64, 3)),
        Box::new(ReLU::new()),
        Box::new(Flatten::new()),
        Box::new(Dense::new(64 * 4 * 4, 64)),
        Box::new(ReLU::new()),
        Box::new(Dense::new(64, 10)),
    ];
    Sequential::new(&[3, 32, 32], layers, seed)
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
/// 64/128/256, as in `shared/reference/throughput_pytorch.py`: prep conv; conv, pool,
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
    vec![
        Box::new(Conv2d::new(cin, cout, 3).padding(1).bias(false)),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(BatchNorm2d::new(cout)),
        act.layer(),
        Box::new(Conv2d::new(cout, cout, 3).padding(1).bias(false)),
        Box::new(BatchNorm2d::new(cout)),
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
/// and GELU it is airbench94's body; the `--model resnet` preset ([`fast_net`]) uses a
/// narrower one with ReLU, to fit two CPU cores.
pub fn airbench_net(widths: [usize; 3], act: Activation, seed: u64) -> Result<Sequential> {
    let stem = 24;
    let mut layers: Layers = vec![Box::new(Conv2d::new(3, stem, 2)), act.layer()];
    layers.extend(airbench_group(stem, widths[0], act));
    layers.extend(airbench_group(widths[0], widths[1], act));
    layers.extend(airbench_group(widths[1], widths[2], act));
    layers.push(Box::new(GlobalMaxPool::new()));
    layers.push(Box::new(Dense::new(widths[2], 10).bias(false)));
    Sequential::new(&[3, 32, 32], layers, seed)
}

/// Widths of [`fast_net`]'s three groups.
pub const FAST_NET_WIDTHS: [usize; 3] = [32, 128, 128];

/// The `--model resnet` preset's network: [`airbench_net`] at widths
/// [`FAST_NET_WIDTHS`] with ReLU (~33 M multiply-adds per image), sized so ten epochs fit
/// half an hour on two CPU cores.
pub fn fast_net(seed: u64) -> Result<Sequential> {
    airbench_net(FAST_NET_WIDTHS, Activation::Relu, seed)
}
