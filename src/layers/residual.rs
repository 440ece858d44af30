//! A residual block: `y = x + f(x)`, where `f` is a chain of layers that keeps the shape.
//!
//! Backward: `∂L/∂x = ∂L/∂y + f.backward(∂L/∂y)`: the skip connection passes the gradient
//! through unchanged and adds the branch's.

use super::{BufferVisitor, Layer, Mode, ParamVisitor, Spec, ValueVisitor};
use crate::tensor::Tensor;
use rand::Rng;
use std::fmt::Write;

/// `x + f(x)` for a branch `f` made of `layers`, run in order.
pub struct Residual {
    branch: Vec<Box<dyn Layer>>,
    output: Tensor,
    grad_input: Tensor,
}

impl Residual {
    /// Rebuilds a block from [`Layer::spec`]'s description (children in order).
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        let branch = s
            .children
            .iter()
            .map(|(_, child)| super::from_spec(child))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Residual::new(branch))
    }

    /// A residual block around the chain `branch` (its output shape must equal its input's).
    pub fn new(branch: Vec<Box<dyn Layer>>) -> Self {
        Residual {
            branch,
            output: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }
}

impl Layer for Residual {
    fn describe(&self) -> String {
        let inner: Vec<String> = self.branch.iter().map(|l| l.describe()).collect();
        format!("Residual[{}]", inner.join(", "))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let mut shape = input.to_vec();
        for (j, layer) in self.branch.iter().enumerate() {
            shape = layer
                .output_shape(&shape)
                .map_err(|why| format!("branch layer {j} ({}): {why}", layer.describe()))?;
        }
        if shape != input {
            return Err(format!(
                "branch maps {input:?} to {shape:?}; a skip needs equal shapes"
            ));
        }
        Ok(shape)
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        for (j, layer) in self.branch.iter_mut().enumerate() {
            layer
                .init(rng)
                .map_err(|why| format!("branch layer {j} ({}): {why}", layer.describe()))?;
        }
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let mut cur = x;
        for layer in self.branch.iter_mut() {
            cur = layer.forward(cur, mode);
        }
        self.output.reshape_to(x.shape());
        let out = self.output.data_mut().iter_mut();
        for ((y, &a), &b) in out.zip(x.data()).zip(cur.data()) {
            *y = a + b;
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, _need_input_grad: bool) -> &Tensor {
        let mut g = grad_out;
        for layer in self.branch.iter_mut().rev() {
            g = layer.backward(g, true);
        }
        self.grad_input.reshape_to(grad_out.shape());
        let dx = self.grad_input.data_mut().iter_mut();
        for ((d, &a), &b) in dx.zip(grad_out.data()).zip(g.data()) {
            *d = a + b;
        }
        &self.grad_input
    }

    fn set_step(&mut self, step: u64) {
        for layer in &mut self.branch {
            layer.set_step(step);
        }
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        let len = prefix.len();
        for (j, layer) in self.branch.iter_mut().enumerate() {
            write!(prefix, "{j}.").expect("writing to a String");
            layer.visit_params(prefix, f);
            prefix.truncate(len);
        }
    }

    fn freeze_norm(&mut self, prefix: &mut String, frozen: &dyn Fn(&str) -> bool) {
        let len = prefix.len();
        for (j, layer) in self.branch.iter_mut().enumerate() {
            write!(prefix, "{j}.").expect("writing to a String");
            layer.freeze_norm(prefix, frozen);
            prefix.truncate(len);
        }
    }

    fn visit_buffers(&mut self, prefix: &mut String, f: &mut BufferVisitor<'_>) {
        let len = prefix.len();
        for (j, layer) in self.branch.iter_mut().enumerate() {
            write!(prefix, "{j}.").expect("writing to a String");
            layer.visit_buffers(prefix, f);
            prefix.truncate(len);
        }
    }

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        let len = prefix.len();
        for (j, layer) in self.branch.iter().enumerate() {
            write!(prefix, "{j}.").expect("writing to a String");
            layer.visit_values(prefix, f);
            prefix.truncate(len);
        }
    }

    fn num_params(&self) -> usize {
        self.branch.iter().map(|l| l.num_params()).sum()
    }

    /// Folds along the branch; the layers after a removed one are renumbered (the
    /// branch's names are positions).
    fn fold_children(&mut self, relu: bool) -> usize {
        let mut named: Vec<super::Child> = std::mem::take(&mut self.branch)
            .into_iter()
            .map(|l| (String::new(), l))
            .collect();
        let removed = super::fold_batch_norm(&mut named, relu);
        self.branch = named.into_iter().map(|(_, l)| l).collect();
        removed
    }

    fn spec(&self) -> Spec {
        let mut spec = Spec::new("Residual");
        for (j, layer) in self.branch.iter().enumerate() {
            spec = spec.child(&j.to_string(), layer.spec());
        }
        spec
    }
}
