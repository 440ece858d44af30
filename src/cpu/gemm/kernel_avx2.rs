//! The AVX2 + FMA microkernel: a 6×16 tile held in 12 `ymm` accumulators.
//!
//! Register budget (16 `ymm` registers on x86-64 without AVX-512):
//!
//! ```text
//!   12  accumulators  c[i][0..8], c[i][8..16]   for i in 0..6
//!    2  B row         b[p][0..8], b[p][8..16]
//!    1  broadcast     a[p][i] splatted to 8 lanes
//!   --
//!   15
//! ```
//!
//! Per step `p`: 2 loads of B, 6 broadcast-loads of A, 12 FMAs. Zen and Haswell-class
//! cores issue 2 FMAs and 2 loads per cycle, so the 12 FMAs take 6 cycles while the 8
//! loads fit in 4, and 12 independent accumulator chains cover the FMA latency
//! (4–5 cycles × 2 pipes = 8–10 chains needed).
//!
//! `wide::f32x8` cannot be used here: `wide` picks its implementation at *compile* time,
//! and a default build targets baseline x86-64 (SSE2, no FMA). The intrinsics below are
//! compiled for AVX2+FMA via `#[target_feature]`, and [`Avx2Fma::detect`] checks the CPU
//! at run time before any of them can be reached.

use super::kernel::{MicroKernel, check_tile};
use std::arch::x86_64::{
    __m256, _MM_HINT_T0, _mm_prefetch, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps,
    _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

/// Capability token for the AVX2+FMA 6×16 microkernel: only [`Avx2Fma::detect`] makes one,
/// and only on a CPU that has both features.
#[derive(Clone, Copy, Debug)]
pub struct Avx2Fma {
    _proof: (),
}

impl Avx2Fma {
    /// Returns the kernel if the running CPU supports AVX2 and FMA.
    pub fn detect() -> Option<Self> {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            Some(Self { _proof: () })
        } else {
            None
        }
    }
}

impl MicroKernel for Avx2Fma {
    const MR: usize = 6;
    const NR: usize = 16;

    fn name(&self) -> &'static str {
        "avx2+fma 6x16"
    }

    #[inline]
    fn run(
        &self,
        k: usize,
        a: &[f32],
        b: &[f32],
        rsb: usize,
        c: &mut [f32],
        rsc: usize,
        load_c: bool,
    ) {
        check_tile(Self::MR, Self::NR, k, a.len(), b.len(), rsb, c.len(), rsc);
        // SAFETY: `self` exists only if `detect` saw AVX2 and FMA on this CPU, so the
        // `target_feature` function may be called. `check_tile` asserted that
        // a[..k*6], b[..(k-1)*rsb+16] and c[..5*rsc+16] are in bounds, which covers every
        // address the kernel forms (see `kernel_6x16`).
        unsafe {
            if rsb == Self::NR {
                kernel_6x16::<true>(k, a.as_ptr(), b.as_ptr(), rsb, c.as_mut_ptr(), rsc, load_c)
            } else {
                kernel_6x16::<false>(k, a.as_ptr(), b.as_ptr(), rsb, c.as_mut_ptr(), rsc, load_c)
            }
        }
    }

    fn pack_b_transposed(
        &self,
        kc: usize,
        cols: usize,
        b: &[f32],
        off: usize,
        csb: usize,
        out: &mut [f32],
    ) -> bool {
        // SAFETY: `self` exists only if `detect` saw AVX2 on this CPU.
        unsafe { pack_b_transposed_n::<16>(kc, cols, b, off, csb, out) };
        true
    }
}

/// Transposes the 8×8 block `src[i·ld + t]` (`i, t < 8`) into `dst[t·ldd + i]`.
///
/// # Safety
/// The CPU must support AVX2; `src` must be valid for reads of `src[i·ld + t]` and `dst`
/// for writes of `dst[t·ldd + i]` (`i, t < 8`).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn transpose_8x8(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
    // SAFETY: rows i < 8 of 8 floats each, as the caller guarantees.
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ld)) });
    let o = crate::cpu::avx2::transpose8(r);
    for (t, v) in o.into_iter().enumerate() {
        // SAFETY: row t < 8 of the destination, 8 floats, as the caller guarantees.
        unsafe { _mm256_storeu_ps(dst.add(t * ldd), v) };
    }
}

