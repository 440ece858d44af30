//! Sequential: shape checks at build time, the summary, forward/backward plumbing, SGD.

use ferroconv::layers::{Conv2d, Dense, Flatten, Layer, MaxPool2d, Mode, ReLU};
use ferroconv::optim::{Optimizer, Sgd};
use ferroconv::{Error, Sequential, Tensor};

fn layers_with(bad: bool) -> Vec<Box<dyn Layer>> {
    vec![
        Box::new(Conv2d::new(3, 4, 3)),
        Box::new(ReLU::new()),
        Box::new(MaxPool2d::new(2, 2)),
        Box::new(Flatten::new()),
        Box::new(Dense::new(if bad { 99 } else { 4 * 3 * 3 }, 5)),
    ]
}

#[test]
fn build_time_shape_error_names_the_layer() {
    let err = Sequential::new(&[3, 8, 8], layers_with(true), 0)
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("layer 4") && msg.contains("Dense(99→5)"),
        "{msg}"
    );
    assert!(msg.contains("[36]"), "should name the shape it got: {msg}");

    let err = Sequential::new(&[1, 8, 8], layers_with(false), 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("layer 0"), "{err}");

    let err = Sequential::new(&[3, 2, 2], layers_with(false), 0)
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn summary_has_one_line_per_layer_with_shapes_and_params() {
    let model = Sequential::new(&[3, 8, 8], layers_with(false), 0).unwrap();
    let s = model.summary();
    assert!(
        s.contains("Conv2d(3→4, 3×3, stride 1, pad 0)") && s.contains("[4, 6, 6]"),
        "{s}"
    );
    assert!(s.contains("[4, 3, 3]") && s.contains("[36]"), "{s}");
    assert!(
        s.contains(&format!("total parameters: {}", 4 * 27 + 4 + 36 * 5 + 5)),
        "{s}"
    );
    assert_eq!(s.lines().count(), 2 + 5 + 1);
}

#[test]
fn seed_net_has_the_articles_shapes() {
    let model = ferroconv::models::seed_net(0).unwrap();
    assert_eq!(model.num_params(), 62_006);
    assert_eq!(model.output_shape(), &[10]);
}

#[test]
fn wrong_input_shape_is_an_error_naming_both_shapes() {
    let mut model = Sequential::new(&[3, 8, 8], layers_with(false), 0).unwrap();
    let x = Tensor::zeros(&[2, 3, 9, 8]);
    match model.forward(&x, Mode::Train) {
        Err(Error::Shape { expected, got, .. }) => {
            assert_eq!(expected, vec![2, 3, 8, 8]);
            assert_eq!(got, vec![2, 3, 9, 8]);
        }
        other => panic!(
            "expected a shape error, got {:?}",
            other.map(|t| t.shape().to_vec())
        ),
    }
    let x = Tensor::zeros(&[2, 3, 8, 8]);
    model.forward(&x, Mode::Train).unwrap();
    assert!(model.backward(&Tensor::zeros(&[2, 4])).is_err());
    assert!(model.backward(&Tensor::zeros(&[2, 5])).is_ok());
}

#[test]
fn init_is_seeded_and_matches_pytorch_bounds() {
    let collect = |seed| {
        let mut m = ferroconv::models::seed_net(seed).unwrap();
        let mut v: Vec<(String, Vec<f32>)> = Vec::new();
        m.visit_params(&mut |name, p| v.push((name.to_string(), p.value.to_vec())));
        v
    };
    let (a, b, c) = (collect(1), collect(1), collect(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // fan_in: conv1 75, conv2 150, fc 400/120/84; all within ±1/√fan_in
    for ((name, v), fan_in) in a.iter().zip([75, 75, 150, 150, 400, 400, 120, 120, 84, 84]) {
        let bound = 1.0 / (fan_in as f32).sqrt();
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let spread_ok = v.len() < 50 || max > 0.8 * bound;
        assert!(
            max <= bound && spread_ok,
            "{name}: max |w| {max}, bound {bound}"
        );
    }
}

#[test]
fn predict_gives_probabilities() {
    let mut model = Sequential::new(&[3, 8, 8], layers_with(false), 3).unwrap();
    let x = Tensor::from_vec(&[2, 3, 8, 8], (0..384).map(|i| (i as f32).sin()).collect()).unwrap();
    let p = model.predict(&x).unwrap();
    assert_eq!(p.shape(), &[2, 5]);
    for row in p.data().chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(row.iter().all(|&v| v > 0.0));
    }
}

/// SGD on a one-parameter-pair model against PyTorch's update rule worked by hand.
#[test]
fn sgd_follows_pytorch_rule() {
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(1, 1))];
    let mut model = Sequential::new(&[1], layers, 0).unwrap();
    let set = |m: &mut Sequential, w: f32, b: f32, gw: f32, gb: f32| {
        m.visit_params(&mut |name, p| {
            let (v, g) = if name.ends_with("weight") {
                (w, gw)
            } else {
                (b, gb)
            };
            if v.is_finite() {
                p.value[0] = v;
            }
            p.grad[0] = g;
        })
    };
    let get = |m: &mut Sequential| {
        let mut out = Vec::new();
        m.visit_params(&mut |_, p| out.push(p.value[0]));
        out
    };
    let (lr, mu, wd) = (0.1f32, 0.9f32, 0.01f32);
    for nesterov in [false, true] {
        let mut opt = Sgd::new(lr, mu).weight_decay(wd).nesterov(nesterov);
        set(&mut model, 1.0, 0.5, 0.2, -0.4);
        // step 1: g = grad + wd·p; buf = g; p −= lr·(nesterov ? g + μ·buf : buf)
        opt.step(&mut model);
        let (gw, gb) = (0.2 + wd * 1.0, -0.4 + wd * 0.5);
        let f = |g: f32, buf: f32| if nesterov { g + mu * buf } else { buf };
        let (w1, b1) = (1.0 - lr * f(gw, gw), 0.5 - lr * f(gb, gb));
        let got = get(&mut model);
        assert!(
            (got[0] - w1).abs() < 1e-6 && (got[1] - b1).abs() < 1e-6,
            "{got:?}"
        );
        // step 2 with new gradients: buf = μ·buf + g
        set(&mut model, f32::NAN, f32::NAN, 0.3, 0.1);
        opt.step(&mut model);
        let (g2w, g2b) = (0.3 + wd * w1, 0.1 + wd * b1);
        let (bw, bb) = (mu * gw + g2w, mu * gb + g2b);
        let (w2, b2) = (w1 - lr * f(g2w, bw), b1 - lr * f(g2b, bb));
        let got = get(&mut model);
        assert!(
            (got[0] - w2).abs() < 1e-6 && (got[1] - b2).abs() < 1e-6,
            "{got:?} vs {w2} {b2}"
        );
    }
}
