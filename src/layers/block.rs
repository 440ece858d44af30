//! `Block`: named sub-layers run in order, PyTorch's `nn.Sequential` with names (or a
//! module whose `forward` calls its children one after another).
//!
//! A child named `conv1` holds `conv1.weight`; the block's own name comes before it, so
//! in a model `layer1.0.conv1.weight`. A child with the empty name adds nothing to the
//! path: its parameters sit directly under the block's prefix. That lets a structure
//! differ from PyTorch's module tree while the names stay PyTorch's (Inception v3's
//! `branch3x3_2a` and `branch3x3_2b` are siblings in PyTorch, but a [`super::Concat`]
//! inside the branch here).

use super::{BufferVisitor, Layer, Mode, ParamVisitor, Spec, ValueVisitor};
use crate::tensor::Tensor;
use rand::Rng;

/// A named child of a composite.
pub type Child = (String, Box<dyn Layer>);

/// Pushes `name.` onto `prefix` (nothing for the empty name) and returns the old length.
pub(crate) fn enter(prefix: &mut String, name: &str) -> usize {
    let len = prefix.len();
    if !name.is_empty() {
        prefix.push_str(name);
        prefix.push('.');
    }
    len
}

/// Checks a composite's child names: no `.`, and the non-empty ones unique.
pub(crate) fn check_names(children: &[Child]) -> Result<(), String> {
    for (i, (name, _)) in children.iter().enumerate() {
        if name.contains('.') {
            return Err(format!("child {i} is named {name:?}; names have no '.'"));
        }
        if !name.is_empty() && children[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("two children are named {name:?}"));
        }
    }
    Ok(())
}

/// Rebuilds the named children of a composite's spec.
pub(crate) fn children_from_spec(s: &Spec) -> Result<Vec<Child>, String> {
    s.children
        .iter()
        .map(|(name, child)| super::from_spec(child).map(|l| (name.clone(), l)))
        .collect()
}

/// Named layers run in order: `y = f_k(… f_1(x))`.
pub struct Block {
    children: Vec<Child>,
}

impl Block {
    /// A block of `children`, each `(name, layer)`; a name may be empty (see the module
    /// docs). Names are checked when the model is built.
    pub fn new<S: Into<String>>(children: Vec<(S, Box<dyn Layer>)>) -> Self {
        Block {
            children: children.into_iter().map(|(n, l)| (n.into(), l)).collect(),
        }
    }

    /// A block whose children are named by their index, `0`, `1`, … (`nn.Sequential`).
    pub fn indexed(layers: Vec<Box<dyn Layer>>) -> Self {
        Block {
            children: layers
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), l))
                .collect(),
        }
    }

    /// Rebuilds a block from [`Layer::spec`]'s description.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        Ok(Block {
            children: children_from_spec(s)?,
        })
    }

    /// The children's specs, for a composite's own spec.
    pub(crate) fn child_specs(&self, mut spec: Spec) -> Spec {
        for (name, layer) in &self.children {
            spec = spec.child(name, layer.spec());
        }
        spec
    }
}

impl Layer for Block {
    fn describe(&self) -> String {
        let kinds: Vec<String> = self.children.iter().map(|(_, l)| l.spec().kind).collect();
        format!("Block({})", kinds.join(", "))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if self.children.is_empty() {
            return Err("a block needs at least one layer".into());
        }
        check_names(&self.children)?;
        let mut shape = input.to_vec();
        for (j, (name, layer)) in self.children.iter().enumerate() {
            shape = layer
                .output_shape(&shape)
                .map_err(|why| format!("child {j} {name:?} ({}): {why}", layer.describe()))?;
        }
        Ok(shape)
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        for (name, layer) in &mut self.children {
            layer.init(rng).map_err(|why| format!("{name:?}: {why}"))?;
        }
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let (first, rest) = self.children.split_first_mut().expect("checked non-empty");
        let mut cur = first.1.forward(x, mode);
        for (_, layer) in rest {
            cur = layer.forward(cur, mode);
        }
        cur
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        let (first, rest) = self.children.split_first_mut().expect("checked non-empty");
        let mut g = grad_out;
        for (_, layer) in rest.iter_mut().rev() {
            g = layer.backward(g, true);
        }
        first.1.backward(g, need_input_grad)
    }

    fn set_step(&mut self, step: u64) {
        for (_, layer) in &mut self.children {
            layer.set_step(step);
        }
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        for (name, layer) in &mut self.children {
            let len = enter(prefix, name);
            layer.visit_params(prefix, f);
            prefix.truncate(len);
        }
    }

    fn freeze_norm(&mut self, prefix: &mut String, frozen: &dyn Fn(&str) -> bool) {
        for (name, layer) in &mut self.children {
            let len = enter(prefix, name);
            layer.freeze_norm(prefix, frozen);
            prefix.truncate(len);
        }
    }

    fn visit_buffers(&mut self, prefix: &mut String, f: &mut BufferVisitor<'_>) {
        for (name, layer) in &mut self.children {
            let len = enter(prefix, name);
            layer.visit_buffers(prefix, f);
            prefix.truncate(len);
        }
    }

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        for (name, layer) in &self.children {
            let len = enter(prefix, name);
            layer.visit_values(prefix, f);
            prefix.truncate(len);
        }
    }

    fn num_params(&self) -> usize {
        self.children.iter().map(|(_, l)| l.num_params()).sum()
    }

    fn fold_children(&mut self, relu: bool) -> usize {
        super::fold_batch_norm(&mut self.children, relu)
    }

    fn spec(&self) -> Spec {
        self.child_specs(Spec::new("Block"))
    }
}
