//! Gradient checks for the layers and composites the model zoo needs (rectangular and
//! unevenly padded convolutions, padded / ceil-mode max-pooling, average and adaptive
//! pooling, `Block`, `Concat`, `ResBlock`), with the harness of tests/gradients.rs:
//! backward against central finite differences of an independent f64 reference forward.
//! Plus: specs round-trip, and the zoo's parameter names.

use ferroconv::layers::{
    AdaptiveAvgPool2d, AvgPool2d, Block, Concat, Conv2d, Layer, MaxPool2d, ReLU, ResBlock,
    from_spec,
};
use ferroconv::{Sequential, zoo};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

mod common;
use common::gradcheck;

/// Checks the output shape against `output_shape`, allocates the parameters, and runs
/// the shared gradient check (tests/common/gradcheck.rs).
fn check_layer(
    layer: &mut dyn Layer,
    x_shape: &[usize],
    seed: u64,
    reference: &gradcheck::Reference,
) {
    let out_shape = layer.output_shape(&x_shape[1..]).expect("the layer fits");
    layer
        .init(&mut Xoshiro256PlusPlus::seed_from_u64(seed))
        .unwrap();
    let got = gradcheck::check_layer(layer, x_shape, seed, reference);
    assert_eq!(got[1..], out_shape[..], "output shape");
}

/// Convolution geometry for the reference.
#[derive(Clone, Copy)]
struct Geo {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: (usize, usize),
    stride: usize,
    pad: (usize, usize),
}

impl Geo {
    fn out(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad.0 - self.k.0) / self.stride + 1,
            (self.w + 2 * self.pad.1 - self.k.1) / self.stride + 1,
        )
    }
}

/// f64 convolution from the definition; `b` empty for no bias.
fn conv_ref(x: &[f64], wt: &[f64], b: &[f64], g: Geo) -> Vec<f64> {
    let (oh, ow) = g.out();
    let (kh, kw) = g.k;
    let mut y = vec![0.0; g.n * g.cout * oh * ow];
    for i in 0..g.n {
        for o in 0..g.cout {
            for r in 0..oh {
                for s in 0..ow {
                    let mut acc = b.get(o).copied().unwrap_or(0.0);
                    for ci in 0..g.c {
                        for a in 0..kh {
                            for e in 0..kw {
                                let ih = (r * g.stride + a) as isize - g.pad.0 as isize;
                                let iw = (s * g.stride + e) as isize - g.pad.1 as isize;
                                if ih < 0 || iw < 0 || ih as usize >= g.h || iw as usize >= g.w {
                                    continue;
                                }
                                let xv =
                                    x[((i * g.c + ci) * g.h + ih as usize) * g.w + iw as usize];
                                acc += wt[((o * g.c + ci) * kh + a) * kw + e] * xv;
                            }
                        }
                    }
                    y[((i * g.cout + o) * oh + r) * ow + s] = acc;
                }
            }
        }
    }
    y
}

/// PyTorch's pooled size (`torch.nn.MaxPool2d` docs), written out independently.
fn torch_pool_out(n: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    let num = (n + 2 * p - k) as f64 / s as f64;
    let mut out = if ceil { num.ceil() } else { num.floor() } as usize + 1;
    if ceil && (out - 1) * s >= n + p {
        out -= 1;
    }
    out
}

