//! 2-D convolution by im2col + GEMM.
//!
//! Per image `n` (see `cpu::im2col` for the column matrix):
//! - forward:  `col[n] = im2col(x[n])`            `[C·K·K, P]`, `P = OH·OW`
//!   `y[n] = W · col[n] + b`                       `[Cout, C·K·K]·[C·K·K, P] → [Cout, P]`
//! - backward: `dW = Σ_n dy[n] · col[n]ᵀ`          `[Cout, P]·[P, C·K·K]`
//!   `db = Σ_n Σ_p dy[n][·][p]`
//!   `dcol[n] = Wᵀ · dy[n]`                        `[C·K·K, Cout]·[Cout, P]`
//!   `dx[n] = col2im(dcol[n])`
//!
//! Images are independent, so they run in parallel; `dW` is summed over images in
//! order 0, 1, 2, … whatever the thread count, so results are the same bit for bit.

use super::{Layer, Mode, Param, ParamKind, ParamVisitor, emit, init_uniform};
use crate::backend as k;
use crate::cpu::im2col::ConvGeometry;
use crate::tensor::Tensor;
use rand::Rng;
use rayon::prelude::*;

/// A 2-D convolution with square kernel, stride, zero padding and bias.
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    /// `[Cout, C, K, K]`
    weight: Vec<f32>,
    /// `[Cout]`
    bias: Vec<f32>,
    grad_weight: Vec<f32>,
    grad_bias: Vec<f32>,
    /// Geometry of the last input.
    geom: Option<ConvGeometry>,
    /// `[N, C·K·K, P]`: forward's column matrices, reused by backward for `dcol`.
    cols: Vec<f32>,
    output: Tensor,
    grad_input: Tensor,
}

