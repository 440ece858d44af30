//! Batch norm folded into the convolutions for inference (`Sequential::fold_batch_norm`)
//! and ReLUs fused into them (`Sequential::fuse_for_inference`): evaluation logits of the
//! folded model against the unfolded one, for every zoo family at small inputs and the
//! BN-containing presets, with non-default batch-norm parameters and running statistics;
//! saving and loading a folded model; training through a fused ReLU (in training,
//! `Sequential` fuses each ReLU after a convolution by itself).
//!
//! Tolerance: `max |folded − unfolded| ≤ TOL · max |unfolded|` over the logits. Folding
//! changes the rounding only (`W·s` rounded once, and the batch norm's own
//! `(x − μ)·inv·γ + β` gone). Measured: 1.0e-7 (inception_v3@75) to 6.7e-7 (resnet9,
//! vgg16_bn@64); 1e-5 leaves room for other kernels' rounding and is far below what a
//! fold that ignores a running statistic gives (`fold_depends_on_running_statistics`).

use ferroconv::layers::{Conv2d, Layer, Mode, ParamKind, ReLU};
use ferroconv::{Sequential, Tensor, zoo};

const TOL: f32 = 1e-5;

/// A deterministic pseudo-random stream in `[0, 1)`.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Random inputs `[n, c, h, w]` in `[-1, 1)`.
fn images(shape: &[usize], seed: u64) -> Tensor {
    let mut r = Rng(seed | 1);
    let len = shape.iter().product();
    Tensor::from_vec(shape, (0..len).map(|_| 2.0 * r.next() - 1.0).collect()).unwrap()
}

/// Gives every batch norm a random scale `γ ∈ [0.5, 1.5)`, shift `β ∈ [-0.5, 0.5)`,
/// running mean in `[-0.5, 0.5)` and running variance in `[0.5, 2.5)`: the defaults
/// (γ = 1, β = 0, μ = 0, σ² = 1) would make a fold that ignored them pass.
fn randomise_norms(model: &mut Sequential, seed: u64) -> usize {
    let mut r = Rng(seed | 1);
    let mut count = 0;
    model.visit_params(&mut |name, p| {
        if p.kind == ParamKind::Norm {
            let (lo, span) = if name.ends_with("weight") {
                count += 1;
                (0.5, 1.0)
            } else {
                (-0.5, 1.0)
            };
            p.value.iter_mut().for_each(|v| *v = lo + span * r.next());
        }
    });
    model.visit_buffers(&mut |name, b| {
        let (lo, span) = if name.ends_with("running_var") {
            (0.5, 2.0)
        } else {
            (-0.5, 1.0)
        };
        b.iter_mut().for_each(|v| *v = lo + span * r.next());
    });
    count
}

/// `max |a − b| / max |a|`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let scale = a.data().iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a
        .data()
        .iter()
        .zip(b.data())
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(scale > 0.0, "all-zero logits compare nothing");
    diff / scale
}

/// Builds the model twice, randomises the batch norms alike, folds (or fuses) one, and
/// compares evaluation logits on a batch of 2. Returns the relative difference and the
/// number of removed layers.
fn check(build: &dyn Fn() -> Sequential, fuse: bool) -> (f32, usize, usize) {
    let (mut plain, mut folded) = (build(), build());
    let norms = randomise_norms(&mut plain, 7);
    randomise_norms(&mut folded, 7);
    let removed = if fuse {
        folded.fuse_for_inference()
    } else {
        folded.fold_batch_norm()
    };
    let mut shape = vec![2];
    shape.extend_from_slice(plain.input_shape());
    let x = images(&shape, 3);
    let a = plain.forward(&x, Mode::Eval).unwrap().clone();
    let b = folded.forward(&x, Mode::Eval).unwrap().clone();
    (rel_diff(&a, &b), removed, norms)
}

/// Every batch norm of the model is folded, and the logits agree.
fn check_family(name: &str, build: &dyn Fn() -> Sequential) {
    check_some(name, build, true)
}

