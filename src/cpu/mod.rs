//! CPU kernels. They know nothing of layers: plain slices and shapes in, slices out.
//!
//! Each kernel keeps its naive reference beside the fast variant it is tested against.

/// Whether this CPU has the x86-64 feature `$feature` (a string literal), checked once per
/// call site; false off x86-64.
macro_rules! detected_once {
    ($feature:tt) => {{
        #[cfg(target_arch = "x86_64")]
        {
            static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            *HAS.get_or_init(|| std::arch::is_x86_feature_detected!($feature))
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }};
}

pub mod avx2;
pub mod avx512;
pub mod direct;
pub mod elementwise;
pub mod gelu;
pub mod gemm;
pub mod im2col;
pub mod norm;
pub mod pool;
pub mod softmax;
pub mod spin;
pub mod winograd;

/// Work (in multiply-adds) below which a kernel stays on the calling thread: handing a
/// job to another thread costs a few microseconds, as much as ~50k multiply-adds.
pub const PARALLEL_MIN_WORK: usize = 200_000;

/// True when `work` multiply-adds split into `items` independent parts are worth
/// spreading over the rayon pool.
pub fn worth_parallel(items: usize, work: usize) -> bool {
    items > 1 && work >= PARALLEL_MIN_WORK && rayon::current_num_threads() > 1
}

/// Asks the CPU to start loading `bytes` into its caches (one prefetch per 64-byte line;
/// nothing off x86-64). A hint only: it reads nothing and cannot fault.
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of the x86-64 baseline; a prefetch dereferences nothing and
        // never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Elements from which an element-wise pass is spread over the rayon pool.
pub const PARALLEL_MIN_ELEMENTS: usize = 1 << 17;

/// Runs `f(i, chunk)` for every `len`-long chunk `i` of `dst` (the last may be shorter),
/// on the rayon pool when `dst` is large, else on the calling thread. Chunks are
/// independent, so the result does not depend on the thread count.
pub fn for_each_chunk(dst: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    use rayon::prelude::*;
    let len = len.max(1);
    if dst.len() >= PARALLEL_MIN_ELEMENTS && rayon::current_num_threads() > 1 {
        dst.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        dst.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}
