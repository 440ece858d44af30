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
/// in the same order as the reference, so the result is the same.
fn maxpool_forward_2x2(
    x: &[f32],
    planes: usize,
    (h, w): (usize, usize),
    y: &mut [f32],
    argmax: &mut [u32],
) {
    let (oh_n, ow_n) = (h / 2, w / 2);
    for pl in 0..planes {
        let xp = &x[pl * h * w..(pl + 1) * h * w];
        let base = pl * oh_n * ow_n;
        for oh in 0..oh_n {
            let (r0, r1) = (2 * oh * w, (2 * oh + 1) * w);
            let ys = &mut y[base + oh * ow_n..base + (oh + 1) * ow_n];
            let am = &mut argmax[base + oh * ow_n..base + (oh + 1) * ow_n];
            for (ow, (yo, ao)) in ys.iter_mut().zip(am.iter_mut()).enumerate() {
                let i = [r0 + 2 * ow, r0 + 2 * ow + 1, r1 + 2 * ow, r1 + 2 * ow + 1];
                let (mut best, mut bi) = (xp[i[0]], i[0]);
                for &j in &i[1..] {
                    let v = xp[j];
                    if v > best || (v.is_nan() && !best.is_nan()) {
                        best = v;
                        bi = j;
                    }
                }
                *yo = best;
                *ao = bi as u32;
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