/// [`check_family`]; with `all` false some batch norms may stay (one after a pool).
fn check_some(name: &str, build: &dyn Fn() -> Sequential, all: bool) {
    let (d, removed, norms) = check(build, false);
    println!("{name}: {removed} of {norms} batch norms folded, relative difference {d:.2e}");
    if all {
        assert_eq!(
            removed, norms,
            "{name}: every batch norm follows a convolution"
        );
    } else {
        assert!(
            removed > 0 && removed < norms,
            "{name}: {removed} of {norms} folded"
        );
    }
    assert!(d <= TOL, "{name}: folded logits differ by {d:e} (relative)");
    let mut m = build();
    m.fold_batch_norm();
    let mut left = 0;
    m.visit_values(&mut |v| left += v.name.ends_with("running_mean") as usize);
    assert_eq!(
        left,
        norms - removed,
        "{name}: batch norms left after folding"
    );
    let (d, removed_f, _) = check(build, true);
    println!("{name}: fused ({removed_f} layers removed), relative difference {d:.2e}");
    assert!(removed_f > removed, "{name}: no ReLU fused");
    assert!(d <= TOL, "{name}: fused logits differ by {d:e} (relative)");
}

#[test]
fn resnets_fold() {
    for depth in [18, 34, 50] {
        check_family(&format!("resnet{depth}@64"), &|| {
            zoo::resnet(depth, 10, 64, 0).unwrap()
        });
    }
}

#[test]
fn vggs_fold() {
    check_family("vgg11_bn@64", &|| {
        zoo::vgg(zoo::VGG11_CONFIG, true, 10, 0.5, 64, 0).unwrap()
    });
    check_family("vgg16_bn@64", &|| {
        zoo::vgg(zoo::VGG16_CONFIG, true, 10, 0.5, 64, 0).unwrap()
    });
}

#[test]
fn inceptions_fold() {
    check_family("googlenet@64", &|| zoo::googlenet_at(10, 64, 0).unwrap());
    check_family("inception_v3@75", &|| {
        zoo::inception_v3_at(10, 75, 0).unwrap()
    });
}

#[test]
fn presets_fold() {
    // resnet9: batch norms inside `Residual` branches (named by position).
    check_family("resnet9", &|| ferroconv::models::resnet9(0).unwrap());
    // fast_net: conv → pool → batch norm in places; those batch norms stay.
    check_some(
        "fast_net",
        &|| ferroconv::models::fast_net(0).unwrap(),
        false,
    );
}

/// Models without batch norm: nothing to fold, ReLUs still fuse, logits unchanged.
#[test]
fn no_batch_norm_families() {
    for (name, build) in [
        (
            "vgg11@64",
            Box::new(|| zoo::vgg(zoo::VGG11_CONFIG, false, 10, 0.5, 64, 0).unwrap())
                as Box<dyn Fn() -> Sequential>,
        ),
        ("alexnet", Box::new(|| zoo::alexnet(10, 0).unwrap())),
    ] {
        let (d, removed, _) = check(&build, false);
        assert_eq!((removed, d), (0, 0.0), "{name}: nothing to fold");
        let (d, removed, _) = check(&build, true);
        println!("{name}: {removed} ReLUs fused, relative difference {d:.2e}");
        assert!(removed > 0 && d <= TOL, "{name}: {removed} fused, {d:e}");
    }
}

/// The fold uses the running statistics: folding a model, then changing a batch norm's
/// running variance in the unfolded copy, must change its logits away from the folded
/// ones (so the comparison above is not vacuous).
#[test]
fn fold_depends_on_running_statistics() {
    let build = || zoo::resnet(18, 10, 64, 0).unwrap();
    let (mut plain, mut folded) = (build(), build());
    randomise_norms(&mut plain, 7);
    randomise_norms(&mut folded, 7);
    folded.fold_batch_norm();
    plain.visit_buffers(&mut |name, b| {
        if name == "layer2.0.bn1.running_var" {
            b.iter_mut().for_each(|v| *v *= 2.0);
        }
    });
    let x = images(&[2, 3, 64, 64], 3);
    let a = plain.forward(&x, Mode::Eval).unwrap().clone();
    let b = folded.forward(&x, Mode::Eval).unwrap().clone();
    let d = rel_diff(&a, &b);
    assert!(
        d > 10.0 * TOL,
        "a changed variance moved the logits by only {d:e}"
    );
}

