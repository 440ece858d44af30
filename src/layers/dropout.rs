//! Dropout: in training, zero each value with probability `p` and scale the rest by
//! `1/(1 − p)`; in evaluation, the identity. Backward applies the same mask.

use super::{Layer, Mode, Spec};
use crate::tensor::Tensor;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

/// Inverted dropout with a seeded, per-step mask.
///
/// The mask of training step `s` (see [`Layer::set_step`]; the training loop passes the
/// optimizer's step count) comes from a generator seeded by `(layer seed, s)`, so a run
/// resumed at step `s` draws the same masks as one that never stopped.
pub struct Dropout {
    p: f32,
    seed: u64,
    step: u64,
    /// `1/(1 − p)` where kept, 0 where dropped (empty in eval mode).
    mask: Vec<f32>,
    output: Tensor,
    grad_input: Tensor,
}

impl Dropout {
    /// Drops each value with probability `p` (`0 ≤ p < 1`).
    pub fn new(p: f32) -> Self {
        Dropout {
            p,
            seed: 0,
            step: 0,
            mask: Vec::new(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for Dropout {
    fn spec(&self) -> Spec {
        Spec::new("Dropout").float("p", self.p)
    }

    fn describe(&self) -> String {
        format!("Dropout(p = {})", self.p)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(format!("p must be in [0, 1), got {}", self.p));
        }
        Ok(input.to_vec())
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        self.seed = rng.next_u64();
        self.step = 0;
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        self.output.reshape_to(x.shape());
        if mode == Mode::Eval || self.p == 0.0 {
            self.mask.clear();
            self.output.data_mut().copy_from_slice(x.data());
            return &self.output;
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            self.seed ^ self.step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let threshold = (self.p as f64 * (1u64 << 32) as f64) as u64;
        let keep = 1.0 / (1.0 - self.p);
        self.mask.resize(x.len(), 0.0);
        for ((m, y), &v) in self
            .mask
            .iter_mut()
            .zip(self.output.data_mut())
            .zip(x.data())
        {
            *m = if (rng.next_u32() as u64) < threshold {
                0.0
            } else {
                keep
            };
            *y = v * *m;
        }
        &self.output
    }

    fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(grad_out.shape());
        let dx = self.grad_input.data_mut();
        if self.mask.is_empty() {
            dx.copy_from_slice(grad_out.data());
        } else {
            for ((d, &g), &m) in dx.iter_mut().zip(grad_out.data()).zip(&self.mask) {
                *d = g * m;
            }
        }
        &self.grad_input
    }
}
