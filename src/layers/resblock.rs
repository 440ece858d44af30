//! `ResBlock`: torchvision's ResNet blocks, `y = relu(main(x) + downsample(x))`.
//!
//! `main` is `conv1, bn1, relu, conv2, bn2` (BasicBlock) or the same with `conv3, bn3`
//! (Bottleneck); `downsample`, when the block changes the shape, is a 1×1 convolution
//! with the block's stride and a batch norm, otherwise the identity. The names are
//! torchvision's: `main`'s children sit directly under the block (`layer1.0.conv1.weight`),
//! the shortcut's under `downsample.` (`layer2.0.downsample.0.weight`).
//!
//! Backward: `g = dy · [y > 0]`; `∂L/∂x = main.backward(g) + downsample.backward(g)` (or
//! `+ g` for the identity).

use super::{Block, BufferVisitor, Layer, Mode, ParamVisitor, Spec, ValueVisitor};
use crate::backend as k;
use crate::tensor::Tensor;
use rand::Rng;

/// `relu(main(x) + shortcut(x))`, the shortcut a `downsample` block or the identity.
pub struct ResBlock {
    main: Block,
    downsample: Option<Block>,
    output: Tensor,
    /// `∂L/∂(main(x) + shortcut(x))`.
    grad_sum: Tensor,
    grad_input: Tensor,
}

impl ResBlock {
    /// A block adding `main(x)` to `downsample(x)` (or to `x` when `None`), then a ReLU.
    pub fn new(main: Block, downsample: Option<Block>) -> Self {
        ResBlock {
            main,
            downsample,
            output: Tensor::default(),
            grad_sum: Tensor::default(),
            grad_input: Tensor::default(),
        }
    }

    /// Rebuilds a block from [`Layer::spec`]'s description: children `main` and,
    /// optionally, `downsample`.
    pub(crate) fn from_spec(s: &Spec) -> Result<Self, String> {
        let block = |name: &str| -> Result<Option<Block>, String> {
            match s.children.iter().find(|(n, _)| n == name) {
                Some((_, spec)) if spec.kind == "Block" => Block::from_spec(spec).map(Some),
                Some((_, spec)) => Err(format!("ResBlock: {name} is a {}", spec.kind)),
                None => Ok(None),
            }
        };
        let main = block("main")?.ok_or("ResBlock: no main branch")?;
        Ok(ResBlock::new(main, block("downsample")?))
    }
}

impl Layer for ResBlock {
    fn describe(&self) -> String {
        let short = if self.downsample.is_some() {
            "downsample"
        } else {
            "identity"
        };
        format!("ResBlock({} + {short})", self.main.describe())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let main = self.main.output_shape(input)?;
        let short = match &self.downsample {
            Some(d) => d
                .output_shape(input)
                .map_err(|e| format!("downsample: {e}"))?,
            None => input.to_vec(),
        };
        if main != short {
            return Err(format!(
                "main branch gives {main:?}, the shortcut {short:?}: they must agree"
            ));
        }
        Ok(main)
    }

    fn init(&mut self, rng: &mut dyn Rng) -> Result<(), String> {
        self.main.init(rng)?;
        if let Some(d) = &mut self.downsample {
            d.init(rng).map_err(|e| format!("downsample: {e}"))?;
        }
        Ok(())
    }

    fn forward(&mut self, x: &Tensor, mode: Mode) -> &Tensor {
        let a = self.main.forward(x, mode);
        let b = match &mut self.downsample {
            Some(d) => d.forward(x, mode),
            None => x,
        };
        self.output.reshape_to(a.shape());
        k::add_relu(a.data(), b.data(), self.output.data_mut());
        &self.output
    }

    fn backward(&mut self, grad_out: &Tensor, need_input_grad: bool) -> &Tensor {
        self.grad_sum.reshape_to(grad_out.shape());
        let (dy, y) = (grad_out.data(), self.output.data());
        k::relu_backward(y, dy, self.grad_sum.data_mut());
        let da = self.main.backward(&self.grad_sum, need_input_grad);
        let db = match &mut self.downsample {
            Some(d) => d.backward(&self.grad_sum, need_input_grad),
            None => &self.grad_sum,
        };
        if need_input_grad {
            self.grad_input.reshape_to(da.shape());
            k::add(da.data(), db.data(), self.grad_input.data_mut());
        }
        &self.grad_input
    }

    fn set_step(&mut self, step: u64) {
        self.main.set_step(step);
        if let Some(d) = &mut self.downsample {
            d.set_step(step);
        }
    }

    fn visit_params(&mut self, prefix: &mut String, f: &mut ParamVisitor<'_>) {
        self.main.visit_params(prefix, f);
        if let Some(d) = &mut self.downsample {
            let len = super::block::enter(prefix, "downsample");
            d.visit_params(prefix, f);
            prefix.truncate(len);
        }
    }

    fn freeze_norm(&mut self, prefix: &mut String, frozen: &dyn Fn(&str) -> bool) {
        self.main.freeze_norm(prefix, frozen);
        if let Some(d) = &mut self.downsample {
            let len = super::block::enter(prefix, "downsample");
            d.freeze_norm(prefix, frozen);
            prefix.truncate(len);
        }
    }

    fn visit_buffers(&mut self, prefix: &mut String, f: &mut BufferVisitor<'_>) {
        self.main.visit_buffers(prefix, f);
        if let Some(d) = &mut self.downsample {
            let len = super::block::enter(prefix, "downsample");
            d.visit_buffers(prefix, f);
            prefix.truncate(len);
        }
    }

    fn visit_values(&self, prefix: &mut String, f: &mut ValueVisitor<'_>) {
        self.main.visit_values(prefix, f);
        if let Some(d) = &self.downsample {
            let len = super::block::enter(prefix, "downsample");
            d.visit_values(prefix, f);
            prefix.truncate(len);
        }
    }

    fn fold_children(&mut self, relu: bool) -> usize {
        let short = self
            .downsample
            .as_mut()
            .map_or(0, |d| d.fold_children(relu));
        self.main.fold_children(relu) + short
    }

    fn num_params(&self) -> usize {
        let short = self.downsample.as_ref().map_or(0, |d| d.num_params());
        self.main.num_params() + short
    }

    fn spec(&self) -> Spec {
        let spec = Spec::new("ResBlock").child("main", self.main.spec());
        match &self.downsample {
            Some(d) => spec.child("downsample", d.spec()),
            None => spec,
        }
    }
}
