//! GEMM as dot products, for `A·Bᵀ`-shaped products with few rows.
//!
//! When A's rows and B's columns are both contiguous along k (`csa = 1`, `rsb = 1`: the
//! weight gradient `dW = dY·colsᵀ` of a convolution, a dense layer's `x·Wᵀ`), every
//! element of C is the dot product of two contiguous runs. With few rows of C, packing B
//! (a transpose of all of it) costs as much as the product itself; here nothing is packed.
//!
//! Each block of C (up to `DotKernel::ROWS` rows × [`C`] columns) keeps one vector
//! accumulator per element: per vector of k, `rows + cols` loads and `rows·cols`
//! multiply-adds. On 8 lanes (AVX2, portable) each element's sum is: lane sums over k
//! rounded down to a multiple of 8, in increasing k; the 8 lanes added in a fixed tree;
//! the remaining `k mod 8` terms added in order. On 16 lanes (AVX-512) the tail is one
//! masked vector and the lanes are added pairwise ([`Avx512Dot`]). Then `C = C + sum` (or
//! `C = sum`). Nothing depends on threads.

/// Most rows of C for which [`super::gemm`] takes this path whatever `n`. Measured (`cargo
/// bench --bench gemm`): at 4 and 6 rows dot products run 2–4× faster than packing, at 16
/// rows slower.
pub const DOT_MAX_M: usize = 8;
/// Most rows and columns of C for which [`super::gemm`] also takes this path (a small
/// output with a deep `k`: a first convolution's weight gradient, `dW[32×27] = dY·colsᵀ`).
/// Packing would transpose both operands, `(m + n)·k` scattered copies for `m·n·k`
/// multiply-adds, and a 48-column tile would waste 21 of 48 columns on `n = 27`.
pub const DOT_MAX_SIDE: usize = 64;

/// Whether [`super::gemm`] computes `A·Bᵀ` (`csa = rsb = 1`) of this shape as dot products.
pub fn pays(m: usize, k: usize, n: usize) -> bool {
    k >= 8 && (m <= DOT_MAX_M || (m <= DOT_MAX_SIDE && n <= DOT_MAX_SIDE && k >= 64))
}

/// Columns of C per block.
const C: usize = 4;
/// Below this many multiply-adds a dot-product GEMM stays on the calling thread.
const PAR_MIN_WORK: usize = 1 << 21;

/// The block computation of one instruction set: `sums[i][j] = A row i · B column j` for
/// `RR` rows and `CC` columns (all slices of length `k`).
pub trait DotKernel: Copy + Sync {
    /// Rows of C per full block: as many as the registers hold accumulators for, with
    /// [`C`] columns (2 on AVX2's 16 registers, 4 on AVX-512's 32). The block shape does
    /// not change any element's sum, only how often the operands are loaded.
    const ROWS: usize;

    /// See the trait docs.
    fn block<const RR: usize, const CC: usize>(
        self,
        k: usize,
        rows: &[&[f32]; RR],
        cols: &[&[f32]; CC],
    ) -> [[f32; CC]; RR];
}