impl Conv2d {
    /// `in_channels → out_channels` with a `kernel×kernel` window, stride 1, no padding.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        let wlen = out_channels * in_channels * kernel * kernel;
        Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding: 0,
            weight: vec![0.0; wlen],
            bias: vec![0.0; out_channels],
            grad_weight: vec![0.0; wlen],
            grad_bias: vec![0.0; out_channels],
            geom: None,
            cols: Vec::new(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Sets the stride (both directions).
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// With `false`, the layer has no bias (as before a batch norm, which has its own shift).
    pub fn bias(mut self, on: bool) -> Self {
        let n = if on { self.out_channels } else { 0 };
        self.bias = vec![0.0; n];
        self.grad_bias = vec![0.0; n];
        self
    }

    /// Sets the zero padding on every side.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    fn geometry(&self, h: usize, w: usize) -> ConvGeometry {
        ConvGeometry {
            channels: self.in_channels,
            height: h,
            width: w,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

impl Layer for Conv2d {
    fn describe(&self) -> String {
        format!(
            "Conv2d({}→{}, {k}×{k}, stride {}, pad {}{})",
            self.in_channels,
            self.out_channels,
            self.stride,
            self.padding,
            if self.bias.is_empty() {
                ", no bias"
            } else {
                ""
            },
            k = self.kernel
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let &[c, h, w] = input else {
            return Err(format!("expects [C, H, W] items, got {input:?}"));
        };
        if c != self.in_channels {
            return Err(format!(
                "expects {} input channels, got {c}",
                self.in_channels
            ));
        }
        if self.stride == 0 || self.kernel == 0 {
            return Err("kernel and stride must be at least 1".into());
        }
        if h + 2 * self.padding < self.kernel || w + 2 * self.padding < self.kernel {
            return Err(format!(
                "{k}×{k} kernel does not fit a {h}×{w} input with padding {}",
                self.padding,
                k = self.kernel
            ));
        }
        let g = self.geometry(h, w);
        Ok(vec![self.out_channels, g.out_h(), g.out_w()])
    }

    fn init(&mut self, rng: &mut dyn Rng) {
        let fan_in = self.in_channels * self.kernel * self.kernel;
        init_uniform(&mut self.weight, fan_in, rng);
        init_uniform(&mut self.bias, fan_in, rng);
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let (n, h, w) = (x.shape()[0], x.shape()[2], x.shape()[3]);
        let g = self.geometry(h, w);
        let (rows, p, cout) = (g.col_rows(), g.col_cols(), self.out_channels);
        self.geom = Some(g);
        self.cols.resize(n * rows * p, 0.0);
        self.output.reshape_to(&[n, cout, g.out_h(), g.out_w()]);
        let (weight, bias) = (&self.weight, &self.bias);
        // One image: col = im2col(x); y = W·col + b.
        let per_image = |((xi, col), y): ((&[f32], &mut [f32]), &mut [f32])| {
            k::im2col(&g, xi, col);
            k::gemm(cout, rows, p, weight, rows, 1, col, p, 1, y, p, false);
            k::add_bias_rows(y, bias, p);
        };
        let work = cout * rows * p;
        if k::worth_parallel(n, n * work) {
            let items = x.data().par_chunks(g.input_len());
            let cols = self.cols.par_chunks_mut(rows * p);
            let ys = self.output.data_mut().par_chunks_mut(cout * p);
            items.zip(cols).zip(ys).for_each(per_image);
        } else {
            let items = x.data().chunks(g.input_len());
            let cols = self.cols.chunks_mut(rows * p);
            let ys = self.output.data_mut().chunks_mut(cout * p);
            items.zip(cols).zip(ys).for_each(per_image);
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let g = self.geom.expect("Conv2d::backward called before forward");
        let n = grad_out.batch();
        let (rows, p, cout) = (g.col_rows(), g.col_cols(), self.out_channels);
        let dy = grad_out.data();
        // dW = Σ_n dy[n]·col[n]ᵀ, db = Σ_n rowsums(dy[n]), in image order.
        for (i, (dyi, col)) in dy
            .chunks(cout * p)
            .zip(self.cols.chunks(rows * p))
            .enumerate()
        {
            k::gemm(
                cout,
                p,
                rows,
                dyi,
                p,
                1,
                col,
                1,
                p,
                &mut self.grad_weight,
                rows,
                i > 0,
            );
            k::sum_rows(dyi, p, &mut self.grad_bias, i > 0);
        }
        if !need_input_grad {
            return &self.grad_input;
        }
        self.grad_input
            .reshape_to(&[n, g.channels, g.height, g.width]);
        let weight = &self.weight;
        // One image: dcol = Wᵀ·dy (into the col buffer, no longer needed); dx = col2im(dcol).
        let per_image = |((dyi, dcol), dx): ((&[f32], &mut [f32]), &mut [f32])| {
            k::gemm(rows, cout, p, weight, 1, rows, dyi, p, 1, dcol, p, false);
            k::col2im(&g, dcol, dx);
        };
        let work = cout * rows * p;
        if k::worth_parallel(n, n * work) {
            let dys = dy.par_chunks(cout * p);
            let cols = self.cols.par_chunks_mut(rows * p);
            let dxs = self.grad_input.data_mut().par_chunks_mut(g.input_len());
            dys.zip(cols).zip(dxs).for_each(per_image);
        } else {
            let dys = dy.chunks(cout * p);
            let cols = self.cols.chunks_mut(rows * p);
            let dxs = self.grad_input.data_mut().chunks_mut(g.input_len());
            dys.zip(cols).zip(dxs).for_each(per_image);
        }
        &self.grad_input
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        let shape = vec![
            self.out_channels,
            self.in_channels,
            self.kernel,
            self.kernel,
        ];
        let p = Param {
            shape,
            value: &mut self.weight,
            grad: &mut self.grad_weight,
            kind: ParamKind::Weight,
        };
        emit(prefix, "weight", p, f);
        if self.bias.is_empty() {
            return;
        }
        let p = Param {
            shape: vec![self.out_channels],
            value: &mut self.bias,
            grad: &mut self.grad_bias,
            kind: ParamKind::Bias,
        };
        emit(prefix, "bias", p, f);
    }

    fn num_params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }
}
