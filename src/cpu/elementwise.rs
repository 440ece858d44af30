//! Element-wise kernels: ReLU, sums, bias add and its gradient, the SGD update.
//!
//! All loops are written so LLVM vectorises them; they are memory-bound, so wider
//! hand-written SIMD buys nothing here. The SGD update alone is also compiled for
//! AVX-512F (the same loop, sixteen lanes): it runs over every parameter once a step.

/// `max(v, 0)`, the one ReLU every kernel applies, so that a ReLU layer and a ReLU
/// fused into a convolution give the same bits. `v < 0` is false for NaN, so NaN passes
/// through as in PyTorch (a diverged run stays visible), and `-0.0` stays `-0.0`.
#[inline(always)]
pub fn relu(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}

/// `dst = (src/255 − mean)/std` per byte: 8-bit pixels to normalised floats (a batch of
/// CIFAR-10 images each step). IEEE division, so the same bits as the scalar formula on
/// every build. Also compiled for AVX-512F, where the CPU has it: 16 bytes a vector.
pub fn bytes_to_floats(src: &[u8], dst: &mut [f32], mean: f32, std: f32) {
    #[inline(always)]
    fn body(src: &[u8], dst: &mut [f32], mean: f32, std: f32) {
        for (d, &b) in dst.iter_mut().zip(src) {
            *d = (f32::from(b) / 255.0 - mean) / std;
        }
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        #[target_feature(enable = "avx512f")]
        fn build(src: &[u8], dst: &mut [f32], mean: f32, std: f32) {
            body(src, dst, mean, std)
        }
        // SAFETY: this CPU has AVX-512F (checked just above).
        return unsafe { build(src, dst, mean, std) };
    }
    body(src, dst, mean, std)
}

/// `y = max(x, 0)`.
pub fn relu_forward(x: &[f32], y: &mut [f32]) {
    super::for_each_chunk(y, CHUNK, |i, y| {
        for (o, &v) in y.iter_mut().zip(&x[i * CHUNK..]) {
            *o = relu(v);
        }
    });
}

/// `y = max(a + b, 0)`: a residual sum and its ReLU in one pass. `f32::max` drops a NaN
/// sum to 0 (unlike [`relu_forward`]), as the residual blocks always have.
pub fn add_relu(a: &[f32], b: &[f32], y: &mut [f32]) {
    super::for_each_chunk(y, CHUNK, |i, y| {
        let (a, b) = (&a[i * CHUNK..], &b[i * CHUNK..]);
        for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
            *o = (u + v).max(0.0);
        }
    });
}

/// `y = a + b`.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    super::for_each_chunk(y, CHUNK, |i, y| {
        let (a, b) = (&a[i * CHUNK..], &b[i * CHUNK..]);
        for ((o, &u), &v) in y.iter_mut().zip(a).zip(b) {
            *o = u + v;
        }
    });
}

/// Elements per parallel task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// `dx = dy · [y > 0]`, from the forward *output* `y`.
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    super::for_each_chunk(dx, CHUNK, |i, dx| {
        let (dy, y) = (&dy[i * CHUNK..], &y[i * CHUNK..]);
        for ((d, &g), &v) in dx.iter_mut().zip(dy).zip(y) {
            *d = if v > 0.0 { g } else { 0.0 };
        }
    });
}

/// Adds `bias[r]` to every element of row `r` of `y[rows][cols]` (conv: rows are channels).
pub fn add_bias_rows(y: &mut [f32], bias: &[f32], cols: usize) {
    for (row, &b) in y.chunks_exact_mut(cols).zip(bias) {
        for v in row {
            *v += b;
        }
    }
}

