//! `Concat`: parallel branches on the same input, outputs joined along the channels.
//!
//! `y[N, C_1+…+C_k, H, W] = [f_1(x), …, f_k(x)]` (PyTorch's `torch.cat(branches, 1)`,
//! as in GoogLeNet's and Inception v3's modules). Backward hands each branch its slice of
//! `∂L/∂y` and sums what the branches return: `∂L/∂x = Σ_j f_j.backward(dy[:, C_j])`.
//! Branches are named like a [`super::Block`]'s children (the empty name adds nothing).

use super::block::{Child, check_names, children_from_spec, enter};
use super::{BufferVisitor, Layer, Mode, ParamVisitor, Spec, ValueVisitor};
use crate::tensor::Tensor;
use rand::Rng;

/// Parallel branches whose `[C_j, H, W]` outputs are stacked along the channels.
pub struct Concat {
    branches: Vec<Child>,
    /// `C_j` of each branch, from the last forward.
    channels: Vec<usize>,
    output: Tensor,
    /// `[N, C_j, H, W]`: one branch's slice of `∂L/∂y`.
    grad_slice: Tensor,
    grad_input: Tensor,
}

impl Concat {
    /// Branches `(name, layer)`, run on the same input; their outputs must agree but for
    /// the channel count.
    pub fn new<S: Into<String>>(branches: Vec<(S, Box<dyn Layer>)>) -> Self {
        Concat {
            branches: branches.into_iter().map(|(n, l)| (n.into(), l)).collect(),
            channels: Vec::new(),
            output: Tensor::default(),
            grad_slice: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Rebuilds a concatenation from [`Layer::spec`]'s description.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        Ok(Concat::new(children_from_spec(s)?))
    }
}

impl Layer for Concat {
    fn describe(&self) -> String {
        format!("Concat({} branches)", self.branches.len())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if self.branches.is_empty() {
            return Err("a concatenation needs at least one branch".into());
        }
        check_names(&self.branches)?;
        let mut out: Option<Vec<usize>> = None;
        for (j, (name, layer)) in self.branches.iter().enumerate() {
            let s = layer
                .output_shape(input)
                .map_err(|why| format!("branch {j} {name:?} ({}): {why}", layer.describe()))?;
            out = Some(match (out, s.as_slice()) {
                (None, [_, _, _]) => s,
                (Some(mut o), [c, h, w]) if o[1..] == [*h, *w] => {
                    o[0] = o[0].checked_add(*c).ok_or("channel count overflows")?;
                    o
                }
                (o, _) => {
                    return Err(format!(
                        "branch {j} {name:?} gives {s:?}, the ones before {o:?}: \
                         branches must give [C, H, W] of the same H×W"
                    ));
                }
            });
        }
        Ok(out.expect("at least one branch"))
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        for (name, layer) in &mut self.branches {
            layer.init(rng).map_err(|why| format!("{name:?}: {why}"))?;
        }
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let n = x.batch();
        let out = self
            .output_shape(&x.shape()[1..])
            .expect("shapes checked when the model was built");
        let (total, plane) = (out[0], out[1] * out[2]);
        self.output.reshape_to(&[n, total, out[1], out[2]]);
        self.channels.clear();
        let mut offset = 0;
        for (_, layer) in &mut self.branches {
            let y = layer.forward(x, mode);
            let c = y.shape()[1];
            self.channels.push(c);
            // y[i] is C_j planes; they go to output[i][offset .. offset + C_j].
            for (i, src) in y.data().chunks_exact(c * plane).enumerate() {
                let at = (i * total + offset) * plane;
                self.output.data_mut()[at..at + c * plane].copy_from_slice(src);
            }
            offset += c;
        }
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let &[n, total, h, w] = grad_out.shape() else {
            unreachable!("gradient has the output's shape")
        };
        let plane = h * w;
        let mut offset = 0;
        for (j, (_, layer)) in self.branches.iter_mut().enumerate() {
            let c = self.channels[j];
            self.grad_slice.reshape_to(&[n, c, h, w]);
            for (i, dst) in self
                .grad_slice
                .data_mut()
                .chunks_exact_mut(c * plane)
                .enumerate()
            {
                let at = (i * total + offset) * plane;
                dst.copy_from_slice(&grad_out.data()[at..at + c * plane]);
            }
            offset += c;
            let dx = layer.backward(&self.grad_slice, need_input_grad);
            if !need_input_grad {
                continue;
            }
            if j == 0 {
                self.grad_input.reshape_to(dx.shape());
                self.grad_input.data_mut().copy_from_slice(dx.data());
            } else {
                let acc = self.grad_input.data_mut().iter_mut();
                acc.zip(dx.data()).for_each(|(a, &d)| *a += d);
            }
        }
        &self.grad_input
    }

    fn set_step(&mut self, step: u64) {
        for (_, layer) in &mut self.branches {
            layer.set_step(step);
        }
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        for (name, layer) in &mut self.branches {
            let len = enter(prefix, name);
            layer.visit_params(prefix, f);
            prefix.truncate(len);
        }
    }

    fn freeze_norm(&mut self, prefix: &mut String, frozen: &dyn Fn(&str) -> bool) {
        for (name, layer) in &mut self.branches {
            let len = enter(prefix, name);
            layer.freeze_norm(prefix, frozen);
            prefix.truncate(len);
        }
    }

    fn visit_buffers(&mut self, prefix: &mut String, f: &mut BufferVisitor<'_>) {
        for (name, layer) in &mut self.branches {
            let len = enter(prefix, name);
            layer.visit_buffers(prefix, f);
            prefix.truncate(len);
        }
    }

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        for (name, layer) in &self.branches {
            let len = enter(prefix, name);
            layer.visit_values(prefix, f);
            prefix.truncate(len);
        }
    }

    fn num_params(&self) -> usize {
        self.branches.iter().map(|(_, l)| l.num_params()).sum()
    }

    /// Each branch folds inside itself (branches are parallel, not a chain).
    fn fold_children(&mut self, relu: bool) -> usize {
        let branches = self.branches.iter_mut();
        branches.map(|(_, l)| l.fold_children(relu)).sum()
    }

    fn spec(&self) -> Spec {
        let mut spec = Spec::new("Concat");
        for (name, layer) in &self.branches {
            spec = spec.child(name, layer.spec());
        }
        spec
    }
}