/// A folded (and fused) model saves and reloads by itself, with the same logits bit for
/// bit; its names are the convolutions' (now with a bias), the batch norms' gone. The
/// unfolded model's file does not load into it.
#[test]
fn folded_model_saves_and_loads() {
    let dir = std::env::temp_dir().join(format!("ferroconv-fold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut plain = zoo::resnet(18, 10, 64, 0).unwrap();
    randomise_norms(&mut plain, 11);
    let plain_file = dir.join("plain.safetensors");
    plain.save(&plain_file).unwrap();
    let mut folded = Sequential::load(&plain_file).unwrap();
    // 20 batch norms; the stem's ReLU and each BasicBlock's inner one (the block's last
    // ReLU is the ResBlock's own).
    assert_eq!(folded.fuse_for_inference(), 20 + 9);
    let names: Vec<String> = folded.param_names().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"conv1.bias".to_string()), "{names:?}");
    assert!(names.contains(&"layer2.0.downsample.0.bias".to_string()));
    assert!(!names.iter().any(|n| n.contains("bn")), "{names:?}");
    let file = dir.join("folded.safetensors");
    folded.save(&file).unwrap();
    let mut back = Sequential::load(&file).unwrap();
    assert!(back.summary().contains("+ReLU"), "{}", back.summary());
    let x = images(&[2, 3, 64, 64], 5);
    let a = folded.forward(&x, Mode::Eval).unwrap().clone();
    let b = back.forward(&x, Mode::Eval).unwrap().clone();
    assert_eq!(a.data(), b.data());
    let c = plain.forward(&x, Mode::Eval).unwrap().clone();
    assert!(rel_diff(&c, &a) <= TOL);
    let err = back.load_weights(&plain_file).unwrap_err().to_string();
    assert!(err.contains("bn1") || err.contains("conv1.bias"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A ReLU layer that hides its kind, so that nothing fuses it into the convolution
/// before it: the reference the fused forms are checked against.
struct SeparateReLU(ReLU);

impl Layer for SeparateReLU {
    fn describe(&self) -> String {
        "separate ReLU".into()
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.0.output_shape(input)
    }
    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        self.0.forward(x, mode)
    }
    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        self.0.backward(grad_out, need_input_grad)
    }
}

/// A convolution followed by a ReLU layer trains as one layer: `Sequential` lets the
/// convolution apply the ReLU and skips the ReLU layer (in training too), and
/// `fuse_for_inference` absorbs it. Both give the outputs and parameter gradients of the
/// convolution followed by a separate ReLU, bit for bit (signed zeros included), at
/// batch 3 (im2col) and batch 1 (Winograd for the 3×3 layers); and a NaN input stays
/// NaN through a fused ReLU as through the layer.
#[test]
fn fused_relu_trains_like_a_relu_layer() {
    let relu = |separate: bool| -> Box<dyn Layer> {
        match separate {
            true => Box::new(SeparateReLU(ReLU::new())),
            false => Box::new(ReLU::new()),
        }
    };
    let build = |separate: bool| {
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Conv2d::new(3, 8, 3).padding(1)),
            relu(separate),
            Box::new(Conv2d::new(8, 8, 5).padding(2)),
            relu(separate),
            Box::new(Conv2d::new(8, 8, 3).padding(1)),
            relu(separate),
        ];
        Sequential::new(&[3, 12, 12], layers, 4).unwrap()
    };
    let bits = |t: &Tensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let grads = |m: &mut Sequential| {
        let mut v = Vec::new();
        m.visit_params(&mut |name, p| {
            v.push((
                name.to_string(),
                p.grad.iter().map(|g| g.to_bits()).collect::<Vec<_>>(),
            ))
        });
        v
    };
    for batch in [3, 1] {
        let (mut reference, mut fused, mut absorbed) = (build(true), build(false), build(false));
        let fused_lines = fused.summary().matches("(done by the layer above)").count();
        assert_eq!(fused_lines, 3, "{}", fused.summary());
        assert!(
            !reference.summary().contains("done by"),
            "{}",
            reference.summary()
        );
        assert_eq!(absorbed.fuse_for_inference(), 3);
        let x = images(&[batch, 3, 12, 12], 9);
        let y = reference.forward(&x, Mode::Train).unwrap().clone();
        assert!(y.data().contains(&0.0) && y.data().iter().any(|&v| v > 0.0));
        let g = images(y.shape(), 13);
        reference.backward(&g).unwrap();
        let want = grads(&mut reference);
        for (name, m) in [("fused", &mut fused), ("absorbed", &mut absorbed)] {
            let got = m.forward(&x, Mode::Train).unwrap().clone();
            assert_eq!(bits(&got), bits(&y), "{name} outputs, batch {batch}");
            m.backward(&g).unwrap();
            assert_eq!(grads(m), want, "{name} gradients, batch {batch}");
        }
        let mut nan = x.clone();
        nan.data_mut()[5] = f32::NAN;
        // Evaluation and training may take different algorithms (a Winograd tile spreads
        // the NaN further): compare each mode with the reference in the same mode.
        for mode in [Mode::Eval, Mode::Train] {
            let want = bits(reference.forward(&nan, mode).unwrap());
            assert!(want.iter().any(|&b| f32::from_bits(b).is_nan()));
            for m in [&mut fused, &mut absorbed] {
                let got = bits(m.forward(&nan, mode).unwrap());
                assert_eq!(got, want, "NaN, {mode:?}, batch {batch}");
            }
        }
    }
}

