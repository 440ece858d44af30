//! `Sequential`: a list of named layers run in order, shape-checked when built.

mod shards;

use crate::checkpoint;
use crate::data::Normalize;
use crate::error::{Error, Result};
use crate::layers::{
    BufferVisitor, Layer, LayerKind, Mode, Param, ParamVisitor, Spec, ValueVisitor,
};
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use std::collections::BTreeMap;
use std::path::Path;

/// A feed-forward stack of layers, each with a name.
///
/// Building it checks that every layer accepts the previous layer's output, and draws
/// the initial parameters from `seed`, so the same seed gives the same network.
/// Parameters are named `"<layer name>.<parameter>"`: `conv1.weight` for a layer named
/// `conv1`, `0.weight` for an unnamed first layer, as PyTorch names a `state_dict`.
///
/// A model can also carry what a user of its predictions needs: the normalisation its
/// inputs were trained with and the class names ([`Sequential::set_normalization`],
/// [`Sequential::set_classes`]). [`Sequential::save`] writes all of it with the
/// architecture, so [`Sequential::load`] rebuilds the model from the file alone.
pub struct Sequential {
    input_shape: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
    names: Vec<String>,
    /// Output shape of each layer, per item.
    shapes: Vec<Vec<usize>>,
    /// Shape of the last batch seen by forward, `[N, input...]`, to check backward.
    batch_shape: Vec<usize>,
    /// Mode of the last forward pass; backward needs a training-mode one.
    last_mode: Option<Mode>,
    normalization: Option<Normalize>,
    classes: Option<Vec<String>>,
    /// The model card: free-form facts saved with the model (recipe, accuracy, …).
    card: BTreeMap<String, String>,
    /// Per parameter, in [`Sequential::visit_params`] order: frozen (fine-tuning). Empty
    /// when none is.
    frozen: Vec<bool>,
    /// Per parameter: the factor on the optimizer's learning rate. Empty when all are 1.
    lr_factors: Vec<f32>,
    /// Backward runs down to this layer only: the layers before it train nothing.
    first_trainable: usize,
    /// Per layer: a ReLU whose work the layer before it does ([`Layer::fuse_next_relu`]),
    /// skipped by forward and backward.
    skipped: Vec<bool>,
    /// Shards per training step ([`Sequential::set_shards`]); 1: none.
    shard_count: usize,
    /// The sharded layers' copies, built at the first sharded forward.
    shards: Option<shards::Shards>,
    /// Whether the last forward ran sharded (backward follows it).
    sharded: bool,
}