/// Packs a `kc × cols` panel (`1 ≤ cols ≤ N`, `N` a multiple of 8) of a column-major B:
/// `out[p·N + j] = b[off + j·csb + p]` for `j < cols`, zeros for `cols ≤ j < N`. Whole
/// groups of 8 columns go 8×8 blocks at a time (their last `kc mod 8` rows one by one),
/// the last `cols mod 8` columns one column at a time (contiguous reads along p). Shared
/// with the AVX-512 kernel (whose CPUs have AVX2).
///
/// Panics if `cols` is out of range or the slices are too short for the panel.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_b_transposed_n<const N: usize>(
    kc: usize,
    cols: usize,
    b: &[f32],
    off: usize,
    csb: usize,
    out: &mut [f32],
) {
    const { assert!(N.is_multiple_of(8)) };
    assert!((1..=N).contains(&cols), "pack: {cols} columns of {N}");
    if kc == 0 {
        return;
    }
    assert!(
        off + (cols - 1) * csb + kc <= b.len(),
        "pack: B panel out of bounds"
    );
    let out = &mut out[..N * kc];
    let (full, groups) = (kc / 8 * 8, cols / 8 * 8);
    for p0 in (0..full).step_by(8) {
        for j0 in (0..groups).step_by(8) {
            // SAFETY: reads b[off + (j0+i)·csb + p0 + t] and writes out[(p0+t)·N + j0 + i]
            // for i, t < 8: j0 + i < groups ≤ cols and p0 + t < kc, inside the bounds
            // asserted above.
            unsafe {
                transpose_8x8(
                    b.as_ptr().add(off + j0 * csb + p0),
                    csb,
                    out.as_mut_ptr().add(p0 * N + j0),
                    N,
                );
            }
        }
    }
    for p in full..kc {
        for j in 0..groups {
            out[p * N + j] = b[off + j * csb + p];
        }
    }
    for j in groups..cols {
        let col = &b[off + j * csb..off + j * csb + kc];
        for (p, &v) in col.iter().enumerate() {
            out[p * N + j] = v;
        }
    }
    if cols < N {
        for row in out.chunks_exact_mut(N) {
            row[cols..].fill(0.0);
        }
    }
}

/// The 6×16 kernel proper. `PACKED_B` makes the B row stride the constant 16 so the
/// unrolled loop uses immediate offsets; otherwise `rsb` is B's row stride in memory.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` must be valid for `k*6` reads, `b` for reads
/// of `b[p*rsb + j]` (`p < k`, `j < 16`), `c` for reads and writes of `c[i*rsc + j]`
/// (`i < 6`, `j < 16`).
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_6x16<const PACKED_B: bool>(
    k: usize,
    a: *const f32,
    b: *const f32,
    rsb: usize,
    c: *mut f32,
    rsc: usize,
    load_c: bool,
) {
    let rsb = if PACKED_B { 16 } else { rsb };
    let mut acc: [[__m256; 2]; 6] = [[_mm256_setzero_ps(); 2]; 6];

    // Start pulling the C tile towards L1 now, so the read-modify-write at the end does
    // not stall (rows of C are often 4 KiB apart and cold). A prefetch never faults.
    for i in 0..6 {
        let row = c.wrapping_add(i * rsc) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(60));
    }

    // One k-step: acc[i][h] += a[p][i] * b[p][8h..8h+8]. `$ap`/`$bp` point at A column p
    // and B row p.
    macro_rules! step {
        ($ap:expr, $bp:expr) => {{
            // SAFETY: the caller guarantees A column p (6 floats) and B row p (16
            // floats) are readable.
            let (b0, b1) = unsafe { (_mm256_loadu_ps($bp), _mm256_loadu_ps($bp.add(8))) };
            for i in 0..6 {
                // SAFETY: i < 6, inside A column p.
                let ai = unsafe { _mm256_broadcast_ss(&*$ap.add(i)) };
                acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            }
        }};
    }

    let (mut ap, mut bp) = (a, b);
    // Main loop unrolled by 4 (the order of the FMAs into each accumulator is unchanged:
    // p increases by one per step).
    let mut left = k;
    while left >= 4 {
        // 4 more steps exist (left >= 4), so all offsets below stay within the k*6
        // floats of A and the k rows of B.
        step!(ap, bp);
        step!(ap.wrapping_add(6), bp.wrapping_add(rsb));
        step!(ap.wrapping_add(12), bp.wrapping_add(2 * rsb));
        step!(ap.wrapping_add(18), bp.wrapping_add(3 * rsb));
        // Pointer bumps use `wrapping_add`: after the last step they may point past the
        // panels, which is fine as long as nothing is read there.
        ap = ap.wrapping_add(24);
        bp = bp.wrapping_add(4 * rsb);
        left -= 4;
    }
    while left > 0 {
        step!(ap, bp);
        ap = ap.wrapping_add(6);
        bp = bp.wrapping_add(rsb);
        left -= 1;
    }

    // Write back: c = c + acc (or c = acc), row by row.
    for (i, row) in acc.iter().enumerate() {
        for (h, &v) in row.iter().enumerate() {
            // SAFETY: i < 6 and 8h+8 <= 16, inside the C tile the caller vouched for.
            unsafe {
                let cp = c.add(i * rsc + 8 * h);
                let out = if load_c {
                    _mm256_add_ps(_mm256_loadu_ps(cp), v)
                } else {
                    v
                };
                _mm256_storeu_ps(cp, out);
            }
        }
    }
}
