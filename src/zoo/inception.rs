//! GoogLeNet (Inception v1) and Inception v3, as in torchvision's `googlenet.py` and
//! `inception.py`, built with `aux_logits=False` and `transform_input=False`.
//!
//! The auxiliary classifiers only run in training mode and torchvision's ImageNet models
//! drop them (their `state_dict` has no `aux1.*`, `aux2.*`, `AuxLogits.*`), so they are
//! not built here: export with `aux_logits=False`, or convert a file that has them with
//! `tools/pth_to_safetensors.py --drop-prefix aux1. …` (docs/zoo.md). `transform_input`
//! (on for the ImageNet weights) is a fixed affine map of the input channels: feed inputs
//! normalised with mean 0.5, std 0.5 instead of ImageNet's statistics and the result is
//! the same.
//!
//! Each module is a [`Concat`] of branches; a branch is a [`Block`] whose children carry
//! torchvision's names. Where torchvision splits a branch in two and concatenates
//! (Inception v3's `InceptionE`), the split is a nested `Concat` under an empty name, so
//! the names stay flat (`Mixed_7b.branch3x3_2a.conv.weight`).

use super::{boxed, conv_bn_relu};
use crate::error::Result;
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, Block, Concat, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d,
};
use crate::model::Sequential;

/// torchvision's `BasicConv2d` (conv without bias, batch norm with `eps = 0.001`, ReLU)
/// with a `kernel×kernel` window, stride and padding.
fn bc(cin: usize, cout: usize, kernel: usize, stride: usize, pad: usize) -> Box<dyn Layer> {
    conv_bn_relu(
        Conv2d::new(cin, cout, kernel).stride(stride).padding(pad),
        cout,
        1e-3,
    )
}

/// `BasicConv2d` with a rectangular `kh×kw` window and per-axis padding, stride 1.
fn bc_rect(cin: usize, cout: usize, kernel: (usize, usize), pad: (usize, usize)) -> Box<dyn Layer> {
    conv_bn_relu(Conv2d::rect(cin, cout, kernel).padding2(pad), cout, 1e-3)
}

/// A branch: named layers in order.
fn branch(children: Vec<(&str, Box<dyn Layer>)>) -> Box<dyn Layer> {
    boxed(Block::new(children))
}

/// GoogLeNet's `Inception(in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`
/// (its "5×5" branch has a 3×3 window, as torchvision's does).
fn inception(cin: usize, c: [usize; 6]) -> Box<dyn Layer> {
    let [c1, c3r, c3, c5r, c5, pool] = c;
    boxed(Concat::new(vec![
        ("branch1", bc(cin, c1, 1, 1, 0)),
        (
            "branch2",
            boxed(Block::indexed(vec![
                bc(cin, c3r, 1, 1, 0),
                bc(c3r, c3, 3, 1, 1),
            ])),
        ),
        (
            "branch3",
            boxed(Block::indexed(vec![
                bc(cin, c5r, 1, 1, 0),
                bc(c5r, c5, 3, 1, 1),
            ])),
        ),
        (
            "branch4",
            boxed(Block::indexed(vec![
                boxed(MaxPool2d::new(3, 1).padding(1).ceil_mode(true)),
                bc(cin, pool, 1, 1, 0),
            ])),
        ),
    ]))
}

/// torchvision's `googlenet(num_classes=classes, aux_logits=False)` on `[3, 224, 224]`.
pub fn googlenet(classes: usize, seed: u64) -> Result<Sequential> {
    googlenet_at(classes, 224, seed)
}

