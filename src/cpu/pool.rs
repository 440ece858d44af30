//! Max-pooling over `K×K` windows with stride `S` (no padding), per channel plane.
//!
//! Forward keeps, for every output, the index of the winning input inside its plane, so
//! backward is a scatter: `dx[argmax] += dy`. Ties go to the first maximum in row-major
//! window order, and a NaN wins (it propagates), as in PyTorch.

/// Output side for an input side `n`: `(n − K)/S + 1`.
pub fn pooled(n: usize, kernel: usize, stride: usize) -> usize {
    (n - kernel) / stride + 1
}

/// Max-pool `planes` planes of `h×w`: `x[planes][h][w] → y[planes][oh][ow]`,
/// recording each winner's in-plane index in `argmax[planes][oh][ow]`.
pub fn maxpool_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    y: &mut [f32],
    argmax: &mut [u32],
) {
    if kernel == 2 && stride == 2 {
        #[cfg(target_arch = "x86_64")]
        if w >= 2 && crate::cpu::avx2::available() {
            // SAFETY: AVX2 is present (checked at run time).
            return unsafe { avx2::maxpool_2x2(x, planes, (h, w), y, argmax) };
        }
        return maxpool_forward_2x2(x, planes, (h, w), y, argmax);
    }
    maxpool_forward_naive(x, planes, (h, w), kernel, stride, y, argmax)
}

/// Reference max-pool, any window and stride.
pub fn maxpool_forward_naive(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let (oh_n, ow_n) = (pooled(h, kernel, stride), pooled(w, kernel, stride));
    for pl in 0..planes {
        let xp = &x[pl * h * w..(pl + 1) * h * w];
        let base = pl * oh_n * ow_n;
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                let (mut best, mut best_i) = (f32::NEG_INFINITY, oh * stride * w + ow * stride);
                for kh in 0..kernel {
                    let row = (oh * stride + kh) * w + ow * stride;
                    for kw in 0..kernel {
                        let v = xp[row + kw];
                        // NaN wins and then stays: nothing compares greater than it.
                        if v > best || (v.is_nan() && !best.is_nan()) {
                            best = v;
                            best_i = row + kw;
                        }
                    }
                }
                y[base + oh * ow_n + ow] = best;
                argmax[base + oh * ow_n + ow] = best_i as u32;
            }
        }
    }
}

/// The common 2×2, stride-2 case: two input rows at a time, the four candidates compared
/// in the same order as the reference (so the result is the same), by selects instead
/// of branches, over zipped row slices (no bounds checks in the inner loop).
fn maxpool_forward_2x2(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let (oh_n, ow_n) = (h / 2, w / 2);
    if oh_n == 0 || ow_n == 0 {
        return;
    }
    let ys = y[..planes * oh_n * ow_n].chunks_exact_mut(ow_n);
    let ams = argmax[..planes * oh_n * ow_n].chunks_exact_mut(ow_n);
    for (row, (yo, ao)) in ys.zip(ams).enumerate() {
        let (pl, oh) = (row / oh_n, row % oh_n);
        let r0 = pl * h * w + 2 * oh * w;
        let (x0, x1) = (&x[r0..r0 + 2 * ow_n], &x[r0 + w..r0 + w + 2 * ow_n]);
        // In-plane index of the window's top-left input.
        let base = (2 * oh * w) as u32;
        let wins = x0.chunks_exact(2).zip(x1.chunks_exact(2));
        for (ow, ((t, b), (yv, av))) in wins.zip(yo.iter_mut().zip(ao.iter_mut())).enumerate() {
            let i0 = base + 2 * ow as u32;
            let (mut best, mut bi) = (t[0], i0);
            for (v, i) in [
                (t[1], i0 + 1),
                (b[0], i0 + w as u32),
                (b[1], i0 + w as u32 + 1),
            ] {
                // NaN wins and then stays: nothing compares greater than it.
                let take = (v > best) | (v.is_nan() & !best.is_nan());
                best = if take { v } else { best };
                bi = if take { i } else { bi };
            }
            *yv = best;
            *av = bi;
        }
    }
}

