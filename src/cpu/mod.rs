//! CPU kernels. They know nothing of layers: plain slices and shapes in, slices out.
//!
//! Each kernel keeps its naive reference beside the fast variant it is tested against.
pub mod elementwise;
pub mod gemm;
pub mod im2col;
pub mod pool;
pub mod softmax;

/// Work (in multiply-adds) below which a kernel stays on the calling thread: handing a
/// job to another thread costs a few microseconds, as much as ~50k multiply-adds.
pub const PARALLEL_MIN_WORK: usize = 200_000;

/// True when `work` multiply-adds split into `items` independent parts are worth
/// spreading over the rayon pool.
pub fn worth_parallel(items: usize, work: usize) -> bool {
    items > 1 && work >= PARALLEL_MIN_WORK && rayon::current_num_threads() > 1
}
