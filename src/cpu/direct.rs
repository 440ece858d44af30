//! Direct convolution: a GEMM whose right matrix is read from the image in place.
//!
//! Take a stride-1 convolution of `x[C][H][W]` by a `KH×KW` kernel (callers pad first).
//! Lay each output row out at the input's width `W`: the *wide* output `yw[co][q]`,
//! `q = oy·W + ox` for `oy < OH` and `ox < W`, where the first `OW = W − KW + 1` columns
//! of a row are the convolution and the other `KW − 1` are junk. Then every kernel tap
//! `r = (c, ky, kx)` reads one contiguous run of `x`:
//!
//! ```text
//! yw[co][q] = Σ_r W[co][r] · x[off(r) + q]          off(c, ky, kx) = c·H·W + ky·W + kx
//! ```
//!
//! a GEMM whose right matrix `B[r][q] = x[off(r) + q]` is im2col's column matrix (widened
//! by the junk columns) read where it lies instead of written out. [`shifted_gemm`]
//! computes that product for any table of offsets. Its transpose, [`shifted_scatter`],
//! runs the input gradient: each tap's row of `Wᵀ · dyw` is added into `dx` at the tap's
//! offset (`dx[off(r) + q] += Σ_co W[co][r] · dyw[co][q]`, col2im's sum without the
//! column matrix). [`shifted_gemm_bt`] computes `G · Bᵀ`, the weight gradient
//! `dW[co][r] = Σ_n Σ_q dyw[n][co][q] · x[n][off(r) + q]` (with `dyw` zero in the junk
//! columns, so they add nothing); [`shifted_gemm_bt_lanes`] computes the same with the
//! output channels in the vector lanes, for layers with many of them.
//!
//! Against im2col + GEMM this never writes the `C·KH·KW × OH·OW` matrix (25 times the
//! image for a 5×5 kernel) nor packs it, and pays `W/OW` more multiply-adds on the junk
//! columns. It wins for layers with few channels (the article's network), whose GEMMs are
//! thin and whose time went into building that matrix.
//!
//! The kernels work on vectors of [`Q_ALIGN`] positions: a row of `q` positions is
//! computed up to `q.next_multiple_of(Q_ALIGN)`, so the sources need that much (plus the
//! largest offset) readable. The per-element arithmetic does not depend on how the work
//! is blocked or split, so the results are the same bit for bit whatever the thread count;
//! the AVX-512 build (16 lanes, fused multiply-adds), the AVX2 build (8 lanes, fused) and
//! the portable one (8 lanes, `a·b + c`) round differently from each other.

/// Positions per vector of work: the rows [`shifted_gemm`] writes and [`shifted_gemm_bt`]
/// reads are computed in runs of this many (the widest build's lanes), whatever the CPU.
pub const Q_ALIGN: usize = 16;

/// Floats a source must have readable past `offs.max() + q` for `q` positions:
/// the last vector's overhang.
pub fn overhang(q: usize) -> usize {
    q.next_multiple_of(Q_ALIGN) - q
}

/// Reference: `out[m][q] = Σ_r wt[r][m] · src[offs[r] + q]` for `q < q_len`, one element
/// at a time in `f64`-free plain `f32` (the tests compare the fast builds against it).
pub fn shifted_gemm_naive(
    wt: &[f32],
    offs: &[usize],
    src: &[f32],
    q_len: usize,
    out: &mut [f32],
    ld: usize,
) {
    let m = wt.len() / offs.len().max(1);
    for mi in 0..m {
        for q in 0..q_len {
            let mut s = 0.0f32;
            for (r, &off) in offs.iter().enumerate() {
                s += wt[r * m + mi] * src[off + q];
            }
            out[mi * ld + q] = s;
        }
    }
}

/// `out[m][q] = Σ_r wt[r][m] · src[offs[r] + q]` for `m < M = wt.len() / offs.len()` and
/// `q < q_len.next_multiple_of(Q_ALIGN)` (rows `ld ≥` that apart): a GEMM of `A = wtᵀ`
/// (`M×R`, given transposed) by the `R×Q` matrix of shifted runs of `src`.
///
/// # Panics
/// If `src` ends before `max(offs) + q_len.next_multiple_of(Q_ALIGN)`, `out` is shorter than
/// `M` rows, `ld` is too small, or `wt` is not `R·M` floats.
pub fn shifted_gemm(
    wt: &[f32],
    offs: &[usize],
    src: &[f32],
    q_len: usize,
    out: &mut [f32],
    ld: usize,
) {
    shifted_gemm_with(Build::best(), wt, offs, src, q_len, out, ld)
}

/// The instruction-set builds of the kernels: the widest this CPU has is used; the tests
/// run every one the CPU has through the same checks ([`Build::available`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// AVX-512F + FMA, 16 lanes.
    Avx512,
    /// AVX2 + FMA, 8 lanes.
    Avx2,
    /// Plain Rust, 8 lanes, unfused.
    Portable,
}

impl Build {
    /// Every build this CPU can run, widest first.
    pub fn available() -> Vec<Build> {
        let mut v = Vec::new();
        if super::avx512::available() && fma_available() {
            v.push(Build::Avx512);
        }
        if super::avx2::available() && fma_available() {
            v.push(Build::Avx2);
        }
        v.push(Build::Portable);
        v
    }

    /// The widest build this CPU can run.
    pub fn best() -> Build {
        static BEST: std::sync::OnceLock<Build> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Build::available()[0])
    }
}

