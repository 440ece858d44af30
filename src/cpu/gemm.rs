//! Single-precision matrix multiply: `C = A·B` or `C += A·B`.
//!
//! Operands are strided views, so the transposed forms the backward passes need
//! (`Aᵀ·B`, `A·Bᵀ`) are the same call with the strides swapped: nothing is transposed
//! in memory. Element `(i, j)` of a matrix with row stride `rs` and column stride `cs`
//! lives at `data[i * rs + j * cs]`.

/// `C[m×n] (=|+=) A[m×k] · B[k×n]`; `C` is row-major with row stride `rsc`.
///
/// Naive triple loop in the reference order; every fast variant is tested against it.
#[allow(clippy::too_many_arguments)]
pub fn gemm_naive(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * rsa + p * csa] * b[p * rsb + j * csb];
            }
            let dst = &mut c[i * rsc + j];
            *dst = if accumulate { *dst + acc } else { acc };
        }
    }
}

/// `C[m×n] (=|+=) A[m×k] · B[k×n]`: the engine's GEMM entry point.
///
/// Placeholder until the packed kernels land: forwards to [`gemm_naive`].
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    gemm_naive(m, k, n, a, rsa, csa, b, rsb, csb, c, rsc, accumulate)
}
