//! The gradient-check harness shared by tests/gradients.rs and tests/zoo_layers.rs.
//!
//! For a layer `y = f(x, θ)` and a random upstream gradient `R`, the scalar
//! `L = Σ f64_reference(x, θ) · R` has `∂L/∂x` and `∂L/∂θ` equal to what `backward(R)`
//! must return. Each is estimated as `(L(v + h) − L(v − h)) / 2h` in f64, element by element.

use ferroconv::Tensor;
use ferroconv::layers::{Layer, Mode};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

/// Step of the central differences (the reference runs in f64, so it can be small).
pub const H: f64 = 1e-6;
/// Allowed error: `|got − want| ≤ TOL · (1 + |want|)`; f32 kernels carry ~1e-6 relative
/// error per operation, summed over at most a few hundred terms here.
pub const TOL: f64 = 2e-4;

/// `n` values in [−1, 1), uniform but for none lying within 1e-4 of 0: central
/// differences of step [`H`] across a kink (ReLU's at 0) would measure half a slope, so
/// values that close are moved 2e-4 further out (about 1 draw in 5,000).
pub fn random_f32(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v = (rng.next_u32() >> 8) as f32 / (1 << 23) as f32 - 1.0;
            if v.abs() < 1e-4 {
                v + 2e-4f32.copysign(v)
            } else {
                v
            }
        })
        .collect()
}

/// Widens to f64.
pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts `|got − want| ≤ TOL · (1 + |want|)` element by element, naming `what`.
pub fn assert_close(what: &str, got: &[f32], want: &[f64]) {
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
pub fn numeric_grad(v: &[f64], upstream: &[f64], f: &dyn Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
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

/// A layer with its parameters allocated (as building a model does).
pub fn built<L: Layer>(mut layer: L) -> L {
    layer
        .init(&mut Xoshiro256PlusPlus::seed_from_u64(0))
        .unwrap();
    layer
}

/// A layer's forward in f64: `(input, parameters) → output`.
pub type Reference<'a> = dyn Fn(&[f64], &[Vec<f64>]) -> Vec<f64> + 'a;

/// [`check_layer_in`] in training mode.
pub fn check_layer(
    layer: &mut dyn Layer,
    x_shape: &[usize],
    seed: u64,
    reference: &Reference,
) -> Vec<usize> {
    check_layer_in(Mode::Train, layer, x_shape, seed, reference)
}

/// Sets random parameters into `layer` (allocated: see [`built`]), runs forward in `mode`
/// (checked against `reference(x, params)`, parameters in `visit_params` order) and
/// backward, and checks the input gradient and every parameter gradient against finite
/// differences. Returns the forward output's shape.
pub fn check_layer_in(
    mode: Mode,
    layer: &mut dyn Layer,
    x_shape: &[usize],
    seed: u64,
    reference: &Reference,
) -> Vec<usize> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let x = random_f32(&mut rng, x_shape.iter().product());
    let mut params: Vec<Vec<f32>> = Vec::new();
    layer.visit_params(&mut String::new(), &mut |_, p| {
        let v = random_f32(&mut rng, p.value.len());
        p.value.copy_from_slice(&v);
        params.push(v);
    });
    let p64: Vec<Vec<f64>> = params.iter().map(|p| to64(p)).collect();
    let x64 = to64(&x);

    let xt = Tensor::from_vec(x_shape, x).unwrap();
    let out = layer.forward(&xt, mode).clone();
    assert_close("forward", out.data(), &reference(&x64, &p64));

    let upstream = random_f32(&mut rng, out.len());
    let r64 = to64(&upstream);
    let rt = Tensor::from_vec(out.shape(), upstream).unwrap();
    let dx = layer.backward(&rt, true).clone();
    assert_eq!(dx.shape(), x_shape, "input gradient shape");
    let num_dx = numeric_grad(&x64, &r64, &|xv| reference(xv, &p64));
    assert_close("dL/dx", dx.data(), &num_dx);

    let mut grads: Vec<(String, Vec<f32>)> = Vec::new();
    layer.visit_params(&mut String::new(), &mut |name, p| {
        grads.push((name.to_string(), p.grad.to_vec()))
    });
    for (k, (name, grad)) in grads.iter().enumerate() {
        let num = numeric_grad(&p64[k], &r64, &|pv| {
            let mut ps = p64.clone();
            ps[k] = pv.to_vec();
            reference(&x64, &ps)
        });
        assert_close(&format!("dL/d{name}"), grad, &num);
    }
    out.shape().to_vec()
}
