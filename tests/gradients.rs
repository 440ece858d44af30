//! Gradient checks: every layer's and the loss's backward pass against central finite
//! differences of an independent f64 reference forward, on random shapes and values.
//!
//! For a layer `y = f(x, θ)` and a random upstream gradient `R`, the scalar
//! `L = Σ f64_reference(x, θ) · R` has `∂L/∂x` and `∂L/∂θ` equal to what `backward(R)`
//! must return. Each is estimated as `(L(v + h) − L(v − h)) / 2h` in f64, element by element.

use ferroconv::layers::{
    BatchNorm2d, Conv2d, ConvAlgo, Dense, Dropout, Flatten, Gelu, GlobalAvgPool, GlobalMaxPool,
    Layer, MaxPool2d, Mode, ReLU, Residual, Scale,
};
use ferroconv::{SoftmaxCrossEntropy, Tensor};
use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

mod common;
use common::gradcheck::*;

/// f64 reference convolution, straight from the definition.
#[allow(clippy::too_many_arguments)]
fn conv_ref(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    (n, c, h, wd): (usize, usize, usize, usize),
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> Vec<f64> {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (wd + 2 * pad - k) / stride + 1;
    let mut y = vec![0.0; n * cout * oh * ow];
    for i in 0..n {
        for o in 0..cout {
            for r in 0..oh {
                for s in 0..ow {
                    let mut acc = b[o];
                    for ci in 0..c {
                        for kh in 0..k {
                            for kw in 0..k {
                                let ih = (r * stride + kh) as isize - pad as isize;
                                let iw = (s * stride + kw) as isize - pad as isize;
                                if ih < 0 || iw < 0 || ih as usize >= h || iw as usize >= wd {
                                    continue;
                                }
                                let xv = x[((i * c + ci) * h + ih as usize) * wd + iw as usize];
                                acc += w[((o * c + ci) * k + kh) * k + kw] * xv;
                            }
                        }
                    }
                    y[((i * cout + o) * oh + r) * ow + s] = acc;
                }
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_gradients(
        n in 1usize..3, c in 1usize..4, cout in 1usize..4, k in 1usize..4,
        stride in 1usize..3, pad in 0usize..3, extra_h in 0usize..5, extra_w in 0usize..5,
        seed in any::<u64>(),
    ) {
        let (h, w) = (k + extra_h, k + extra_w);
        let mut layer = built(Conv2d::new(c, cout, k).stride(stride).padding(pad));
        prop_assert!(layer.output_shape(&[c, h, w]).is_ok());
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            conv_ref(x, &p[0], &p[1], (n, c, h, w), cout, k, stride, pad)
        });
    }

    /// The same checks with the 3×3 stride-1 layer forced onto Winograd `F(2,3)` or `F(4,3)`
    /// (partial edge tiles, padding 0–2, with and without bias).
    #[test]
    fn conv2d_winograd_gradients(
        n in 1usize..3, c in 1usize..4, cout in 1usize..4, pad in 0usize..3,
        extra_h in 0usize..6, extra_w in 0usize..6, f4 in any::<bool>(), bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (h, w) = (1 + extra_h, 1 + extra_w);
        prop_assume!(h + 2 * pad >= 3 && w + 2 * pad >= 3);
        let algo = if f4 { ConvAlgo::Winograd4 } else { ConvAlgo::Winograd2 };
        let mut layer = built(Conv2d::new(c, cout, 3).padding(pad).bias(bias).algorithm(algo));
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            let zeros = vec![0.0; cout];
            let b = if bias { &p[1] } else { &zeros };
            conv_ref(x, &p[0], b, (n, c, h, w), cout, 3, 1, pad)
        });
    }

    /// The same checks with the stride-1 layer forced onto the direct path (kernels up
    /// to 5×5, padding 0–2, with and without bias).
    #[test]
    fn conv2d_direct_gradients(
        n in 1usize..3, c in 1usize..4, cout in 1usize..6, k in 1usize..6, pad in 0usize..3,
        extra_h in 0usize..4, extra_w in 0usize..4, bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let (h, w) = (k + extra_h, k + extra_w);
        let layer = Conv2d::new(c, cout, k).padding(pad).bias(bias);
        let mut layer = built(layer.algorithm(ConvAlgo::Direct));
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            let zeros = vec![0.0; cout];
            let b = if bias { &p[1] } else { &zeros };
            conv_ref(x, &p[0], b, (n, c, h, w), cout, k, 1, pad)
        });
    }

    #[test]
    fn maxpool2d_gradients(
        n in 1usize..3, c in 1usize..4, k in 1usize..4, stride in 1usize..4,
        extra_h in 0usize..6, extra_w in 0usize..6, seed in any::<u64>(),
    ) {
        let (h, w) = (k + extra_h, k + extra_w);
        let (oh, ow) = ((h - k) / stride + 1, (w - k) / stride + 1);
        let mut layer = MaxPool2d::new(k, stride);
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, _| {
            let mut y = Vec::new();
            for plane in x.chunks(h * w) {
                for r in 0..oh {
                    for s in 0..ow {
                        let mut m = f64::NEG_INFINITY;
                        for kh in 0..k {
                            for kw in 0..k {
                                m = m.max(plane[(r * stride + kh) * w + s * stride + kw]);
                            }
                        }
                        y.push(m);
                    }
                }
            }
            y
        });
    }

    #[test]
    fn dense_gradients(n in 1usize..5, fin in 1usize..20, fout in 1usize..12, seed in any::<u64>()) {
        let mut layer = built(Dense::new(fin, fout));
        check_layer(&mut layer, &[n, fin], seed, &|x, p| {
            let mut y = vec![0.0; n * fout];
            for i in 0..n {
                for o in 0..fout {
                    y[i * fout + o] = p[1][o]
                        + (0..fin).map(|j| p[0][o * fin + j] * x[i * fin + j]).sum::<f64>();
                }
            }
            y
        });
    }

    #[test]
    fn relu_gradients(n in 1usize..4, f in 1usize..40, seed in any::<u64>()) {
        check_layer(&mut ReLU::new(), &[n, f], seed, &|x, _| x.iter().map(|v| v.max(0.0)).collect());
    }

    #[test]
    fn flatten_gradients(n in 1usize..3, c in 1usize..4, h in 1usize..5, w in 1usize..5, seed in any::<u64>()) {
        let mut layer = Flatten::new();
        prop_assert_eq!(layer.output_shape(&[c, h, w]).unwrap(), vec![c * h * w]);
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, _| x.to_vec());
    }

    #[test]
    fn softmax_cross_entropy_gradients(
        n in 1usize..6, classes in 2usize..12, smoothing in prop_oneof![Just(0.0f32), 0.0f32..0.3],
        scale in 0.1f32..30.0, seed in any::<u64>(),
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let logits: Vec<f32> = random_f32(&mut rng, n * classes).iter().map(|v| v * scale).collect();
        let labels: Vec<u32> = (0..n).map(|_| rng.next_u32() % classes as u32).collect();
        let eps = smoothing as f64;
        let reference = |z: &[f64]| -> Vec<f64> {
            let mut total = 0.0;
            for (row, &l) in z.chunks(classes).zip(&labels) {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                for (j, v) in row.iter().enumerate() {
                    let t = if j == l as usize { 1.0 - eps } else { 0.0 } + eps / classes as f64;
                    total -= t * (v - lse);
                }
            }
            vec![total / n as f64]
        };
        let mut loss = SoftmaxCrossEntropy::with_label_smoothing(smoothing);
        let lt = Tensor::from_vec(&[n, classes], logits.clone()).unwrap();
        let stats = loss.forward(&lt, &labels).unwrap();
        let z64 = to64(&logits);
        let want = reference(&z64)[0];
        prop_assert!((stats.loss - want).abs() <= TOL * (1.0 + want.abs()), "loss {} vs {}", stats.loss, want);
        let num = numeric_grad(&z64, &[1.0], &reference);
        assert_close("dL/dlogits", loss.grad().data(), &num);
    }
}