impl Sequential {
    /// Builds a model taking items of `input_shape` (e.g. `[3, 32, 32]`) from unnamed
    /// layers (named by their index), checking shapes layer by layer and initialising
    /// parameters from `seed`. A layer that does not fit is an [`Error::Build`] naming it.
    pub fn new(input_shape: &[usize], layers: Vec<Box<dyn Layer>>, seed: u64) -> Result<Self> {
        let named = layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), l))
            .collect();
        Self::named(input_shape, named, seed)
    }

    /// [`Sequential::new`] with a name for each layer, e.g. `("conv1", Box::new(…))`.
    /// Names must be unique, non-empty and free of `.` (which separates a parameter's
    /// path): a layer named `fc1` holds `fc1.weight` and `fc1.bias`.
    pub fn named<S: Into<String>>(
        input_shape: &[usize],
        layers: Vec<(S, Box<dyn Layer>)>,
        seed: u64,
    ) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::Invalid("Sequential: no layers".into()));
        }
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(Error::Invalid(format!(
                "Sequential: input shape {input_shape:?} has no elements"
            )));
        }
        let (names, layers): (Vec<String>, Vec<Box<dyn Layer>>) =
            layers.into_iter().map(|(n, l)| (n.into(), l)).unzip();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || name.contains('.') {
                return Err(Error::Invalid(format!(
                    "Sequential: layer {i} has the name {name:?}; names are non-empty, without '.'"
                )));
            }
            if names[..i].contains(name) {
                return Err(Error::Invalid(format!(
                    "Sequential: two layers are named {name:?}"
                )));
            }
        }
        let mut shapes = Vec::with_capacity(layers.len());
        let mut shape = input_shape.to_vec();
        for (i, layer) in layers.iter().enumerate() {
            let fail = |reason: String| Error::Build {
                index: i,
                name: names[i].clone(),
                layer: layer.describe(),
                input: shape.clone(),
                reason,
            };
            let out = layer.output_shape(&shape).map_err(fail)?;
            if out.contains(&0) {
                return Err(fail(format!("empty output {out:?}")));
            }
            shape = out;
            shapes.push(shape.clone());
        }
        let mut model = Sequential {
            input_shape: input_shape.to_vec(),
            layers,
            names,
            shapes,
            batch_shape: Vec::new(),
            last_mode: None,
            normalization: None,
            classes: None,
            card: BTreeMap::new(),
            frozen: Vec::new(),
            lr_factors: Vec::new(),
            first_trainable: 0,
            skipped: Vec::new(),
            shard_count: 1,
            shards: None,
            sharded: false,
        };
        model.reinit(seed)?;
        model.fuse_relus();
        Ok(model)
    }

    /// Rebuilds a model from a list of named layer specs (as [`Sequential::specs`] gives
    /// them); parameters are initialised from `seed`.
    pub fn from_specs(input_shape: &[usize], specs: &[(String, Spec)], seed: u64) -> Result<Self> {
        let layers = specs
            .iter()
            .enumerate()
            .map(|(i, (name, spec))| {
                crate::layers::from_spec(spec)
                    .map(|l| (name.clone(), l))
                    .map_err(|e| Error::Invalid(format!("layer {i} {name:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::named(input_shape, layers, seed)
    }

    /// Each layer's name and spec, in order: the architecture, as data.
    pub fn specs(&self) -> Vec<(String, Spec)> {
        self.names
            .iter()
            .zip(&self.layers)
            .map(|(n, l)| (n.clone(), l.spec()))
            .collect()
    }

    /// The layers, in order, with each one's name and output shape per item.
    pub fn layers(&self) -> impl Iterator<Item = (&str, &dyn Layer, &[usize])> {
        self.names
            .iter()
            .zip(&self.layers)
            .zip(&self.shapes)
            .map(|((n, l), s)| (n.as_str(), l.as_ref(), s.as_slice()))
    }

    /// Copies every parameter and state buffer (batch-norm statistics) of `from`, a model
    /// of the same architecture, into this one: a snapshot to evaluate on another thread
    /// while `from` trains on. An error, leaving this model unchanged, when the two differ.
    pub fn copy_state_from(&mut self, from: &Sequential) -> Result<()> {
        let mut values: Vec<(String, Vec<f32>)> = Vec::new();
        from.visit_values(&mut |v| values.push((v.name.to_string(), v.values.to_vec())));
        let mut mine: Vec<(String, usize)> = Vec::new();
        self.visit_values(&mut |v| mine.push((v.name.to_string(), v.values.len())));
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
        let mut by_name: std::collections::HashMap<String, Vec<f32>> = values.into_iter().collect();
        let mut take = |name: &str| by_name.remove(name).unwrap_or_default();
        self.visit_params(&mut |name, p| p.value.copy_from_slice(&take(name)));
        self.visit_buffers(&mut |name, b| b.copy_from_slice(&take(name)));
        Ok(())
    }

    /// Draws fresh initial parameters from `seed` (allocating them the first time).
    pub fn reinit(&mut self, seed: u64) -> Result<()> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut shape = self.input_shape.clone();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.init(&mut rng).map_err(|reason| Error::Build {
                index: i,
                name: self.names[i].clone(),
                layer: layer.describe(),
                input: shape.clone(),
                reason,
            })?;
            shape = self.shapes[i].clone();
        }
        Ok(())
    }

    /// Folds every batch norm that directly follows a convolution into it, for
    /// inference: the convolution's weight becomes `W·scale` and its bias
    /// `b·scale + shift` per output channel, `scale = γ/√(σ² + ε)` and
    /// `shift = β − μ·scale` from the running statistics, and the batch norm goes. Pairs
    /// inside composites (`Block`, `ResBlock`, `Residual`, the branches of a `Concat`) are
    /// folded too. Returns how many batch norms were folded.
    ///
    /// Evaluation-mode outputs stay the same up to rounding (tests/fold.rs). Names
    /// change: the batch norms' `*.weight`, `*.bias`, `*.running_mean`, `*.running_var`
    /// are gone, and each convolution that had no bias gains `<conv>.bias`; the other
    /// layers keep their names (in a `Residual`, whose children are named by position,
    /// the later ones are renumbered). So a folded model saves and reloads by itself
    /// ([`Sequential::save`] / [`Sequential::load`] keep the folded architecture), but a
    /// PyTorch `state_dict` loads into the unfolded model: load, then fold. Training a
    /// folded model trains plain convolutions, without batch statistics.
    pub fn fold_batch_norm(&mut self) -> usize {
        self.fold(false)
    }

    /// [`Sequential::fold_batch_norm`], then every ReLU that directly follows a
    /// convolution goes into it too (the convolution applies it with its bias, in one pass
    /// over its output: `Conv2d(…, +ReLU)` in the summary, `"relu": true` in the saved
    /// spec). Returns how many layers were removed (batch norms and ReLUs).
    pub fn fuse_for_inference(&mut self) -> usize {
        self.fold(false) + self.fold(true)
    }

    /// Lets every layer that can ([`Layer::fuse_next_relu`]: a convolution) apply the
    /// ReLU layer right after it, in training too, and marks those ReLUs to be skipped:
    /// one pass over the activations fewer each way, and no copy of them kept. The
    /// layers, names and specs stay as built, and the results are the same bits (both
    /// apply [`crate::cpu::elementwise::relu`], and backward masks `dy` by `y > 0`
    /// either way). The GPU path reads the layers themselves and runs every ReLU.
    fn fuse_relus(&mut self) {
        self.skipped = vec![false; self.layers.len()];
        for i in 0..self.layers.len() {
            let next_is_relu = self
                .layers
                .get(i + 1)
                .is_some_and(|l| l.kind() == LayerKind::ReLU);
            if self.layers[i].fuse_next_relu(next_is_relu) {
                self.skipped[i + 1] = true;
            }
        }
    }

    fn fold(&mut self, relu: bool) -> usize {
        self.shards = None;
        self.sharded = false;
        for layer in &mut self.layers {
            layer.fuse_next_relu(false);
        }
        let names = std::mem::take(&mut self.names);
        let layers = std::mem::take(&mut self.layers);
        let mut named: Vec<crate::layers::Child> = names.into_iter().zip(layers).collect();
        let removed = crate::layers::fold_batch_norm(&mut named, relu);
        (self.names, self.layers) = named.into_iter().unzip();
        let mut shape = self.input_shape.clone();
        self.shapes.clear();
        for layer in &self.layers {
            shape = layer
                .output_shape(&shape)
                .expect("folding keeps every layer's input shape");
            self.shapes.push(shape.clone());
        }
        self.fuse_relus();
        removed
    }

    /// Shape of one input item.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Shape of one output item.
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().expect("at least one layer")
    }

    /// The normalisation the model's inputs are prepared with, when known.
    pub fn normalization(&self) -> Option<&Normalize> {
        self.normalization.as_ref()
    }

    /// Records how inputs are normalised (saved with the model, used by prediction).
    /// An error when its channel count is not the input's.
    pub fn set_normalization(&mut self, n: Normalize) -> Result<()> {
        if n.channels() != self.input_shape[0] {
            return Err(Error::Invalid(format!(
                "normalisation of {} channels for a model taking {:?}",
                n.channels(),
                self.input_shape
            )));
        }
        self.normalization = Some(n);
        Ok(())
    }

    /// The class names, when known (index = output position).
    pub fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// Records the class names (saved with the model). An error unless the model's output
    /// is `[classes.len()]`.
    pub fn set_classes(&mut self, classes: Vec<String>) -> Result<()> {
        if self.output_shape() != [classes.len()] {
            return Err(Error::Invalid(format!(
                "{} class names for a model whose output is {:?}",
                classes.len(),
                self.output_shape()
            )));
        }
        self.classes = Some(classes);
        Ok(())
    }

    /// The model card: facts saved with the model beyond what it needs to run, such as
    /// the recipe it was trained with and the accuracy measured (each value is a string,
    /// often JSON). Empty unless set or loaded.
    pub fn card(&self) -> &BTreeMap<String, String> {
        &self.card
    }

    /// Records `key = value` in the model card (saved as the metadata entry
    /// `card.<key>`). An error for an empty key or one holding a control character.
    pub fn set_card(&mut self, key: &str, value: impl Into<String>) -> Result<()> {
        if key.is_empty() || key.chars().any(char::is_control) {
            return Err(Error::Invalid(format!(
                "model card key {key:?}: empty or a control character"
            )));
        }
        self.card.insert(key.to_string(), value.into());
        Ok(())
    }

    /// One line per layer: index, name, description, output shape, parameters; then the
    /// total. A ReLU that the convolution before it applies reads `ReLU (done by the
    /// layer above)`.
    pub fn summary(&self) -> String {
        let row = |i: &str, n: &str, d: &str, s: &str, p: &str| {
            format!("{i:>3}  {n:<10} {d:<38} {s:<16} {p:>9}\n")
        };
        let mut s = row("#", "name", "layer", "output", "params");
        s += &row("", "", "input", &fmt(&self.input_shape), "");
        for (i, ((layer, shape), name)) in self
            .layers
            .iter()
            .zip(&self.shapes)
            .zip(&self.names)
            .enumerate()
        {
            let (mut d, p) = (layer.describe(), layer.num_params().to_string());
            if self.skipped[i] {
                d += " (done by the layer above)";
            }
            s += &row(&i.to_string(), name, &d, &fmt(shape), &p);
        }
        s + &format!("     total parameters: {}\n", self.num_params())
    }

    /// Number of trainable scalars.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.num_params()).sum()
    }

    /// Runs `x[N, input...]` through every layer; errors if the item shape is wrong or
    /// the batch is empty. The result lives in the last layer until the next call.
    pub fn forward(&mut self, x: &Tensor, mode: Mode) -> Result<&Tensor> {
        if x.shape().len() != self.input_shape.len() + 1 || x.shape()[1..] != self.input_shape {
            let mut expected = vec![x.shape().first().copied().unwrap_or(0)];
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
        self.last_mode = Some(mode);
        self.sharded = mode == Mode::Train && self.shard_count > 1 && x.batch() >= self.shard_count;
        if self.sharded
            && self
                .shards
                .as_ref()
                .is_none_or(|s| s.count() != self.shard_count)
        {
            self.shards = shards::Shards::build(self.shard_count, &self.layers, &self.skipped);
        }
        self.sharded &= self.shards.is_some();
        let shards = self.shards.as_mut().filter(|_| self.sharded);
        let from = shards.as_ref().map_or(1, |s| s.end());
        let (head, tail) = self.layers.split_at_mut(from);
        let mut cur = match shards {
            Some(shards) => shards.forward(head, &self.skipped, x, &self.shapes[from - 1]),
            None => head[0].forward(x, mode),
        };
        for (layer, &skip) in tail.iter_mut().zip(&self.skipped[from..]) {
            if !skip {
                cur = layer.forward(cur, mode);
            }
        }
        Ok(cur)
    }

    /// Cuts each training step's batch into `shards` slices of whole items for the leading
    /// layers that treat each item on their own ([`Layer::replicate`]: convolutions,
    /// max-pooling, ReLU, flatten), and runs each slice through its own copy of those
    /// layers, forward and backward: side by side, one per core, inside
    /// [`crate::cpu::spin::with_hot_pool`], one after the other elsewhere. Each parameter's
    /// gradient is then the slices' gradients added in slice order. At small batches this
    /// splits the step between cores with little traffic between them (see
    /// `src/model/shards.rs`). 1, the default, runs every batch whole; evaluation passes
    /// and batches smaller than `shards` always run whole.
    ///
    /// The results depend on the number of shards (the gradients are summed in another
    /// order), never on the number of threads. [`crate::train::train_epoch`] uses 2 where
    /// it keeps the pool's workers polling (batches of at most
    /// [`crate::train::HOT_MAX_BATCH`] read from memory). 0 is an error.
    pub fn set_shards(&mut self, shards: usize) -> Result<()> {
        if shards == 0 {
            return Err(Error::Invalid("Sequential::set_shards: 0 shards".into()));
        }
        self.shard_count = shards;
        Ok(())
    }

    /// Shards per training step ([`Sequential::set_shards`]).
    pub fn shards(&self) -> usize {
        self.shard_count
    }

    /// Backpropagates `∂L/∂output` through every layer, setting all parameter gradients.
    /// Needs a training-mode [`Sequential::forward`] of the same batch just before (an
    /// evaluation pass keeps nothing for backward): otherwise an error.
    pub fn backward(&mut self, grad: &Tensor) -> Result<()> {
        match self.last_mode {
            Some(Mode::Train) => {}
            Some(Mode::Eval) => {
                return Err(Error::Invalid(
                    "Sequential::backward after an evaluation-mode forward: \
                     run forward with Mode::Train first"
                        .into(),
                ));
            }
            None => {
                return Err(Error::Invalid(
                    "Sequential::backward before any forward pass".into(),
                ));
            }
        }
        let mut expected = vec![self.batch_shape[0]];
        expected.extend_from_slice(self.output_shape());
        grad.expect_shape("Sequential::backward gradient", &expected)?;
        // Layers before the first one with a trainable parameter need no gradient: their
        // parameters are frozen, and nothing feeds them.
        let start = self.first_trainable;
        let shards = self.shards.as_mut().filter(|_| self.sharded);
        let end = shards.as_ref().map_or(0, |s| s.end());
        let (head, tail) = self.layers.split_at_mut(end);
        let mut g = grad;
        for (i, layer) in tail.iter_mut().enumerate().rev() {
            let i = end + i;
            if i < start {
                break;
            }
            if !self.skipped[i] {
                g = layer.backward(g, i > start);
            }
        }
        if let Some(shards) = shards {
            shards.backward(head, &self.skipped, g, start);
        }
        Ok(())
    }

    /// Freezes, in addition to those already frozen, every parameter whose full name
    /// `frozen` accepts; returns how many it accepted. A frozen parameter is left alone by
    /// the optimizers (no update, no weight decay, its optimizer state untouched); a batch
    /// norm whose `weight` is frozen normalises with its running statistics in training
    /// too and no longer updates them; backward stops before the first layer holding a
    /// trainable parameter, so frozen leading layers cost a forward pass only (and their
    /// parameters' gradients are then not computed). See [`crate::finetune`] for freezing
    /// by prefix, layer range or "everything but the head".
    pub fn freeze_if(&mut self, frozen: &dyn Fn(&str) -> bool) -> usize {
        let names = self.param_names();
        self.frozen.resize(names.len(), false);
        let mut matched = 0;
        for ((name, _), f) in names.iter().zip(&mut self.frozen) {
            if frozen(name) {
                *f = true;
                matched += 1;
            }
        }
        self.refresh_frozen();
        matched
    }

    /// Unfreezes every parameter (batch norms use batch statistics in training again).
    pub fn unfreeze_all(&mut self) {
        self.frozen.clear();
        self.refresh_frozen();
    }

    /// Whether the parameter `name` is frozen (false for a name the model lacks).
    pub fn is_frozen(&self, name: &str) -> bool {
        let names = self.param_names();
        names
            .iter()
            .position(|(n, _)| n == name)
            .is_some_and(|i| self.frozen.get(i) == Some(&true))
    }

    /// The names of the frozen parameters, in order.
    pub fn frozen_params(&self) -> Vec<String> {
        let names = self.param_names();
        names
            .into_iter()
            .zip(&self.frozen)
            .filter(|(_, f)| **f)
            .map(|((n, _), _)| n)
            .collect()
    }

    /// Sets the learning-rate factor of every parameter whose name `select` accepts to
    /// `factor` (the optimizer's scheduled rate times `factor`: per-group learning rates);
    /// returns how many it accepted. An error, changing nothing, for a factor that is not
    /// finite and positive.
    pub fn set_lr_factor_if(
        &mut self,
        select: &dyn Fn(&str) -> bool,
        factor: f32,
    ) -> Result<usize> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(Error::Invalid(format!(
                "learning-rate factor {factor}: it must be finite and positive (freeze a \
                 parameter to stop it training)"
            )));
        }
        let names = self.param_names();
        self.lr_factors.resize(names.len(), 1.0);
        let mut matched = 0;
        for ((name, _), f) in names.iter().zip(&mut self.lr_factors) {
            if select(name) {
                *f = factor;
                matched += 1;
            }
        }
        Ok(matched)
    }

    /// The learning-rate factor of the parameter `name` (1 unless set, or for a name the
    /// model lacks).
    pub fn lr_factor(&self, name: &str) -> f32 {
        let names = self.param_names();
        names
            .iter()
            .position(|(n, _)| n == name)
            .and_then(|i| self.lr_factors.get(i).copied())
            .unwrap_or(1.0)
    }

    /// True when a parameter is frozen or has a learning-rate factor other than 1 (a
    /// backend that applies the optimizer itself must honour these or refuse the model).
    pub fn has_param_groups(&self) -> bool {
        self.frozen.iter().any(|&f| f) || self.lr_factors.iter().any(|&f| f != 1.0)
    }

    /// Lends every trainable (not frozen) parameter with its index in
    /// [`Sequential::visit_params`] order, its full name and its learning-rate factor:
    /// what an optimizer updates.
    pub fn visit_trainable(&mut self, f: &mut dyn FnMut(usize, &str, f32, Param<'_>)) {
        let (frozen, factors) = (&self.frozen, &self.lr_factors);
        let mut index = 0;
        let mut prefix = String::new();
        for (name, layer) in self.names.iter().zip(&mut self.layers) {
            prefix.clear();
            prefix.push_str(name);
            prefix.push('.');
            layer.visit_params(&mut prefix, &mut |name, p| {
                let k = index;
                index += 1;
                if frozen.get(k) != Some(&true) {
                    f(k, name, factors.get(k).copied().unwrap_or(1.0), p);
                }
            });
        }
    }

    /// Tells the batch norms which of them are frozen and finds where backward may stop.
    fn refresh_frozen(&mut self) {
        let frozen: std::collections::HashSet<String> = self.frozen_params().into_iter().collect();
        let mut prefix = String::new();
        let mut index = 0;
        let none = self.layers.len();
        self.first_trainable = none;
        for (i, (name, layer)) in self.names.iter().zip(&mut self.layers).enumerate() {
            prefix.clear();
            prefix.push_str(name);
            prefix.push('.');
            layer.freeze_norm(&mut prefix, &|n| frozen.contains(n));
            let mut trainable = false;
            layer.visit_values(&mut prefix, &mut |v| {
                if matches!(v.role, crate::layers::Role::Param(_)) {
                    trainable |= self.frozen.get(index) != Some(&true);
                    index += 1;
                }
            });
            if trainable && self.first_trainable == none {
                self.first_trainable = i;
            }
        }
    }

    /// Lends every parameter, named `"<layer name>.<parameter>"` (e.g. `conv1.weight`),
    /// in order.
    pub fn visit_params(&mut self, f: &mut ParamVisitor<'_>) {
        let mut prefix = String::new();
        for (name, layer) in self.names.iter().zip(&mut self.layers) {
            prefix.clear();
            prefix.push_str(name);
            prefix.push('.');
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
        for (name, layer) in self.names.iter().zip(&mut self.layers) {
            prefix.clear();
            prefix.push_str(name);
            prefix.push('.');
            layer.visit_buffers(&mut prefix, f);
        }
    }

    /// Lends every parameter and buffer read-only, layer by layer.
    pub fn visit_values(&self, f: &mut ValueVisitor<'_>) {
        let mut prefix = String::new();
        for (name, layer) in self.names.iter().zip(&self.layers) {
            prefix.clear();
            prefix.push_str(name);
            prefix.push('.');
            layer.visit_values(&mut prefix, f);
        }
    }

    /// The name of the first parameter or buffer holding a NaN or an infinity, if any.
    pub fn first_non_finite(&self) -> Option<String> {
        let mut bad = None;
        self.visit_values(&mut |v| {
            if bad.is_none() && v.values.iter().any(|x| !x.is_finite()) {
                bad = Some(v.name.to_string());
            }
        });
        bad
    }

    /// `(name, length)` of every trainable parameter, in [`Sequential::visit_params`]
    /// order.
    pub fn param_names(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        self.visit_values(&mut |v| {
            if matches!(v.role, crate::layers::Role::Param(_)) {
                out.push((v.name.to_string(), v.values.len()));
            }
        });
        out
    }

    /// Writes the model to `path` atomically as safetensors: the weights under their
    /// names, and in the metadata the architecture, the input shape and, when set, the
    /// normalisation and class names. PyTorch's `safetensors.torch.load_file` reads it.
    /// A model holding a NaN or infinity is refused (the old file stays).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        checkpoint::model_file(self)?.write(path.as_ref())
    }

    /// Rebuilds a model saved by [`Sequential::save`] (or a training checkpoint) from the
    /// file alone: no code needs to know its layers.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        checkpoint::model_from_file(&checkpoint::SafeTensors::read(path)?, path)
    }

    /// Loads weights by name into this model from any safetensors file holding them
    /// (one of ours, or a PyTorch `state_dict` saved with `safetensors.torch.save_file`
    /// under the same names). Checked first, so on error the model is unchanged.
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        checkpoint::load_model(self, &checkpoint::SafeTensors::read(path)?, path)
    }

    /// Class probabilities `[N, classes]` (softmax of the outputs), in eval mode.
    ///
    /// An error when the model's output is not a vector of class scores, or when a
    /// probability comes out NaN (a model with non-finite weights, or a NaN input).
    /// It takes `&mut self` because every layer writes its output into a buffer it keeps
    /// and reuses (no allocation per call); nothing else changes.
    pub fn predict(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.output_shape().len() != 1 || self.output_shape()[0] < 2 {
            return Err(Error::Invalid(format!(
                "predict needs a classifier whose output is [classes], this model gives {:?}",
                self.output_shape()
            )));
        }
        let mut out = self.forward(x, Mode::Eval)?.clone();
        let classes = out.item_len();
        for (n, row) in out.data_mut().chunks_exact_mut(classes).enumerate() {
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - m).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
            if row.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: format!("the prediction for item {n}"),
                });
            }
        }
        Ok(out)
    }
}

fn fmt(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}