/// PyTorch's pooled side for an input side `n` with window `K`, stride `S` and padding
/// `P`: `⌊(n + 2P − K)/S⌋ + 1`, or with `ceil` `⌈(n + 2P − K)/S⌉ + 1` less one when that
/// last window would start in the right padding (every window starts inside the input or
/// the left padding). Needs `n + 2P ≥ K` and `S ≥ 1`.
pub fn pooled_padded(n: usize, kernel: usize, stride: usize, pad: usize, ceil: bool) -> usize {
    let span = n + 2 * pad - kernel;
    let mut out = if ceil {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    if ceil && (out - 1) * stride >= n + pad {
        out -= 1;
    }
    out
}

/// Rows (or columns) `[lo, hi)` of the input that window `o` covers: it starts at
/// `o·S − P` and spans `K`, clipped to `0..n` (the padding counts as −∞ for max-pooling).
fn window(o: usize, kernel: usize, stride: usize, pad: usize, n: usize) -> (usize, usize) {
    let start = o * stride;
    let lo = start.saturating_sub(pad);
    let hi = (start + kernel).saturating_sub(pad).min(n);
    (lo.min(hi), hi)
}

/// Max-pool with padding (−∞) and any output size `(oh, ow)` (see [`pooled_padded`]):
/// `x[planes][h][w] → y[planes][oh][ow]`, winners' in-plane indices in `argmax`. Ties go
/// to the first maximum in row-major order; a NaN wins. A window with no input pixel
/// (impossible with PyTorch's sizes) gives −∞ and points at the plane's first pixel.
#[allow(clippy::too_many_arguments)]
pub fn maxpool_forward_padded(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    pad: usize,
    (oh_n, ow_n): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
) {
    for pl in 0..planes {
        let xp = &x[pl * h * w..(pl + 1) * h * w];
        let base = pl * oh_n * ow_n;
        for oh in 0..oh_n {
            let (h0, h1) = window(oh, kernel, stride, pad, h);
            for ow in 0..ow_n {
                let (w0, w1) = window(ow, kernel, stride, pad, w);
                let (mut best, mut best_i) = (f32::NEG_INFINITY, h0 * w + w0);
                for r in h0..h1 {
                    for c in w0..w1 {
                        let v = xp[r * w + c];
                        if v > best || (v.is_nan() && !best.is_nan()) {
                            best = v;
                            best_i = r * w + c;
                        }
                    }
                }
                y[base + oh * ow_n + ow] = best;
                argmax[base + oh * ow_n + ow] = best_i.min(h * w - 1) as u32;
            }
        }
    }
}

/// Max-pool for inference: [`maxpool_forward_padded`]'s values (any padding and output
/// size), without the winners' indices that only backward needs. Separable: each output
/// row first takes the column-wise maximum of its window's input rows (a pass that
/// vectorises), then the maximum of each window's columns of that. A NaN wins, as in the
/// training kernels; the values are the same, except that a tie of `0.0` and `-0.0` may
/// keep the other sign.
#[allow(clippy::too_many_arguments)]
pub fn maxpool_eval(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    pad: usize,
    (oh_n, ow_n): (usize, usize),
    y: &mut [f32],
) {
    // `b` replaces `a` when larger, or when it is the first NaN.
    #[inline(always)]
    fn pick(a: f32, b: f32) -> f32 {
        if b > a || (b.is_nan() && !a.is_nan()) {
            b
        } else {
            a
        }
    }
    let mut rowmax = vec![0.0f32; w];
    for pl in 0..planes {
        let xp = &x[pl * h * w..(pl + 1) * h * w];
        let yp = &mut y[pl * oh_n * ow_n..(pl + 1) * oh_n * ow_n];
        for (oh, yrow) in yp.chunks_exact_mut(ow_n).enumerate() {
            let (h0, h1) = window(oh, kernel, stride, pad, h);
            rowmax.fill(f32::NEG_INFINITY);
            for r in h0..h1 {
                let xr = &xp[r * w..(r + 1) * w];
                rowmax
                    .iter_mut()
                    .zip(xr)
                    .for_each(|(m, &v)| *m = pick(*m, v));
            }
            for (ow, out) in yrow.iter_mut().enumerate() {
                let (w0, w1) = window(ow, kernel, stride, pad, w);
                *out = rowmax[w0..w1]
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &v| pick(m, v));
            }
        }
    }
}

