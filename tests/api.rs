//! The library API a user embeds: model files, names, errors instead of panics, and
//! non-finite numbers caught. No data needed.

mod common;
use common::temp_dir;

use ferroconv::checkpoint::{SafeTensors, StoredTensor, load_model, load_training};
use ferroconv::data::{Cifar10, Normalize};
use ferroconv::layers::{
    BatchNorm2d, Conv2d, Dense, Dropout, Flatten, Gelu, GlobalAvgPool, Layer, MaxPool2d, ReLU,
    Residual,
};
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::train::{Plan, evaluate, train_epoch};
use ferroconv::{Error, Mode, Sequential, SoftmaxCrossEntropy, Tensor};
use std::path::Path;

fn small() -> Sequential {
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("conv1", Box::new(Conv2d::new(3, 4, 3).padding(1))),
        ("relu1", Box::new(ReLU::new())),
        ("pool1", Box::new(MaxPool2d::new(2, 2))),
        ("flatten", Box::new(Flatten::new())),
        ("fc", Box::new(Dense::new(4 * 16 * 16, 10))),
    ];
    Sequential::named(&[3, 32, 32], layers, 1).unwrap()
}

/// Every built-in layer kind, nested in a residual block, with batch norm statistics.
fn every_layer() -> Sequential {
    let branch: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(8, 8, 3).padding(1).bias(false)),
        Box::new(BatchNorm2d::new(8).momentum(0.2)),
        Box::new(Gelu::new()),
    ];
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(3, 8, 3).padding(1).stride(2)),
        Box::new(ReLU::new()),
        Box::new(Residual::new(branch)),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(GlobalAvgPool::new()),
        Box::new(Dropout::new(0.25)),
        Box::new(Dense::new(8, 5).bias(false)),
    ];
    Sequential::new(&[3, 32, 32], layers, 3).unwrap()
}

fn images(n: usize, seed: u32) -> Tensor {
    let data = (0..n * 3072)
        .map(|i| ((i as u32).wrapping_mul(2654435761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
        .collect();
    Tensor::from_vec(&[n, 3, 32, 32], data).unwrap()
}

fn tiny_data(n: usize) -> Cifar10 {
    let pixels = (0..n * 3072).map(|i| (i * 31 % 256) as u8).collect();
    Cifar10::from_raw(pixels, (0..n).map(|i| (i % 10) as u8).collect()).unwrap()
}

#[test]
fn parameters_carry_the_layer_names() {
    let names: Vec<String> = small().param_names().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
    );
    let tutorial: Vec<String> = ferroconv::models::seed_net(0)
        .unwrap()
        .param_names()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(tutorial[0], "conv1.weight");
    assert_eq!(tutorial.last().unwrap(), "fc3.bias");
    let dup: Vec<(&str, Box<dyn Layer>)> = vec![
        ("a", Box::new(Flatten::new())),
        ("a", Box::new(Dense::new(3072, 2))),
    ];
    let err = Sequential::named(&[3, 32, 32], dup, 0).err().unwrap();
    assert!(
        err.to_string().contains("two layers are named \"a\""),
        "{err}"
    );
}

#[test]
fn save_then_load_rebuilds_any_model_from_the_file_alone() {
    let dir = temp_dir("api-save");
    for (name, mut model) in [("small", small()), ("every", every_layer())] {
        // A few training steps so batch-norm statistics and weights are not the initial ones.
        let mut loss = SoftmaxCrossEntropy::new();
        let mut opt = Sgd::new(0.01, 0.9);
        let classes = model.output_shape()[0] as u32;
        for step in 0..3 {
            let logits = model.forward(&images(4, step), Mode::Train).unwrap();
            loss.forward(logits, &[0, 1, 2, 3].map(|l| l % classes))
                .unwrap();
            model.backward(loss.grad()).unwrap();
            opt.step(&mut model);
        }
        model.set_normalization(Normalize::imagenet()).unwrap();
        let names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
        model.set_classes(names.clone()).unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        model.save(&path).unwrap();

        let mut back = Sequential::load(&path).unwrap();
        assert_eq!(back.summary(), model.summary(), "{name}");
        assert_eq!(back.normalization(), Some(&Normalize::imagenet()));
        assert_eq!(back.classes(), Some(names.as_slice()));
        let x = images(2, 99);
        let a = model.forward(&x, Mode::Eval).unwrap().clone();
        let b = back.forward(&x, Mode::Eval).unwrap();
        assert_eq!(a.data(), b.data(), "{name}: outputs differ after reload");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn backward_after_an_evaluation_forward_is_an_error() {
    for mut model in [small(), every_layer()] {
        let g = Tensor::zeros(&[2, model.output_shape()[0]]);
        let err = model.backward(&g).unwrap_err();
        assert!(err.to_string().contains("before any forward"), "{err}");
        model.forward(&images(2, 0), Mode::Eval).unwrap();
        let err = model.backward(&g).unwrap_err();
        assert!(err.to_string().contains("evaluation-mode"), "{err}");
        model.forward(&images(2, 0), Mode::Train).unwrap();
        model.backward(&g).unwrap();
    }
}

#[test]
fn build_errors_name_the_layer_and_shapes() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(3, 4, 3)),
        Box::new(Flatten::new()),
        Box::new(Dense::new(100, 10)),
    ];
    match Sequential::new(&[3, 32, 32], layers, 0) {
        Err(Error::Build {
            index,
            input,
            reason,
            ..
        }) => {
            assert_eq!(index, 2);
            assert_eq!(input, vec![4 * 30 * 30]);
            // Right after a Flatten: no advice to add one.
            assert!(!reason.contains("Flatten"), "{reason}");
        }
        other => panic!("expected a build error, got {:?}", other.err()),
    }
    let unflat: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(3072, 10))];
    let err = Sequential::new(&[3, 32, 32], unflat, 0).err().unwrap();
    assert!(err.to_string().contains("add a Flatten"), "{err}");
}

