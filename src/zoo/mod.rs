//! torchvision's model families, built from this crate's layers, with torchvision's
//! parameter names, so a PyTorch `state_dict` saved as safetensors loads unchanged:
//!
//! ```no_run
//! // python: safetensors.torch.save_file(torchvision.models.resnet50().state_dict(), "r50.safetensors")
//! let mut model = ferroconv::zoo::resnet50(1000, 0)?;
//! model.load_weights("r50.safetensors")?;
//! # Ok::<(), ferroconv::Error>(())
//! ```
//!
//! Every function takes the number of classes and a seed for the initial parameters
//! (this crate's layer defaults, not torchvision's initialisation: the models are meant
//! to be loaded). The names [`crate::Sequential::visit_values`] gives are exactly the keys
//! of torchvision's `state_dict()`, less the batch norms' `num_batches_tracked` (an I64
//! step counter, which loading ignores: see [`crate::checkpoint::is_num_batches_tracked`]).
//! Inputs are `[3, 224, 224]` (`[3, 299, 299]` for [`inception_v3`]); see docs/zoo.md.

mod inception;
mod resnet;
mod vgg;

pub use inception::{googlenet, googlenet_at, inception_v3, inception_v3_at};
pub use resnet::{resnet, resnet18, resnet34, resnet50};
pub use vgg::{
    VGG11_CONFIG, VGG16_CONFIG, alexnet, alexnet_at, vgg, vgg11, vgg11_bn, vgg16, vgg16_bn,
};

use crate::error::{Error, Result};
use crate::layers::{BatchNorm2d, Block, Conv2d, Layer, ReLU};
use crate::model::Sequential;

/// The architectures [`build`] knows, by torchvision's names.
pub const ARCHS: [&str; 10] = [
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "googlenet",
    "inception_v3",
];

/// The smallest image side each of [`ARCHS`] takes (where its last pooling still has a
/// window to pool; torchvision's models refuse smaller inputs too).
pub const MIN_SIDES: [(&str, usize); 10] = [
    ("alexnet", 63),
    ("vgg11", 32),
    ("vgg11_bn", 32),
    ("vgg16", 32),
    ("vgg16_bn", 32),
    ("resnet18", 1),
    ("resnet34", 1),
    ("resnet50", 1),
    ("googlenet", 31),
    ("inception_v3", 75),
];

/// The architecture `name` (one of [`ARCHS`]) for `[3, side, side]` images and `classes`
/// classes, initialised from `seed`. Every architecture takes any side from its
/// [`MIN_SIDES`] entry up (224 is ImageNet's, 299 Inception v3's); a smaller side is an
/// error that names the smallest.
pub fn build(name: &str, classes: usize, side: usize, seed: u64) -> Result<Sequential> {
    if let Some(&(_, min)) = MIN_SIDES.iter().find(|(n, _)| *n == name)
        && side < min
    {
        return Err(Error::Invalid(format!(
            "{name} takes images of at least {min}×{min} pixels, not {side}×{side}"
        )));
    }
    match name {
        "alexnet" => alexnet_at(classes, side, seed),
        "vgg11" => vgg(VGG11_CONFIG, false, classes, 0.5, side, seed),
        "vgg11_bn" => vgg(VGG11_CONFIG, true, classes, 0.5, side, seed),
        "vgg16" => vgg(VGG16_CONFIG, false, classes, 0.5, side, seed),
        "vgg16_bn" => vgg(VGG16_CONFIG, true, classes, 0.5, side, seed),
        "resnet18" => resnet(18, classes, side, seed),
        "resnet34" => resnet(34, classes, side, seed),
        "resnet50" => resnet(50, classes, side, seed),
        "googlenet" => googlenet_at(classes, side, seed),
        "inception_v3" => inception_v3_at(classes, side, seed),
        _ => Err(Error::Invalid(format!(
            "unknown architecture {name:?}: expected one of {}",
            ARCHS.join(", ")
        ))),
    }
}

/// A boxed layer (the zoo's builders pass many).
pub(crate) fn boxed(layer: impl Layer + 'static) -> Box<dyn Layer> {
    Box::new(layer)
}

/// A bias-free convolution followed by a batch norm of `eps` and a ReLU, named `conv`
/// and `bn` (torchvision's `BasicConv2d` in GoogLeNet and Inception v3, `eps = 0.001`).
pub(crate) fn conv_bn_relu(conv: Conv2d, channels: usize, eps: f32) -> Box<dyn Layer> {
    boxed(Block::new(vec![
        ("conv", boxed(conv.bias(false))),
        ("bn", boxed(BatchNorm2d::new(channels).eps(eps))),
        ("", boxed(ReLU::new())),
    ]))
}
