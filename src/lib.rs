//! # ferroconv
//!
//! A from-scratch convolutional-network engine: tensors, im2col convolution, max-pooling,
//! dense layers, softmax cross-entropy, backpropagation and SGD, on hand-written CPU
//! kernels (SIMD + rayon).
//!
//! Start with [`Sequential`] (a model of named [`layers`], saved and loaded with its
//! architecture), [`data`] (the [`data::Dataset`] trait and its sources), [`recipe`] (the
//! presets the examples train) and [`driver`] (the training run they share); [`train`]
//! has the epoch and evaluation loops underneath, [`optim`] the optimizers and schedules,
//! [`checkpoint`] the safetensors files.
//!
//! The kernels (`cpu`, reached by the layers only through `backend`) know nothing of
//! layers; they are public for the benchmarks and tests but hidden from these docs.
#![warn(missing_docs)]

#[doc(hidden)]
pub mod backend;
pub mod checkpoint;
#[doc(hidden)]
pub mod cpu;
pub mod data;
pub mod dist;
pub mod driver;
pub mod error;
pub mod finetune;
#[cfg(feature = "wgpu")]
pub mod gpu;
mod json;
pub mod layers;
pub mod linalg;
pub mod loss;
pub mod model;
pub mod models;
pub mod optim;
pub mod recipe;
pub mod tensor;
pub mod train;
pub mod zoo;

pub use error::{Error, Result};

/// The README's code samples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
pub use layers::{Layer, Mode};
pub use loss::SoftmaxCrossEntropy;
pub use model::Sequential;
pub use tensor::Tensor;

/// Sets the number of threads used by the kernels (rayon's global pool), the calling
/// thread being one of them. Call once, before any training, from the thread that will
/// run the network; results do not depend on the count. A count of 0, or one above
/// [`max_threads`] (spawning thousands of threads costs more than any epoch gains), is an
/// error, and so is a second call.
///
/// The caller joins the pool so that a parallel loop it starts is split between it and
/// the other threads, which steal from it. Left out of the pool, it would hand every loop
/// to a worker, wake it, and sleep until the loop is done: two cross-thread wake-ups per
/// loop, and one thread more than the cores. A batch-1 ResNet-50 pass makes hundreds of
/// such loops, each a fraction of a millisecond (docs/benchmarks.md, session 12).
/// Without a call, rayon's default pool (one thread per core, the caller outside) is used.
pub fn set_threads(threads: usize) -> Result<()> {
    let max = max_threads();
    if threads == 0 || threads > max {
        return Err(Error::Invalid(format!(
            "{threads} threads: use 1 to {max} ({} cores here)",
            cores()
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .use_current_thread()
        .build_global()
        .map_err(|e| Error::Invalid(format!("cannot set {threads} threads: {e}")))
}

/// Cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The most threads [`set_threads`] accepts: 4 per core, at least 64.
pub fn max_threads() -> usize {
    (4 * cores()).max(64)
}
