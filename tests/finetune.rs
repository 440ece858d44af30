//! Fine-tuning: freezing (by prefix, layer range, backbone), frozen batch norm, head
//! replacement, per-group learning rates, and a fine-tuning run resumed bit for bit.

mod common;
use common::*;

use ferroconv::data::{Cifar10, Dataset, Subset};
use ferroconv::driver::{RunConfig, run};
use ferroconv::finetune::{FineTune, Freeze};
use ferroconv::layers::Mode;
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::recipe::Recipe;
use ferroconv::{Sequential, SoftmaxCrossEntropy, Tensor, zoo};
use std::collections::BTreeMap;

fn images(n: usize, seed: u32) -> Tensor {
    let data = (0..n * 3072)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
        .collect();
    Tensor::from_vec(&[n, 3, 32, 32], data).unwrap()
}

/// Every parameter and buffer by name.
fn values(m: &Sequential) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    m.visit_values(&mut |v| {
        out.insert(v.name.to_string(), v.values.to_vec());
    });
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `steps` SGD steps (momentum, weight decay on everything) on one fixed batch; the losses.
fn train(m: &mut Sequential, opt: &mut dyn Optimizer, steps: usize) -> Vec<f64> {
    let x = images(8, 7);
    let labels: Vec<u32> = (0..8).map(|i| i % m.output_shape()[0] as u32).collect();
    let mut loss = SoftmaxCrossEntropy::new();
    (0..steps)
        .map(|_| {
            let logits = m.forward(&x, Mode::Train).unwrap();
            let l = loss.forward(logits, &labels).unwrap().loss;
            m.backward(loss.grad()).unwrap();
            opt.step(m);
            l
        })
        .collect()
}

#[test]
fn frozen_parameters_and_batch_norm_stay_bit_identical() {
    let mut m = zoo::resnet(18, 4, 32, 1).unwrap();
    let frozen = m.freeze_prefix("layer1").unwrap() + m.freeze_prefix("conv1.").unwrap();
    assert_eq!(frozen, m.frozen_params().len());
    assert!(m.is_frozen("layer1.1.bn2.weight") && !m.is_frozen("layer2.0.conv1.weight"));
    assert!(!m.is_frozen("bn1.weight"), "conv1. does not reach bn1");
    let before = values(&m);
    let mut opt = Sgd::new(0.05, 0.9).weight_decay(0.01);
    train(&mut m, &mut opt, 3);
    let after = values(&m);
    for (name, v) in &before {
        let same = bits(v) == bits(&after[name]);
        let expect_same = name.starts_with("layer1.") || name.starts_with("conv1.");
        assert_eq!(same, expect_same, "{name}: unchanged = {same}");
    }
    // The optimizer state of frozen parameters was never touched.
    for (name, buf) in opt.state(&m) {
        if name.starts_with("momentum.layer1.") {
            assert!(buf.iter().all(|&b| b == 0.0), "{name}");
        }
    }
}

#[test]
fn a_frozen_backbone_trains_like_evaluation_and_only_the_head_learns() {
    let mut m = zoo::resnet(18, 3, 32, 2).unwrap();
    assert_eq!(m.head_prefix().unwrap(), "fc.");
    m.freeze_backbone().unwrap();
    assert_eq!(m.frozen_params().len(), m.param_names().len() - 2);
    let x = images(4, 3);
    let eval = m.forward(&x, Mode::Eval).unwrap().clone();
    let trained = m.forward(&x, Mode::Train).unwrap().clone();
    // Evaluation may pick another convolution algorithm (im2col at small batches, where
    // training takes Winograd), so the two agree to rounding, not bit for bit; batch
    // statistics instead of the running ones would change the logits by far more.
    assert_eq!(eval.shape(), trained.shape());
    for (i, (&e, &t)) in eval.data().iter().zip(trained.data()).enumerate() {
        assert!(
            (e - t).abs() <= 1e-4 * (1.0 + e.abs()),
            "frozen BN uses running stats: logit {i}: eval {e}, train {t}"
        );
    }
    let before = values(&m);
    let losses = train(&mut m, &mut Sgd::new(0.05, 0.9).weight_decay(0.01), 8);
    assert!(losses[7] < losses[0], "the head learns: {losses:?}");
    let after = values(&m);
    for (name, v) in &before {
        assert_eq!(
            bits(v) == bits(&after[name]),
            !name.starts_with("fc."),
            "{name}"
        );
    }
    // The same on a network without batch norm, with Adam.
    let mut k = ferroconv::models::keras_net_for([3, 32, 32], 5, 0).unwrap();
    k.freeze_backbone().unwrap();
    let losses = train(&mut k, &mut ferroconv::optim::Adam::new(0.01), 10);
    assert!(losses[9] < losses[0], "{losses:?}");
}

