//! Max-pooling: `[N, C, H, W] → [N, C, OH, OW]`, `OH = (H − K)/S + 1`.
//!
//! Forward records each window's winner; backward routes `dy` to it (see `cpu::pool`).
//! With padding `P` (−∞, PyTorch's meaning) or `ceil_mode`, `OH` follows PyTorch's rule
//! ([`crate::backend::pooled_padded`]) and a general kernel runs instead of the fast ones.

use super::{Layer, Mode, Spec};
use crate::backend as k;
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Max-pooling over `kernel×kernel` windows moved by `stride`, no padding unless set.
pub struct MaxPool2d {
    kernel: usize,
    stride: usize,
    /// −∞ padding on every side.
    padding: usize,
    /// PyTorch's `ceil_mode`: round the output size up.
    ceil: bool,
    /// Input `(H, W)` of the last forward.
    in_hw: (usize, usize),
    /// `[N, C, OH, OW]`: in-plane index of each output's winner (training passes only).
    argmax: Vec<u32>,
    /// Whether the last forward was an evaluation pass (which keeps no winners).
    last_eval: bool,
    output: Tensor,
    grad_input: Tensor,
}

impl MaxPool2d {
    /// Pooling with window `kernel` and step `stride` (PyTorch's `MaxPool2d(kernel, stride)`).
    pub fn new(kernel: usize, stride: usize) -> Self {
        MaxPool2d {
            kernel,
            stride,
            padding: 0,
            ceil: false,
            in_hw: (0, 0),
            argmax: Vec::new(),
            last_eval: false,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl MaxPool2d {
    /// Sets the padding (PyTorch's `padding`: −∞ on every side, at most half the window).
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// Rounds the output size up (PyTorch's `ceil_mode=True`).
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil = on;
        self
    }

    /// Rebuilds a layer from [`Layer::spec`]'s description (`padding` and `ceil_mode` are
    /// optional: files written before they existed have neither).
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        let pool = MaxPool2d::new(s.get_int("kernel")?, s.get_int("stride")?);
        let has = |name: &str| s.settings.iter().any(|(n, _)| n == name);
        let padding = if has("padding") {
            s.get_int("padding")?
        } else {
            0
        };
        let ceil = has("ceil_mode") && s.get_flag("ceil_mode")?;
        Ok(pool.padding(padding).ceil_mode(ceil))
    }

    /// Whether the general (padded or ceil-mode) kernel runs.
    fn general(&self) -> bool {
        self.padding > 0 || self.ceil
    }

    /// Output `(OH, OW)` for an `h×w` input (sizes checked by `output_shape`).
    fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let (kk, s, p, c) = (self.kernel, self.stride, self.padding, self.ceil);
        (
            k::pooled_padded(h, kk, s, p, c),
            k::pooled_padded(w, kk, s, p, c),
        )
    }
}

/// Planes per parallel task: enough work to pay for the hand-off.
const PLANES_PER_TASK: usize = 16;

impl Layer for MaxPool2d {
    fn spec(&self) -> Spec {
        let spec = Spec::new("MaxPool2d")
            .int("kernel", self.kernel)
            .int("stride", self.stride);
        if !self.general() {
            return spec;
        }
        spec.int("padding", self.padding)
            .flag("ceil_mode", self.ceil)
    }

    fn kind(&self) -> super::LayerKind {
        if self.general() {
            return super::LayerKind::Other;
        }
        super::LayerKind::MaxPool2d {
            kernel: self.kernel,
            stride: self.stride,
        }
    }

    fn replicate(&self) -> Option<Box<dyn Layer>> {
        let pool = MaxPool2d::new(self.kernel, self.stride);
        Some(Box::new(pool.padding(self.padding).ceil_mode(self.ceil)))
    }

