//! GELU: `y = x·Φ(x)` with `Φ` the standard normal CDF (PyTorch's exact form);
//! `dy/dx = Φ(x) + x·φ(x)`.

use super::{Layer, Mode, Spec};
use crate::backend::{for_each_chunk, gelu_backward, gelu_forward};
use crate::tensor::Tensor;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Gaussian error linear unit, element-wise; any shape.
#[derive(Default)]
pub struct Gelu {
    input: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

impl Gelu {
    /// A new GELU layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Gelu {
    fn spec(&self) -> Spec {
        Spec::new("GELU")
    }

    fn describe(&self) -> String {
        "GELU".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        self.output.reshape_to(x.shape());
        for_each_chunk(self.output.data_mut(), CHUNK, |i, y| {
            let n = y.len();
            gelu_forward(&x.data()[i * CHUNK..][..n], y);
        });
        if mode == Mode::Train {
            self.input.reshape_to(x.shape());
            self.input.data_mut().copy_from_slice(x.data());
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(grad_out.shape());
        let (dy, xs) = (grad_out.data(), self.input.data());
        for_each_chunk(self.grad_input.data_mut(), CHUNK, |i, dx| {
            let n = dx.len();
            gelu_backward(&xs[i * CHUNK..][..n], &dy[i * CHUNK..][..n], dx);
        });
        &self.grad_input
    }
}
