//! Small dense linear algebra in `f64`: the symmetric eigen-decomposition the whitening
//! initialisation needs (a 12×12 patch covariance for airbench's 2×2 first layer).

/// Eigenvalues and unit eigenvectors of a symmetric `n×n` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct SymmetricEigen {
    /// Eigenvalues, largest first.
    pub values: Vec<f64>,
    /// `vectors[k]` is the unit eigenvector of `values[k]` (length `n`).
    pub vectors: Vec<Vec<f64>>,
}

/// Sweeps of the cyclic Jacobi method before giving up (a 12×12 matrix converges in
/// well under ten).
const MAX_SWEEPS: usize = 100;

/// The eigen-decomposition of the symmetric `n×n` matrix `a` (row-major, `n·n` values) by
/// the cyclic Jacobi method: plane rotations zero each off-diagonal pair in turn until the
/// off-diagonal mass is negligible against the diagonal. Only the upper triangle is read.
/// Exact arithmetic order, so the result is the same on every machine and thread count.
///
/// An error when `a` is not `n·n` values, holds a non-finite value, or does not converge.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<SymmetricEigen, String> {
    if a.len() != n * n {
        return Err(format!(
            "symmetric_eigen: {} values for a {n}×{n} matrix",
            a.len()
        ));
    }
    if let Some(i) = a.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "symmetric_eigen: entry ({}, {}) is {}",
            i / n,
            i % n,
            a[i]
        ));
    }
    // Work on a symmetric copy built from the upper triangle.
    let mut m = vec![0.0f64; n * n];
    for i in 0..n {
        for j in i..n {
            m[i * n + j] = a[i * n + j];
            m[j * n + i] = a[i * n + j];
        }
    }
    // v's columns become the eigenvectors.
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let off = |m: &[f64]| -> f64 {
        let mut s = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                s += m[i * n + j] * m[i * n + j];
            }
        }
        s
    };
    let diag = |m: &[f64]| -> f64 { (0..n).map(|i| m[i * n + i] * m[i * n + i]).sum() };
    let mut converged = false;
    for _ in 0..MAX_SWEEPS {
        let o = off(&m);
        if o == 0.0 || o <= 1e-30 * diag(&m) {
            converged = true;
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation angle θ with tan 2θ = 2·a_pq / (a_qq − a_pp), taking the
                // smaller root t = tan θ for stability.
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // m ← Jᵀ m J on rows/columns p and q.
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    if !converged {
        return Err(format!(
            "symmetric_eigen: no convergence after {MAX_SWEEPS} sweeps"
        ));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| m[y * n + y].total_cmp(&m[x * n + x]));
    Ok(SymmetricEigen {
        values: order.iter().map(|&k| m[k * n + k]).collect(),
        vectors: order
            .iter()
            .map(|&k| (0..n).map(|i| v[i * n + k]).collect())
            .collect(),
    })
}
