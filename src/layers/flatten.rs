//! Flatten: `[N, C, H, W] → [N, C·H·W]`; backward reshapes the gradient back.

use super::{Layer, Mode, Spec};
use crate::tensor::Tensor;

/// Collapses every dimension after the batch into one feature dimension.
#[derive(Default)]
pub struct Flatten {
    input_shape: Vec<usize>,
    output: Tensor,
    grad_input: Tensor,
}

impl Flatten {
    /// A new Flatten layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Layer for Flatten {
    fn spec(&self) -> Spec {
        Spec::new("Flatten")
    }

    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Flatten
    }

    fn describe(&self) -> String {
        "Flatten".into()
    }

    fn replicate(&self) -> Option<Box<dyn Layer>> {
        Some(Box::new(Flatten::new()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(vec![input.iter().product()])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        self.input_shape.clear();
        self.input_shape.extend_from_slice(x.shape());
        self.output.reshape_to(&[x.batch(), x.item_len()]);
        self.output.data_mut().copy_from_slice(x.data());
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(&self.input_shape);
        self.grad_input.data_mut().copy_from_slice(grad_out.data());
        &self.grad_input
    }
}