/// Average-pool with zero padding counted in the divisor (PyTorch's default
/// `count_include_pad=True`): each output is the sum over its window clipped to the input,
/// divided by the window's extent clipped to the padded input, `x[planes][h][w] →
/// y[planes][oh][ow]`.
#[allow(clippy::too_many_arguments)]
pub fn avgpool_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    pad: usize,
    (oh_n, ow_n): (usize, usize),
    y: &mut [f32],
) {
    for pl in 0..planes {
        let xp = &x[pl * h * w..(pl + 1) * h * w];
        let yp = &mut y[pl * oh_n * ow_n..(pl + 1) * oh_n * ow_n];
        for oh in 0..oh_n {
            let (h0, h1) = window(oh, kernel, stride, pad, h);
            for ow in 0..ow_n {
                let (w0, w1) = window(ow, kernel, stride, pad, w);
                let mut sum = 0.0f32;
                for r in h0..h1 {
                    sum += xp[r * w + w0..r * w + w1].iter().sum::<f32>();
                }
                yp[oh * ow_n + ow] = sum / avg_divisor(oh, ow, kernel, stride, pad, (h, w)) as f32;
            }
        }
    }
}

/// The divisor of output `(oh, ow)` of [`avgpool_forward`]: the window clipped to the
/// padded input `[−P, n + P)`.
fn avg_divisor(
    oh: usize,
    ow: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    (h, w): (usize, usize),
) -> usize {
    let extent = |o: usize, n: usize| (o * stride + kernel).min(n + 2 * pad) - o * stride;
    extent(oh, h) * extent(ow, w)
}

/// Backward of [`avgpool_forward`]: `dx[planes][h][w]` (overwritten) gets each `dy`
/// divided by its window's divisor, on every input pixel of the window.
#[allow(clippy::too_many_arguments)]
pub fn avgpool_backward(
    dy: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    kernel: usize,
    stride: usize,
    pad: usize,
    (oh_n, ow_n): (usize, usize),
    dx: &mut [f32],
) {
    dx[..planes * h * w].fill(0.0);
    for pl in 0..planes {
        let dxp = &mut dx[pl * h * w..(pl + 1) * h * w];
        let dyp = &dy[pl * oh_n * ow_n..(pl + 1) * oh_n * ow_n];
        for oh in 0..oh_n {
            let (h0, h1) = window(oh, kernel, stride, pad, h);
            for ow in 0..ow_n {
                let (w0, w1) = window(ow, kernel, stride, pad, w);
                let g =
                    dyp[oh * ow_n + ow] / avg_divisor(oh, ow, kernel, stride, pad, (h, w)) as f32;
                for r in h0..h1 {
                    dxp[r * w + w0..r * w + w1].iter_mut().for_each(|d| *d += g);
                }
            }
        }
    }
}

/// PyTorch's adaptive-pooling bins: output `i` of `out` over an input side `n` covers
/// `[⌊i·n/out⌋, ⌈(i+1)·n/out⌉)`.
pub fn adaptive_bin(i: usize, out: usize, n: usize) -> (usize, usize) {
    ((i * n) / out, ((i + 1) * n).div_ceil(out))
}

/// Adaptive average pooling to `(oh, ow)`: `x[planes][h][w] → y[planes][oh][ow]`, each
/// output the mean of its bin (see [`adaptive_bin`]).
pub fn adaptive_avgpool_forward(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (oh_n, ow_n): (usize, usize),
    y: &mut [f32],
) {
    for pl in 0..planes {
        let xp = &x[pl * h * w..(pl + 1) * h * w];
        let yp = &mut y[pl * oh_n * ow_n..(pl + 1) * oh_n * ow_n];
        for oh in 0..oh_n {
            let (h0, h1) = adaptive_bin(oh, oh_n, h);
            for ow in 0..ow_n {
                let (w0, w1) = adaptive_bin(ow, ow_n, w);
                let mut sum = 0.0f32;
                for r in h0..h1 {
                    sum += xp[r * w + w0..r * w + w1].iter().sum::<f32>();
                }
                yp[oh * ow_n + ow] = sum / ((h1 - h0) * (w1 - w0)) as f32;
            }
        }
    }
}