/// Adds the 8 lanes in a fixed tree: `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))`.
#[inline(always)]
fn lane_sum(l: [f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// The `k mod 8` tail of one dot product, added in order to `s`.
#[inline(always)]
fn tail(row: &[f32], col: &[f32], k8: usize, mut s: f32) -> f32 {
    for (x, y) in row[k8..].iter().zip(&col[k8..]) {
        s = x.mul_add(*y, s);
    }
    s
}

/// `C[m×n] (=|+=) A[m×k]·B[k×n]` with `A[i][p] = a[i·rsa + p]`, `B[p][j] = b[j·csb + p]`.
/// Large products run on the rayon pool, split by rows (no element's sum changes).
#[allow(clippy::too_many_arguments)]
pub fn gemm_dot<K: DotKernel>(
    kern: K,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    b: &[f32],
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(rsc >= n || m == 1, "gemm: C row stride {rsc} < n = {n}");
    let rsc = if m == 1 { n } else { rsc };
    let c = &mut c[..(m - 1) * rsc + n];
    let t = rayon::current_num_threads();
    if t > 1 && m > K::ROWS && m.saturating_mul(n).saturating_mul(k) >= PAR_MIN_WORK {
        use rayon::prelude::*;
        // Equal shares of whole blocks, one per thread.
        let per = m.div_ceil(K::ROWS).div_ceil(t) * K::ROWS;
        c.par_chunks_mut(per * rsc).enumerate().for_each(|(i, c)| {
            let rows = per.min(m - i * per);
            let a = &a[i * per * rsa..];
            dot_rows(kern, rows, k, n, a, rsa, b, csb, c, rsc, accumulate);
        });
        return;
    }
    dot_rows(kern, m, k, n, a, rsa, b, csb, c, rsc, accumulate);
}

/// [`gemm_dot`] on the calling thread.
#[allow(clippy::too_many_arguments)]
fn dot_rows<K: DotKernel>(
    kern: K,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    b: &[f32],
    csb: usize,
    c: &mut [f32],
    rsc: usize,
    accumulate: bool,
) {
    let a_row = |i: usize| &a[i * rsa..i * rsa + k];
    let b_col = |j: usize| &b[j * csb..j * csb + k];
    // `RR` rows at i0, across all columns in blocks of [`C`].
    macro_rules! rows {
        ($rr:literal, $i0:expr) => {{
            let i0 = $i0;
            let rows: [&[f32]; $rr] = std::array::from_fn(|i| a_row(i0 + i));
            for j0 in (0..n).step_by(C) {
                let mut store = |sums: &[[f32; C]], cc: usize| {
                    for (i, row) in sums.iter().enumerate() {
                        let dst = &mut c[(i0 + i) * rsc + j0..][..cc];
                        for (d, &s) in dst.iter_mut().zip(row) {
                            *d = if accumulate { *d + s } else { s };
                        }
                    }
                };
                // Pads a block's sums to C columns for `store`.
                macro_rules! cols {
                    ($cc:literal) => {{
                        let cols: [&[f32]; $cc] = std::array::from_fn(|j| b_col(j0 + j));
                        let s = kern.block::<$rr, $cc>(k, &rows, &cols);
                        let mut out = [[0.0f32; C]; $rr];
                        for (o, r) in out.iter_mut().zip(&s) {
                            o[..$cc].copy_from_slice(r);
                        }
                        store(&out, $cc);
                    }};
                }
                match (n - j0).min(C) {
                    4 => cols!(4),
                    3 => cols!(3),
                    2 => cols!(2),
                    _ => cols!(1),
                }
            }
        }};
    }
    let mut i0 = 0;
    while K::ROWS >= 4 && m - i0 >= 4 {
        rows!(4, i0);
        i0 += 4;
    }
    while m - i0 >= 2 {
        rows!(2, i0);
        i0 += 2;
    }
    if i0 < m {
        rows!(1, i0);
    }
}

/// `wide::f32x8` blocks (SSE2 without target flags; the multiply-add need not fuse).
#[derive(Clone, Copy, Debug)]
pub struct PortableDot;

impl DotKernel for PortableDot {
    const ROWS: usize = 2;

    #[inline(always)]
    fn block<const RR: usize, const CC: usize>(
        self,
        k: usize,
        rows: &[&[f32]; RR],
        cols: &[&[f32]; CC],
    ) -> [[f32; CC]; RR] {
        use wide::f32x8;
        let load = |s: &[f32], p: usize| f32x8::from(<[f32; 8]>::try_from(&s[p..p + 8]).unwrap());
        let k8 = k / 8 * 8;
        let mut acc = [[f32x8::ZERO; CC]; RR];
        for p in (0..k8).step_by(8) {
            let av: [f32x8; RR] = std::array::from_fn(|i| load(rows[i], p));
            for j in 0..CC {
                let bv = load(cols[j], p);
                for i in 0..RR {
                    acc[i][j] = av[i].mul_add(bv, acc[i][j]);
                }
            }
        }
        std::array::from_fn(|i| {
            std::array::from_fn(|j| tail(rows[i], cols[j], k8, lane_sum(acc[i][j].to_array())))
        })
    }
}

/// AVX2+FMA blocks; only [`Avx2Dot::detect`] makes one.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
pub struct Avx2Dot {
    _proof: (),
}

#[cfg(target_arch = "x86_64")]
impl Avx2Dot {
    /// The kernel, if this CPU has AVX2 and FMA.
    pub fn detect() -> Option<Self> {
        super::Avx2Fma::detect().map(|_| Avx2Dot { _proof: () })
    }
}

#[cfg(target_arch = "x86_64")]
impl DotKernel for Avx2Dot {
    const ROWS: usize = 2;

    #[inline(always)]
    fn block<const RR: usize, const CC: usize>(
        self,
        k: usize,
        rows: &[&[f32]; RR],
        cols: &[&[f32]; CC],
    ) -> [[f32; CC]; RR] {
        assert!(rows.iter().chain(cols).all(|s| s.len() >= k));
        // SAFETY: `self` exists only if `detect` saw AVX2 and FMA; every slice holds k
        // values (asserted), which is all `block_avx2` reads.
        unsafe { block_avx2(k, rows, cols) }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; every slice must hold at least `k` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2<const RR: usize, const CC: usize>(
    k: usize,
    rows: &[&[f32]; RR],
    cols: &[&[f32]; CC],
) -> [[f32; CC]; RR] {
    use std::arch::x86_64::*;
    let k8 = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); CC]; RR];
    for p in (0..k8).step_by(8) {
        // SAFETY: p + 8 ≤ k8 ≤ k ≤ every slice's length.
        let av: [__m256; RR] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(rows[i].as_ptr().add(p)) });
        for j in 0..CC {
            // SAFETY: as above.
            let bv = unsafe { _mm256_loadu_ps(cols[j].as_ptr().add(p)) };
            for i in 0..RR {
                acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
            }
        }
    }
    std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[i][j]) };
            tail(rows[i], cols[j], k8, lane_sum(lanes))
        })
    })
}

