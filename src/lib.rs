//! # ferroconv
//!
//! A from-scratch convolutional-network engine: tensors, im2col convolution, max-pooling,
//! dense layers, softmax cross-entropy, backpropagation and SGD, on hand-written CPU
//! kernels (SIMD + rayon).
//!
//! Layout: [`tensor`] holds data; [`cpu`] the kernels, which know nothing of layers;
//! [`backend`] is the one seam through which [`layers`] reach kernels; [`model`] chains
//! layers; [`loss`], [`optim`], [`data`] and [`train`] complete a training loop.
#![warn(missing_docs)]

pub mod backend;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod error;
#[cfg(feature = "wgpu")]
pub mod gpu;
mod json;
pub mod layers;
pub mod loss;
pub mod model;
pub mod models;
pub mod optim;
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

/// Sets the number of worker threads used by the kernels (rayon's global pool).
/// Call once, before any training; results do not depend on the count.
pub fn set_threads(threads: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| Error::Invalid(format!("cannot set {threads} threads: {e}")))
}
