//! Dense (fully connected): `y[N, out] = x[N, in] · Wᵀ + b`, `W` is `[out, in]` as in PyTorch.
//!
//! backward: `dW[out, in] = dyᵀ · x`, `db = Σ_n dy[n]`, `dx[N, in] = dy · W`.

use super::{
    Layer, Mode, ParamKind, ParamVisitor, Role, Spec, ValueVisitor, Weights, checked_product,
    emit_value, emit_weight_bias, init_uniform, try_zeros,
};
use crate::backend as k;
use crate::tensor::Tensor;
use rand::Rng;

/// A fully connected layer with bias.
pub struct Dense {
    inputs: usize,
    outputs: usize,
    has_bias: bool,
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
    /// A layer mapping `inputs` features to `outputs`. The parameters are allocated when
    /// the model is built (an error, not an abort, when they do not fit in memory).
    pub fn new(inputs: usize, outputs: usize) -> Self {
        Dense {
            inputs,
            outputs,
            has_bias: true,
            weight: Vec::new(),
            bias: Vec::new(),
            grad_weight: Vec::new(),
            grad_bias: Vec::new(),
            input: Tensor::default(),
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Dense {
    /// With `false`, the layer has no bias.
    pub fn bias(mut self, on: bool) -> Self {
        self.has_bias = on;
        self
    }

    /// Rebuilds a layer from [`Layer::spec`]'s description.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        Ok(Dense::new(s.get_int("inputs")?, s.get_int("outputs")?).bias(s.get_flag("bias")?))
    }

    fn weight_len(&self) -> Result<usize, String> {
        checked_product(&[self.outputs, self.inputs], "Dense weight")
    }
}

impl Layer for Dense {
    fn describe(&self) -> String {
        let no_bias = if self.has_bias { "" } else { ", no bias" };
        format!("Dense({}→{}{no_bias})", self.inputs, self.outputs)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if self.outputs == 0 {
            return Err("needs at least 1 output".into());
        }
        self.weight_len()?;
        match input {
            [f] if *f == self.inputs => Ok(vec![self.outputs]),
            [f] => Err(format!(
                "expects {} features per item, got {f}",
                self.inputs
            )),
            _ => Err(format!(
                "expects [{}] features per item, got {input:?} (add a Flatten before it?)",
                self.inputs
            )),
        }
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        let wlen = self.weight_len()?;
        let blen = if self.has_bias { self.outputs } else { 0 };
        if self.weight.len() != wlen {
            self.weight = try_zeros(wlen, "Dense weight")?;
            self.grad_weight = try_zeros(wlen, "Dense weight gradient")?;
        }
        if self.bias.len() != blen {
            self.bias = try_zeros(blen, "Dense bias")?;
            self.grad_bias = try_zeros(blen, "Dense bias gradient")?;
        }
        init_uniform(&mut self.weight, self.inputs, rng);
        init_uniform(&mut self.bias, self.inputs, rng);
        Ok(())
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

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        emit_value(
            prefix,
            ("weight", Role::Param(ParamKind::Weight)),
            &[self.outputs, self.inputs],
            &self.weight,
            f,
        );
        if self.has_bias {
            emit_value(
                prefix,
                ("bias", Role::Param(ParamKind::Bias)),
                &[self.outputs],
                &self.bias,
                f,
            );
        }
    }

    fn num_params(&self) -> usize {
        let wlen = self.weight_len().unwrap_or(usize::MAX);
        wlen.saturating_add(if self.has_bias { self.outputs } else { 0 })
    }

    fn spec(&self) -> Spec {
        Spec::new("Dense")
            .int("inputs", self.inputs)
            .int("outputs", self.outputs)
            .flag("bias", self.has_bias)
    }

    fn kind(&self) -> super::LayerKind {
        super::LayerKind::Dense {
            inputs: self.inputs,
            outputs: self.outputs,
            bias: self.has_bias,
        }
    }
}
