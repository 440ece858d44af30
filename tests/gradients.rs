//! Gradient checks: every layer's and the loss's backward pass against central finite
//! differences of an independent f64 reference forward, on random shapes and values.
//!
//! For a layer `y = f(x, θ)` and a random upstream gradient `R`, the scalar
//! `L = Σ f64_reference(x, θ) · R` has `∂L/∂x` and `∂L/∂θ` equal to what `backward(R)`
//! must return. Each is estimated as `(L(v + h) − L(v − h)) / 2h` in f64, element by element.

use ferroconv::layers::{Conv2d, Dense, Flatten, Layer, MaxPool2d, Mode, ReLU};
use ferroconv::{SoftmaxCrossEntropy, Tensor};
use proptest::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

/// Step of the central differences (the reference runs in f64, so it can be small).
const H: f64 = 1e-6;
/// Allowed error: `|got − want| ≤ TOL · (1 + |want|)`; f32 kernels carry ~1e-6 relative
/// error per operation, summed over at most a few hundred terms here.
const TOL: f64 = 2e-4;

fn random_f32(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_u32() >> 8) as f32 / (1 << 23) as f32 - 1.0)
        .collect()
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= TOL * (1.0 + w.abs()),
            "{what}[{i}]: backward {g}, finite differences {w} (error {err:e})"
        );
    }
}

/// `∂/∂v Σ reference(v)·R` by central differences, one element of `v` at a time.
fn numeric_grad(v: &[f64], upstream: &[f64], f: &dyn Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let loss = |v: &[f64]| f(v).iter().zip(upstream).map(|(a, b)| a * b).sum::<f64>();
    let mut v = v.to_vec();
    (0..v.len())
        .map(|i| {
            let orig = v[i];
            v[i] = orig + H;
            let plus = loss(&v);
            v[i] = orig - H;
            let minus = loss(&v);
            v[i] = orig;
            (plus - minus) / (2.0 * H)
        })
        .collect()
}

/// A layer's forward in f64: `(input, parameters) → output`.
type Reference<'a> = dyn Fn(&[f64], &[Vec<f64>]) -> Vec<f64> + 'a;

/// The shared harness: sets `params` into `layer`, runs forward (checked against the
/// reference) and backward, and checks every gradient against finite differences.
/// `reference(x, params)` is the layer's forward in f64.
fn check_layer(layer: &mut dyn Layer, x_shape: &[usize], seed: u64, reference: &Reference) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let x = random_f32(&mut rng, x_shape.iter().product());
    let mut params: Vec<Vec<f32>> = Vec::new();
    layer.visit_params(&mut |p| {
        let v = random_f32(&mut rng, p.value.len());
        p.value.copy_from_slice(&v);
        params.push(v);
    });
    let p64: Vec<Vec<f64>> = params.iter().map(|p| to64(p)).collect();
    let x64 = to64(&x);

    let xt = Tensor::from_vec(x_shape, x).unwrap();
    let out = layer.forward(&xt, Mode::Train).clone();
    let want = reference(&x64, &p64);
    assert_close("forward", out.data(), &want);

    let upstream = random_f32(&mut rng, out.len());
    let r64 = to64(&upstream);
    let rt = Tensor::from_vec(out.shape(), upstream).unwrap();
    let dx = layer.backward(&rt, true).clone();
    assert_eq!(dx.shape(), x_shape, "input gradient shape");
    let num_dx = numeric_grad(&x64, &r64, &|xv| reference(xv, &p64));
    assert_close("dL/dx", dx.data(), &num_dx);

    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    layer.visit_params(&mut |p| grads.push((p.name.to_string(), p.grad.to_vec())));
    for (k, (name, grad)) in grads.iter().enumerate() {
        let num = numeric_grad(&p64[k], &r64, &|pv| {
            let mut ps = p64.clone();
            ps[k] = pv.to_vec();
            reference(&x64, &ps)
        });
        assert_close(&format!("dL/d{name}"), grad, &num);
    }
}

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
        let mut layer = Conv2d::new(c, cout, k).stride(stride).padding(pad);
        prop_assert!(layer.output_shape(&[c, h, w]).is_ok());
        check_layer(&mut layer, &[n, c, h, w], seed, &|x, p| {
            conv_ref(x, &p[0], &p[1], (n, c, h, w), cout, k, stride, pad)
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
        let mut layer = Dense::new(fin, fout);
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
        let labels: Vec<u8> = (0..n).map(|_| (rng.next_u32() as usize % classes) as u8).collect();
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