/// f64 pooling over windows clipped to the input: max (padding −∞) or average (divisor
/// the window clipped to the padded input, `count_include_pad=True`).
#[allow(clippy::too_many_arguments)]
fn pool_ref(
    x: &[f64],
    (h, w): (usize, usize),
    k: usize,
    s: usize,
    p: usize,
    ceil: bool,
    max: bool,
) -> Vec<f64> {
    let (oh, ow) = (
        torch_pool_out(h, k, s, p, ceil),
        torch_pool_out(w, k, s, p, ceil),
    );
    let mut y = Vec::new();
    for plane in x.chunks(h * w) {
        for r in 0..oh {
            for c in 0..ow {
                let (mut m, mut sum) = (f64::NEG_INFINITY, 0.0);
                for a in 0..k {
                    for b in 0..k {
                        let (ih, iw) = (
                            (r * s + a) as isize - p as isize,
                            (c * s + b) as isize - p as isize,
                        );
                        if ih >= 0 && iw >= 0 && (ih as usize) < h && (iw as usize) < w {
                            let v = plane[ih as usize * w + iw as usize];
                            m = m.max(v);
                            sum += v;
                        }
                    }
                }
                let ext = |o: usize, n: usize| ((o * s + k).min(n + 2 * p) - o * s) as f64;
                y.push(if max {
                    m
                } else {
                    sum / (ext(r, h) * ext(c, w))
                });
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn rect_conv_gradients(
        n in 1usize..3, c in 1usize..3, cout in 1usize..3, kh in 1usize..4, kw in 1usize..4,
        stride in 1usize..3, ph in 0usize..3, pw in 0usize..3, eh in 0usize..3, ew in 0usize..3,
        bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let g = Geo { n, c, h: kh + eh, w: kw + ew, cout, k: (kh, kw), stride, pad: (ph, pw) };
        let mut layer = Conv2d::rect(c, cout, (kh, kw)).stride(stride).padding2((ph, pw)).bias(bias);
        check_layer(&mut layer, &[n, c, g.h, g.w], seed, &|x, p| {
            conv_ref(x, &p[0], p.get(1).map_or(&[][..], |b| b), g)
        });
    }

    #[test]
    fn maxpool_padded_ceil_gradients(
        n in 1usize..3, c in 1usize..3, k in 1usize..4, s in 1usize..4, ceil in any::<bool>(),
        eh in 0usize..5, ew in 0usize..5, pad_pick in 0usize..2, seed in any::<u64>(),
    ) {
        let p = pad_pick.min(k / 2);
        let (h, w) = (k + eh, k + ew);
        let mut layer = MaxPool2d::new(k, s).padding(p).ceil_mode(ceil);
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, _| pool_ref(x, (h, w), k, s, p, ceil, true));
    }

    #[test]
    fn avgpool_gradients(
        n in 1usize..3, c in 1usize..3, k in 1usize..4, s in 1usize..3,
        eh in 0usize..4, ew in 0usize..4, pad_pick in 0usize..2, seed in any::<u64>(),
    ) {
        let p = pad_pick.min(k / 2);
        let (h, w) = (k + eh, k + ew);
        let mut layer = AvgPool2d::new(k, s, p);
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, _| pool_ref(x, (h, w), k, s, p, false, false));
    }

    #[test]
    fn adaptive_avgpool_gradients(
        n in 1usize..3, c in 1usize..3, h in 1usize..8, w in 1usize..8, oh in 1usize..5, ow in 1usize..5,
        seed in any::<u64>(),
    ) {
        let mut layer = AdaptiveAvgPool2d::new((oh, ow));
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, _| {
            // PyTorch's bins: [floor(i·n/out), ceil((i+1)·n/out)).
            let bin = |i: usize, out: usize, len: usize| {
                ((i * len) as f64 / out as f64).floor() as usize..(((i + 1) * len) as f64 / out as f64).ceil() as usize
            };
            let mut y = Vec::new();
            for plane in x.chunks(h * w) {
                for r in 0..oh {
                    for q in 0..ow {
                        let (rows, cols) = (bin(r, oh, h), bin(q, ow, w));
                        let cnt = (rows.len() * cols.len()) as f64;
                        let sum: f64 = rows.flat_map(|a| cols.clone().map(move |b| (a, b))).map(|(a, b)| plane[a * w + b]).sum();
                        y.push(sum / cnt);
                    }
                }
            }
            y
        });
    }

    #[test]
    fn block_and_concat_gradients(
        n in 1usize..3, c in 1usize..3, h in 2usize..5, w in 2usize..5, c1 in 1usize..3, c2 in 1usize..3,
        seed in any::<u64>(),
    ) {
        // Concat[ a: 1×1 conv | "": Block[b: 3×1 conv pad (1, 0), relu, d: 1×3 conv pad (0, 1)] ]
        let branch = Block::new(vec![
            ("b", Box::new(Conv2d::rect(c, c2, (3, 1)).padding2((1, 0))) as Box<dyn Layer>),
            ("", Box::new(ReLU::new())),
            ("d", Box::new(Conv2d::rect(c2, c2, (1, 3)).padding2((0, 1)).bias(false))),
        ]);
        let mut layer = Concat::new(vec![
            ("a", Box::new(Conv2d::new(c, c1, 1)) as Box<dyn Layer>),
            ("", Box::new(branch)),
        ]);
        prop_assert_eq!(layer.output_shape(&[c, h, w]).unwrap(), vec![c1 + c2, h, w]);
        layer.init(&mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
        let mut names = Vec::new();
        layer.visit_params(&mut "m.".to_string(), &mut |name, _| names.push(name.to_string()));
        prop_assert_eq!(names, ["m.a.weight", "m.a.bias", "m.b.weight", "m.b.bias", "m.d.weight"]);
        let g = |cin, cout, k, pad| Geo { n, c: cin, h, w, cout, k, stride: 1, pad };
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            let a = conv_ref(x, &p[0], &p[1], g(c, c1, (1, 1), (0, 0)));
            let b: Vec<f64> = conv_ref(x, &p[2], &p[3], g(c, c2, (3, 1), (1, 0))).iter().map(|v| v.max(0.0)).collect();
            let d = conv_ref(&b, &p[4], &[], g(c2, c2, (1, 3), (0, 1)));
            let plane = h * w;
            let mut y = Vec::new();
            for i in 0..n {
                y.extend_from_slice(&a[i * c1 * plane..(i + 1) * c1 * plane]);
                y.extend_from_slice(&d[i * c2 * plane..(i + 1) * c2 * plane]);
            }
            y
        });
    }

    #[test]
    fn resblock_gradients(
        n in 1usize..3, c in 1usize..3, cout in 1usize..4, h in 2usize..6, w in 2usize..6,
        stride in 1usize..3, seed in any::<u64>(),
    ) {
        // relu(conv2(relu(conv1(x))) + downsample(x)), downsample a strided 1×1 conv when
        // the shape changes, else the identity.
        let main = Block::new(vec![
            ("conv1", Box::new(Conv2d::new(c, cout, 3).stride(stride).padding(1).bias(false)) as Box<dyn Layer>),
            ("relu", Box::new(ReLU::new())),
            ("conv2", Box::new(Conv2d::new(cout, cout, 3).padding(1).bias(false))),
        ]);
        let shortcut = stride != 1 || c != cout;
        let ds = shortcut.then(|| Block::indexed(vec![Box::new(Conv2d::new(c, cout, 1).stride(stride).bias(false)) as Box<dyn Layer>]));
        let mut layer = ResBlock::new(main, ds);
        let mut names = Vec::new();
        layer.visit_params(&mut String::new(), &mut |name, _| names.push(name.to_string()));
        let mut want = vec!["conv1.weight", "conv2.weight"];
        if shortcut {
            want.push("downsample.0.weight");
        }
        prop_assert_eq!(names, want);
        let g1 = Geo { n, c, h, w, cout, k: (3, 3), stride, pad: (1, 1) };
        let (oh, ow) = g1.out();
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            let a: Vec<f64> = conv_ref(x, &p[0], &[], g1).iter().map(|v| v.max(0.0)).collect();
            let b = conv_ref(&a, &p[1], &[], Geo { c: cout, h: oh, w: ow, k: (3, 3), stride: 1, ..g1 });
            let s = if shortcut {
                conv_ref(x, &p[2], &[], Geo { k: (1, 1), pad: (0, 0), ..g1 })
            } else {
                x.to_vec()
            };
            b.iter().zip(&s).map(|(u, v)| (u + v).max(0.0)).collect()
        });
    }
}