    fn describe(&self) -> String {
        let mut extra = String::new();
        if self.padding > 0 {
            extra += &format!(", pad {}", self.padding);
        }
        if self.ceil {
            extra += ", ceil";
        }
        format!(
            "MaxPool2d({k}×{k}, stride {}{extra})",
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
        if self.padding > self.kernel / 2 {
            return Err(format!(
                "padding {} is more than half the {k}×{k} window",
                self.padding,
                k = self.kernel
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
        let (oh, ow) = self.out_hw(h, w);
        Ok(vec![c, oh, ow])
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let &[n, c, h, w] = x.shape() else {
            unreachable!("shape checked when the model was built")
        };
        let (kk, s) = (self.kernel, self.stride);
        let (oh, ow) = self.out_hw(h, w);
        self.in_hw = (h, w);
        self.output.reshape_to(&[n, c, oh, ow]);
        let planes = n * c;
        let (pad, general) = (self.padding, self.general());
        let chunk = PLANES_PER_TASK;
        // Evaluation of a padded window keeps no winners; the unpadded kernels (2×2 on
        // AVX2) are as fast with them.
        self.last_eval = mode == Mode::Eval && general;
        if self.last_eval {
            // Values only: evaluation runs no backward.
            let task = |(xs, ys): (&[f32], &mut [f32])| {
                let planes = ys.len() / (oh * ow);
                k::maxpool_eval(xs, planes, (h, w), kk, s, pad, (oh, ow), ys);
            };
            let (xs, ys) = (x.data(), self.output.data_mut());
            if k::worth_parallel(planes / chunk, planes * h * w) {
                let it = xs.par_chunks(chunk * h * w);
                it.zip(ys.par_chunks_mut(chunk * oh * ow)).for_each(task);
            } else {
                task((xs, ys));
            }
            return &self.output;
        }
        self.argmax.resize(n * c * oh * ow, 0);
        let pool = |xs: &[f32], planes: usize, ys: &mut [f32], am: &mut [u32]| {
            if general {
                k::maxpool_forward_padded(xs, planes, (h, w), kk, s, pad, (oh, ow), ys, am);
            } else {
                k::maxpool_forward(xs, planes, (h, w), kk, s, ys, am);
            }
        };
        let task = |((xs, ys), am): ((&[f32], &mut [f32]), &mut [u32])| {
            pool(xs, ys.len() / (oh * ow), ys, am);
        };
        let (xs, ys) = (x.data(), self.output.data_mut());
        if k::worth_parallel(planes / chunk, planes * h * w) {
            let it = xs
                .par_chunks(chunk * h * w)
                .zip(ys.par_chunks_mut(chunk * oh * ow));
            it.zip(self.argmax.par_chunks_mut(chunk * oh * ow))
                .for_each(task);
        } else {
            pool(xs, planes, ys, &mut self.argmax);
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        let &[n, c, oh, ow] = grad_out.shape() else {
            unreachable!("gradient has the output's shape")
        };
        assert!(
            !self.last_eval,
            "MaxPool2d::backward after an evaluation-mode forward (which keeps no winners)"
        );
        let (h, w) = self.in_hw;
        self.grad_input.reshape_to(&[n, c, h, w]);
        let (planes, chunk, out) = (n * c, PLANES_PER_TASK, oh * ow);
        // Each task scatters its own planes (zeroing them first): no plane is shared.
        let task = |((dys, am), dxs): ((&[f32], &[u32]), &mut [f32])| {
            k::maxpool_backward(dys, am, dxs.len() / (h * w), (h, w), out, dxs);
        };
        let (dy, am, dx) = (
            grad_out.data(),
            &self.argmax[..],
            self.grad_input.data_mut(),
        );
        if k::worth_parallel(planes / chunk, planes * h * w) {
            let it = dy.par_chunks(chunk * out).zip(am.par_chunks(chunk * out));
            it.zip(dx.par_chunks_mut(chunk * h * w)).for_each(task);
        } else {
            task(((dy, am), dx));
        }
        &self.grad_input
    }
}