#[test]
fn heads_and_freeze_specs() {
    let m = zoo::googlenet(1000, 0).unwrap();
    assert_eq!(m.head_prefix().unwrap(), "fc.");
    let s = ferroconv::models::seed_net(0).unwrap();
    assert_eq!(s.head_prefix().unwrap(), "fc3.");
    for spec in ["backbone", "none", "0..4", "layer1.,layer2", "features"] {
        assert_eq!(Freeze::parse(spec).unwrap().describe(), spec);
    }
    assert_eq!(Freeze::parse("..3").unwrap(), Freeze::Layers(0..3));
    assert!(Freeze::parse("layer1,,fc").is_err());
    let mut m = zoo::resnet(18, 3, 32, 0).unwrap();
    let e = m.freeze_prefix("features").unwrap_err().to_string();
    assert!(
        e.contains("no parameter is under \"features\"") && e.contains("layer1"),
        "{e}"
    );
    assert!(m.frozen_params().is_empty());
    assert!(m.freeze_layers(0..99).is_err());
    // Layers 0..4 are conv1, bn1, relu, maxpool.
    assert_eq!(m.freeze_layers(0..4).unwrap(), 3);
    assert!(m.is_frozen("bn1.bias") && !m.is_frozen("layer1.0.conv1.weight"));
    m.unfreeze_all();
    assert!(m.frozen_params().is_empty());
    let e = Freeze::Prefixes(vec![
        "conv1".into(),
        "bn1".into(),
        "layer1".into(),
        "layer2".into(),
        "layer3".into(),
        "layer4".into(),
        "fc".into(),
    ])
    .apply(&mut m)
    .unwrap_err()
    .to_string();
    assert!(e.contains("nothing left to train"), "{e}");
    // "layer1" is a module name: it does not reach a "layer10".
    assert!(ferroconv::finetune::under_prefix("layer1.0.w", "layer1"));
    assert!(!ferroconv::finetune::under_prefix("layer10.w", "layer1"));
}

