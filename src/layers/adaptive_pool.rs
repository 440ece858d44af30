//! Adaptive average pooling: `[N, C, H, W] → [N, C, OH, OW]` for a fixed `(OH, OW)`.
//!
//! PyTorch's `AdaptiveAvgPool2d((OH, OW))`: output row `i` averages input rows
//! `⌊i·H/OH⌋ .. ⌈(i+1)·H/OH⌉` (bins may overlap), and likewise for columns. With
//! `(1, 1)` it is a global average; with the input's own size, the identity. Backward
//! spreads each `dy` evenly over its bin.

use super::{Layer, Mode, Spec};
use crate::backend as k;
use crate::tensor::Tensor;

/// Average pooling to a fixed output size, whatever the input size.
pub struct AdaptiveAvgPool2d {
    out: (usize, usize),
    /// Input `(H, W)` of the last forward.
    in_hw: (usize, usize),
    output: Tensor,
    grad_input: Tensor,
}

impl AdaptiveAvgPool2d {
    /// Pools every plane to `oh×ow`.
    pub fn new((oh, ow): (usize, usize)) -> Self {
        AdaptiveAvgPool2d {
            out: (oh, ow),
            in_hw: (0, 0),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Rebuilds a layer from [`Layer::spec`]'s description.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        Ok(AdaptiveAvgPool2d::new((
            s.get_int("out_h")?,
            s.get_int("out_w")?,
        )))
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn describe(&self) -> String {
        format!("AdaptiveAvgPool2d({}×{})", self.out.0, self.out.1)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [c, h, w] if *h > 0 && *w > 0 && self.out.0 > 0 && self.out.1 > 0 => {
                Ok(vec![*c, self.out.0, self.out.1])
            }
            _ => Err(format!(
                "expects non-empty [C, H, W] items and a non-empty output size, got {input:?} \
                 → {:?}",
                self.out
            )),
        }
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let &[n, c, h, w] = x.shape() else {
            unreachable!("shape checked when the model was built")
        };
        self.in_hw = (h, w);
        self.output.reshape_to(&[n, c, self.out.0, self.out.1]);
        k::adaptive_avgpool_forward(x.data(), n * c, (h, w), self.out, self.output.data_mut());
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        let &[n, c, _, _] = grad_out.shape() else {
            unreachable!("gradient has the output's shape")
        };
        let (h, w) = self.in_hw;
        self.grad_input.reshape_to(&[n, c, h, w]);
        let dx = self.grad_input.data_mut();
        k::adaptive_avgpool_backward(grad_out.data(), n * c, (h, w), self.out, dx);
        &self.grad_input
    }

    fn spec(&self) -> Spec {
        Spec::new("AdaptiveAvgPool2d")
            .int("out_h", self.out.0)
            .int("out_w", self.out.1)
    }
}
