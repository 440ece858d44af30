//! GELU, `y = x·Φ(x)` (PyTorch's exact form), and its derivative `Φ(x) + x·φ(x)`.
//!
//! `Φ(x) = (1 + erf(x/√2))/2`, with `erfc(z) ≈ t·exp(−z² + P(t))`, `t = 1/(1 + z/2)` and
//! `P` a degree-9 polynomial (Numerical Recipes' `erfcc`; fractional error < 1.2e-7 for
//! every `z ≥ 0`). The references evaluate it in f64 one value at a time. The kernels
//! evaluate the same formula in f32, one value at a time too (`gelu1`, `gelu_grad1`,
//! with their own `exp_f32`), in loops with no calls and no branches, which the compiler
//! vectorises: once for AVX-512F (sixteen lanes), once for AVX2 (eight), once portably
//! (SSE2's four), picked at run time. No step is fused, so the three builds give the same
//! bits. They are tested against the references below (see `tests`): within 5e-6 relative
//! (f32 rounding of `−z² + P(t)`, which grows with `z²`) plus 1e-7.

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

/// `1.5·2²³`: adding it to a float of magnitude < 2²² rounds it to an integer, which then
/// sits in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;

/// `eˣ` in f32 (Cephes' `expf` scheme): `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, `eʳ` by a
/// degree-6 polynomial, `2ⁿ` built in the exponent bits. Within 2 ulp of `eˣ` on
/// `[−87.3, 88.3]`; arguments outside are clamped there (so no result is subnormal or
/// infinite), and NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 in two parts; the first has 9 significant bits, so n·LN2_HI is exact.
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = p * r + c;
    }
    let er = p * (r * r) + r + 1.0;
    // t's bits minus ROUND's are n; n + 127 is 2ⁿ's biased exponent (1..=254 here).
    let biased = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    er * f32::from_bits(biased << 23)
}

/// `(t, P(t), z²)` for `z = |x|/√2`: `Φ(x)`'s tail is `t·exp(P(t) − z²)/2`.
#[inline(always)]
fn tail_parts(x: f32) -> (f32, f32, f32) {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut poly = P[9] as f32;
    for &c in P[..9].iter().rev() {
        poly = poly * t + c as f32;
    }
    (t, poly, z * z)
}

/// `Φ(x)` from its tail `h = erfc(|x|/√2)/2`.
#[inline(always)]
fn cdf_from_tail(x: f32, h: f32) -> f32 {
    if x >= 0.0 { 1.0 - h } else { h }
}

/// GELU of one value, in f32: `x·Φ(x)`.
#[inline(always)]
fn gelu1(x: f32) -> f32 {
    let (t, poly, z2) = tail_parts(x);
    let h = 0.5 * t * exp_f32(poly - z2);
    x * cdf_from_tail(x, h)
}

/// GELU's derivative at one value, in f32: `Φ(x) + x·φ(x)`.
#[inline(always)]
fn gelu_grad1(x: f32) -> f32 {
    let (t, poly, z2) = tail_parts(x);
    // exp(P − z²) = exp(−z²)·exp(P): the first factor, e^(−x²/2), is also √(2π)·φ(x).
    let e = exp_f32(-z2);
    let h = 0.5 * t * e * exp_f32(poly);
    cdf_from_tail(x, h) + x * (INV_SQRT_2PI as f32) * e
}

/// The loops every build compiles; `inline(always)` so each build vectorises its own copy.
#[inline(always)]
fn forward_body(x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = gelu1(x);
    }
}

#[inline(always)]
fn backward_body(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
        *d = g * gelu_grad1(x);
    }
}

/// The instruction sets a GELU build exists for, widest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// Sixteen lanes (x86-64 with AVX-512F).
    Avx512,
    /// Eight lanes (x86-64 with AVX2).
    Avx2,
    /// Whatever the compile target gives (SSE2's four lanes on x86-64).
    Portable,
}

impl Isa {
    /// The builds this CPU can run, widest first (always ending with `Portable`).
    fn available() -> Vec<Isa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Isa::Avx512);
            }
            if crate::cpu::avx2::available() {
                v.push(Isa::Avx2);
            }
        }
        v.push(Isa::Portable);
        v
    }

    /// The widest build this CPU can run (checked once).
    fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available()[0])
    }
}

/// Defines `$name(isa, args)`, running `$body` compiled for `isa`. The caller makes sure
/// the CPU has `isa` (an `Isa` from [`Isa::available`]).
macro_rules! builds {
    ($name:ident => $body:ident ($($arg:ident : $ty:ty),*)) => {
        fn $name(isa: Isa, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            fn avx512($($arg: $ty),*) {
                $body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) {
                $body($($arg),*)
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => {
                    assert!(std::arch::is_x86_feature_detected!("avx512f"));
                    // SAFETY: this CPU has AVX-512F (asserted above).
                    unsafe { avx512($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => {
                    assert!(crate::cpu::avx2::available());
                    // SAFETY: this CPU has AVX2 (asserted above).
                    unsafe { avx2($($arg),*) }
                }
                _ => $body($($arg),*),
            }
        }
    };
}

builds!(forward_with => forward_body(x: &[f32], y: &mut [f32]));
builds!(backward_with => backward_body(x: &[f32], dy: &[f32], dx: &mut [f32]));

/// `y[i] = x[i]·Φ(x[i])`, with the build `isa`. `x` and `y` have the same length.
fn gelu_forward_isa(isa: Isa, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "gelu_forward: input and output lengths");
    forward_with(isa, x, y);
}

/// `dx[i] = dy[i]·(Φ(x[i]) + x[i]·φ(x[i]))`, with the build `isa`. All three have the
/// same length.
fn gelu_backward_isa(isa: Isa, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    assert!(
        x.len() == dx.len() && dy.len() == dx.len(),
        "gelu_backward: lengths"
    );
    backward_with(isa, x, dy, dx);
}

/// `y[i] = x[i]·Φ(x[i])`, with the widest build this CPU runs. `x` and `y` have the same
/// length.
pub fn gelu_forward(x: &[f32], y: &mut [f32]) {
    gelu_forward_isa(Isa::best(), x, y);
}

/// `dx[i] = dy[i]·(Φ(x[i]) + x[i]·φ(x[i]))`, with the widest build this CPU runs. All three
/// have the same length.
pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
    gelu_backward_isa(Isa::best(), x, dy, dx);
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
    fn exp_matches_f64() {
        let mut worst = 0.0f64;
        for i in -8730..=8830 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            let rel = ((exp_f32(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(-1000.0) < 1.3e-38);
        assert!(exp_f32(1000.0).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// Every build this CPU runs, against the f64 references and bit for bit against the
    /// portable build.
    #[test]
    fn every_build_matches_reference_and_portable() {
        let x = points();
        let dy: Vec<f32> = (0..x.len()).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        let run = |isa| {
            let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            gelu_forward_isa(isa, &x, &mut y);
            gelu_backward_isa(isa, &x, &dy, &mut dx);
            (y, dx)
        };
        let portable = run(Isa::Portable);
        for isa in Isa::available() {
            println!("gelu build tested: {isa:?}");
            let (y, dx) = run(isa);
            check_against_reference(&x, &dy, &y, &dx);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&portable.0), "{isa:?} forward differs");
            assert_eq!(bits(&dx), bits(&portable.1), "{isa:?} backward differs");
        }
    }

    fn check_against_reference(x: &[f32], dy: &[f32], y: &[f32], dx: &[f32]) {
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