#[test]
fn a_layer_too_large_for_memory_is_an_error_not_an_abort() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Flatten::new()),
        Box::new(Dense::new(3072, 1 << 40)),
    ];
    let err = Sequential::new(&[3, 32, 32], layers, 0).err().unwrap();
    assert!(err.to_string().contains("cannot allocate"), "{err}");
    let huge: Vec<Box<dyn Layer>> = vec![Box::new(Conv2d::new(3, usize::MAX / 2, 3))];
    let err = Sequential::new(&[3, 32, 32], huge, 0).err().unwrap();
    assert!(err.to_string().contains("overflows"), "{err}");
}

#[test]
fn load_checks_everything_before_writing_anything() {
    let mut model = small();
    let before = model.param_names();
    let original = ferroconv::checkpoint::model_tensors(&model);
    let mut st = SafeTensors {
        tensors: original.clone(),
        ..Default::default()
    };
    // The first tensor (by name) is fine but changed; a later one has too few values.
    st.tensors.get_mut("conv1.bias").unwrap().data[0] = 42.0;
    st.tensors.get_mut("fc.weight").unwrap().data.pop();
    let err = load_model(&mut model, &st, Path::new("x.safetensors")).unwrap_err();
    assert!(err.to_string().contains("fc.weight"), "{err}");
    assert_eq!(ferroconv::checkpoint::model_tensors(&model), original);
    assert_eq!(model.param_names(), before);

    // A NaN weight is refused, naming the tensor.
    let mut st = SafeTensors {
        tensors: original.clone(),
        ..Default::default()
    };
    st.tensors.get_mut("fc.bias").unwrap().data[3] = f32::NAN;
    let err = load_model(&mut model, &st, Path::new("x.safetensors")).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert!(err.to_string().contains("fc.bias"), "{err}");
    assert_eq!(ferroconv::checkpoint::model_tensors(&model), original);
}

#[test]
fn a_mismatch_is_summarised_in_one_line_first() {
    let mut model = small();
    let mut st = SafeTensors {
        tensors: ferroconv::checkpoint::model_tensors(&model),
        ..Default::default()
    };
    st.tensors.remove("conv1.weight");
    st.tensors.insert(
        "extra.weight".into(),
        StoredTensor {
            shape: vec![1],
            data: vec![0.0],
        },
    );
    st.tensors.get_mut("fc.bias").unwrap().shape = vec![2, 5];
    let err = load_model(&mut model, &st, Path::new("m.safetensors")).unwrap_err();
    let text = err.to_string();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "m.safetensors does not match the model: tensors 1 missing, 1 unexpected, 1 of another shape"
    );
    assert!(text.contains("conv1.weight") && text.contains("extra.weight"));
}

