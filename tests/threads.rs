//! `set_threads` makes the calling thread one of the pool's threads (so its parallel loops
//! are split with the other threads instead of handed over), and results stay those of
//! one thread. Its own test binary: the global pool can be set once per process.

mod common;
use common::values;

use ferroconv::layers::Mode;
use ferroconv::{SoftmaxCrossEntropy, Tensor};

/// Logits, then every parameter gradient, as bits: one training step of the
/// TensorFlow-tutorial network on a fixed batch of 16.
fn step() -> Vec<u32> {
    let mut model = ferroconv::models::keras_net(3).unwrap();
    let x = Tensor::from_vec(
        &[16, 3, 32, 32],
        values(0x9e37_79b9_7f4a_7c15, 16 * 3 * 32 * 32),
    )
    .unwrap();
    let labels: Vec<u32> = (0..16).map(|i| i % 10).collect();
    let mut out: Vec<u32> = Vec::new();
    let mut loss = SoftmaxCrossEntropy::new();
    let logits = model.forward(&x, Mode::Train).unwrap().clone();
    out.extend(logits.data().iter().map(|v| v.to_bits()));
    loss.forward(&logits, &labels).unwrap();
    model.backward(loss.grad()).unwrap();
    model.visit_params(&mut |_, p| out.extend(p.grad.iter().map(|v| v.to_bits())));
    out
}

#[test]
fn set_threads_joins_the_calling_thread_and_keeps_results() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(step);
    assert_eq!(rayon::current_thread_index(), None, "not in a pool yet");
    ferroconv::set_threads(2).unwrap();
    assert_eq!(
        rayon::current_thread_index(),
        Some(0),
        "the caller is thread 0"
    );
    assert_eq!(rayon::current_num_threads(), 2);
    assert!(step() == one, "2 threads (caller included) differ from 1");
    let err = ferroconv::set_threads(2).unwrap_err().to_string();
    assert!(err.contains("cannot set 2 threads"), "{err}");
}
