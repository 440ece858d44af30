//! Average pooling: `[N, C, H, W] → [N, C, OH, OW]`, `OH = ⌊(H + 2P − K)/S⌋ + 1`.
//!
//! PyTorch's `AvgPool2d(K, S, P)` with its default `count_include_pad=True`: the zero
//! padding counts in the divisor, so with `K = 3, S = 1, P = 1` every output is the
//! window's sum over 9 (the branch pools of Inception v3). Backward spreads each `dy`
//! evenly over its window's input pixels (see `cpu::pool`).

use super::{Layer, Mode, Spec};
use crate::backend as k;
use crate::tensor::Tensor;

/// Average pooling over `kernel×kernel` windows moved by `stride`, zero padding counted.
pub struct AvgPool2d {
    kernel: usize,
    stride: usize,
    padding: usize,
    /// Input `(H, W)` of the last forward.
    in_hw: (usize, usize),
    output: Tensor,
    grad_input: Tensor,
}

impl AvgPool2d {
    /// PyTorch's `AvgPool2d(kernel, stride, padding)` (`count_include_pad=True`,
    /// `ceil_mode=False`).
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        AvgPool2d {
            kernel,
            stride,
            padding,
            in_hw: (0, 0),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Rebuilds a layer from [`Layer::spec`]'s description.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        Ok(AvgPool2d::new(
            s.get_int("kernel")?,
            s.get_int("stride")?,
            s.get_int("padding")?,
        ))
    }

    fn out_hw(&self, (h, w): (usize, usize)) -> (usize, usize) {
        let (kk, s, p) = (self.kernel, self.stride, self.padding);
        (
            k::pooled_padded(h, kk, s, p, false),
            k::pooled_padded(w, kk, s, p, false),
        )
    }
}

impl Layer for AvgPool2d {
    fn describe(&self) -> String {
        format!(
            "AvgPool2d({k}×{k}, stride {}, pad {})",
            self.stride,
            self.padding,
            k = self.kernel
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let &[c, h, w] = input else {
            return Err(format!("expects [C, H, W] items, got {input:?}"));
        };
        if self.kernel == 0 || self.stride == 0 || self.padding > self.kernel / 2 {
            return Err(format!(
                "kernel and stride must be at least 1 and padding at most half the kernel, \
                 got {}, {}, {}",
                self.kernel, self.stride, self.padding
            ));
        }
        let fits = |n: usize| n + 2 * self.padding >= self.kernel;
        if !fits(h) || !fits(w) {
            return Err(format!(
                "{k}×{k} window does not fit {h}×{w} with padding {}",
                self.padding,
                k = self.kernel
            ));
        }
        let (oh, ow) = self.out_hw((h, w));
        Ok(vec![c, oh, ow])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let &[n, c, h, w] = x.shape() else {
            unreachable!("shape checked when the model was built")
        };
        let (oh, ow) = self.out_hw((h, w));
        self.in_hw = (h, w);
        self.output.reshape_to(&[n, c, oh, ow]);
        let (kk, s, p) = (self.kernel, self.stride, self.padding);
        let y = self.output.data_mut();
        k::avgpool_forward(x.data(), n * c, (h, w), kk, s, p, (oh, ow), y);
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        let &[n, c, oh, ow] = grad_out.shape() else {
            unreachable!("gradient has the output's shape")
        };
        let (h, w) = self.in_hw;
        self.grad_input.reshape_to(&[n, c, h, w]);
        let (kk, s, p) = (self.kernel, self.stride, self.padding);
        let dx = self.grad_input.data_mut();
        k::avgpool_backward(grad_out.data(), n * c, (h, w), kk, s, p, (oh, ow), dx);
        &self.grad_input
    }

    fn spec(&self) -> Spec {
        Spec::new("AvgPool2d")
            .int("kernel", self.kernel)
            .int("stride", self.stride)
            .int("padding", self.padding)
    }
}
