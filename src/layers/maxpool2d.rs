//! Max-pooling: `[N, C, H, W] → [N, C, OH, OW]`, `OH = (H − K)/S + 1`.
//!
//! Forward records each window's winner; backward routes `dy` to it (see `cpu::pool`).

use super::{Layer, Mode, Spec};
use crate::backend as k;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Max-pooling over `kernel×kernel` windows moved by `stride`, no padding.
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    /// Input `(H, W)` of the last forward.
    in_hw: (usize, usize),
    /// `[N, C, OH, OW]`: in-plane index of each output's winner.
    argmax: Vec<u32>,
    output: Tensor,
    grad_input: Tensor,
}

impl MaxPool2d {
    /// Pooling with window `kernel` and step `stride` (PyTorch's `MaxPool2d(kernel, stride)`).
    pub fn new(kernel: usize, stride: usize) -> Self {
        MaxPool2d {
            kernel,
            stride,
            in_hw: (0, 0),
            argmax: Vec::new(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

/// Planes per parallel task: enough work to pay for the hand-off.
const PLANES_PER_TASK: usize = 16;

impl Layer for MaxPool2d {
    fn spec(&self) -> Spec {
        Spec::new("MaxPool2d")
            .int("kernel", self.kernel)
            .int("stride", self.stride)
    }

    fn kind(&self) -> super::LayerKind {
        super::LayerKind::MaxPool2d {
            kernel: self.kernel,
            stride: self.stride,
        }
    }

    fn describe(&self) -> String {
        format!(
            "MaxPool2d({k}×{k}, stride {})",
            self.stride,
            k = self.kernel
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let &[c, h, w] = input else {
            return Err(format!("expects [C, H, W] items, got {input:?}"));
        };
        if self.kernel == 0 || self.stride == 0 {
            return Err("kernel and stride must be at least 1".into());
        }
        if h < self.kernel || w < self.kernel {
            return Err(format!(
                "{k}×{k} window does not fit {h}×{w}",
                k = self.kernel
            ));
        }
        let (kk, s) = (self.kernel, self.stride);
        Ok(vec![c, k::pooled(h, kk, s), k::pooled(w, kk, s)])
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let &[n, c, h, w] = x.shape() else {
            unreachable!("shape checked when the model was built")
        };
        let (kk, s) = (self.kernel, self.stride);
        let (oh, ow) = (k::pooled(h, kk, s), k::pooled(w, kk, s));
        self.in_hw = (h, w);
        self.output.reshape_to(&[n, c, oh, ow]);
        self.argmax.resize(n * c * oh * ow, 0);
        let planes = n * c;
        let task = |((xs, ys), am): ((&[f32], &mut [f32]), &mut [u32])| {
            k::maxpool_forward(xs, ys.len() / (oh * ow), (h, w), kk, s, ys, am);
        };
        let (xs, ys) = (x.data(), self.output.data_mut());
        let chunk = PLANES_PER_TASK;
        if k::worth_parallel(planes / chunk, planes * h * w) {
            let it = xs
                .par_chunks(chunk * h * w)
                .zip(ys.par_chunks_mut(chunk * oh * ow));
            it.zip(self.argmax.par_chunks_mut(chunk * oh * ow))
                .for_each(task);
        } else {
            k::maxpool_forward(xs, planes, (h, w), kk, s, ys, &mut self.argmax);
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        let &[n, c, oh, ow] = grad_out.shape() else {
            unreachable!("gradient has the output's shape")
        };
        let (h, w) = self.in_hw;
        self.grad_input.reshape_to(&[n, c, h, w]);
        k::maxpool_backward(
            grad_out.data(),
            &self.argmax,
            n * c,
            (h, w),
            oh * ow,
            self.grad_input.data_mut(),
        );
        &self.grad_input
    }
}