#[test]
fn a_near_twin_model_gets_the_model_mismatch_from_load_training() {
    let dir = temp_dir("api-twin");
    let path = dir.join("c.safetensors");
    let (model, mut opt) = (small(), Sgd::new(0.1, 0.9));
    ferroconv::checkpoint::save_training(&path, &model, &mut opt, Default::default()).unwrap();
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("conv1", Box::new(Conv2d::new(3, 4, 3).padding(1))),
        ("relu1", Box::new(ReLU::new())),
        ("pool1", Box::new(MaxPool2d::new(2, 2))),
        ("flatten", Box::new(Flatten::new())),
        ("fc", Box::new(Dense::new(4 * 16 * 16, 7))),
    ];
    let mut twin = Sequential::named(&[3, 32, 32], layers, 1).unwrap();
    let err = load_training(&path, &mut twin, &mut Sgd::new(0.1, 0.9)).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("of another shape"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nan_propagates_and_a_nan_model_is_neither_saved_nor_used() {
    let mut model = small();
    model.visit_params(&mut |name, p| {
        if name == "conv1.bias" {
            p.value[0] = f32::NAN;
        }
    });
    // ReLU keeps NaN (as PyTorch does) instead of turning it into 0.
    let out = model.forward(&images(1, 0), Mode::Eval).unwrap();
    assert!(out.data().iter().all(|v| v.is_nan()));
    let err = model.predict(&images(1, 0)).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    let dir = temp_dir("api-nan");
    let err = model.save(dir.join("m.safetensors")).unwrap_err();
    assert!(err.to_string().contains("conv1.bias"), "{err}");
    assert!(!dir.join("m.safetensors").exists());
    assert_eq!(model.first_non_finite().as_deref(), Some("conv1.bias"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_diverging_run_stops_naming_the_epoch_and_step() {
    let mut model = small();
    let mut opt = Sgd::new(1e30, 0.9);
    let data = tiny_data(64);
    let plan = Plan::constant(8, 0);
    let err = train_epoch(
        &mut model,
        &mut SoftmaxCrossEntropy::new(),
        &mut opt,
        &data,
        &plan,
        1,
        &mut |_| {},
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NonFinite { .. }), "{text}");
    assert!(text.contains("epoch 1, step"), "{text}");
    // The step with the non-finite loss was not applied.
    assert!(opt.steps() < 8);
}

#[test]
fn zero_sizes_and_epoch_zero_are_errors() {
    let mut model = small();
    let data = tiny_data(8);
    let mut run = |plan: Plan, epoch| {
        train_epoch(
            &mut model,
            &mut SoftmaxCrossEntropy::new(),
            &mut Sgd::new(0.01, 0.0),
            &data,
            &plan,
            epoch,
            &mut |_| {},
        )
    };
    assert!(run(Plan::constant(0, 0), 1).is_err());
    assert!(run(Plan::constant(4, 0), 0).is_err());
    assert!(evaluate(&mut small(), &data, 0, false).is_err());
    // The per-step report carries each step's own loss.
    let mut losses = Vec::new();
    train_epoch(
        &mut small(),
        &mut SoftmaxCrossEntropy::new(),
        &mut Sgd::new(0.01, 0.0),
        &data,
        &Plan::constant(4, 0),
        1,
        &mut |s| losses.push((s.step, s.loss, s.mean_loss)),
    )
    .unwrap();
    assert_eq!(losses.len(), 2);
    assert_eq!(losses[0].0, 1);
    assert_eq!(losses[1].2, (losses[0].1 + losses[1].1) / 2.0);
}

#[test]
fn predict_needs_a_classifier() {
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Conv2d::new(3, 2, 3))];
    let mut model = Sequential::new(&[3, 32, 32], layers, 0).unwrap();
    let err = model.predict(&images(1, 0)).unwrap_err();
    assert!(err.to_string().contains("[classes]"), "{err}");
    let probs = small().predict(&images(2, 0)).unwrap();
    for row in probs.data().chunks(10) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn one_learning_rate_the_optimizers() {
    // The plan no longer carries a rate: the schedule scales the optimizer's.
    let mut opt = Sgd::new(0.5, 0.0);
    let mut plan = Plan::constant(4, 0);
    plan.schedule = ferroconv::optim::Schedule::Step {
        first: 1,
        second: 2,
        gamma: 0.1,
    };
    plan.total_steps = 3;
    let data = tiny_data(12);
    let mut lrs = Vec::new();
    train_epoch(
        &mut small(),
        &mut SoftmaxCrossEntropy::new(),
        &mut opt,
        &data,
        &plan,
        1,
        &mut |s| lrs.push(s.lr),
    )
    .unwrap();
    assert_eq!(lrs, vec![0.5, 0.5 * 0.1, 0.5 * 0.1 * 0.1]);
    assert_eq!(opt.lr(), 0.5, "the configured rate is unchanged");
}

#[test]
fn absurd_thread_counts_and_indices_are_refused() {
    let err = ferroconv::set_threads(10_000).unwrap_err();
    assert!(err.to_string().contains("10000 threads"), "{err}");
    assert!(ferroconv::set_threads(0).is_err());
    let mut data = tiny_data(3);
    data.truncate(6004799503160662); // more than it has: no overflow, no panic
    assert_eq!(data.len(), 3);
    assert!(data.image(3).is_none());
}