/// f64 batch norm: per channel of `[n, c, plane]`, with the batch's statistics, or with
/// `running = Some((mean, var))`.
fn batchnorm_ref(
    x: &[f64],
    (n, c, plane): (usize, usize, usize),
    gamma: &[f64],
    beta: &[f64],
    running: Option<(&[f64], &[f64])>,
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        let idx = |i: usize, p: usize| (i * c + ch) * plane + p;
        let (mean, var) = match running {
            Some((m, v)) => (m[ch], v[ch]),
            None => {
                let m = (n * plane) as f64;
                let mean = (0..n)
                    .flat_map(|i| (0..plane).map(move |p| (i, p)))
                    .map(|(i, p)| x[idx(i, p)])
                    .sum::<f64>()
                    / m;
                let var = (0..n)
                    .flat_map(|i| (0..plane).map(move |p| (i, p)))
                    .map(|(i, p)| (x[idx(i, p)] - mean).powi(2))
                    .sum::<f64>()
                    / m;
                (mean, var)
            }
        };
        for i in 0..n {
            for p in 0..plane {
                y[idx(i, p)] = gamma[ch] * (x[idx(i, p)] - mean) / (var + 1e-5).sqrt() + beta[ch];
            }
        }
    }
    y
}

/// `erf` by its Taylor series, independent of the engine's approximation (|x| < 4).
fn erf_series(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for k in 1..200 {
        term *= -x * x / k as f64;
        sum += term / (2 * k + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batchnorm2d_gradients_train_mode(n in 1usize..4, c in 1usize..4, h in 1usize..4, w in 1usize..4, seed in any::<u64>()) {
        prop_assume!(n * h * w > 1);
        let mut layer = built(BatchNorm2d::new(c));
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            batchnorm_ref(x, (n, c, h * w), &p[0], &p[1], None)
        });
    }

    #[test]
    fn batchnorm2d_gradients_eval_mode(n in 1usize..4, c in 1usize..4, h in 1usize..4, w in 1usize..4, seed in any::<u64>()) {
        let mut layer = built(BatchNorm2d::new(c));
        // Random running statistics (variance positive).
        let mut stats: Vec<Vec<f64>> = Vec::new();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 99);
        layer.visit_buffers(&mut String::new(), &mut |name, buf| {
            let v = random_f32(&mut rng, buf.len());
            let v: Vec<f32> = if name.ends_with("var") { v.iter().map(|x| x.abs() + 0.1).collect() } else { v };
            buf.copy_from_slice(&v);
            stats.push(to64(&v));
        });
        check_layer_in(Mode::Eval, &mut layer, &[n, c, h, w], seed, &|x, p| {
            batchnorm_ref(x, (n, c, h * w), &p[0], &p[1], Some((&stats[0], &stats[1])))
        });
    }

    #[test]
    fn batchnorm2d_updates_running_statistics(c in 1usize..4, seed in any::<u64>()) {
        let mut layer = built(BatchNorm2d::new(c));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let x = random_f32(&mut rng, 2 * c * 9);
        layer.forward(&Tensor::from_vec(&[2, c, 3, 3], x.clone()).unwrap(), Mode::Train);
        let mut bufs = Vec::new();
        layer.visit_buffers(&mut String::new(), &mut |_, b| bufs.push(b.to_vec()));
        for ch in 0..c {
            let vals: Vec<f64> = (0..2).flat_map(|i| x[(i * c + ch) * 9..(i * c + ch + 1) * 9].iter().map(|&v| v as f64)).collect();
            let mean = vals.iter().sum::<f64>() / 18.0;
            let unbiased = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 17.0;
            prop_assert!((bufs[0][ch] as f64 - 0.1 * mean).abs() < 1e-6);
            prop_assert!((bufs[1][ch] as f64 - (0.9 + 0.1 * unbiased)).abs() < 1e-6);
        }
    }

    #[test]
    fn gelu_gradients(n in 1usize..4, f in 1usize..30, seed in any::<u64>()) {
        check_layer(&mut Gelu::new(), &[n, f], seed, &|x, _| {
            x.iter().map(|&v| v * 0.5 * (1.0 + erf_series(v / std::f64::consts::SQRT_2))).collect()
        });
    }

    #[test]
    fn scale_gradients(n in 1usize..4, f in 1usize..30, s in -3.0f32..3.0, seed in any::<u64>()) {
        check_layer(&mut Scale::new(s), &[n, f], seed, &|x, _| {
            x.iter().map(|&v| v * s as f64).collect()
        });
    }

    #[test]
    fn dropout_gradients(n in 1usize..4, f in 1usize..40, p in 0.0f32..0.9, seed in any::<u64>()) {
        let mut layer = Dropout::new(p);
        // Learn the step-0 mask from a forward pass on ones, then rewind to step 0.
        layer.init(&mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
        let ones = Tensor::from_vec(&[n, f], vec![1.0; n * f]).unwrap();
        let mask = to64(layer.forward(&ones, Mode::Train).data());
        let keep = 1.0 / (1.0 - p as f64);
        prop_assert!(mask.iter().all(|&m| m == 0.0 || (m - keep).abs() < 1e-6));
        layer.init(&mut Xoshiro256PlusPlus::seed_from_u64(seed)).unwrap();
        check_layer(&mut layer, &[n, f], seed, &|x, _| x.iter().zip(&mask).map(|(a, m)| a * m).collect());
        // Evaluation is the identity.
        prop_assert_eq!(layer.forward(&ones, Mode::Eval).data(), ones.data());
    }

    #[test]
    fn global_pool_gradients(n in 1usize..3, c in 1usize..4, h in 1usize..5, w in 1usize..5, seed in any::<u64>()) {
        check_layer(&mut GlobalAvgPool::new(), &[n, c, h, w], seed, &|x, _| {
            x.chunks(h * w).map(|p| p.iter().sum::<f64>() / (h * w) as f64).collect()
        });
        check_layer(&mut GlobalMaxPool::new(), &[n, c, h, w], seed, &|x, _| {
            x.chunks(h * w).map(|p| p.iter().cloned().fold(f64::NEG_INFINITY, f64::max)).collect()
        });
    }

    #[test]
    fn residual_gradients(n in 1usize..3, c in 1usize..3, h in 2usize..5, w in 2usize..5, seed in any::<u64>()) {
        let branch: Vec<Box<dyn Layer>> = vec![
            Box::new(Conv2d::new(c, c, 3).padding(1)),
            Box::new(ReLU::new()),
            Box::new(Conv2d::new(c, c, 3).padding(1).bias(false)),
        ];
        let mut layer = built(Residual::new(branch));
        prop_assert!(layer.output_shape(&[c, h, w]).is_ok());
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            let a: Vec<f64> = conv_ref(x, &p[0], &p[1], (n, c, h, w), c, 3, 1, 1).iter().map(|v| v.max(0.0)).collect();
            let b = conv_ref(&a, &p[2], &vec![0.0; c], (n, c, h, w), c, 3, 1, 1);
            x.iter().zip(&b).map(|(u, v)| u + v).collect()
        });
    }
}

#[test]
fn residual_rejects_shape_changing_branch() {
    let branch: Vec<Box<dyn Layer>> = vec![Box::new(Conv2d::new(2, 3, 3).padding(1))];
    let err = Residual::new(branch).output_shape(&[2, 5, 5]).unwrap_err();
    assert!(
        err.contains("[2, 5, 5]") && err.contains("[3, 5, 5]"),
        "{err}"
    );
}

#[test]
fn cross_entropy_is_stable_for_huge_logits() {
    let mut loss = SoftmaxCrossEntropy::new();
    let logits = Tensor::from_vec(&[2, 3], vec![1e4, -1e4, 0.0, -3e38, 3e38, 0.0]).unwrap();
    let stats = loss.forward(&logits, &[0, 0]).unwrap();
    assert!(stats.loss.is_finite(), "loss {}", stats.loss);
    assert!(
        (stats.loss - 3e38).abs() / 3e38 < 1e-3,
        "mean of 0 and 6e38 is 3e38, got {}",
        stats.loss
    );
    assert!(loss.grad().data().iter().all(|g| g.is_finite()));
}
