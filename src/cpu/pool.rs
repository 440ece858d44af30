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
                        if v > best || v.is_nan() {
                            best = v;
                            best_i = row + kw;
                            if v.is_nan() {
                                break;
                            }
                        }
                    }
                }
                y[base + oh * ow_n + ow] = best;
                argmax[base + oh * ow_n + ow] = best_i as u32;
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
