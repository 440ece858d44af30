//! A constant factor: `y = s·x`, `dL/dx = s·dL/dy` (airbench's `Mul` after its head).

use super::{Layer, Mode, Spec};
use crate::tensor::Tensor;

/// Multiplies every element by a fixed factor; any shape, no parameters.
pub struct Scale {
    factor: f32,
    output: Tensor,
    grad_input: Tensor,
}

impl Scale {
    /// `y = factor · x`.
    pub fn new(factor: f32) -> Self {
        Scale {
            factor,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// The factor.
    pub fn factor(&self) -> f32 {
        self.factor
    }
}

impl Layer for Scale {
    fn spec(&self) -> Spec {
        Spec::new("Scale").float("factor", self.factor)
    }

    fn describe(&self) -> String {
        format!("Scale({})", self.factor)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if !self.factor.is_finite() {
            return Err(format!("the factor must be finite, got {}", self.factor));
        }
        Ok(input.to_vec())
    }

    /// `x[N, ...] → s·x[N, ...]`.
    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        self.output.reshape_to(x.shape());
        for (y, &v) in self.output.data_mut().iter_mut().zip(x.data()) {
            *y = self.factor * v;
        }
        &self.output
    }

    /// `dy[N, ...] → s·dy[N, ...]`.
    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(grad_out.shape());
        for (d, &g) in self.grad_input.data_mut().iter_mut().zip(grad_out.data()) {
            *d = self.factor * g;
        }
        &self.grad_input
    }
}
