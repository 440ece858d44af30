//! CPU kernels. They know nothing of layers: plain slices in, plain slices out.
pub mod gemm;