/// `y[r][·] = max(y[r][·] + bias[r], 0)` ([`relu`]) with `relu`, else `y[r][·] += bias[r]`, in one
/// pass over `y[rows][cols]` (`bias` may be empty: then only the ReLU, if any).
pub fn bias_act_rows(y: &mut [f32], bias: &[f32], cols: usize, relu: bool) {
    if !relu && bias.is_empty() {
        return;
    }
    for (r, row) in y.chunks_exact_mut(cols.max(1)).enumerate() {
        let b = bias.get(r).copied().unwrap_or(0.0);
        if relu {
            row.iter_mut().for_each(|v| *v = self::relu(*v + b));
        } else {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
}

/// A wide convolution output cropped and finished: plane `c` of `y[C][rows][w]` takes the
/// first `w` floats of each of `rows` rows of `src`, which are `wp` floats apart from
/// `src[c·ld]` on, plus `bias[c]` (0 when `bias` is empty), through [`relu`] with `relu`.
/// Also compiled for AVX-512F, where the CPU has it.
pub fn crop_bias_act(
    src: &[f32],
    (ld, wp): (usize, usize),
    (rows, w): (usize, usize),
    bias: &[f32],
    relu: bool,
    y: &mut [f32],
) {
    #[inline(always)]
    fn body(
        src: &[f32],
        (ld, wp): (usize, usize),
        w: usize,
        bias: &[f32],
        relu: bool,
        y: &mut [f32],
        plane: usize,
    ) {
        for (c, (yc, sc)) in y.chunks_exact_mut(plane).zip(src.chunks(ld)).enumerate() {
            let b = bias.get(c).copied().unwrap_or(0.0);
            for (yr, sr) in yc.chunks_exact_mut(w).zip(sc.chunks(wp)) {
                let sr = &sr[..w];
                if relu {
                    yr.iter_mut()
                        .zip(sr)
                        .for_each(|(d, &v)| *d = self::relu(v + b));
                } else {
                    yr.iter_mut().zip(sr).for_each(|(d, &v)| *d = v + b);
                }
            }
        }
    }
    let plane = rows * w;
    if plane == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        #[target_feature(enable = "avx512f")]
        fn build(
            src: &[f32],
            s: (usize, usize),
            w: usize,
            bias: &[f32],
            relu: bool,
            y: &mut [f32],
            plane: usize,
        ) {
            body(src, s, w, bias, relu, y, plane)
        }
        // SAFETY: this CPU has AVX-512F (checked just above).
        return unsafe { build(src, (ld, wp), w, bias, relu, y, plane) };
    }
    body(src, (ld, wp), w, bias, relu, y, plane)
}

/// Adds `bias[j]` to column `j` of every row of `y[rows][cols]` (dense: rows are samples).
pub fn add_bias_cols(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `db[j] (+)= Σ_rows dy[row][j]` for `dy[rows][cols]`; overwrites unless `accumulate`.
pub fn sum_cols(dy: &[f32], db: &mut [f32], accumulate: bool) {
    if !accumulate {
        db.fill(0.0);
    }
    for row in dy.chunks_exact(db.len()) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
}

/// `db[r] (+)= Σ_cols dy[r][col]` for `dy[rows][cols]`; overwrites unless `accumulate`.
/// Each row is summed in lanes in a fixed order ([`super::norm::sum_f32`]).
pub fn sum_rows(dy: &[f32], cols: usize, db: &mut [f32], accumulate: bool) {
    for (d, row) in db.iter_mut().zip(dy.chunks_exact(cols)) {
        let s = super::norm::sum_f32(row);
        *d = if accumulate { *d + s } else { s };
    }
}

/// SGD with momentum and weight decay, PyTorch's rule (dampening 0):
/// `g = grad + wd·p; buf = μ·buf + g` (`buf = g` on the first step);
/// `p −= lr · (nesterov ? g + μ·buf : buf)`.
///
/// Compiled for AVX-512F too, and run so where the CPU has it: the update runs once per
/// step over every parameter (62k floats for the article's net, at batch 4 an eighth of
/// the step in four-float vectors). The same operations per element, so the same bits.
#[allow(clippy::too_many_arguments)]
pub fn sgd_update(
    p: &mut [f32],
    grad: &[f32],
    buf: &mut [f32],
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
    first_step: bool,
) {
    let hyper = (lr, momentum, weight_decay, nesterov, first_step);
    #[cfg(target_arch = "x86_64")]
    if super::avx512::available() {
        #[target_feature(enable = "avx512f")]
        fn build(p: &mut [f32], grad: &[f32], buf: &mut [f32], hyper: SgdHyper) {
            sgd_body(p, grad, buf, hyper)
        }
        // SAFETY: this CPU has AVX-512F (checked just above).
        return unsafe { build(p, grad, buf, hyper) };
    }
    sgd_body(p, grad, buf, hyper)
}

/// `(lr, momentum, weight_decay, nesterov, first_step)` of [`sgd_update`].
type SgdHyper = (f32, f32, f32, bool, bool);

#[inline(always)]
fn sgd_body(p: &mut [f32], grad: &[f32], buf: &mut [f32], hyper: SgdHyper) {
    let (lr, momentum, weight_decay, nesterov, first_step) = hyper;
    for ((w, &g0), b) in p.iter_mut().zip(grad).zip(buf.iter_mut()) {
        let g = if weight_decay != 0.0 {
            g0 + weight_decay * *w
        } else {
            g0
        };
        let step = if momentum != 0.0 {
            *b = if first_step { g } else { momentum * *b + g };
            if nesterov { g + momentum * *b } else { *b }
        } else {
            g
        };
        *w -= lr * step;
    }
}

/// Hyper-parameters of one Adam step, bias corrections included.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// `β₁`.
    pub b1: f32,
    /// `β₂`.
    pub b2: f32,
    /// `ε`.
    pub eps: f32,
    /// `1 − β₁ᵗ`.
    pub bias1: f32,
    /// `1 − β₂ᵗ`.
    pub bias2: f32,
    /// Weight decay for this parameter.
    pub weight_decay: f32,
    /// Decoupled (AdamW) decay instead of L2.
    pub decoupled: bool,
}

/// One Adam/AdamW step on a parameter, PyTorch's formulation:
/// `p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`.
pub fn adam_update(p: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], s: &AdamStep) {
    let step = s.lr / s.bias1;
    let sqrt_b2 = s.bias2.sqrt();
    for (((w, &g0), mi), vi) in p.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if s.decoupled {
            *w *= 1.0 - s.lr * s.weight_decay;
            g0
        } else {
            g0 + s.weight_decay * *w
        };
        *mi = s.b1 * *mi + (1.0 - s.b1) * g;
        *vi = s.b2 * *vi + (1.0 - s.b2) * g * g;
        *w -= step * *mi / (vi.sqrt() / sqrt_b2 + s.eps);
    }
}
