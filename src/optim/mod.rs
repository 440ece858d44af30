//! Optimizers: they read each parameter's gradient and update its value.
mod sgd;
pub use sgd::Sgd;
