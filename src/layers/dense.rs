//! Dense (fully connected): `y[N, out] = x[N, in] · Wᵀ + b`, `W` is `[out, in]` as in PyTorch.
//!
//! backward: `dW[out, in] = dyᵀ · x`, `db = Σ_n dy[n]`, `dx[N, in] = dy · W`.

use super::{Layer, Mode, ParamVisitor, Weights, emit_weight_bias, init_uniform};
use crate::backend as k;
use crate::tensor::Tensor;
use rand::Rng;

/// A fully connected layer with bias.
pub struct Dense {
    inputs: usize,
    outputs: usize,
    /// `[out, in]`
    weight: Vec<f32>,
    /// `[out]`
    bias: Vec<f32>,
    grad_weight: Vec<f32>,
    grad_bias: Vec<f32>,
    /// Copy of the last input `[N, in]`, for `dW`.
    input: Tensor,
    output: Tensor,
    grad_input: Tensor,
}

impl Dense {
    /// A layer mapping `inputs` features to `outputs`.
    pub fn new(inputs: usize, outputs: usize) -> Self {
        Dense {
            inputs,
            outputs,
            weight: vec![0.0; inputs * outputs],
            bias: vec![0.0; outputs],
            grad_weight: vec![0.0; inputs * outputs],
            grad_bias: vec![0.0; outputs],
            input: Tensor::default(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Dense {
    /// With `false`, the layer has no bias.
    pub fn bias(mut self, on: bool) -> Self {
        let n = if on { self.outputs } else { 0 };
        self.bias = vec![0.0; n];
        self.grad_bias = vec![0.0; n];
        self
    }
}

impl Layer for Dense {
    fn describe(&self) -> String {
        let no_bias = if self.bias.is_empty() {
            ", no bias"
        } else {
            ""
        };
        format!("Dense({}→{}{no_bias})", self.inputs, self.outputs)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [f] if *f == self.inputs => Ok(vec![self.outputs]),
            _ => Err(format!(
                "expects [{}] features per item, got {input:?} (add a Flatten before it?)",
                self.inputs
            )),
        }
    }

    fn init(&mut self, rng: &mut dyn Rng) {
        init_uniform(&mut self.weight, self.inputs, rng);
        init_uniform(&mut self.bias, self.inputs, rng);
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let n = x.batch();
        let (fi, fo) = (self.inputs, self.outputs);
        self.output.reshape_to(&[n, fo]);
        // y = x · Wᵀ: B = Wᵀ is [in, out] with element (p, j) = W[j][p].
        let y = self.output.data_mut();
        k::gemm(
            n,
            fi,
            fo,
            x.data(),
            fi,
            1,
            &self.weight,
            1,
            fi,
            y,
            fo,
            false,
        );
        if !self.bias.is_empty() {
            k::add_bias_cols(y, &self.bias);
        }
        if mode == Mode::Train {
            self.input.reshape_to(x.shape());
            self.input.data_mut().copy_from_slice(x.data());
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let n = grad_out.batch();
        let (fi, fo) = (self.inputs, self.outputs);
        let dy = grad_out.data();
        // dW = dyᵀ · x: A = dyᵀ is [out, N] with element (i, p) = dy[p][i].
        let x = self.input.data();
        k::gemm(
            fo,
            n,
            fi,
            dy,
            1,
            fo,
            x,
            fi,
            1,
            &mut self.grad_weight,
            fi,
            false,
        );
        if !self.bias.is_empty() {
            k::sum_cols(dy, &mut self.grad_bias, false);
        }
        if need_input_grad {
            self.grad_input.reshape_to(&[n, fi]);
            let dx = self.grad_input.data_mut();
            k::gemm(n, fo, fi, dy, fo, 1, &self.weight, fi, 1, dx, fi, false);
        }
        &self.grad_input
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        let (outputs, inputs) = (self.outputs, self.inputs);
        let weight = Weights {
            shape: vec![outputs, inputs],
            value: &mut self.weight,
            grad: &mut self.grad_weight,
        };
        let bias = Weights {
            shape: vec![outputs],
            value: &mut self.bias,
            grad: &mut self.grad_bias,
        };
        emit_weight_bias(prefix, weight, bias, f);
    }

    fn num_params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }

    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Dense {
            inputs: self.inputs,
            outputs: self.outputs,
            bias: !self.bias.is_empty(),
        }
    }
}