/// Backward of [`adaptive_avgpool_forward`]: `dx` (overwritten) gets each `dy` divided by
/// its bin's size on every pixel of the bin.
pub fn adaptive_avgpool_backward(
    dy: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    (oh_n, ow_n): (usize, usize),
    dx: &mut [f32],
) {
    dx[..planes * h * w].fill(0.0);
    for pl in 0..planes {
        let dxp = &mut dx[pl * h * w..(pl + 1) * h * w];
        let dyp = &dy[pl * oh_n * ow_n..(pl + 1) * oh_n * ow_n];
        for oh in 0..oh_n {
            let (h0, h1) = adaptive_bin(oh, oh_n, h);
            for ow in 0..ow_n {
                let (w0, w1) = adaptive_bin(ow, ow_n, w);
                let g = dyp[oh * ow_n + ow] / ((h1 - h0) * (w1 - w0)) as f32;
                for r in h0..h1 {
                    dxp[r * w + w0..r * w + w1].iter_mut().for_each(|d| *d += g);
                }
            }
        }
    }
}

/// Backward of [`maxpool_forward`]: `dx[planes][h][w]` (overwritten) gets each `dy` at its argmax.
pub fn maxpool_backward(
    dy: &[f32],
    argmax: &[u32],
    planes: usize,
    (h, w): (usize, usize),
    out_len: usize,
    dx: &mut [f32],
) {
    dx[..planes * h * w].fill(0.0);
    for pl in 0..planes {
        let dxp = &mut dx[pl * h * w..(pl + 1) * h * w];
        let range = pl * out_len..(pl + 1) * out_len;
        for (g, &i) in dy[range.clone()].iter().zip(&argmax[range]) {
            dxp[i as usize] += *g;
        }
    }
}