#[test]
fn pooling_sizes_follow_pytorch() {
    // GoogLeNet's 3×3/2 ceil pools: 112 → 56, 56 → 28, 28 → 14; 2×2/2 ceil: 14 → 7.
    for (n, k, want) in [(112, 3, 56), (56, 3, 28), (28, 3, 14), (14, 2, 7)] {
        let pool = MaxPool2d::new(k, 2).ceil_mode(true);
        assert_eq!(pool.output_shape(&[1, n, n]).unwrap(), vec![1, want, want]);
    }
    // ResNet's 3×3/2 pad 1: 112 → 56. Ceil mode never starts a window in the right padding.
    let pool = MaxPool2d::new(3, 2).padding(1);
    assert_eq!(pool.output_shape(&[1, 112, 112]).unwrap(), vec![1, 56, 56]);
    let pool = MaxPool2d::new(2, 2).padding(1).ceil_mode(true);
    assert_eq!(pool.output_shape(&[1, 5, 5]).unwrap(), vec![1, 3, 3]);
    assert!(
        MaxPool2d::new(3, 1)
            .padding(2)
            .output_shape(&[1, 5, 5])
            .is_err()
    );
    assert!(AvgPool2d::new(3, 1, 2).output_shape(&[1, 5, 5]).is_err());
}