/// [`googlenet`] on `[3, side, side]` inputs (any side of at least 31, where the last
/// ceil-mode pool still has a window; small sides make quick tests).
pub fn googlenet_at(classes: usize, side: usize, seed: u64) -> Result<Sequential> {
    let pool = |k| boxed(MaxPool2d::new(k, 2).ceil_mode(true));
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("conv1", bc(3, 64, 7, 2, 3)),
        ("maxpool1", pool(3)),
        ("conv2", bc(64, 64, 1, 1, 0)),
        ("conv3", bc(64, 192, 3, 1, 1)),
        ("maxpool2", pool(3)),
        ("inception3a", inception(192, [64, 96, 128, 16, 32, 32])),
        ("inception3b", inception(256, [128, 128, 192, 32, 96, 64])),
        ("maxpool3", pool(3)),
        ("inception4a", inception(480, [192, 96, 208, 16, 48, 64])),
        ("inception4b", inception(512, [160, 112, 224, 24, 64, 64])),
        ("inception4c", inception(512, [128, 128, 256, 24, 64, 64])),
        ("inception4d", inception(512, [112, 144, 288, 32, 64, 64])),
        ("inception4e", inception(528, [256, 160, 320, 32, 128, 128])),
        ("maxpool4", pool(2)),
        ("inception5a", inception(832, [256, 160, 320, 32, 128, 128])),
        ("inception5b", inception(832, [384, 192, 384, 48, 128, 128])),
        ("avgpool", boxed(AdaptiveAvgPool2d::new((1, 1)))),
        ("flatten", boxed(Flatten::new())),
        ("dropout", boxed(Dropout::new(0.2))),
        ("fc", boxed(Dense::new(1024, classes))),
    ];
    Sequential::named(&[3, side, side], layers, seed)
}

/// The 3×3, stride-1, pad-1 average pool before an Inception v3 `branch_pool` conv.
fn avg_then(conv: Box<dyn Layer>) -> Box<dyn Layer> {
    branch(vec![
        ("", boxed(AvgPool2d::new(3, 1, 1))),
        ("branch_pool", conv),
    ])
}

/// `InceptionA(in, pool_features)`: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avg→1×1.
fn inception_a(cin: usize, pool: usize) -> Box<dyn Layer> {
    boxed(Concat::new(vec![
        ("", branch(vec![("branch1x1", bc(cin, 64, 1, 1, 0))])),
        (
            "",
            branch(vec![
                ("branch5x5_1", bc(cin, 48, 1, 1, 0)),
                ("branch5x5_2", bc(48, 64, 5, 1, 2)),
            ]),
        ),
        (
            "",
            branch(vec![
                ("branch3x3dbl_1", bc(cin, 64, 1, 1, 0)),
                ("branch3x3dbl_2", bc(64, 96, 3, 1, 1)),
                ("branch3x3dbl_3", bc(96, 96, 3, 1, 1)),
            ]),
        ),
        ("", avg_then(bc(cin, pool, 1, 1, 0))),
    ]))
}

/// `InceptionB(in)`: the 35→17 reduction, 3×3/2 | 1×1→3×3→3×3/2 | max 3×3/2.
fn inception_b(cin: usize) -> Box<dyn Layer> {
    boxed(Concat::new(vec![
        ("", branch(vec![("branch3x3", bc(cin, 384, 3, 2, 0))])),
        (
            "",
            branch(vec![
                ("branch3x3dbl_1", bc(cin, 64, 1, 1, 0)),
                ("branch3x3dbl_2", bc(64, 96, 3, 1, 1)),
                ("branch3x3dbl_3", bc(96, 96, 3, 2, 0)),
            ]),
        ),
        ("", boxed(MaxPool2d::new(3, 2))),
    ]))
}

/// `InceptionC(in, channels_7x7)`: the factorised 7×7 module (1×7 and 7×1 windows).
fn inception_c(cin: usize, c7: usize) -> Box<dyn Layer> {
    let (row, col) = (((1, 7), (0, 3)), ((7, 1), (3, 0)));
    let rect = |i, o, (k, p)| bc_rect(i, o, k, p);
    boxed(Concat::new(vec![
        ("", branch(vec![("branch1x1", bc(cin, 192, 1, 1, 0))])),
        (
            "",
            branch(vec![
                ("branch7x7_1", bc(cin, c7, 1, 1, 0)),
                ("branch7x7_2", rect(c7, c7, row)),
                ("branch7x7_3", rect(c7, 192, col)),
            ]),
        ),
        (
            "",
            branch(vec![
                ("branch7x7dbl_1", bc(cin, c7, 1, 1, 0)),
                ("branch7x7dbl_2", rect(c7, c7, col)),
                ("branch7x7dbl_3", rect(c7, c7, row)),
                ("branch7x7dbl_4", rect(c7, c7, col)),
                ("branch7x7dbl_5", rect(c7, 192, row)),
            ]),
        ),
        ("", avg_then(bc(cin, 192, 1, 1, 0))),
    ]))
}