/// The 2×2, stride-2 max-pool on AVX2: eight windows per step.
///
/// Sixteen consecutive floats of each of the two input rows are split into their even and
/// odd elements, giving the four candidates of eight windows in four registers; they are
/// compared in the reference order (`top-left, top-right, bottom-left, bottom-right`, take
/// when greater, or when NaN over a number), so results and winners are the reference's.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::*;

    use crate::cpu::avx2::first_lanes as first;

    /// [`super::maxpool_forward`] for kernel 2, stride 2; needs `w ≥ 2`. Rows of fewer than
    /// 8 windows are read and written through masks.
    ///
    /// # Safety
    /// The CPU must support AVX2; slices must hold `planes·h·w` inputs and
    /// `planes·(h/2)·(w/2)` outputs.
    #[target_feature(enable = "avx2")]
    pub unsafe fn maxpool_2x2(
        x: &[f32],
        planes: usize,
        (h, w): (usize, usize),
        y: &mut [f32],
        argmax: &mut [u32],
    ) {
        let (oh_n, ow_n) = (h / 2, w / 2);
        assert!(ow_n >= 1 && x.len() >= planes * h * w && y.len() >= planes * oh_n * ow_n);
        assert!(argmax.len() >= planes * oh_n * ow_n);
        let lanes = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
        let wv = _mm256_set1_epi32(w as i32);
        let (one, two, three) = (
            _mm256_set1_epi32(1),
            _mm256_set1_epi32(2),
            _mm256_set1_epi32(3),
        );
        // Rows of fewer than 8 windows: masks for the first 2·ow_n inputs (in two halves)
        // and the first ow_n outputs.
        let short = ow_n < 8;
        let (in_lo, in_hi, out_m) = (
            first(2 * ow_n),
            first((2 * ow_n).saturating_sub(8)),
            first(ow_n),
        );
        for row in 0..planes * oh_n {
            let (pl, oh) = (row / oh_n, row % oh_n);
            let r0 = pl * h * w + 2 * oh * w;
            let out = row * ow_n;
            // Steps of 8 windows; the last one overlaps the previous so none is partial
            // (unless the row has fewer than 8: one masked step).
            let mut ow = 0;
            loop {
                let ow0 = ow.min(ow_n.saturating_sub(8));
                // SAFETY: with ow_n ≥ 8, r0 + w + 2·ow0 + 16 ≤ r0 + 2w ≤ planes·h·w
                // (asserted) since 2·ow0 + 16 ≤ 2·ow_n ≤ w, and outputs out + ow0 + 8 ≤
                // planes·oh_n·ow_n; with ow_n < 8 the masks touch only inputs r0 + 2·ow_n
                // (+ w) and outputs out + ow_n, within the same bounds.
                unsafe {
                    let p0 = x.as_ptr().add(r0 + 2 * ow0);
                    let p1 = p0.add(w);
                    let load = |p: *const f32| {
                        if short {
                            (
                                _mm256_maskload_ps(p, in_lo),
                                _mm256_maskload_ps(p.add(8), in_hi),
                            )
                        } else {
                            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
                        }
                    };
                    let ((a0, b0), (a1, b1)) = (load(p0), load(p1));
                    let even = |a, b| {
                        _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(
                            _mm256_shuffle_ps::<0x88>(a, b),
                        )))
                    };
                    let odd = |a, b| {
                        _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(
                            _mm256_shuffle_ps::<0xDD>(a, b),
                        )))
                    };
                    let mut best = even(a0, b0);
                    let mut code = _mm256_setzero_si256();
                    for (v, c) in [
                        (odd(a0, b0), one),
                        (even(a1, b1), two),
                        (odd(a1, b1), three),
                    ] {
                        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, best);
                        let nan_over_number = _mm256_and_ps(
                            _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
                            _mm256_cmp_ps::<_CMP_ORD_Q>(best, best),
                        );
                        let take = _mm256_or_ps(gt, nan_over_number);
                        best = _mm256_blendv_ps(best, v, take);
                        code = _mm256_castps_si256(_mm256_blendv_ps(
                            _mm256_castsi256_ps(code),
                            _mm256_castsi256_ps(c),
                            take,
                        ));
                    }
                    // In-plane index: 2·oh·w + 2·ow + (code & 1) + (code >> 1)·w.
                    let base =
                        _mm256_add_epi32(_mm256_set1_epi32((2 * oh * w + 2 * ow0) as i32), lanes);
                    let col = _mm256_and_si256(code, one);
                    let below = _mm256_and_si256(
                        _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_srli_epi32::<1>(code)),
                        wv,
                    );
                    let idx = _mm256_add_epi32(base, _mm256_add_epi32(col, below));
                    let (yp, ap) = (
                        y.as_mut_ptr().add(out + ow0),
                        argmax.as_mut_ptr().add(out + ow0),
                    );
                    if short {
                        _mm256_maskstore_ps(yp, out_m, best);
                        _mm256_maskstore_epi32(ap as *mut i32, out_m, idx);
                    } else {
                        _mm256_storeu_ps(yp, best);
                        _mm256_storeu_si256(ap as *mut __m256i, idx);
                    }
                }
                if ow0 + 8 >= ow_n {
                    break;
                }
                ow += 8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portable 2×2 path (which AVX2 CPUs do not take) against the reference, with
    /// ties and NaNs, odd and even sides.
    #[test]
    fn portable_2x2_matches_reference() {
        for (h, w) in [(2, 2), (5, 7), (8, 8), (9, 17), (31, 31)] {
            let n = 3 * h * w;
            let mut x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 5) as f32).collect();
            x[n / 3] = f32::NAN;
            let out = 3 * (h / 2) * (w / 2);
            let (mut y1, mut y2) = (vec![0.0; out], vec![0.0; out]);
            let (mut a1, mut a2) = (vec![0u32; out], vec![0u32; out]);
            maxpool_forward_2x2(&x, 3, (h, w), &mut y1, &mut a1);
            maxpool_forward_naive(&x, 3, (h, w), 2, 2, &mut y2, &mut a2);
            assert_eq!(a1, a2, "{h}x{w}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y1), bits(&y2), "{h}x{w}");
        }
    }
}
