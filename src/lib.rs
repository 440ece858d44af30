//! ferroconv: a from-scratch convolutional-network engine.
pub mod cpu;
