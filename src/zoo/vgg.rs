//! VGG (configurations A and D, with and without batch norm) and AlexNet, as in
//! torchvision's `vgg.py` and `alexnet.py`.
//!
//! `features` (indexed as PyTorch's `nn.Sequential` numbers them, so a VGG's convolutions
//! are `features.0`, `features.3`, … and with batch norm `features.0`, `features.1` (bn),
//! …) `→ avgpool → flatten → classifier`.

use super::boxed;
use crate::error::Result;
use crate::layers::{
    AdaptiveAvgPool2d, BatchNorm2d, Block, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU,
};
use crate::model::Sequential;

/// VGG's configuration A (`vgg11`): channel counts, 0 for a 2×2 max-pool.
pub const VGG11_CONFIG: &[usize] = &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
/// VGG's configuration D (`vgg16`): channel counts, 0 for a 2×2 max-pool.
pub const VGG16_CONFIG: &[usize] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];

/// A VGG of configuration `cfg` (channel counts, 0 for a 2×2 max-pool), with batch norm
/// after every convolution when `batch_norm`, and dropout of probability `dropout` in the
/// classifier (torchvision's `VGG(..., dropout=0.5)`; 0 makes training deterministic,
/// as the parity check needs), on `[3, side, side]` inputs (224 in the named functions).
pub fn vgg(
    cfg: &[usize],
    batch_norm: bool,
    classes: usize,
    dropout: f32,
    side: usize,
    seed: u64,
) -> Result<Sequential> {
    let mut features: Vec<Box<dyn Layer>> = Vec::new();
    let mut cin = 3;
    for &c in cfg {
        if c == 0 {
            features.push(boxed(MaxPool2d::new(2, 2)));
            continue;
        }
        features.push(boxed(Conv2d::new(cin, c, 3).padding(1)));
        if batch_norm {
            features.push(boxed(BatchNorm2d::new(c)));
        }
        features.push(boxed(ReLU::new()));
        cin = c;
    }
    let classifier: Vec<Box<dyn Layer>> = vec![
        boxed(Dense::new(cin * 7 * 7, 4096)),
        boxed(ReLU::new()),
        boxed(Dropout::new(dropout)),
        boxed(Dense::new(4096, 4096)),
        boxed(ReLU::new()),
        boxed(Dropout::new(dropout)),
        boxed(Dense::new(4096, classes)),
    ];
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("features", boxed(Block::indexed(features))),
        ("avgpool", boxed(AdaptiveAvgPool2d::new((7, 7)))),
        ("flatten", boxed(Flatten::new())),
        ("classifier", boxed(Block::indexed(classifier))),
    ];
    Sequential::named(&[3, side, side], layers, seed)
}

/// torchvision's `vgg11(num_classes=classes)`.
pub fn vgg11(classes: usize, seed: u64) -> Result<Sequential> {
    vgg(VGG11_CONFIG, false, classes, 0.5, 224, seed)
}

/// torchvision's `vgg11_bn(num_classes=classes)`.
pub fn vgg11_bn(classes: usize, seed: u64) -> Result<Sequential> {
    vgg(VGG11_CONFIG, true, classes, 0.5, 224, seed)
}

/// torchvision's `vgg16(num_classes=classes)`.
pub fn vgg16(classes: usize, seed: u64) -> Result<Sequential> {
    vgg(VGG16_CONFIG, false, classes, 0.5, 224, seed)
}

/// torchvision's `vgg16_bn(num_classes=classes)`.
pub fn vgg16_bn(classes: usize, seed: u64) -> Result<Sequential> {
    vgg(VGG16_CONFIG, true, classes, 0.5, 224, seed)
}

/// torchvision's `alexnet(num_classes=classes)` (its one-tower form) on `[3, 224, 224]`.
pub fn alexnet(classes: usize, seed: u64) -> Result<Sequential> {
    alexnet_at(classes, 224, seed)
}

/// [`alexnet`] on `[3, side, side]` inputs: the adaptive pool makes 6×6 of any side of
/// at least 63, as torchvision's.
pub fn alexnet_at(classes: usize, side: usize, seed: u64) -> Result<Sequential> {
    let conv = |cin, cout, k, pad| boxed(Conv2d::new(cin, cout, k).padding(pad));
    let features = vec![
        boxed(Conv2d::new(3, 64, 11).stride(4).padding(2)),
        boxed(ReLU::new()),
        boxed(MaxPool2d::new(3, 2)),
        conv(64, 192, 5, 2),
        boxed(ReLU::new()),
        boxed(MaxPool2d::new(3, 2)),
        conv(192, 384, 3, 1),
        boxed(ReLU::new()),
        conv(384, 256, 3, 1),
        boxed(ReLU::new()),
        conv(256, 256, 3, 1),
        boxed(ReLU::new()),
        boxed(MaxPool2d::new(3, 2)),
    ];
    let classifier: Vec<Box<dyn Layer>> = vec![
        boxed(Dropout::new(0.5)),
        boxed(Dense::new(256 * 6 * 6, 4096)),
        boxed(ReLU::new()),
        boxed(Dropout::new(0.5)),
        boxed(Dense::new(4096, 4096)),
        boxed(ReLU::new()),
        boxed(Dense::new(4096, classes)),
    ];
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("features", boxed(Block::indexed(features))),
        ("avgpool", boxed(AdaptiveAvgPool2d::new((6, 6)))),
        ("flatten", boxed(Flatten::new())),
        ("classifier", boxed(Block::indexed(classifier))),
    ];
    Sequential::named(&[3, side, side], layers, seed)
}