#[test]
fn new_layers_round_trip_through_their_specs() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::rect(3, 4, (1, 7)).padding2((0, 3)).bias(false)),
        Box::new(Conv2d::new(3, 4, 3).padding(1)),
        Box::new(MaxPool2d::new(3, 2).padding(1).ceil_mode(true)),
        Box::new(AvgPool2d::new(3, 1, 1)),
        Box::new(AdaptiveAvgPool2d::new((2, 3))),
        Box::new(Concat::new(vec![
            ("x", Box::new(Conv2d::new(3, 2, 1)) as Box<dyn Layer>),
            (
                "",
                Box::new(Block::new(vec![(
                    "y",
                    Box::new(Conv2d::new(3, 5, 1)) as Box<dyn Layer>,
                )])),
            ),
        ])),
        Box::new(ResBlock::new(
            Block::new(vec![(
                "conv1",
                Box::new(Conv2d::new(3, 3, 3).padding(1)) as Box<dyn Layer>,
            )]),
            Some(Block::indexed(vec![
                Box::new(Conv2d::new(3, 3, 1)) as Box<dyn Layer>
            ])),
        )),
    ];
    for layer in layers {
        let spec = layer.spec();
        let back = from_spec(&spec).unwrap_or_else(|e| panic!("{}: {e}", layer.describe()));
        assert_eq!(back.spec(), spec);
        assert_eq!(back.describe(), layer.describe());
        assert_eq!(
            back.output_shape(&[3, 9, 9]).unwrap(),
            layer.output_shape(&[3, 9, 9]).unwrap()
        );
    }
    // A square convolution keeps the spec files written before rectangles existed.
    let old = Conv2d::new(3, 4, 5).padding(2).spec();
    assert!(old.get_int("kernel").is_ok() && old.get_int("kernel_h").is_err());
}

/// `(name, shape)` of every tensor a model holds.
fn values(model: &Sequential) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    model.visit_values(&mut |v| out.push((v.name.to_string(), v.shape.to_vec())));
    out
}

#[test]
fn zoo_models_have_torchvision_names_and_rebuild_from_specs() {
    let r18 = zoo::resnet18(10, 0).unwrap();
    assert_eq!(r18.output_shape(), [10]);
    let v = values(&r18);
    // torchvision's resnet18 state_dict: 122 keys, of which 20 num_batches_tracked.
    assert_eq!(v.len(), 102);
    for (name, shape) in [
        ("conv1.weight", vec![64, 3, 7, 7]),
        ("bn1.running_var", vec![64]),
        ("layer1.0.conv1.weight", vec![64, 64, 3, 3]),
        ("layer2.0.downsample.0.weight", vec![128, 64, 1, 1]),
        ("layer2.0.downsample.1.running_mean", vec![128]),
        ("layer4.1.bn2.bias", vec![512]),
        ("fc.weight", vec![10, 512]),
    ] {
        assert!(
            v.contains(&(name.to_string(), shape.clone())),
            "{name} {shape:?}"
        );
    }
    let g = zoo::googlenet(10, 0).unwrap();
    let v = values(&g);
    assert!(v.contains(&(
        "inception4a.branch4.1.conv.weight".into(),
        vec![64, 480, 1, 1]
    )));
    assert!(v.contains(&("inception5b.branch3.1.bn.running_mean".into(), vec![128])));
    let i3 = zoo::inception_v3(10, 0).unwrap();
    let v = values(&i3);
    assert!(v.contains(&(
        "Mixed_6b.branch7x7_2.conv.weight".into(),
        vec![128, 128, 1, 7]
    )));
    assert!(v.contains(&(
        "Mixed_7c.branch3x3dbl_3b.conv.weight".into(),
        vec![384, 384, 3, 1]
    )));
    assert!(v.contains(&("Mixed_5b.branch_pool.bn.weight".into(), vec![32])));
    for model in [&r18, &g, &i3] {
        let again = Sequential::from_specs(model.input_shape(), &model.specs(), 1).unwrap();
        assert_eq!(values(&again), values(model));
        assert_eq!(again.output_shape(), model.output_shape());
    }
    for (model, classes) in [
        (zoo::alexnet(7, 0), 7),
        (zoo::vgg11_bn(7, 0), 7),
        (zoo::resnet50(7, 0), 7),
    ] {
        assert_eq!(model.unwrap().output_shape(), [classes]);
    }
}

