//! ReLU: `y = max(x, 0)`, `dx = dy · [y > 0]`.

use super::{Layer, Mode, Spec};
use crate::backend::{relu_backward, relu_forward};
use crate::tensor::Tensor;

/// Rectified linear unit, element-wise; any shape.
#[derive(Default)]
pub struct ReLU {
    output: Tensor,
    grad_input: Tensor,
}

impl ReLU {
    /// A new ReLU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for ReLU {
    fn spec(&self) -> Spec {
        Spec::new("ReLU")
    }

    fn kind(&self) -> super::LayerKind {
        super::LayerKind::ReLU
    }

    fn describe(&self) -> String {
        "ReLU".into()
    }

    fn replicate(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(ReLU::new()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        self.output.reshape_to(x.shape());
        relu_forward(x.data(), self.output.data_mut());
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(grad_out.shape());
        relu_backward(
            self.output.data(),
            grad_out.data(),
            self.grad_input.data_mut(),
        );
        &self.grad_input
    }
}
