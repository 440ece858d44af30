//! Adam/AdamW against PyTorch's update rule worked by hand; the learning-rate schedules;
//! weight-decay filtering.

use ferroconv::Sequential;
use ferroconv::layers::{BatchNorm2d, Conv2d, Dense, Flatten, Layer};
use ferroconv::optim::{Adam, DecayFilter, Optimizer, Schedule, Sgd};

fn one_weight_model() -> Sequential {
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(1, 1))];
    Sequential::new(&[1], layers, 0).unwrap()
}

fn set(m: &mut Sequential, values: Option<(f32, f32)>, grads: (f32, f32)) {
    m.visit_params(&mut |name, p| {
        let w = name.ends_with("weight");
        if let Some((vw, vb)) = values {
            p.value[0] = if w { vw } else { vb };
        }
        p.grad[0] = if w { grads.0 } else { grads.1 };
    });
}

fn get(m: &mut Sequential) -> Vec<f32> {
    let mut out = Vec::new();
    m.visit_params(&mut |_, p| out.push(p.value[0]));
    out
}

/// Adam by hand in f64 for one scalar: returns the parameter after each gradient.
fn adam_by_hand(p0: f64, grads: &[f64], lr: f64, wd: f64, decoupled: bool) -> Vec<f64> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
    let mut out = Vec::new();
    for (t, &g0) in grads.iter().enumerate() {
        let t = (t + 1) as i32;
        let g = if decoupled {
            p *= 1.0 - lr * wd;
            g0
        } else {
            g0 + wd * p
        };
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let mhat = m / (1.0 - b1.powi(t));
        let vhat = v / (1.0 - b2.powi(t));
        p -= lr * mhat / (vhat.sqrt() + eps);
        out.push(p);
    }
    out
}

#[test]
fn adam_and_adamw_follow_pytorch() {
    let grads = [(0.3f32, -0.2f32), (-0.1, 0.5), (0.7, 0.05)];
    for decoupled in [false, true] {
        let mut model = one_weight_model();
        let mut opt: Box<dyn Optimizer> = if decoupled {
            Box::new(Adam::adamw(0.01, 0.1))
        } else {
            Box::new(Adam::new(0.01).weight_decay(0.1))
        };
        set(&mut model, Some((0.8, -0.4)), grads[0]);
        let mut got = Vec::new();
        for (i, &g) in grads.iter().enumerate() {
            if i > 0 {
                set(&mut model, None, g);
            }
            opt.step(&mut model);
            got.push(get(&mut model));
        }
        let gw: Vec<f64> = grads.iter().map(|g| g.0 as f64).collect();
        let gb: Vec<f64> = grads.iter().map(|g| g.1 as f64).collect();
        let (ww, wb) = (
            adam_by_hand(0.8, &gw, 0.01, 0.1, decoupled),
            adam_by_hand(-0.4, &gb, 0.01, 0.1, decoupled),
        );
        for t in 0..3 {
            assert!(
                (got[t][0] as f64 - ww[t]).abs() < 1e-6,
                "step {t} weight {got:?} vs {ww:?}"
            );
            assert!(
                (got[t][1] as f64 - wb[t]).abs() < 1e-6,
                "step {t} bias {got:?} vs {wb:?}"
            );
        }
        assert_eq!(opt.steps(), 3);
    }
}

#[test]
fn weight_decay_filter_spares_biases_and_norms() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new(1, 2, 1)),
        Box::new(BatchNorm2d::new(2)),
        Box::new(Flatten::new()),
        Box::new(Dense::new(2, 1)),
    ];
    let mut model = Sequential::new(&[1, 1, 1], layers, 0).unwrap();
    let before = {
        let mut v = Vec::new();
        model.visit_params(&mut |n, p| {
            p.grad.fill(0.0);
            v.push((n.to_string(), p.value.to_vec()))
        });
        v
    };
    let mut opt = Sgd::new(0.1, 0.0)
        .weight_decay(0.5)
        .decay_filter(DecayFilter::WeightsOnly);
    opt.step(&mut model);
    let mut i = 0;
    model.visit_params(&mut |name, p| {
        let (n, old) = &before[i];
        assert_eq!(n, name);
        let decayed = name.ends_with("weight") && !name.starts_with("1.");
        for (a, b) in p.value.iter().zip(old) {
            let want = if decayed { b * (1.0 - 0.1 * 0.5) } else { *b };
            assert!((a - want).abs() < 1e-7, "{name}: {a} vs {want}");
        }
        i += 1;
    });
    assert_eq!(i, 6, "conv w+b, bn γ+β, dense w+b");
}

#[test]
fn schedules_have_their_shapes() {
    let peak = 0.4;
    assert_eq!(Schedule::Constant.lr(peak, 77, 100), peak);
    let step = Schedule::Step {
        first: 50,
        second: 75,
        gamma: 0.1,
    };
    assert_eq!(step.lr(peak, 49, 100), peak);
    assert!((step.lr(peak, 50, 100) - 0.04).abs() < 1e-7);
    assert!((step.lr(peak, 99, 100) - 0.004).abs() < 1e-7);

    let cos = Schedule::Cosine { warmup: 10 };
    assert!(
        (cos.lr(peak, 0, 110) - 0.04).abs() < 1e-6,
        "warm-up starts at peak/warmup"
    );
    assert!((cos.lr(peak, 9, 110) - peak).abs() < 1e-6);
    assert!(
        (cos.lr(peak, 60, 110) - peak * 0.5).abs() < 1e-6,
        "half-way is half"
    );
    assert!(cos.lr(peak, 109, 110) < 1e-3);

    let one = Schedule::OneCycle {
        warmup: 20,
        div: 10.0,
        final_frac: 0.0,
    };
    assert!((one.lr(peak, 0, 100) - 0.04).abs() < 1e-6);
    assert!((one.lr(peak, 20, 100) - peak).abs() < 1e-6);
    assert!((one.lr(peak, 60, 100) - peak / 2.0).abs() < 1e-6);
    assert!(one.lr(peak, 100, 100).abs() < 1e-6);
    // Monotone up, then down.
    let lrs: Vec<f32> = (0..100).map(|t| one.lr(peak, t, 100)).collect();
    assert!(lrs[..=20].windows(2).all(|w| w[0] <= w[1]));
    assert!(lrs[20..].windows(2).all(|w| w[0] >= w[1]));
}