/// Every architecture takes any side from its `MIN_SIDES` entry up (torchvision's limits:
/// AlexNet 63, GoogLeNet 31, Inception v3 75, VGG 32) and refuses a smaller one by name;
/// the three with fixed ImageNet sizes before train and evaluate at their smallest.
#[test]
fn zoo_builds_from_its_smallest_side_and_refuses_below() {
    for (name, min) in zoo::MIN_SIDES {
        if min > 1 {
            let err = zoo::build(name, 5, min - 1, 0)
                .err()
                .expect(name)
                .to_string();
            let want = format!("{name} takes images of at least {min}×{min} pixels");
            assert!(err.contains(&want), "{name}: {err}");
        }
    }
    for (name, min) in [("alexnet", 63), ("googlenet", 31), ("inception_v3", 75)] {
        let mut model = zoo::build(name, 5, min, 0).unwrap();
        assert_eq!(model.input_shape(), [3, min, min]);
        let len = 2 * 3 * min * min;
        let x = ferroconv::Tensor::from_vec(
            &[2, 3, min, min],
            (0..len).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect(),
        )
        .unwrap();
        let mut loss = ferroconv::SoftmaxCrossEntropy::new();
        let logits = model.forward(&x, ferroconv::layers::Mode::Train).unwrap();
        assert_eq!(logits.shape(), [2, 5]);
        loss.forward(logits, &[1, 3]).unwrap();
        model.backward(loss.grad()).unwrap();
        let logits = model.forward(&x, ferroconv::layers::Mode::Eval).unwrap();
        assert!(logits.data().iter().all(|v| v.is_finite()), "{name}");
    }
}

/// Max-pool backward runs in parallel over planes for large inputs: the same bits as on
/// one thread (plain 2×2 and padded ceil-mode windows), and each input gradient is the
/// output gradient at its window's winner.
#[test]
fn maxpool_backward_is_the_same_on_any_thread_count() {
    let (n, c, h) = (8, 32, 30);
    let x: Vec<f32> = (0..n * c * h * h)
        .map(|i| ((i * 7919) % 1013) as f32)
        .collect();
    let x = ferroconv::Tensor::from_vec(&[n, c, h, h], x).unwrap();
    for ceil in [false, true] {
        let run = |threads: usize| {
            common::on_threads(threads, || {
                let mut layer = match ceil {
                    false => MaxPool2d::new(2, 2),
                    true => MaxPool2d::new(3, 2).padding(1).ceil_mode(true),
                };
                let y = layer.forward(&x, ferroconv::layers::Mode::Train).clone();
                let dy = ferroconv::Tensor::from_vec(
                    y.shape(),
                    (0..y.len()).map(|i| 1.0 + (i % 5) as f32).collect(),
                )
                .unwrap();
                let dx = layer.backward(&dy, true).clone();
                (dy, dx)
            })
        };
        let (dy, one) = run(1);
        let (_, two) = run(2);
        assert_eq!(one.data(), two.data(), "ceil {ceil}");
        let (sum_dx, sum_dy): (f64, f64) = (
            one.data().iter().map(|&v| v as f64).sum(),
            dy.data().iter().map(|&v| v as f64).sum(),
        );
        assert_eq!(sum_dx, sum_dy, "every output gradient lands once");
    }
}
