//! AVX-512 helpers the kernels share: the run-time check, the mask of a vector's first
//! lanes, and short runs of floats copied
//! with one 16-lane vector per 16 floats and a masked vector for the rest
//! (im2col moves runs of 5 to 224 floats, where a loop of narrower moves and
//! its bookkeeping cost more than the data).

/// Whether this CPU has AVX-512F (checked once; false off x86-64).
pub fn available() -> bool {
    detected_once!("avx512f")
}

#[cfg(target_arch = "x86_64")]
pub use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The mask of a vector's first `k ≤ 16` lanes (the masked loads and stores of a
    /// partial row).
    #[inline(always)]
    pub fn first_lanes(k: usize) -> __mmask16 {
        ((1u32 << k) - 1) as __mmask16
    }

    /// `dst[i] = src[i]` for `i < dst.len()` (`src` at least as long).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub fn copy_run(dst: &mut [f32], src: &[f32]) {
        let n = dst.len();
        let src = &src[..n];
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        let mut i = 0;
        // Masked moves throughout (all lanes but in the last vector): a loop of plain
        // vector moves would be turned back into a `memcpy` call.
        while i < n {
            let m = first_lanes((n - i).min(16));
            // SAFETY: the masked load and store touch only lanes < n − i, inside both slices.
            unsafe { _mm512_mask_storeu_ps(d.add(i), m, _mm512_maskz_loadu_ps(m, s.add(i))) };
            i += 16;
        }
    }
}