#[test]
fn replacing_the_head_keeps_the_names_and_everything_else() {
    let dir = temp_dir("head");
    let mut m = zoo::resnet(18, 1000, 32, 4).unwrap();
    m.freeze_prefix("layer1").unwrap();
    let before = values(&m);
    m.replace_head(7, 9).unwrap();
    assert_eq!(m.output_shape(), &[7]);
    let after = values(&m);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "same names, one to one"
    );
    let shapes: BTreeMap<String, usize> = m.param_names().into_iter().collect();
    assert_eq!(shapes["fc.weight"], 7 * 512);
    assert_eq!(shapes["fc.bias"], 7);
    for (name, v) in &before {
        if !name.starts_with("fc.") {
            assert_eq!(bits(v), bits(&after[name]), "{name}");
        }
    }
    assert!(
        m.is_frozen("layer1.0.conv1.weight"),
        "the frozen set survives"
    );
    let path = dir.join("m.safetensors");
    m.save(&path).unwrap();
    let back = Sequential::load(&path).unwrap();
    assert_eq!(back.param_names(), m.param_names());
    // A model whose last parameter is not a Dense layer has no replaceable head.
    let mut conv = Sequential::new(
        &[3, 8, 8],
        vec![Box::new(ferroconv::layers::Conv2d::new(3, 2, 3))],
        0,
    )
    .unwrap();
    let e = conv.replace_head(5, 0).unwrap_err().to_string();
    assert!(e.contains("not a Dense"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_learning_rate_factor_scales_the_head_step() {
    let make = || ferroconv::models::seed_net_for([3, 32, 32], 5, 3).unwrap();
    let (mut plain, mut fast) = (make(), make());
    assert_eq!(
        fast.set_lr_factor_if(&|n| n.starts_with("fc3."), 10.0)
            .unwrap(),
        2
    );
    assert!(fast.set_lr_factor_if(&|_| true, 0.0).is_err());
    assert_eq!(fast.lr_factor("fc3.weight"), 10.0);
    let start = values(&plain);
    train(&mut plain, &mut Sgd::new(0.01, 0.0), 1);
    train(&mut fast, &mut Sgd::new(0.01, 0.0), 1);
    let (p, f) = (values(&plain), values(&fast));
    for (name, v0) in &start {
        for ((a, b), z) in p[name].iter().zip(&f[name]).zip(v0) {
            if name.starts_with("fc3.") {
                let (dp, df) = (a - z, b - z);
                // f32 rounding of `p + Δ` leaves ~1e-4 relative on Δ.
                assert!(
                    (df - 10.0 * dp).abs() <= 1e-3 * df.abs() + 1e-7,
                    "{name}: {dp} {df}"
                );
            } else {
                assert_eq!(a.to_bits(), b.to_bits(), "{name}");
            }
        }
    }
}

/// 120 images of 10 classes (random pixels, labels by position).
fn tiny() -> Cifar10 {
    let n = 120;
    let mut state = 12345u32;
    let pixels = (0..n * 3072)
        .map(|_| {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 24) as u8
        })
        .collect();
    Cifar10::from_raw(pixels, (0..n).map(|i| (i % 10) as u8).collect()).unwrap()
}

#[test]
fn a_fine_tuning_run_resumes_bit_for_bit() {
    let dir = temp_dir("finetune-resume");
    let data = tiny();
    let labels: Vec<u32> = data.labels().iter().map(|&l| l.into()).collect();
    let train = Subset::of_classes(&data, &labels, &[5, 6, 7], None).unwrap();
    assert_eq!((train.len(), train.classes()[0].as_str()), (36, "dog"));
    // "Pretrained" weights: the fast network for 10 classes, saved as a model file.
    let pretrained = dir.join("pre.safetensors");
    ferroconv::models::fast_net_for([3, 32, 32], 10, 5)
        .unwrap()
        .save(&pretrained)
        .unwrap();
    let mut recipe = Recipe::preset("fast").unwrap();
    // A constant rate, so a run stopped after epoch 1 (of a 1-epoch plan) resumes on the
    // same schedule as the one that never stopped.
    (recipe.epochs, recipe.batch_size, recipe.lr) = (3, 12, 0.05);
    recipe.schedule = "constant".into();
    let fine = FineTune {
        pretrained: Some(pretrained.clone()),
        fresh_head: false,
        freeze: Freeze::parse("0..3").unwrap(),
        head_lr: Some(0.8),
    };
    let config = |save: &str, resume: bool, epochs: u64| {
        let mut c = RunConfig::new(
            Recipe {
                epochs,
                ..recipe.clone()
            },
            3,
        );
        c.fine_tune = fine.clone();
        c.save = Some(dir.join(save));
        c.resume = resume.then(|| dir.join(save));
        c
    };
    let straight = run(&config("a", false, 3), &train, &train, &mut |_| {}).unwrap();
    assert_eq!(
        straight.model.output_shape(),
        &[3],
        "the head was replaced: 10 → 3"
    );
    run(&config("b", false, 1), &train, &train, &mut |_| {}).unwrap();
    let resumed = run(&config("b", true, 3), &train, &train, &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_after, Some(1));
    let (a, b) = (values(&straight.model), values(&resumed.model));
    assert_eq!(a.len(), b.len());
    for (name, v) in &a {
        assert_eq!(bits(v), bits(&b[name]), "{name} differs after resuming");
    }
    // The frozen layers are the pretrained ones, bit for bit.
    let pre = values(&Sequential::load(&pretrained).unwrap());
    let frozen: Vec<&String> = a.keys().filter(|n| straight.model.is_frozen(n)).collect();
    assert!(!frozen.is_empty());
    for name in frozen {
        assert_eq!(bits(&a[name]), bits(&pre[name]), "{name}");
    }
    // Resuming without the same freezing is refused, naming it.
    let mut other = config("b", true, 4);
    other.fine_tune.freeze = Freeze::Nothing;
    let e = run(&other, &train, &train, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("freeze"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
