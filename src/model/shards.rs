//! Data parallelism inside one training step, for the leading layers of a
//! [`super::Sequential`] ([`super::Sequential::set_shards`]).
//!
//! At a batch of 4 the convolutions are too small to split well op by op: every op hands
//! its halves between the cores, and the layers after it read the other core's half. So
//! the batch is cut into shards of whole items instead, and each shard runs the leading
//! layers (those with [`Layer::replicate`]: convolutions, pooling, ReLU, flatten) on a
//! copy of them, forward and backward, without meeting the other shards in between:
//!
//! ```text
//!   x[N, ...] ─┬─ x[0..N/2]  → copy 0 of layers [0, end) ─┬─ joined[N, ...] → layers [end, ..)
//!              └─ x[N/2..N]  → copy 1 of layers [0, end) ─┘
//! ```
//!
//! Backward cuts the gradient at `joined` the same way, and each parameter's gradient is
//! the copies' gradients added in shard order. The model's own layers `[0, end)` hold the
//! parameters the optimizer updates; the copies take their values at every forward. The
//! shards run side by side inside [`crate::cpu::spin::with_hot_pool`], one after the
//! other elsewhere, with the same bits either way.

use crate::cpu::spin;
use crate::layers::{Layer, Mode};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// The sharded layers and their buffers (built by [`Shards::build`]).
pub(crate) struct Shards {
    /// Layers `[0, end)` run per shard.
    end: usize,
    /// One per shard.
    parts: Vec<Part>,
    /// `[N, ...]`: the shards' outputs of layer `end − 1`, concatenated (layer `end`'s input).
    joined: Tensor,
    /// Parameter values or gradients of one layer, flat, in visit order.
    flat: Vec<f32>,
}

/// One shard: its copy of the layers and its slices of the batch.
struct Part {
    layers: Vec<Box<dyn Layer>>,
    /// `[n, ...]`: this shard's items of the input.
    input: Tensor,
    /// `[n, ...]`: this shard's items of the gradient at `joined`.
    grad: Tensor,
}

impl Shards {
    /// `count` shards of the leading layers that can be replicated; `None` when the first
    /// cannot. `skipped[i]`: layer `i` is a ReLU that the layer before it applies.
    pub(crate) fn build(count: usize, layers: &[Box<dyn Layer>], skipped: &[bool]) -> Option<Self> {
        let mut end = layers
            .iter()
            .take_while(|l| l.replicate().is_some())
            .count();
        // A layer that does the next one's work stays with it.
        if skipped.get(end) == Some(&true) {
            end -= 1;
        }
        if end == 0 || count < 2 {
            return None;
        }
        let parts = (0..count)
            .map(|_| Part {
                layers: layers[..end]
                    .iter()
                    .map(|l| l.replicate().expect("checked above"))
                    .collect(),
                input: Tensor::default(),
                grad: Tensor::default(),
            })
            .collect();
        Some(Shards {
            end,
            parts,
            joined: Tensor::default(),
            flat: Vec::new(),
        })
    }

    /// Layers `[0, end)` run per shard.
    pub(crate) fn end(&self) -> usize {
        self.end
    }

    /// How many shards.
    pub(crate) fn count(&self) -> usize {
        self.parts.len()
    }

    /// Items of each shard for a batch of `n` (at least one per shard): the first
    /// `n mod count` shards take one more.
    fn sizes(&self, n: usize) -> Vec<usize> {
        let count = self.parts.len();
        (0..count)
            .map(|i| n / count + usize::from(i < n % count))
            .collect()
    }

    /// Layers `[0, end)` over `x[N, ...]`, shard by shard, with `model`'s parameter values;
    /// returns their output `[N, ...]`. `out_item`: the output shape of one item; `N` is at
    /// least the number of shards.
    pub(crate) fn forward(
        &mut self,
        model: &mut [Box<dyn Layer>],
        skipped: &[bool],
        x: &Tensor,
        out_item: &[usize],
    ) -> &Tensor {
        let end = self.end;
        for (j, layer) in model[..end].iter().enumerate() {
            gather_values(layer.as_ref(), &mut self.flat);
            for part in &mut self.parts {
                scatter_values(&self.flat, part.layers[j].as_mut());
            }
        }
        let sizes = self.sizes(x.batch());
        let item_out = out_item.iter().product::<usize>();
        let mut at = 0;
        for (part, &n) in self.parts.iter_mut().zip(&sizes) {
            copy_rows(x, at, n, &mut part.input);
            at += n;
        }
        let mut shape = vec![x.batch()];
        shape.extend_from_slice(out_item);
        self.joined.reshape_to(&shape);
        let outs = split_rows(self.joined.data_mut(), &sizes, item_out);
        let run = |(part, out): (&mut Part, &mut [f32])| {
            spin::alone(|| {
                let (first, rest) = part.layers.split_first_mut().expect("end > 0");
                let mut cur = first.forward(&part.input, Mode::Train);
                for (layer, &skip) in rest.iter_mut().zip(&skipped[1..end]) {
                    if !skip {
                        cur = layer.forward(cur, Mode::Train);
                    }
                }
                out.copy_from_slice(cur.data());
            })
        };
        if spin::hot() {
            self.parts.par_iter_mut().zip(outs).for_each(run);
        } else {
            self.parts.iter_mut().zip(outs).for_each(run);
        }
        &self.joined
    }