/// Evaluation passes multiply by the weights packed once (`gemm::PackedA`) and reuse
/// Winograd's packed filter transform; training passes pack them every time. Both give the
/// same outputs bit for bit at batch 8 (the 3×3 layer takes the same algorithm in both
/// modes there), and within TOL at batch 1 (evaluation takes im2col, training may take
/// Winograd); also after the weights change (the caches are dropped).
#[test]
fn evaluation_caches_match_training_passes() {
    let build = || {
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Conv2d::new(3, 16, 5).padding(2)),
            Box::new(ReLU::new()),
            Box::new(Conv2d::new(16, 24, 3).padding(1)),
            Box::new(ReLU::new()),
            Box::new(Conv2d::new(24, 4, 1)),
        ];
        Sequential::new(&[3, 20, 20], layers, 8).unwrap()
    };
    for batch in [1, 8] {
        let mut m = build();
        let x = images(&[batch, 3, 20, 20], 21);
        for round in 0..2 {
            let e1 = m.forward(&x, Mode::Eval).unwrap().clone();
            let e2 = m.forward(&x, Mode::Eval).unwrap().clone();
            let t = m.forward(&x, Mode::Train).unwrap().clone();
            assert_eq!(e1.data(), e2.data(), "batch {batch}, round {round}");
            if batch == 8 {
                assert_eq!(e1.data(), t.data(), "batch {batch}, round {round}");
            } else {
                // Batch 1 evaluates the 3×3 layer by im2col, training by Winograd.
                assert!(rel_diff(&t, &e1) < TOL, "batch {batch}, round {round}");
            }
            // Change the weights: the next evaluation must see them.
            m.visit_params(&mut |_, p| p.value.iter_mut().for_each(|v| *v *= 1.5));
            let after = m.forward(&x, Mode::Eval).unwrap().clone();
            assert!(rel_diff(&e1, &after) > 0.1, "stale cache at batch {batch}");
        }
    }
}
