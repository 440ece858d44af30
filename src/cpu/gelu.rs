//! GELU, `y = x·Φ(x)` (PyTorch's exact form), and its derivative `Φ(x) + x·φ(x)`.
//!
//! `Φ(x) = (1 + erf(x/√2))/2`, with `erfc(z) ≈ t·exp(−z² + P(t))`, `t = 1/(1 + z/2)` and
//! `P` a degree-9 polynomial (Numerical Recipes' `erfcc`; fractional error < 1.2e-7 for
//! every `z ≥ 0`). The references evaluate it in f64 one value at a time; the kernels
//! evaluate the same formula in f32 on eight lanes (`wide::f32x8`): one `exp` per value
//! forward, two backward, instead of libm's one-at-a-time f64 `exp`. They are tested against the references
//! below (see `tests`): within 5e-6 relative (f32 rounding of `−z² + P(t)`, which grows
//! with `z²`) plus 1e-7.

use wide::f32x8;

/// `P(t)`'s coefficients, lowest degree first (the constant term includes nothing of z).
const P: [f64; 10] = [
    -1.265_512_23,
    1.000_023_68,
    0.374_091_96,
    0.096_784_18,
    -0.186_288_06,
    0.278_868_07,
    -1.135_203_98,
    1.488_515_87,
    -0.822_152_23,
    0.170_872_77,
];

/// `1/√(2π)`, the standard normal density at 0.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Reference `Φ(x)` in f64.
pub fn cdf_ref(x: f64) -> f64 {
    let z = x.abs() * std::f64::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = P.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    let half_erfc = 0.5 * t * (-z * z + poly).exp();
    if x >= 0.0 { 1.0 - half_erfc } else { half_erfc }
}

/// Reference GELU: `x·Φ(x)`.
pub fn gelu_ref(x: f64) -> f64 {
    x * cdf_ref(x)
}

/// Reference GELU derivative: `Φ(x) + x·φ(x)`.
pub fn gelu_grad_ref(x: f64) -> f64 {
    cdf_ref(x) + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
}

/// Eight lanes of `(half_erfc, exp(−x²/2))`, where `Φ(x) = 1 − half_erfc` for `x ≥ 0` and
/// `half_erfc` otherwise. `with_pdf` false skips the second `exp` (returns zeros).
#[inline(always)]
fn half_erfc8(x: f32x8, with_pdf: bool) -> (f32x8, f32x8) {
    let z = x.abs() * f32x8::splat(std::f32::consts::FRAC_1_SQRT_2);
    let one = f32x8::splat(1.0);
    let t = one / (one + f32x8::splat(0.5) * z);
    let mut poly = f32x8::splat(P[9] as f32);
    for &c in P[..9].iter().rev() {
        poly = poly.mul_add(t, f32x8::splat(c as f32));
    }
    let z2 = z * z;
    if with_pdf {
        // exp(−z² + P) = exp(−z²)·exp(P): the first factor is also √(2π)·φ(x).
        let e = (-z2).exp();
        (f32x8::splat(0.5) * t * e * poly.exp(), e)
    } else {
        (f32x8::splat(0.5) * t * (poly - z2).exp(), f32x8::ZERO)
    }
}

/// Loads up to eight values (zeros past the end).
#[inline(always)]
fn load8(s: &[f32]) -> f32x8 {
    let mut a = [0.0f32; 8];
    a[..s.len()].copy_from_slice(s);
    f32x8::new(a)
}

/// `y[i] = x[i]·Φ(x[i])`. `x` and `y` have the same length.
pub fn gelu_forward(x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "gelu_forward: input and output lengths");
    for (xs, ys) in x.chunks(8).zip(y.chunks_mut(8)) {
        let (h, _) = half_erfc8(load8(xs), false);
        let h = h.to_array();
        for ((y, &x), &h) in ys.iter_mut().zip(xs).zip(&h) {
            let cdf = if x >= 0.0 { 1.0 - h } else { h };
            *y = x * cdf;
        }
    }
}

/// `dx[i] = dy[i]·(Φ(x[i]) + x[i]·φ(x[i]))`. All three have the same length.
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == dx.len() && dy.len() == dx.len(),
        "gelu_backward: lengths"
    );
    let inv = INV_SQRT_2PI as f32;
    for ((xs, gs), ds) in x.chunks(8).zip(dy.chunks(8)).zip(dx.chunks_mut(8)) {
        let (h, e) = half_erfc8(load8(xs), true);
        let (h, e) = (h.to_array(), e.to_array());
        for (i, d) in ds.iter_mut().enumerate() {
            let x = xs[i];
            let cdf = if x >= 0.0 { 1.0 - h[i] } else { h[i] };
            *d = gs[i] * (cdf + x * inv * e[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points across the range that matters, the tails, and non-multiples of eight.
    fn points() -> Vec<f32> {
        let mut v: Vec<f32> = (-1200..=1200).map(|i| i as f32 * 0.01).collect();
        v.extend([-30.0, -15.0, -9.5, 9.5, 15.0, 30.0, 0.0, -0.0, 1e-8, -1e-8]);
        v
    }

    #[test]
    fn reference_matches_known_values() {
        // Φ(1) = 0.841344746068543, Φ(−2) = 0.022750131948179 (tables).
        assert!((cdf_ref(1.0) - 0.841_344_746_068_543).abs() < 1e-7);
        assert!((cdf_ref(-2.0) - 0.022_750_131_948_179).abs() < 1e-8);
        assert!((cdf_ref(0.0) - 0.5).abs() < 1.2e-7);
        // The derivative against a central difference of the reference itself.
        for x in [-3.0, -0.7, 0.0, 0.4, 2.5] {
            let h = 1e-5;
            let fd = (gelu_ref(x + h) - gelu_ref(x - h)) / (2.0 * h);
            assert!((fd - gelu_grad_ref(x)).abs() < 1e-6, "x={x}");
        }
    }

    #[test]
    fn kernels_match_reference() {
        let x = points();
        let mut y = vec![0.0; x.len()];
        gelu_forward(&x, &mut y);
        let dy: Vec<f32> = (0..x.len()).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let mut dx = vec![0.0; x.len()];
        gelu_backward(&x, &dy, &mut dx);
        for i in 0..x.len() {
            let v = x[i] as f64;
            let want = gelu_ref(v);
            let err = (y[i] as f64 - want).abs();
            assert!(
                err <= 5e-6 * want.abs() + 1e-7,
                "forward x={v}: {} vs {want}",
                y[i]
            );
            let want = dy[i] as f64 * gelu_grad_ref(v);
            let err = (dx[i] as f64 - want).abs();
            assert!(
                err <= 5e-6 * want.abs() + 1e-7,
                "backward x={v}: {} vs {want}",
                dx[i]
            );
        }
    }

    #[test]
    fn non_finite_inputs_stay_defined() {
        let x = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
        let mut y = [0.0; 3];
        gelu_forward(&x, &mut y);
        assert_eq!(y[0], f32::INFINITY);
        assert!(y[2].is_nan());
    }
}
