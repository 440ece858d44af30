//! Batch-norm kernels over `x[N, C, P]` (NCHW with `P = H·W` per plane), and the
//! fixed-order sums they and the bias gradients use.
//!
//! ```text
//! forward (training): μ_c = Σ x / M,  σ²_c = Σ (x − μ_c)² / M      (M = N·P, in f64)
//!                     x̂ = (x − μ_c)·inv_c,  y = γ_c·x̂ + β_c        (inv_c = 1/√(σ²_c + ε))
//! backward:           dβ_c = Σ dy,  dγ_c = Σ dy·x̂                   (in f64)
//!                     dx = γ_c·inv_c·(dy − dβ_c/M − x̂·dγ_c/M)
//! ```
//!
//! A sum runs in lanes in a fixed order: lane `l` of `L` adds `x[l], x[l+L], x[l+2L], …`
//! in order, the lanes are added in a fixed tree, then the `len mod L` tail in order. LLVM
//! vectorises that without reassociating anything (a plain `iter().sum()` is one serial
//! chain of adds, a few cycles each), and the result depends only on the data, not on
//! the CPU or the thread count. Channels (sums) and planes (the element-wise passes) are
//! spread over the rayon pool; every output is computed by one task.

use rayon::prelude::*;

/// Adds 8 lanes in a fixed tree: `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`.
#[inline(always)]
fn tree8<T: Copy + std::ops::Add<Output = T>>(l: [T; 8]) -> T {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// `Σ x` in 16 f32 lanes (lane `l` and `l + 8` added, then the 8 in the tree `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`), the tail in order.
pub fn sum_f32(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let half: [f32; 8] = std::array::from_fn(|l| acc[l] + acc[l + 8]);
    chunks.remainder().iter().fold(tree8(half), |s, &v| s + v)
}

/// `Σ f(x)` in f64: 8 lanes added in the same tree as [`sum_f32`]'s, the tail in order.
#[inline(always)]
fn lanes_f64(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    chunks.remainder().iter().fold(tree8(acc), |s, &v| s + f(v))
}

/// `Σ x` in f64 (8 lanes added in the same tree, the tail in order).
pub fn sum_f64(x: &[f32]) -> f64 {
    lanes_f64(x, |v| v as f64)
}

/// `Σ (x − mean)²` in f64, in [`sum_f64`]'s order.
pub fn sum_sq_dev_f64(x: &[f32], mean: f64) -> f64 {
    lanes_f64(x, |v| (v as f64 - mean) * (v as f64 - mean))
}

/// `(Σ dy, Σ dy·x̂)` in f64 (each product rounded to f32 first), in [`sum_f64`]'s order.
pub fn sum_dy_dyxh(dy: &[f32], xh: &[f32]) -> (f64, f64) {
    let (mut b, mut g) = ([0.0f64; 8], [0.0f64; 8]);
    let mut dys = dy.chunks_exact(8);
    let mut xhs = xh[..dy.len()].chunks_exact(8);
    for (d, x) in (&mut dys).zip(&mut xhs) {
        for l in 0..8 {
            b[l] += d[l] as f64;
            g[l] += (d[l] * x[l]) as f64;
        }
    }
    let (mut sb, mut sg) = (tree8(b), tree8(g));
    for (&d, &x) in dys.remainder().iter().zip(xhs.remainder()) {
        sb += d as f64;
        sg += (d * x) as f64;
    }
    (sb, sg)
}

/// Channel `c`'s planes of `x[N, C, P]`, in image order.
fn planes(x: &[f32], c: usize, ch: usize, p: usize) -> impl Iterator<Item = &[f32]> {
    x.chunks_exact(p).skip(c).step_by(ch)
}

/// Whether a pass over `len` floats is worth the rayon pool.
fn parallel(len: usize) -> bool {
    len >= super::PARALLEL_MIN_ELEMENTS && rayon::current_num_threads() > 1
}

/// `f(c)` for every channel, on the pool when `x` is large; in channel order.
fn per_channel<T: Send>(len: usize, ch: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    match parallel(len) {
        true => (0..ch).into_par_iter().map(f).collect(),
        false => (0..ch).map(f).collect(),
    }
}

/// `Σ x` per channel of `x[N, C, P]`, in f64: the planes' [`sum_f64`] added in image order.
pub fn channel_sums(x: &[f32], ch: usize, p: usize) -> Vec<f64> {
    per_channel(x.len(), ch, |c| planes(x, c, ch, p).map(sum_f64).sum())
}

/// `Σ (x − mean_c)²` per channel of `x[N, C, P]`, in f64, in [`channel_sums`]' order.
pub fn channel_sq_devs(x: &[f32], ch: usize, p: usize, mean: &[f64]) -> Vec<f64> {
    per_channel(x.len(), ch, |c| {
        planes(x, c, ch, p)
            .map(|pl| sum_sq_dev_f64(pl, mean[c]))
            .sum()
    })
}

/// `(Σ dy, Σ dy·x̂)` per channel of `dy, x̂ [N, C, P]`, in f64, in [`channel_sums`]' order.
pub fn channel_grad_sums(dy: &[f32], xh: &[f32], ch: usize, p: usize) -> Vec<(f64, f64)> {
    per_channel(dy.len(), ch, |c| {
        planes(dy, c, ch, p)
            .zip(planes(xh, c, ch, p))
            .map(|(d, x)| sum_dy_dyxh(d, x))
            .fold((0.0, 0.0), |(a, b), (u, v)| (a + u, b + v))
    })
}

/// `f(plane index, plane)` for every plane of `out[N, C, P]`.
fn per_plane(out: &mut [f32], p: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    match parallel(out.len()) {
        true => out
            .par_chunks_mut(p.max(1))
            .enumerate()
            .for_each(|(i, o)| f(i, o)),
        false => out
            .chunks_mut(p.max(1))
            .enumerate()
            .for_each(|(i, o)| f(i, o)),
    }
}

/// One pass over `x[N, C, P]`: `x̂ = (x − mean_c)·inv_c` and `y = γ_c·x̂ + β_c`, both
/// written (backward reads `x̂`).
#[allow(clippy::too_many_arguments)]
pub fn normalize_affine(
    x: &[f32],
    ch: usize,
    p: usize,
    mean: &[f32],
    inv: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    xhat: &mut [f32],
    y: &mut [f32],
) {
    let p = p.max(1);
    let run = |i: usize, (xh, y): (&mut [f32], &mut [f32])| {
        let c = i % ch;
        let (m, s, g, b) = (mean[c], inv[c], gamma[c], beta[c]);
        for ((h, o), &v) in xh.iter_mut().zip(y.iter_mut()).zip(&x[i * p..]) {
            let t = (v - m) * s;
            *h = t;
            *o = g * t + b;
        }
    };
    if parallel(x.len()) {
        xhat.par_chunks_mut(p)
            .zip(y.par_chunks_mut(p))
            .enumerate()
            .for_each(|(i, pr)| run(i, pr));
    } else {
        let pairs = xhat.chunks_mut(p).zip(y.chunks_mut(p));
        pairs.enumerate().for_each(|(i, pr)| run(i, pr));
    }
}

/// The input gradient of batch norm over `dy, x̂ [N, C, P]`: in training
/// `dx = k_c·(dy − mb_c − x̂·mg_c)` (`mb`, `mg`: the means of `dy` and `dy·x̂`), with
/// fixed statistics (`means = None`) `dx = k_c·dy`; `k_c = γ_c·inv_c`.
pub fn input_grad(
    dy: &[f32],
    xh: &[f32],
    ch: usize,
    p: usize,
    k: &[f32],
    means: Option<(&[f32], &[f32])>,
    dx: &mut [f32],
) {
    let p = p.max(1);
    per_plane(dx, p, |i, d| {
        let c = i % ch;
        let (g, x) = (&dy[i * p..][..d.len()], &xh[i * p..][..d.len()]);
        match means {
            Some((mb, mg)) => {
                let (kc, b, m) = (k[c], mb[c], mg[c]);
                for ((o, &gv), &xv) in d.iter_mut().zip(g).zip(x) {
                    *o = kc * (gv - b - xv * m);
                }
            }
            None => d.iter_mut().zip(g).for_each(|(o, &gv)| *o = k[c] * gv),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sums_match_sequential_sums_closely() {
        for len in [0usize, 1, 7, 8, 15, 16, 17, 100, 1001] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let exact: f64 = x.iter().map(|&v| v as f64).sum();
            assert!(
                (sum_f64(&x) - exact).abs() <= 1e-9 * (1.0 + exact.abs()),
                "len {len}"
            );
            assert!((sum_f32(&x) as f64 - exact).abs() <= 1e-4 * (1.0 + exact.abs()));
            let mean = exact / len.max(1) as f64;
            let sq: f64 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
            assert!((sum_sq_dev_f64(&x, mean) - sq).abs() <= 1e-9 * (1.0 + sq));
            let (b, g) = sum_dy_dyxh(&x, &x);
            let gg: f64 = x.iter().map(|&v| (v * v) as f64).sum();
            assert!((b - exact).abs() <= 1e-9 * (1.0 + exact.abs()));
            assert!((g - gg).abs() <= 1e-9 * (1.0 + gg));
        }
    }
}