/// `InceptionD(in)`: the 17→8 reduction.
fn inception_d(cin: usize) -> Box<dyn Layer> {
    boxed(Concat::new(vec![
        (
            "",
            branch(vec![
                ("branch3x3_1", bc(cin, 192, 1, 1, 0)),
                ("branch3x3_2", bc(192, 320, 3, 2, 0)),
            ]),
        ),
        (
            "",
            branch(vec![
                ("branch7x7x3_1", bc(cin, 192, 1, 1, 0)),
                ("branch7x7x3_2", bc_rect(192, 192, (1, 7), (0, 3))),
                ("branch7x7x3_3", bc_rect(192, 192, (7, 1), (3, 0))),
                ("branch7x7x3_4", bc(192, 192, 3, 2, 0)),
            ]),
        ),
        ("", boxed(MaxPool2d::new(3, 2))),
    ]))
}

/// `InceptionE(in)`: the expanded 8×8 module, whose 3×3 branches split into a 1×3 and a
/// 3×1 half, concatenated.
fn inception_e(cin: usize) -> Box<dyn Layer> {
    let split = |a: &'static str, b: &'static str| -> Box<dyn Layer> {
        boxed(Concat::new(vec![
            (a, bc_rect(384, 384, (1, 3), (0, 1))),
            (b, bc_rect(384, 384, (3, 1), (1, 0))),
        ]))
    };
    boxed(Concat::new(vec![
        ("", branch(vec![("branch1x1", bc(cin, 320, 1, 1, 0))])),
        (
            "",
            branch(vec![
                ("branch3x3_1", bc(cin, 384, 1, 1, 0)),
                ("", split("branch3x3_2a", "branch3x3_2b")),
            ]),
        ),
        (
            "",
            branch(vec![
                ("branch3x3dbl_1", bc(cin, 448, 1, 1, 0)),
                ("branch3x3dbl_2", bc(448, 384, 3, 1, 1)),
                ("", split("branch3x3dbl_3a", "branch3x3dbl_3b")),
            ]),
        ),
        ("", avg_then(bc(cin, 192, 1, 1, 0))),
    ]))
}

/// torchvision's `inception_v3(num_classes=classes, aux_logits=False)` on `[3, 299, 299]`.
pub fn inception_v3(classes: usize, seed: u64) -> Result<Sequential> {
    inception_v3_at(classes, 299, seed)
}

/// [`inception_v3`] on `[3, side, side]` inputs (at least 75, as torchvision's).
pub fn inception_v3_at(classes: usize, side: usize, seed: u64) -> Result<Sequential> {
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("Conv2d_1a_3x3", bc(3, 32, 3, 2, 0)),
        ("Conv2d_2a_3x3", bc(32, 32, 3, 1, 0)),
        ("Conv2d_2b_3x3", bc(32, 64, 3, 1, 1)),
        ("maxpool1", boxed(MaxPool2d::new(3, 2))),
        ("Conv2d_3b_1x1", bc(64, 80, 1, 1, 0)),
        ("Conv2d_4a_3x3", bc(80, 192, 3, 1, 0)),
        ("maxpool2", boxed(MaxPool2d::new(3, 2))),
        ("Mixed_5b", inception_a(192, 32)),
        ("Mixed_5c", inception_a(256, 64)),
        ("Mixed_5d", inception_a(288, 64)),
        ("Mixed_6a", inception_b(288)),
        ("Mixed_6b", inception_c(768, 128)),
        ("Mixed_6c", inception_c(768, 160)),
        ("Mixed_6d", inception_c(768, 160)),
        ("Mixed_6e", inception_c(768, 192)),
        ("Mixed_7a", inception_d(768)),
        ("Mixed_7b", inception_e(1280)),
        ("Mixed_7c", inception_e(2048)),
        ("avgpool", boxed(AdaptiveAvgPool2d::new((1, 1)))),
        ("dropout", boxed(Dropout::new(0.5))),
        ("flatten", boxed(Flatten::new())),
        ("fc", boxed(Dense::new(2048, classes))),
    ];
    Sequential::named(&[3, side, side], layers, seed)
}