/// AVX-512F blocks (16 lanes); only [`Avx512Dot::detect`] makes one. Each element's sum:
/// lane sums over k in increasing k, the last `k mod 16` values in one masked vector
/// (zeros in the lanes past k); then the 16 lanes added pairwise in four rounds, lane
/// `2l` + lane `2l + 1` each round ([`reduce16`], which sums the whole block's 16
/// accumulators at once).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
pub struct Avx512Dot {
    _proof: (),
}

#[cfg(target_arch = "x86_64")]
impl Avx512Dot {
    /// The kernel, if this CPU has AVX-512F.
    pub fn detect() -> Option<Self> {
        super::Avx512F::detect().map(|_| Avx512Dot { _proof: () })
    }
}

#[cfg(target_arch = "x86_64")]
impl DotKernel for Avx512Dot {
    const ROWS: usize = 4;

    #[inline(always)]
    fn block<const RR: usize, const CC: usize>(
        self,
        k: usize,
        rows: &[&[f32]; RR],
        cols: &[&[f32]; CC],
    ) -> [[f32; CC]; RR] {
        assert!(rows.iter().chain(cols).all(|s| s.len() >= k));
        // SAFETY: `self` exists only if `detect` saw AVX-512F; every slice holds k
        // values (asserted), which is all `block_avx512` reads.
        unsafe { block_avx512(k, rows, cols) }
    }
}

/// # Safety
/// The CPU must support AVX-512F; every slice must hold at least `k` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const RR: usize, const CC: usize>(
    k: usize,
    rows: &[&[f32]; RR],
    cols: &[&[f32]; CC],
) -> [[f32; CC]; RR] {
    use std::arch::x86_64::*;
    const { assert!(RR * CC <= 16) };
    let mut acc = [[_mm512_setzero_ps(); CC]; RR];
    // One step over 16 values of k from `p`, of which the lanes in `mask` are read (the
    // others are zero and add 0·0).
    macro_rules! step {
        ($p:expr, $mask:expr) => {{
            let (p, mask): (usize, __mmask16) = ($p, $mask);
            // SAFETY: the masked lanes are p + l < k ≤ every slice's length; masked-off
            // lanes are not read.
            let av: [__m512; RR] = std::array::from_fn(|i| unsafe {
                _mm512_maskz_loadu_ps(mask, rows[i].as_ptr().wrapping_add(p))
            });
            for j in 0..CC {
                // SAFETY: as above.
                let bv = unsafe { _mm512_maskz_loadu_ps(mask, cols[j].as_ptr().wrapping_add(p)) };
                for i in 0..RR {
                    acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
                }
            }
        }};
    }
    let k16 = k / 16 * 16;
    for p in (0..k16).step_by(16) {
        step!(p, 0xffff);
    }
    if k > k16 {
        step!(k16, ((1u32 << (k - k16)) - 1) as __mmask16);
    }
    let mut all = [_mm512_setzero_ps(); 16];
    for i in 0..RR {
        for j in 0..CC {
            all[i * CC + j] = acc[i][j];
        }
    }
    let mut sums = [0.0f32; 16];
    // SAFETY: AVX-512F is enabled here (this function's target feature); `sums` holds 16.
    unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), reduce16(all)) };
    std::array::from_fn(|i| std::array::from_fn(|j| sums[i * CC + j]))
}

/// The lane sums of 16 vectors at once: lane `e` of the result is the sum of vector `e`'s
/// lanes. Four rounds each halve the lanes per vector, `x[2l] + x[2l + 1]`, with two
/// vectors' halves packed side by side into one (15 additions for the 16 sums).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn reduce16(v: [std::arch::x86_64::__m512; 16]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // Lanes 0..8 take the even (odd) lanes of the first vector, lanes 8..16 those of the
    // second (index 16 + l is the second vector's lane l).
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let pair = |a: __m512, b: __m512| {
        _mm512_add_ps(
            _mm512_permutex2var_ps(a, even, b),
            _mm512_permutex2var_ps(a, odd, b),
        )
    };
    // Round r leaves 16 >> r partial sums per source vector, in runs of that length in
    // source order, so after four rounds lane e holds vector e's sum.
    let r1: [__m512; 8] = std::array::from_fn(|i| pair(v[2 * i], v[2 * i + 1]));
    let r2: [__m512; 4] = std::array::from_fn(|i| pair(r1[2 * i], r1[2 * i + 1]));
    let r3: [__m512; 2] = std::array::from_fn(|i| pair(r2[2 * i], r2[2 * i + 1]));
    pair(r3[0], r3[1])
}