/// Calls `$f::<generics>(args)` compiled for `$build`'s instruction set: inside a function
/// with `#[target_feature]` for AVX-512F + FMA or AVX2 + FMA, or plainly for the portable
/// build. The caller has checked that this CPU has `$build` ([`Build::available`]) and the
/// bounds `$f` relies on.
macro_rules! on_build {
    ($build:expr, $f:ident($($arg:ident: $ty:ty),*),
     avx512: <$($g1:tt),*>, avx2: <$($g2:tt),*>, portable: <$($g3:tt),*>) => {
        match $build {
            #[cfg(target_arch = "x86_64")]
            Build::Avx512 => {
                #[target_feature(enable = "avx512f,fma")]
                unsafe fn fast($($arg: $ty),*) {
                    // SAFETY: passed on from the caller (the CPU check and the bounds checks).
                    unsafe { $f::<$($g1),*>($($arg),*) }
                }
                // SAFETY: this CPU has AVX-512F and FMA (checked by the caller).
                unsafe { fast($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            Build::Avx2 => {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn fast($($arg: $ty),*) {
                    // SAFETY: passed on from the caller (the CPU check and the bounds checks).
                    unsafe { $f::<$($g2),*>($($arg),*) }
                }
                // SAFETY: this CPU has AVX2 and FMA (checked by the caller).
                unsafe { fast($($arg),*) }
            }
            // SAFETY: the portable build needs no CPU feature; the caller checked the bounds.
            _ => unsafe { $f::<$($g3),*>($($arg),*) },
        }
    };
}

/// [`shifted_gemm`] by the given build.
///
/// # Panics
/// As [`shifted_gemm`], and if this CPU cannot run `build`.
pub fn shifted_gemm_with(
    build: Build,
    wt: &[f32],
    offs: &[usize],
    src: &[f32],
    q_len: usize,
    out: &mut [f32],
    ld: usize,
) {
    let r_len = offs.len();
    if r_len == 0 || q_len == 0 {
        return;
    }
    let m = wt.len() / r_len;
    let qp = q_len.next_multiple_of(Q_ALIGN);
    assert_eq!(wt.len(), r_len * m, "shifted_gemm: wt is not R·M floats");
    assert!(ld >= qp, "shifted_gemm: ld {ld} < {qp}");
    assert!(
        out.len() >= (m.max(1) - 1) * ld + qp,
        "shifted_gemm: out too short"
    );
    let top = offs.iter().max().copied().unwrap_or(0);
    assert!(
        src.len() >= top + qp,
        "shifted_gemm: src ends before its last run"
    );
    assert!(
        Build::available().contains(&build),
        "{build:?} asked for on a CPU without it"
    );
    let job = Job {
        wt,
        offs,
        src,
        m,
        vectors: qp,
    };
    let job = &job;
    on_build!(
        build,
        forward_rows(job: &Job<'_>, out: &mut [f32], ld: usize),
        avx512: <Avx512>,
        avx2: <Avx2>,
        portable: <Portable>
    )
}

/// Whether this CPU has FMA (checked once; false off x86-64).
fn fma_available() -> bool {
    detected_once!("fma")
}

/// The operands of one [`shifted_gemm`] call.
struct Job<'a> {
    /// `[R][M]`
    wt: &'a [f32],
    offs: &'a [usize],
    src: &'a [f32],
    m: usize,
    /// Positions computed per row, a multiple of [`Q_ALIGN`].
    vectors: usize,
}

/// One instruction set's vector of `L` floats and the few operations the kernels need.
///
/// The methods are `unsafe` and `#[inline(always)]`: they are only called from bodies
/// inlined into an entry point compiled with `#[target_feature]` for that instruction set
/// (after the run-time check), and they read and write through raw pointers that the
/// entry points' bounds checks cover.
trait Lanes {
    /// Floats per vector.
    const L: usize;
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `c + a·b` (fused where the instruction set has FMA).
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The lanes' sum, in a fixed tree.
    unsafe fn sum(v: Self::V) -> f32;
}

/// AVX-512F + FMA: 16 lanes in a `zmm` register.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    const L: usize = 16;
    type V = std::arch::x86_64::__m512;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        // SAFETY: only reached from code compiled for AVX-512F (trait docs).
        unsafe { std::arch::x86_64::_mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: AVX-512F as above; the caller's bounds checks cover 16 floats at `p`.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        // SAFETY: AVX-512F as above.
        unsafe { std::arch::x86_64::_mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: AVX-512F as above.
        unsafe { std::arch::x86_64::_mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: AVX-512F as above.
        unsafe { std::arch::x86_64::_mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: AVX-512F as above; the caller's bounds checks cover 16 floats at `p`.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn sum(v: Self::V) -> f32 {
        use std::arch::x86_64::*;
        // SAFETY: AVX-512F as above. Halves added pairwise: 256, 128, then 64, 32 bits.
        unsafe {
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
            let h = _mm256_add_ps(_mm512_castps512_ps256(v), hi);
            Avx2::sum(h)
        }
    }
}

/// AVX2 + FMA: 8 lanes in a `ymm` register.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    const L: usize = 8;
    type V = std::arch::x86_64::__m256;
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        // SAFETY: only reached from code compiled for AVX2 + FMA (trait docs).
        unsafe { std::arch::x86_64::_mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: AVX2 as above; the caller's bounds checks cover 8 floats at `p`.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        // SAFETY: AVX2 as above.
        unsafe { std::arch::x86_64::_mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: AVX2 as above.
        unsafe { std::arch::x86_64::_mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: FMA as above.
        unsafe { std::arch::x86_64::_mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: AVX2 as above; the caller's bounds checks cover 8 floats at `p`.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn sum(v: Self::V) -> f32 {
        use std::arch::x86_64::*;
        // SAFETY: AVX2 as above. Halves added pairwise: 128, 64, then 32 bits.
        unsafe {
            let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            let h = _mm_add_ss(h, _mm_movehdup_ps(h));
            _mm_cvtss_f32(h)
        }
    }
}

/// Any CPU: 8 floats in an array, `a·b + c` unfused.
struct Portable;

impl Lanes for Portable {
    const L: usize = 8;
    type V = [f32; 8];
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        // SAFETY: the caller's bounds checks cover 8 floats at `p`.
        unsafe { p.cast::<[f32; 8]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self::V {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn add(mut a: Self::V, b: Self::V) -> Self::V {
        for l in 0..8 {
            a[l] += b[l];
        }
        a
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, mut c: Self::V) -> Self::V {
        for l in 0..8 {
            c[l] += a[l] * b[l];
        }
        c
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        // SAFETY: the caller's bounds checks cover 8 floats at `p`.
        unsafe { p.cast::<[f32; 8]>().write_unaligned(v) }
    }
    #[inline(always)]
    unsafe fn sum(v: Self::V) -> f32 {
        let a = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
        let b = [a[0] + a[2], a[1] + a[3]];
        b[0] + b[1]
    }
}

/// Rows of `A` per register block and the most vectors beside them: about 24
/// accumulators in 32 AVX-512 registers, 8 in 16 AVX2 ones.
const fn row_blocks(l: usize) -> [(usize, usize); 5] {
    if l == 16 {
        [(8, 3), (6, 4), (4, 5), (2, 8), (1, 8)]
    } else {
        [(8, 1), (6, 1), (4, 2), (2, 4), (1, 4)]
    }
}

/// All of [`shifted_gemm`]: rows of `A` in blocks of 8, 6, 4, 2, 1.
///
/// # Safety
/// The CPU has `S`'s instruction set; [`shifted_gemm`]'s bounds checks passed.
#[inline(always)]
unsafe fn forward_rows<S: Lanes>(job: &Job<'_>, out: &mut [f32], ld: usize) {
    let mut m0 = 0;
    let blocks = row_blocks(S::L);
    while m0 < job.m {
        let left = job.m - m0;
        let (mb, _) = blocks
            .into_iter()
            .find(|&(mb, _)| mb <= left)
            .unwrap_or((1, 1));
        let out = &mut out[m0 * ld..];
        // SAFETY: passed on from the caller.
        unsafe {
            match mb {
                8 => forward_q::<S, 8>(job, m0, out, ld),
                6 => forward_q::<S, 6>(job, m0, out, ld),
                4 => forward_q::<S, 4>(job, m0, out, ld),
                2 => forward_q::<S, 2>(job, m0, out, ld),
                _ => forward_q::<S, 1>(job, m0, out, ld),
            }
        }
        m0 += mb;
    }
}

/// One block of `MB` rows across the row's vectors: full runs of the block's width, then
/// one narrower run for what is left.
///
/// # Safety
/// As for [`forward_rows`].
#[inline(always)]
unsafe fn forward_q<S: Lanes, const MB: usize>(
    job: &Job<'_>,
    m0: usize,
    out: &mut [f32],
    ld: usize,
) {
    let qb = row_blocks(S::L)
        .into_iter()
        .find(|&(mb, _)| mb == MB)
        .map_or(1, |(_, qb)| qb);
    let vectors = job.vectors / S::L;
    let mut v0 = 0;
    while v0 < vectors {
        let n = (vectors - v0).min(qb);
        let q0 = v0 * S::L;
        // SAFETY: passed on from the caller.
        unsafe {
            match n {
                8 => forward_block::<S, MB, 8>(job, m0, q0, out, ld),
                7 => forward_block::<S, MB, 7>(job, m0, q0, out, ld),
                6 => forward_block::<S, MB, 6>(job, m0, q0, out, ld),
                5 => forward_block::<S, MB, 5>(job, m0, q0, out, ld),
                4 => forward_block::<S, MB, 4>(job, m0, q0, out, ld),
                3 => forward_block::<S, MB, 3>(job, m0, q0, out, ld),
                2 => forward_block::<S, MB, 2>(job, m0, q0, out, ld),
                _ => forward_block::<S, MB, 1>(job, m0, q0, out, ld),
            }
        }
        v0 += n;
    }
}

/// The register block: `out[m0 + b][q0 + j·L + l]` for `b < MB`, `j < QB`, `l < L`,
/// summed over every tap `r` in order (one multiply-add per tap).
///
/// # Safety
/// As for [`forward_rows`].
#[inline(always)]
unsafe fn forward_block<S: Lanes, const MB: usize, const QB: usize>(
    job: &Job<'_>,
    m0: usize,
    q0: usize,
    out: &mut [f32],
    ld: usize,
) {
    // SAFETY: the CPU has `S`'s instruction set, and [`shifted_gemm`] checked that
    // `src` holds `max(offs) + vectors` floats, `wt` `R·M`, `out` `M` rows of `ld ≥ vectors`
    // (so `q0 + QB·L ≤ vectors` stays inside every row).
    unsafe {
        let mut acc = [[S::zero(); QB]; MB];
        let (wt, src) = (job.wt.as_ptr(), job.src.as_ptr());
        for (r, &off) in job.offs.iter().enumerate() {
            let w = wt.add(r * job.m + m0);
            let x = src.add(off + q0);
            let mut xv = [S::zero(); QB];
            for (j, v) in xv.iter_mut().enumerate() {
                *v = S::load(x.add(j * S::L));
            }
            for (b, row) in acc.iter_mut().enumerate() {
                let wb = S::splat(*w.add(b));
                for (a, &v) in row.iter_mut().zip(&xv) {
                    *a = S::madd(wb, v, *a);
                }
            }
        }
        let o = out.as_mut_ptr();
        for (b, row) in acc.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                S::store(o.add(b * ld + q0 + j * S::L), v);
            }
        }
    }
}

/// Reference for [`shifted_gemm_bt`]: `dw[m][r] (+)= Σ_i Σ_q g[i][m][q] · src[i][offs[r] + q]`,
/// one element at a time.
#[allow(clippy::too_many_arguments)]
pub fn shifted_gemm_bt_naive(
    g: &[f32],
    (g_ld, g_image): (usize, usize),
    src: &[f32],
    src_image: usize,
    images: usize,
    offs: &[usize],
    q_len: usize,
    dw: &mut [f32],
    accumulate: bool,
) {
    let r_len = offs.len();
    let m = dw.len() / r_len.max(1);
    for mi in 0..m {
        for (r, &off) in offs.iter().enumerate() {
            let mut s = 0.0f32;
            for i in 0..images {
                for q in 0..q_len {
                    s += g[i * g_image + mi * g_ld + q] * src[i * src_image + off + q];
                }
            }
            let d = &mut dw[mi * r_len + r];
            *d = if accumulate { *d + s } else { s };
        }
    }
}

/// `dw[m][r] (=|+=) Σ_i Σ_q g[i][m][q] · src[i][offs[r] + q]` over `images` images, `m < M =
/// dw.len() / R`, `q < q_len.next_multiple_of(Q_ALIGN)`: the product `G · Bᵀ` of the
/// gradient rows `G` (`M×Q` per image, row `m` of image `i` at `g[i·g_image + m·g_ld]`)
/// by the shifted runs of [`shifted_gemm`] (image `i` at `src[i·src_image]`), summed over
/// the images. The rows of `g` must be zero from `q_len` to the vector's end (and wherever
/// a position is junk), and `src` finite there.
///
/// Each sum runs over the images and positions in vectors of lanes, then adds the lanes in
/// a fixed tree: the same bits however the caller splits `dw`'s rows or columns.
///
/// # Panics
/// If a slice is too short for the shapes given.
#[allow(clippy::too_many_arguments)]
pub fn shifted_gemm_bt(
    g: &[f32],
    (g_ld, g_image): (usize, usize),
    src: &[f32],
    src_image: usize,
    images: usize,
    offs: &[usize],
    q_len: usize,
    dw: &mut [f32],
    accumulate: bool,
) {
    let build = Build::best();
    let args = (src, src_image, images, offs, q_len);
    shifted_gemm_bt_with(build, g, (g_ld, g_image), args, dw, accumulate)
}

/// The source operands of [`shifted_gemm_bt`]: `(src, src_image, images, offs, q_len)`.
pub type Sources<'a> = (&'a [f32], usize, usize, &'a [usize], usize);

/// [`shifted_gemm_bt`] by the given build.
///
/// # Panics
/// As [`shifted_gemm_bt`], and if this CPU cannot run `build`.
pub fn shifted_gemm_bt_with(
    build: Build,
    g: &[f32],
    (g_ld, g_image): (usize, usize),
    (src, src_image, images, offs, q_len): Sources<'_>,
    dw: &mut [f32],
    accumulate: bool,
) {
    let r_len = offs.len();
    if r_len == 0 {
        return;
    }
    let m = dw.len() / r_len;
    let qp = q_len.next_multiple_of(Q_ALIGN);
    assert_eq!(dw.len(), m * r_len, "shifted_gemm_bt: dw is not M·R floats");
    if images == 0 || m == 0 {
        if !accumulate {
            dw.fill(0.0);
        }
        return;
    }
    let top = offs.iter().max().copied().unwrap_or(0);
    assert!(
        g.len() >= (images - 1) * g_image + (m - 1) * g_ld + qp,
        "shifted_gemm_bt: g too short"
    );
    assert!(
        src.len() >= (images - 1) * src_image + top + qp,
        "shifted_gemm_bt: src too short"
    );
    assert!(
        Build::available().contains(&build),
        "{build:?} asked for on a CPU without it"
    );
    let job = GradJob {
        g,
        g_ld,
        g_image,
        src,
        src_image,
        images,
        offs,
        vectors: qp,
        m,
        accumulate,
    };
    let job = &job;
    on_build!(
        build,
        grad_rows(job: &GradJob<'_>, dw: &mut [f32]),
        avx512: <Avx512, 3, 5, 8>,
        avx2: <Avx2, 0, 2, 4>,
        portable: <Portable, 0, 2, 4>
    )
}

/// The operands of one [`shifted_gemm_bt`] call.
struct GradJob<'a> {
    g: &'a [f32],
    g_ld: usize,
    g_image: usize,
    src: &'a [f32],
    src_image: usize,
    images: usize,
    offs: &'a [usize],
    /// Positions summed per row, a multiple of [`Q_ALIGN`].
    vectors: usize,
    m: usize,
    accumulate: bool,
}

/// All of [`shifted_gemm_bt`]: rows in blocks of 6 (where `R6 > 0`: exactly 6 rows
/// left, the article's first layer), 4, 2, 1; taps in blocks of `R6`, `R4` and `R2` beside
/// them (18 and 20 accumulators of 32 AVX-512 registers with `R6 = 3`, `R4 = 5`, 8 of 16
/// AVX2 ones with `R4 = 2`; more made the compiler spill them), the last block of taps
/// padded with repeats of its first tap (computed, not stored). Six rows at once read each
/// run of the image once where 4 + 2 read it twice: the article's first layer's weight
/// gradient in 16.2–16.5 µs a step against 17.6 (`R6 = 4`, 24 accumulators: 19.0).
///
/// # Safety
/// The CPU has `S`'s instruction set; [`shifted_gemm_bt`]'s bounds checks passed.
#[inline(always)]
unsafe fn grad_rows<S: Lanes, const R6: usize, const R4: usize, const R2: usize>(
    job: &GradJob<'_>,
    dw: &mut [f32],
) {
    let mut m0 = 0;
    while m0 < job.m {
        let mb = match job.m - m0 {
            6 if R6 > 0 => 6,
            4.. => 4,
            2 | 3 => 2,
            _ => 1,
        };
        // SAFETY: passed on from the caller.
        unsafe {
            match mb {
                6 => grad_taps::<S, 6, R6>(job, m0, dw),
                4 => grad_taps::<S, 4, R4>(job, m0, dw),
                2 => grad_taps::<S, 2, R2>(job, m0, dw),
                _ => grad_taps::<S, 1, R2>(job, m0, dw),
            }
        }
        m0 += mb;
    }
}

/// One block of `MB` rows across all taps, `RB` at a time. The positions are swept in
/// chunks of [`GRAD_CHUNK`] vectors, each chunk through every block of taps (at most
/// [`GRAD_GROUP`] blocks at once, their accumulators kept in memory between chunks): a
/// chunk's rows of `g` and runs of `src` stay in L1 while the blocks reuse them, where a
/// sweep of all positions per block streamed them from L2 once per block. Each
/// accumulator still sees the positions in the same order, so the bits are those of one
/// sweep.
///
/// # Safety
/// As for [`grad_rows`].
#[inline(always)]
unsafe fn grad_taps<S: Lanes, const MB: usize, const RB: usize>(
    job: &GradJob<'_>,
    m0: usize,
    dw: &mut [f32],
) {
    let r_len = job.offs.len();
    let total = job.images * (job.vectors / S::L);
    let mut g0 = 0;
    while g0 < r_len {
        // Taps g0..g1 in blocks of RB (the last padded with repeats of its first tap).
        let g1 = (g0 + GRAD_GROUP * RB).min(r_len);
        let blocks = (g1 - g0).div_ceil(RB);
        // SAFETY: `zero` only needs the instruction set, which the caller vouched for.
        let mut accs = [[[unsafe { S::zero() }; MB]; RB]; GRAD_GROUP];
        let offs: [[usize; RB]; GRAD_GROUP] = std::array::from_fn(|b| {
            let r0 = (g0 + b * RB).min(g1 - 1);
            let mut o = [job.offs[r0]; RB];
            let n = (g1 - r0).min(RB);
            o[..n].copy_from_slice(&job.offs[r0..r0 + n]);
            o
        });
        for s0 in (0..total).step_by(GRAD_CHUNK) {
            let steps = s0..(s0 + GRAD_CHUNK).min(total);
            for (acc, offs) in accs.iter_mut().zip(&offs).take(blocks) {
                // SAFETY: passed on from the caller; the padded taps repeat a checked one.
                unsafe { grad_block::<S, MB, RB>(job, m0, offs, steps.clone(), acc) };
            }
        }
        for (b, acc) in accs.iter().enumerate().take(blocks) {
            let r0 = g0 + b * RB;
            let n = (g1 - r0).min(RB);
            for (k, arow) in acc.iter().enumerate().take(n) {
                for (i, &v) in arow.iter().enumerate() {
                    // SAFETY: as for `zero`.
                    let s = unsafe { S::sum(v) };
                    let d = &mut dw[(m0 + i) * r_len + r0 + k];
                    *d = if job.accumulate { *d + s } else { s };
                }
            }
        }
        g0 = g1;
    }
}

/// Vectors of positions (over the images, in order) per chunk of [`grad_taps`]: 32 × 16
/// positions is 8 KiB of four gradient rows and about as much of a 3-channel image.
const GRAD_CHUNK: usize = 32;

/// Most blocks of taps whose accumulators [`grad_taps`] keeps between chunks (16 blocks
/// of 4 × 5 AVX-512 vectors: 20 KiB).
const GRAD_GROUP: usize = 16;

/// The register block over the (image, vector) steps `steps`: for `b < MB`, `k < RB`,
/// `acc[k][b] += Σ g[i][m0 + b][q] · src[i][offs[k] + q]`, one vector of lanes per sum.
///
/// # Safety
/// As for [`grad_rows`].
#[inline(always)]
unsafe fn grad_block<S: Lanes, const MB: usize, const RB: usize>(
    job: &GradJob<'_>,
    m0: usize,
    offs: &[usize; RB],
    steps: std::ops::Range<usize>,
    acc_out: &mut [[S::V; MB]; RB],
) {
    // SAFETY: the CPU has `S`'s instruction set, and [`shifted_gemm_bt`] checked that `g`
    // holds every image's `M` rows of `vectors` floats and `src` every image's
    // `max(offs) + vectors` floats; `q + L ≤ vectors` below.
    unsafe {
        // acc[k][b]: tap k of the block, row b.
        let mut acc = *acc_out;
        let (ld, per) = (job.g_ld, job.vectors / S::L);
        let (image, mut q) = (steps.start / per, steps.start % per * S::L);
        // One loop over (image, vector) pairs, not two nested ones: the accumulators then
        // stay in registers (nested loops made the compiler spill them).
        let mut g = job.g.as_ptr().add(m0 * ld + image * job.g_image);
        let mut src = job.src.as_ptr().add(image * job.src_image);
        for _ in steps {
            let mut gv = [S::zero(); MB];
            for (b, v) in gv.iter_mut().enumerate() {
                *v = S::load(g.add(b * ld + q));
            }
            for (row, &off) in acc.iter_mut().zip(offs) {
                let xv = S::load(src.add(off + q));
                for (a, &gb) in row.iter_mut().zip(&gv) {
                    *a = S::madd(gb, xv, *a);
                }
            }
            q += S::L;
            if q == job.vectors {
                q = 0;
                g = g.add(job.g_image);
                src = src.add(job.src_image);
            }
        }
        *acc_out = acc;
    }
}

/// Reference for [`shifted_scatter`]: `out[offs[r] + q] += Σ_k wt[r][k] · g[k·g_ld + q]`,
/// tap by tap, one element at a time.
pub fn shifted_scatter_naive(
    wt: &[f32],
    offs: &[usize],
    (g, g_ld): (&[f32], usize),
    q_len: usize,
    out: &mut [f32],
) {
    let m = wt.len() / offs.len().max(1);
    for (r, &off) in offs.iter().enumerate() {
        for q in 0..q_len {
            let mut s = 0.0f32;
            for k in 0..m {
                s += wt[r * m + k] * g[k * g_ld + q];
            }
            out[off + q] += s;
        }
    }
}

/// The transpose of [`shifted_gemm`]: `out[offs[r] + q] += Σ_k wt[r][k] · g[k·g_ld + q]`
/// for every tap `r < R` and `q < q_len.next_multiple_of(Q_ALIGN)`, `K = wt.len() / R`.
/// Each tap's row of the product `wt · G` (`[R, K]·[K, Q]`) is added into `out` at the
/// tap's offset: the input gradient of a convolution, `dx[c][ky·W + kx + q] += Σ_co
/// W[co][c][ky][kx] · dyw[co][q]`, without a column matrix (col2im's adds done as the
/// rows are made). The rows of `g` from `q_len` to the vector's end are added too (keep
/// them zero, as the junk columns of a widened gradient are).
///
/// Taps are taken in blocks of consecutive `r` (give taps that write to different places
/// next to each other, e.g. the channels of one kernel position: the adds of a block
/// then never touch a vector another tap of the block has just stored). Every element's
/// sum is made in the same order whatever the caller's split over images.
///
/// # Panics
/// If `g` or `out` is too short for the shapes given, `g_ld` is less than the rounded
/// `q_len`, or `wt` is not `R·K` floats.
pub fn shifted_scatter(
    wt: &[f32],
    offs: &[usize],
    g: (&[f32], usize),
    q_len: usize,
    out: &mut [f32],
) {
    shifted_scatter_with(Build::best(), wt, offs, g, q_len, out)
}

/// [`shifted_scatter`] by the given build.
///
/// # Panics
/// As [`shifted_scatter`], and if this CPU cannot run `build`.
pub fn shifted_scatter_with(
    build: Build,
    wt: &[f32],
    offs: &[usize],
    (g, g_ld): (&[f32], usize),
    q_len: usize,
    out: &mut [f32],
) {
    let r_len = offs.len();
    if r_len == 0 || q_len == 0 {
        return;
    }
    let k = wt.len() / r_len;
    let qp = q_len.next_multiple_of(Q_ALIGN);
    assert_eq!(wt.len(), r_len * k, "shifted_scatter: wt is not R·K floats");
    if k == 0 {
        return;
    }
    assert!(g_ld >= qp, "shifted_scatter: g_ld {g_ld} < {qp}");
    assert!(
        g.len() >= (k - 1) * g_ld + qp,
        "shifted_scatter: g too short"
    );
    let top = offs.iter().max().copied().unwrap_or(0);
    assert!(out.len() >= top + qp, "shifted_scatter: out too short");
    assert!(
        Build::available().contains(&build),
        "{build:?} asked for on a CPU without it"
    );
    let job = ScatterJob {
        wt,
        offs,
        g,
        g_ld,
        k,
        vectors: qp,
    };
    let job = &job;
    on_build!(
        build,
        scatter_taps(job: &ScatterJob<'_>, out: &mut [f32]),
        avx512: <Avx512, 6, 4>,
        avx2: <Avx2, 4, 2>,
        portable: <Portable, 4, 2>
    )
}

/// The operands of one [`shifted_scatter`] call.
struct ScatterJob<'a> {
    /// `[R][K]`
    wt: &'a [f32],
    offs: &'a [usize],
    g: &'a [f32],
    g_ld: usize,
    k: usize,
    /// Positions per row, a multiple of [`Q_ALIGN`].
    vectors: usize,
}

/// All of [`shifted_scatter`]: taps in blocks of `TB` (the last one padded with repeats
/// of its first tap, computed but not added), each across the row's vectors `QB` at a
/// time (24 accumulators of 32 AVX-512 registers with 6 × 4, 8 of 16 AVX2 ones).
///
/// # Safety
/// The CPU has `S`'s instruction set; [`shifted_scatter`]'s bounds checks passed.
#[inline(always)]
unsafe fn scatter_taps<S: Lanes, const TB: usize, const QB: usize>(
    job: &ScatterJob<'_>,
    out: &mut [f32],
) {
    let (r_len, vectors) = (job.offs.len(), job.vectors / S::L);
    let mut r0 = 0;
    while r0 < r_len {
        let n = (r_len - r0).min(TB);
        let taps: [usize; TB] = std::array::from_fn(|t| if t < n { r0 + t } else { r0 });
        let mut v0 = 0;
        while v0 < vectors {
            let q0 = v0 * S::L;
            let left = vectors - v0;
            // SAFETY: passed on from the caller.
            unsafe {
                match left.min(QB) {
                    4 => scatter_block::<S, TB, 4>(job, &taps, n, q0, out),
                    3 => scatter_block::<S, TB, 3>(job, &taps, n, q0, out),
                    2 => scatter_block::<S, TB, 2>(job, &taps, n, q0, out),
                    _ => scatter_block::<S, TB, 1>(job, &taps, n, q0, out),
                }
            }
            v0 += left.min(QB);
        }
        r0 += n;
    }
}

/// The register block: `acc[t][j] = Σ_k wt[taps[t]][k] · g[k][q0 + j·L ..]` for `t < TB`,
/// `j < NV`, then `out[offs[taps[t]] + q0 + j·L ..] += acc[t][j]` for the first `n` taps.
///
/// # Safety
/// As for [`scatter_taps`].
#[inline(always)]
unsafe fn scatter_block<S: Lanes, const TB: usize, const NV: usize>(
    job: &ScatterJob<'_>,
    taps: &[usize; TB],
    n: usize,
    q0: usize,
    out: &mut [f32],
) {
    // SAFETY: the CPU has `S`'s instruction set, and [`shifted_scatter`] checked that `g`
    // holds `K` rows of `vectors` floats `g_ld` apart, `wt` `R·K` floats and `out`
    // `max(offs) + vectors` floats; `q0 + NV·L ≤ vectors`.
    unsafe {
        let mut acc = [[S::zero(); NV]; TB];
        let (wt, g) = (job.wt.as_ptr(), job.g.as_ptr());
        for k in 0..job.k {
            let gk = g.add(k * job.g_ld + q0);
            let mut gv = [S::zero(); NV];
            for (j, v) in gv.iter_mut().enumerate() {
                *v = S::load(gk.add(j * S::L));
            }
            for (row, &r) in acc.iter_mut().zip(taps) {
                let w = S::splat(*wt.add(r * job.k + k));
                for (a, &v) in row.iter_mut().zip(&gv) {
                    *a = S::madd(w, v, *a);
                }
            }
        }
        let o = out.as_mut_ptr();
        for (row, &r) in acc.iter().zip(taps).take(n) {
            let dst = o.add(job.offs[r] + q0);
            for (j, &v) in row.iter().enumerate() {
                let p = dst.add(j * S::L);
                S::store(p, S::add(S::load(p), v));
            }
        }
    }
}

/// Reference for [`shifted_gemm_bt_lanes`]: `dw[m][r] (+)= Σ_i Σ_t gt[i][t][m] ·
/// src[i][pos[t] + offs[r]]`, one element at a time.
pub fn shifted_gemm_bt_lanes_naive(
    gt: &[f32],
    mp: usize,
    (src, src_image, images, offs, pos): Positions<'_>,
    dw: &mut [f32],
    accumulate: bool,
) {
    let r_len = offs.len();
    let m = dw.len() / r_len.max(1);
    for mi in 0..m {
        for (r, &off) in offs.iter().enumerate() {
            let mut s = 0.0f32;
            for i in 0..images {
                for (t, &p) in pos.iter().enumerate() {
                    s += gt[(i * pos.len() + t) * mp + mi] * src[i * src_image + p + off];
                }
            }
            let d = &mut dw[mi * r_len + r];
            *d = if accumulate { *d + s } else { s };
        }
    }
}

/// The source operands of [`shifted_gemm_bt_lanes`]: `(src, src_image, images, offs, pos)`.
pub type Positions<'a> = (&'a [f32], usize, usize, &'a [usize], &'a [usize]);

/// The weight gradient of [`shifted_gemm_bt`] with the output channels in the lanes
/// instead of the positions: `dw[m][r] (=|+=) Σ_i Σ_t gt[i][t][m] · src[i][pos[t] + offs[r]]`
/// for `m < M = dw.len() / R`, where `gt` holds each image's gradient transposed, one row
/// of `mp` floats (a multiple of [`Q_ALIGN`], zero from `M` on) per output position `t`,
/// and `pos[t]` is that position's place in the source (`oy·Wp + ox`: junk columns are
/// simply not listed).
///
/// Each step broadcasts one source value per tap against a vector of channels, so no
/// multiply-add goes to junk columns and no lanes are added at the end: better than
/// [`shifted_gemm_bt`] when `M` fills the lanes (the 16 channels of the article's second
/// convolution), worse when it does not. Each sum runs over images and positions in
/// order: the same bits however the caller splits `dw`.
///
/// # Panics
/// If a slice is too short for the shapes given, `mp` is not a multiple of [`Q_ALIGN`] or
/// is below `M`.
pub fn shifted_gemm_bt_lanes(
    gt: &[f32],
    mp: usize,
    sources: Positions<'_>,
    dw: &mut [f32],
    accumulate: bool,
) {
    shifted_gemm_bt_lanes_with(Build::best(), gt, mp, sources, dw, accumulate)
}

/// [`shifted_gemm_bt_lanes`] by the given build.
///
/// # Panics
/// As [`shifted_gemm_bt_lanes`], and if this CPU cannot run `build`.
pub fn shifted_gemm_bt_lanes_with(
    build: Build,
    gt: &[f32],
    mp: usize,
    (src, src_image, images, offs, pos): Positions<'_>,
    dw: &mut [f32],
    accumulate: bool,
) {
    let r_len = offs.len();
    if r_len == 0 {
        return;
    }
    let m = dw.len() / r_len;
    assert_eq!(
        dw.len(),
        m * r_len,
        "shifted_gemm_bt_lanes: dw is not M·R floats"
    );
    assert!(
        mp.is_multiple_of(Q_ALIGN) && mp >= m,
        "shifted_gemm_bt_lanes: mp {mp} for {m} rows"
    );
    if images == 0 || m == 0 || pos.is_empty() {
        if !accumulate {
            dw.fill(0.0);
        }
        return;
    }
    assert!(
        gt.len() >= images * pos.len() * mp,
        "shifted_gemm_bt_lanes: gt too short"
    );
    let top = offs.iter().max().copied().unwrap_or(0) + pos.iter().max().copied().unwrap_or(0);
    assert!(
        src.len() > (images - 1) * src_image + top,
        "shifted_gemm_bt_lanes: src too short"
    );
    assert!(
        Build::available().contains(&build),
        "{build:?} asked for on a CPU without it"
    );
    let job = LaneJob {
        gt,
        mp,
        src,
        src_image,
        images,
        offs,
        pos,
        m,
        accumulate,
    };
    let job = &job;
    on_build!(
        build,
        lane_taps(job: &LaneJob<'_>, dw: &mut [f32]),
        avx512: <Avx512, 16>,
        avx2: <Avx2, 8>,
        portable: <Portable, 8>
    )
}

/// The operands of one [`shifted_gemm_bt_lanes`] call.
struct LaneJob<'a> {
    gt: &'a [f32],
    mp: usize,
    src: &'a [f32],
    src_image: usize,
    images: usize,
    offs: &'a [usize],
    pos: &'a [usize],
    m: usize,
    accumulate: bool,
}

impl LaneJob<'_> {
    /// Sets (or with `accumulate` adds to) `dw[v0 + l][r]` for the lanes `l` of tap `r`'s
    /// sums that hold channels.
    fn put(&self, dw: &mut [f32], v0: usize, r: usize, lanes: &[f32; 16]) {
        let r_len = self.offs.len();
        for (l, &s) in lanes.iter().enumerate().take(self.m - v0) {
            let d = &mut dw[(v0 + l) * r_len + r];
            *d = if self.accumulate { *d + s } else { s };
        }
    }
}

/// All of [`shifted_gemm_bt_lanes`]: each vector of channels, taps `RB` at a time (the
/// last block padded with repeats of its first tap, computed and not stored).
///
/// # Safety
/// The CPU has `S`'s instruction set; [`shifted_gemm_bt_lanes`]'s bounds checks passed.
#[inline(always)]
unsafe fn lane_taps<S: Lanes, const RB: usize>(job: &LaneJob<'_>, dw: &mut [f32]) {
    // Taps in kernel rows of 5 or 3 consecutive offsets (a 5×5 or 3×3 kernel): one address
    // register per row instead of per tap (as many registers as accumulators, else).
    // SAFETY (all three): passed on from the caller.
    match (run_length(job.offs), S::L) {
        (Some(5), 16) => return unsafe { run_taps::<S, 6, 5>(job, dw) },
        (Some(5), _) => return unsafe { run_taps::<S, 3, 5>(job, dw) },
        (Some(3), 16) => return unsafe { run_taps::<S, 10, 3>(job, dw) },
        (Some(3), _) => return unsafe { run_taps::<S, 5, 3>(job, dw) },
        _ => {}
    }
    let r_len = job.offs.len();
    for v0 in (0..job.m).step_by(S::L) {
        let mut r0 = 0;
        while r0 < r_len {
            let n = (r_len - r0).min(RB);
            let mut offs = [job.offs[r0]; RB];
            offs[..n].copy_from_slice(&job.offs[r0..r0 + n]);
            // SAFETY: passed on from the caller; the padded taps repeat a checked one.
            let sums = unsafe { lane_block::<S, RB>(job, v0, &offs) };
            for (k, lanes) in sums.iter().enumerate().take(n) {
                job.put(dw, v0, r0 + k, lanes);
            }
            r0 += n;
        }
    }
}

/// `Some(kw)` when the taps come in runs of `kw` (5 or 3) consecutive offsets, one per
/// kernel row: `offs[j·kw + kx] = offs[j·kw] + kx`.
fn run_length(offs: &[usize]) -> Option<usize> {
    [5, 3].into_iter().find(|&kw| {
        offs.len().is_multiple_of(kw)
            && offs
                .chunks_exact(kw)
                .all(|run| run.iter().enumerate().all(|(kx, &o)| o == run[0] + kx))
    })
}

/// [`lane_taps`] for taps in runs of `KW` consecutive offsets, `RUNS` runs a block (the
/// last block padded with repeats of its first run, computed and not stored).
///
/// # Safety
/// As for [`lane_taps`]; `job.offs` is made of such runs ([`run_length`]).
#[inline(always)]
unsafe fn run_taps<S: Lanes, const RUNS: usize, const KW: usize>(
    job: &LaneJob<'_>,
    dw: &mut [f32],
) {
    let r_len = job.offs.len();
    let runs = r_len / KW;
    for v0 in (0..job.m).step_by(S::L) {
        let mut j0 = 0;
        while j0 < runs {
            let n = (runs - j0).min(RUNS);
            let mut starts = [job.offs[j0 * KW]; RUNS];
            for (j, s) in starts.iter_mut().enumerate().take(n) {
                *s = job.offs[(j0 + j) * KW];
            }
            // SAFETY: passed on from the caller; the padded runs repeat a checked one.
            let sums = unsafe { run_block::<S, RUNS, KW>(job, v0, &starts) };
            for (j, run) in sums.iter().enumerate().take(n) {
                for (kx, lanes) in run.iter().enumerate() {
                    job.put(dw, v0, (j0 + j) * KW + kx, lanes);
                }
            }
            j0 += n;
        }
    }
}

/// [`lane_block`] for `RUNS` runs of `KW` taps: the same sums, in the same order. Its
/// sweep over images and positions is written out as there: passed to a shared loop as a
/// closure, conv2's backward at batch 4 measured 1 µs slower (27 → 28–29 µs, `cargo bench
/// --bench conv`).
///
/// # Safety
/// As for [`lane_taps`].
#[inline(always)]
unsafe fn run_block<S: Lanes, const RUNS: usize, const KW: usize>(
    job: &LaneJob<'_>,
    v0: usize,
    starts: &[usize; RUNS],
) -> [[[f32; 16]; KW]; RUNS] {
    // SAFETY: as in [`lane_block`]: every tap `starts[j] + kx` is one of `job.offs`.
    unsafe {
        let mut acc = [[S::zero(); KW]; RUNS];
        let mut g = job.gt.as_ptr().add(v0);
        for i in 0..job.images {
            let base = job.src.as_ptr().add(i * job.src_image);
            for &p in job.pos {
                let x = base.add(p);
                let gv = S::load(g);
                for (run, &start) in acc.iter_mut().zip(starts) {
                    let xr = x.add(start);
                    for (kx, a) in run.iter_mut().enumerate() {
                        *a = S::madd(S::splat(*xr.add(kx)), gv, *a);
                    }
                }
                g = g.add(job.mp);
            }
        }
        let mut out = [[[0.0f32; 16]; KW]; RUNS];
        for (o, a) in out.iter_mut().zip(&acc) {
            for (o, &a) in o.iter_mut().zip(a) {
                S::store(o.as_mut_ptr(), a);
            }
        }
        out
    }
}

/// The register block: for tap `k < RB` and lane `l`, the sum over images and positions
/// of `gt[i][t][v0 + l] · src[i][pos[t] + offs[k]]`.
///
/// # Safety
/// As for [`lane_taps`].
#[inline(always)]
unsafe fn lane_block<S: Lanes, const RB: usize>(
    job: &LaneJob<'_>,
    v0: usize,
    offs: &[usize; RB],
) -> [[f32; 16]; RB] {
    // SAFETY: the CPU has `S`'s instruction set, and [`shifted_gemm_bt_lanes`] checked
    // that `gt` holds `images·P` rows of `mp ≥ v0 + L` floats and `src` every image's
    // `max(pos) + max(offs)`.
    unsafe {
        let mut acc = [S::zero(); RB];
        let mut g = job.gt.as_ptr().add(v0);
        for i in 0..job.images {
            let base = job.src.as_ptr().add(i * job.src_image);
            for &p in job.pos {
                let x = base.add(p);
                let gv = S::load(g);
                for (a, &off) in acc.iter_mut().zip(offs) {
                    *a = S::madd(S::splat(*x.add(off)), gv, *a);
                }
                g = g.add(job.mp);
            }
        }
        let mut out = [[0.0f32; 16]; RB];
        for (o, &a) in out.iter_mut().zip(&acc) {
            S::store(o.as_mut_ptr(), a);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32)
            .map(|v| (v / (1u32 << 24) as f32) - 0.5)
            .collect()
    }

    #[test]
    fn lane_weight_grad_matches_reference() {
        for m in [1usize, 6, 16, 17, 33] {
            for r in [1, 7, 25, 30] {
                let mp = m.next_multiple_of(Q_ALIGN);
                let pos: Vec<usize> = (0..5)
                    .flat_map(|y| (0..4).map(move |x| y * 9 + x))
                    .collect();
                let offs: Vec<usize> = (0..r).map(|i| (i * 5) % 23).collect();
                let src_image = 70;
                let src = fill(2 * src_image + 10, 6);
                let mut gt = fill(2 * pos.len() * mp, 7);
                for row in gt.chunks_mut(mp) {
                    row[m..].fill(0.0);
                }
                let mut slow = fill(m * r, 8);
                let args = (&src[..], src_image, 2, &offs[..], &pos[..]);
                shifted_gemm_bt_lanes_naive(&gt, mp, args, &mut slow, true);
                for build in Build::available() {
                    let mut fast = fill(m * r, 8);
                    shifted_gemm_bt_lanes_with(build, &gt, mp, args, &mut fast, true);
                    for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4,
                            "{build:?} m {m} r {r} at {i}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    /// Taps in kernel rows (runs of 5 or 3 consecutive offsets) take `run_taps`; the same
    /// taps in reverse order are no runs and take the per-tap blocks. Both must give the
    /// reference's sums and, each sum taking the positions in the same order, the same bits.
    #[test]
    fn lane_weight_grad_by_kernel_rows_matches_the_per_tap_blocks_bit_for_bit() {
        for kw in [3usize, 5] {
            for rows in [1usize, 2, 3, 5, 6, 7, 10, 11, 13] {
                let r = rows * kw;
                let offs: Vec<usize> = (0..rows)
                    .flat_map(|j| (0..kw).map(move |kx| j * 9 + (j % 2) * 40 + kx))
                    .collect();
                assert_eq!(run_length(&offs), Some(kw));
                let reversed: Vec<usize> = offs.iter().rev().copied().collect();
                assert_eq!(run_length(&reversed), None);
                for m in [6usize, 16, 17] {
                    let mp = m.next_multiple_of(Q_ALIGN);
                    let pos: Vec<usize> = (0..5)
                        .flat_map(|y| (0..4).map(move |x| y * 9 + x))
                        .collect();
                    let src_image = 250;
                    let src = fill(2 * src_image, 11);
                    let mut gt = fill(2 * pos.len() * mp, 12);
                    for row in gt.chunks_mut(mp) {
                        row[m..].fill(0.0);
                    }
                    let mut slow = vec![0.0; m * r];
                    let args = (&src[..], src_image, 2, &offs[..], &pos[..]);
                    shifted_gemm_bt_lanes_naive(&gt, mp, args, &mut slow, false);
                    for build in Build::available() {
                        let mut runs = fill(m * r, 13);
                        shifted_gemm_bt_lanes_with(build, &gt, mp, args, &mut runs, false);
                        let mut taps = fill(m * r, 14);
                        let rargs = (&src[..], src_image, 2, &reversed[..], &pos[..]);
                        shifted_gemm_bt_lanes_with(build, &gt, mp, rargs, &mut taps, false);
                        for (i, (&a, &b)) in runs.iter().zip(&slow).enumerate() {
                            let what = format!("{build:?} kw {kw} rows {rows} m {m} at {i}");
                            assert!((a - b).abs() <= 1e-4, "{what}: {a} vs {b}");
                            let (co, t) = (i / r, i % r);
                            let c = taps[co * r + (r - 1 - t)];
                            assert_eq!(a.to_bits(), c.to_bits(), "{what}: {a} vs {c}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn scatter_matches_reference_for_every_block_shape() {
        for k in [1usize, 3, 16] {
            for r in [1usize, 4, 6, 7, 13, 25] {
                for q_len in [1usize, 16, 40, 100, 140] {
                    let qp = q_len.next_multiple_of(Q_ALIGN);
                    let g_ld = qp + 16;
                    let mut g = fill(k * g_ld, 9);
                    for row in g.chunks_mut(g_ld) {
                        row[q_len..].fill(0.0);
                    }
                    let wt = fill(r * k, 10);
                    // Taps that overlap one another (shifts by 1 and by a row).
                    let offs: Vec<usize> = (0..r).map(|i| (i % 5) + 20 * (i / 5)).collect();
                    let len = offs.iter().max().unwrap() + qp;
                    let mut slow = fill(len, 11);
                    shifted_scatter_naive(&wt, &offs, (&g, g_ld), q_len, &mut slow);
                    for build in Build::available() {
                        let mut fast = fill(len, 11);
                        shifted_scatter_with(build, &wt, &offs, (&g, g_ld), q_len, &mut fast);
                        for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                            let at = format!("{build:?} k {k} r {r} q_len {q_len} at {i}");
                            assert!((a - b).abs() <= 1e-4, "{at}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_build_runs_here() {
        let builds = Build::available();
        println!("direct convolution builds on this CPU: {builds:?}");
        assert_eq!(builds.last(), Some(&Build::Portable));
        assert_eq!(Build::best(), builds[0]);
    }

    #[test]
    fn forward_matches_reference_for_every_block_shape() {
        for m in [1, 2, 3, 5, 6, 7, 8, 9, 16, 17] {
            for q_len in [1usize, 16, 40, 100, 140, 200] {
                let offs = [0usize, 3, 7, 20, 21, 50, 51];
                let wt = fill(offs.len() * m, 1);
                let src = fill(51 + q_len.next_multiple_of(Q_ALIGN), 2);
                let ld = q_len.next_multiple_of(Q_ALIGN) + 16;
                let mut slow = vec![f32::NAN; m * ld];
                shifted_gemm_naive(&wt, &offs, &src, q_len, &mut slow, ld);
                for build in Build::available() {
                    let mut fast = vec![f32::NAN; m * ld];
                    shifted_gemm_with(build, &wt, &offs, &src, q_len, &mut fast, ld);
                    for mi in 0..m {
                        for q in 0..q_len {
                            let (a, b) = (fast[mi * ld + q], slow[mi * ld + q]);
                            let at = format!("{build:?} m {m} q_len {q_len} at [{mi}][{q}]");
                            assert!((a - b).abs() <= 1e-5, "{at}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn weight_grad_matches_reference_for_every_block_shape() {
        // 90 taps: more than one group of blocks; q_len 400: chunks that end mid-image.
        for (m, r, q_len) in [1usize, 2, 3, 4, 5, 6, 9, 16]
            .into_iter()
            .flat_map(|m| [1, 5, 6, 11, 25, 90].map(move |r| (m, r)))
            .flat_map(|(m, r)| [48usize, 400].map(move |q| (m, r, q)))
        {
            let offs: Vec<usize> = (0..r).map(|i| (i * 7) % 40).collect();
            let g_ld = q_len.next_multiple_of(Q_ALIGN) + 16;
            let g_image = g_ld * m + 8;
            let g = fill(3 * g_image, 3);
            let src_image = q_len + 52;
            let src = fill(3 * src_image + 40, 4);
            let mut slow = fill(m * r, 5);
            let args = (&src[..], src_image, 3, &offs[..], q_len);
            let at = (g_ld, g_image);
            shifted_gemm_bt_naive(&g, at, &src, src_image, 3, &offs, q_len, &mut slow, true);
            for build in Build::available() {
                let mut fast = fill(m * r, 5);
                shifted_gemm_bt_with(build, &g, at, args, &mut fast, true);
                for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4,
                        "{build:?} m {m} r {r} at {i}: {a} vs {b}"
                    );
                }
                // Each row's sums do not depend on the rows beside it: rows one call at a
                // time give the same bits (6 rows go in one block on AVX-512).
                for row in 0..m {
                    let mut again = fill(m * r, 5)[row * r..(row + 1) * r].to_vec();
                    shifted_gemm_bt_with(build, &g[row * g_ld..], at, args, &mut again, true);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert!(
                        bits(&fast[row * r..(row + 1) * r]) == bits(&again),
                        "{build:?} m {m} r {r} row {row}: bits differ"
                    );
                }
            }
        }
    }
}
