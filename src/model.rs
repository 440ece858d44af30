//! `Sequential`: a list of layers run in order, shape-checked when built.

use crate::error::{Error, Result};
use crate::layers::{BufferVisitor, Layer, Mode, ParamVisitor};
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use std::fmt::Write;

/// A feed-forward stack of layers.
///
/// Building it checks that every layer accepts the previous layer's output, and draws
/// the initial parameters from `seed`, so the same seed gives the same network.
pub struct Sequential {
    input_shape: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
    /// Output shape of each layer, per item.
    shapes: Vec<Vec<usize>>,
    /// Shape of the last batch seen by forward, `[N, input...]`, to check backward.
    batch_shape: Vec<usize>,
}

impl Sequential {
    /// Builds a model taking items of `input_shape` (e.g. `[3, 32, 32]`), checking shapes
    /// layer by layer (an error names the layer) and initialising parameters from `seed`.
    pub fn new(input_shape: &[usize], layers: Vec<Box<dyn Layer>>, seed: u64) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::Invalid("Sequential: no layers".into()));
        }
        let mut shapes = Vec::with_capacity(layers.len());
        let mut shape = input_shape.to_vec();
        for (i, layer) in layers.iter().enumerate() {
            shape = layer.output_shape(&shape).map_err(|why| {
                Error::Invalid(format!("layer {i} ({}): {why}", layer.describe()))
            })?;
            if shape.contains(&0) {
                let d = layer.describe();
                return Err(Error::Invalid(format!(
                    "layer {i} ({d}): empty output {shape:?}"
                )));
            }
            shapes.push(shape.clone());
        }
        let mut model = Sequential {
            input_shape: input_shape.to_vec(),
            layers,
            shapes,
            batch_shape: Vec::new(),
        };
        model.reinit(seed);
        Ok(model)
    }

    /// The layers, in order, with each one's output shape per item.
    pub fn layers(&self) -> impl Iterator<Item = (&dyn Layer, &[usize])> {
        self.layers
            .iter()
            .zip(&self.shapes)
            .map(|(l, s)| (l.as_ref(), s.as_slice()))
    }

    /// Copies every parameter and state buffer (batch-norm statistics) of `from`, a model
    /// of the same architecture, into this one: a snapshot to evaluate on another thread
    /// while `from` trains on. An error, leaving this model unchanged, when the two differ.
    pub fn copy_state_from(&mut self, from: &mut Sequential) -> Result<()> {
        let mut values: Vec<(String, Vec<f32>)> = Vec::new();
        from.visit_params(&mut |name, p| values.push((name.to_string(), p.value.to_vec())));
        from.visit_buffers(&mut |name, b| values.push((name.to_string(), b.to_vec())));
        let mut mine: Vec<(String, usize)> = Vec::new();
        self.visit_params(&mut |name, p| mine.push((name.to_string(), p.value.len())));
        self.visit_buffers(&mut |name, b| mine.push((name.to_string(), b.len())));
        let same = mine.len() == values.len()
            && mine
                .iter()
                .zip(&values)
                .all(|((n, len), (m, v))| n == m && *len == v.len());
        if !same {
            return Err(Error::Invalid(
                "copy_state_from: the models have different parameters".into(),
            ));
        }
        let mut it = values.into_iter();
        self.visit_params(&mut |_, p| p.value.copy_from_slice(&it.next().expect("checked").1));
        self.visit_buffers(&mut |_, b| b.copy_from_slice(&it.next().expect("checked").1));
        Ok(())
    }

    /// Draws fresh initial parameters from `seed`.
    pub fn reinit(&mut self, seed: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        for layer in &mut self.layers {
            layer.init(&mut rng);
        }
    }

    /// Shape of one input item.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Shape of one output item.
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().expect("at least one layer")
    }

    /// One line per layer: index, description, output shape, parameters; then the total.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:>3}  {:<38} {:<16} {:>9}\n",
            "#", "layer", "output", "params"
        );
        s += &format!(
            "{:>3}  {:<38} {:<16} {:>9}\n",
            "",
            "input",
            fmt(&self.input_shape),
            ""
        );
        for (i, (layer, shape)) in self.layers.iter().zip(&self.shapes).enumerate() {
            let (d, p) = (layer.describe(), layer.num_params());
            s += &format!("{i:>3}  {d:<38} {:<16} {p:>9}\n", fmt(shape));
        }
        s + &format!("     total parameters: {}\n", self.num_params())
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.num_params()).sum()
    }

    /// Runs `x[N, input...]` through every layer; errors if the item shape is wrong.
    pub fn forward<'a>(&'a mut self, x: &'a Tensor, mode: Mode) -> Result<&'a Tensor> {
        if x.shape().len() != self.input_shape.len() + 1 || x.shape()[1..] != self.input_shape {
            let mut expected = vec![x.batch()];
            expected.extend_from_slice(&self.input_shape);
            return Err(Error::Shape {
                context: "Sequential::forward input".into(),
                expected,
                got: x.shape().to_vec(),
            });
        }
        if x.batch() == 0 {
            return Err(Error::Invalid("Sequential::forward: empty batch".into()));
        }
        self.batch_shape = x.shape().to_vec();
        let mut cur = x;
        for layer in self.layers.iter_mut() {
            cur = layer.forward(cur, mode);
        }
        Ok(cur)
    }

    /// Backpropagates `∂L/∂output` through every layer, setting all parameter gradients.
    pub fn backward(&mut self, grad: &Tensor) -> Result<()> {
        let mut expected = vec![self.batch_shape.first().copied().unwrap_or(0)];
        expected.extend_from_slice(self.output_shape());
        grad.expect_shape("Sequential::backward gradient", &expected)?;
        let mut g = grad;
        for (i, layer) in self.layers.iter_mut().enumerate().rev() {
            g = layer.backward(g, i > 0);
        }
        Ok(())
    }

    /// Lends every parameter, named `"<layer index>.<name>"` (e.g. `0.weight`), in order.
    pub fn visit_params(&mut self, f: &mut ParamVisitor<'_>) {
        let mut prefix = String::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            prefix.clear();
            write!(prefix, "{i}.").expect("writing to a String");
            layer.visit_params(&mut prefix, f);
        }
    }

    /// Tells every layer which training step comes next (see [`Layer::set_step`]).
    pub fn set_step(&mut self, step: u64) {
        for layer in &mut self.layers {
            layer.set_step(step);
        }
    }

    /// Lends every non-trainable state buffer (batch-norm running statistics), named like
    /// parameters.
    pub fn visit_buffers(&mut self, f: &mut BufferVisitor<'_>) {
        let mut prefix = String::new();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            prefix.clear();
            write!(prefix, "{i}.").expect("writing to a String");
            layer.visit_buffers(&mut prefix, f);
        }
    }

    /// Class probabilities `[N, classes]` (softmax of the outputs), in eval mode.
    pub fn predict(&mut self, x: &Tensor) -> Result<Tensor> {
        let mut out = self.forward(x, Mode::Eval)?.clone();
        let classes = out.item_len();
        for row in out.data_mut().chunks_exact_mut(classes) {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        Ok(out)
    }
}

fn fmt(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}
