//! ResNet-18, -34 and -50 (torchvision's `resnet.py`, v1.5: a Bottleneck's stride is on
//! its 3×3 convolution).
//!
//! `conv1 → bn1 → relu → maxpool → layer1 … layer4 → avgpool → flatten → fc`; each
//! `layerK` is a block of [`ResBlock`]s named `0`, `1`, …; the first block of a layer
//! that changes the shape has `downsample = [1×1 conv with the stride, batch norm]`.

use super::boxed;
use crate::error::Result;
use crate::layers::{
    AdaptiveAvgPool2d, BatchNorm2d, Block, Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU, ResBlock,
};
use crate::model::Sequential;

/// torchvision's BasicBlock: `conv1 (3×3, stride), bn1, relu, conv2 (3×3), bn2`.
fn basic(cin: usize, planes: usize, stride: usize) -> Block {
    Block::new(vec![
        (
            "conv1",
            boxed(
                Conv2d::new(cin, planes, 3)
                    .stride(stride)
                    .padding(1)
                    .bias(false),
            ),
        ),
        ("bn1", boxed(BatchNorm2d::new(planes))),
        ("relu", boxed(ReLU::new())),
        (
            "conv2",
            boxed(Conv2d::new(planes, planes, 3).padding(1).bias(false)),
        ),
        ("bn2", boxed(BatchNorm2d::new(planes))),
    ])
}

/// torchvision's Bottleneck: `conv1 (1×1), bn1, relu, conv2 (3×3, stride), bn2, relu,
/// conv3 (1×1, 4·planes), bn3`.
fn bottleneck(cin: usize, planes: usize, stride: usize) -> Block {
    Block::new(vec![
        ("conv1", boxed(Conv2d::new(cin, planes, 1).bias(false))),
        ("bn1", boxed(BatchNorm2d::new(planes))),
        ("relu1", boxed(ReLU::new())),
        (
            "conv2",
            boxed(
                Conv2d::new(planes, planes, 3)
                    .stride(stride)
                    .padding(1)
                    .bias(false),
            ),
        ),
        ("bn2", boxed(BatchNorm2d::new(planes))),
        ("relu2", boxed(ReLU::new())),
        (
            "conv3",
            boxed(Conv2d::new(planes, planes * 4, 1).bias(false)),
        ),
        ("bn3", boxed(BatchNorm2d::new(planes * 4))),
    ])
}

/// ResNet-`depth` (18, 34 or 50) on `[3, side, side]` inputs (224 in the named
/// functions; the padded stem and the adaptive average pool take any side, down to 1).
pub fn resnet(depth: usize, classes: usize, side: usize, seed: u64) -> Result<Sequential> {
    let (blocks, bottleneck_blocks) = match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        _ => {
            return Err(crate::Error::Invalid(format!(
                "resnet: depth {depth}; 18, 34 and 50 are built"
            )));
        }
    };
    let expansion = if bottleneck_blocks { 4 } else { 1 };
    let mut layers: Vec<(String, Box<dyn Layer>)> = vec![
        (
            "conv1".into(),
            boxed(Conv2d::new(3, 64, 7).stride(2).padding(3).bias(false)),
        ),
        ("bn1".into(), boxed(BatchNorm2d::new(64))),
        ("relu".into(), boxed(ReLU::new())),
        ("maxpool".into(), boxed(MaxPool2d::new(3, 2).padding(1))),
    ];
    let mut cin = 64;
    for (k, &count) in blocks.iter().enumerate() {
        let planes = 64 << k;
        let mut stage: Vec<Box<dyn Layer>> = Vec::new();
        for b in 0..count {
            let stride = if b == 0 && k > 0 { 2 } else { 1 };
            let main = if bottleneck_blocks {
                bottleneck(cin, planes, stride)
            } else {
                basic(cin, planes, stride)
            };
            let out = planes * expansion;
            let downsample = (stride != 1 || cin != out).then(|| {
                Block::indexed(vec![
                    boxed(Conv2d::new(cin, out, 1).stride(stride).bias(false)),
                    boxed(BatchNorm2d::new(out)),
                ])
            });
            stage.push(boxed(ResBlock::new(main, downsample)));
            cin = out;
        }
        layers.push((format!("layer{}", k + 1), boxed(Block::indexed(stage))));
    }
    layers.push(("avgpool".into(), boxed(AdaptiveAvgPool2d::new((1, 1)))));
    layers.push(("flatten".into(), boxed(Flatten::new())));
    layers.push(("fc".into(), boxed(Dense::new(cin, classes))));
    Sequential::named(&[3, side, side], layers, seed)
}

/// torchvision's `resnet18(num_classes=classes)`: BasicBlocks `[2, 2, 2, 2]`.
pub fn resnet18(classes: usize, seed: u64) -> Result<Sequential> {
    resnet(18, classes, 224, seed)
}

/// torchvision's `resnet34(num_classes=classes)`: BasicBlocks `[3, 4, 6, 3]`.
pub fn resnet34(classes: usize, seed: u64) -> Result<Sequential> {
    resnet(34, classes, 224, seed)
}

/// torchvision's `resnet50(num_classes=classes)`: Bottlenecks `[3, 4, 6, 3]`.
pub fn resnet50(classes: usize, seed: u64) -> Result<Sequential> {
    resnet(50, classes, 224, seed)
}
