//! Global pooling: `[N, C, H, W] → [N, C]`, one value per channel plane.
//!
//! Average: `y = mean(plane)`, `dx = dy/(H·W)` everywhere. Max: `y = max(plane)`,
//! `dx = dy` at the winner (the first maximum), 0 elsewhere.

use super::{Layer, Mode, Spec};
use crate::tensor::Tensor;

/// Mean over each channel plane.
#[derive(Default)]
pub struct GlobalAvgPool {
    input_shape: Vec<usize>,
    output: Tensor,
    grad_input: Tensor,
}

/// Maximum over each channel plane (PyTorch's `AdaptiveMaxPool2d(1)` + flatten).
#[derive(Default)]
pub struct GlobalMaxPool {
    input_shape: Vec<usize>,
    argmax: Vec<usize>,
    output: Tensor,
    grad_input: Tensor,
}

impl GlobalAvgPool {
    /// A new global average pool.
    pub fn new() -> Self {
        Self::default()
    }
}

impl GlobalMaxPool {
    /// A new global max pool.
    pub fn new() -> Self {
        Self::default()
    }
}

fn pooled_shape(input: &[usize]) -> Result<Vec<usize>, String> {
    match input {
        [c, h, w] if h * w > 0 => Ok(vec![*c]),
        _ => Err(format!("expects non-empty [C, H, W] items, got {input:?}")),
    }
}

impl Layer for GlobalAvgPool {
    fn spec(&self) -> Spec {
        Spec::new("GlobalAvgPool")
    }

    fn describe(&self) -> String {
        "GlobalAvgPool".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        pooled_shape(input)
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let s = x.shape();
        self.input_shape.clear();
        self.input_shape.extend_from_slice(s);
        let plane = s[2] * s[3];
        self.output.reshape_to(&[s[0], s[1]]);
        for (y, p) in self
            .output
            .data_mut()
            .iter_mut()
            .zip(x.data().chunks_exact(plane))
        {
            *y = p.iter().sum::<f32>() / plane as f32;
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(&self.input_shape);
        let plane = self.input_shape[2] * self.input_shape[3];
        let planes = self.grad_input.data_mut().chunks_exact_mut(plane);
        for (p, &g) in planes.zip(grad_out.data()) {
            p.fill(g / plane as f32);
        }
        &self.grad_input
    }
}

impl Layer for GlobalMaxPool {
    fn spec(&self) -> Spec {
        Spec::new("GlobalMaxPool")
    }

    fn describe(&self) -> String {
        "GlobalMaxPool".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        pooled_shape(input)
    }

    fn forward(&mut self, x: &Tensor, _mode: Mode) -> &Tensor {
        let s = x.shape();
        self.input_shape.clear();
        self.input_shape.extend_from_slice(s);
        let plane = s[2] * s[3];
        self.output.reshape_to(&[s[0], s[1]]);
        self.argmax.resize(s[0] * s[1], 0);
        let it = self.output.data_mut().iter_mut().zip(&mut self.argmax);
        for ((y, a), p) in it.zip(x.data().chunks_exact(plane)) {
            let mut best = 0;
            for (i, &v) in p.iter().enumerate() {
                if v > p[best] || (v.is_nan() && !p[best].is_nan()) {
                    best = i;
                }
            }
            *y = p[best];
            *a = best;
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        self.grad_input.reshape_to(&self.input_shape);
        let plane = self.input_shape[2] * self.input_shape[3];
        let planes = self.grad_input.data_mut().chunks_exact_mut(plane);
        for ((p, &g), &a) in planes.zip(grad_out.data()).zip(&self.argmax) {
            p.fill(0.0);
            p[a] = g;
        }
        &self.grad_input
    }
}