    /// Backpropagates `grad[N, ...]`, the gradient at the output of [`Shards::forward`],
    /// through layers `[start, end)` shard by shard, and sets each of `model`'s parameter
    /// gradients there to the shards' gradients added in shard order. Layers before
    /// `start` train nothing and get no gradient.
    pub(crate) fn backward(
        &mut self,
        model: &mut [Box<dyn Layer>],
        skipped: &[bool],
        grad: &Tensor,
        start: usize,
    ) {
        let end = self.end;
        if start >= end {
            return;
        }
        let sizes = self.sizes(grad.batch());
        let mut at = 0;
        for (part, &n) in self.parts.iter_mut().zip(&sizes) {
            copy_rows(grad, at, n, &mut part.grad);
            at += n;
        }
        let run = |part: &mut Part| {
            spin::alone(|| {
                let Part { layers, grad, .. } = part;
                let mut g = &*grad;
                for (i, layer) in layers.iter_mut().enumerate().take(end).skip(start).rev() {
                    if !skipped[i] {
                        g = layer.backward(g, i > start);
                    }
                }
            })
        };
        if spin::hot() {
            self.parts.par_iter_mut().for_each(run);
        } else {
            self.parts.iter_mut().for_each(run);
        }
        for (j, layer) in model.iter_mut().enumerate().take(end).skip(start) {
            self.flat.clear();
            for (s, part) in self.parts.iter_mut().enumerate() {
                let mut at = 0;
                let flat = &mut self.flat;
                part.layers[j].visit_params(&mut String::new(), &mut |_, p| {
                    if s == 0 {
                        flat.extend_from_slice(p.grad);
                    } else {
                        let sum = &mut flat[at..at + p.grad.len()];
                        sum.iter_mut().zip(p.grad.iter()).for_each(|(a, g)| *a += g);
                    }
                    at += p.grad.len();
                });
            }
            let mut at = 0;
            layer.visit_params(&mut String::new(), &mut |_, p| {
                p.grad.copy_from_slice(&self.flat[at..at + p.grad.len()]);
                at += p.grad.len();
            });
        }
    }
}

/// `dst[n, ...]` ← items `at..at + n` of `src[N, ...]`.
fn copy_rows(src: &Tensor, at: usize, n: usize, dst: &mut Tensor) {
    let mut shape = src.shape().to_vec();
    shape[0] = n;
    dst.reshape_to(&shape);
    let item = src.item_len();
    dst.data_mut()
        .copy_from_slice(&src.data()[at * item..(at + n) * item]);
}

/// `data` cut into consecutive pieces of `sizes[i] · item` floats.
fn split_rows<'a>(mut data: &'a mut [f32], sizes: &[usize], item: usize) -> Vec<&'a mut [f32]> {
    sizes
        .iter()
        .map(|&n| {
            let (head, tail) = std::mem::take(&mut data).split_at_mut(n * item);
            data = tail;
            head
        })
        .collect()
}

/// `flat` ← every parameter value of `layer`, in visit order.
fn gather_values(layer: &dyn Layer, flat: &mut Vec<f32>) {
    flat.clear();
    layer.visit_values(&mut String::new(), &mut |v| {
        if matches!(v.role, crate::layers::Role::Param(_)) {
            flat.extend_from_slice(v.values);
        }
    });
}

/// Every parameter value of `layer` ← `flat`, in visit order.
fn scatter_values(flat: &[f32], layer: &mut dyn Layer) {
    let mut at = 0;
    layer.visit_params(&mut String::new(), &mut |_, p| {
        p.value.copy_from_slice(&flat[at..at + p.value.len()]);
        at += p.value.len();
    });
}
