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
