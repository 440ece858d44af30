//! Fine-tuning: start from pretrained weights (a torchvision `state_dict` in safetensors,
//! or a model saved here), replace the classifier head for a new number of classes,
//! freeze what should not train, and give the head its own learning rate.
//!
//! ```
//! use ferroconv::finetune::Freeze;
//! # fn main() -> ferroconv::Result<()> {
//! let mut model = ferroconv::zoo::resnet(18, 1000, 32, 0)?; // load_weights("r18.safetensors") here
//! model.replace_head(5, 0)?;                              // `fc` is now 512 → 5
//! assert_eq!(model.output_shape(), &[5]);
//! Freeze::parse("backbone")?.apply(&mut model)?;          // everything but `fc.`
//! assert!(model.is_frozen("layer1.0.conv1.weight") && !model.is_frozen("fc.weight"));
//! model.freeze_prefix("layer4")?;                         // add more by name prefix
//! # Ok(()) }
//! ```
//!
//! Frozen parameters get no update, no weight decay and no optimizer-state change; frozen
//! batch norms use their running statistics in training and leave them unchanged (see
//! [`Sequential::freeze_if`]). [`FineTune`] bundles it all for [`crate::driver::run`].

use crate::checkpoint::{self, SafeTensors};
use crate::error::{Error, Result};
use crate::layers::{Setting, Spec};
use crate::model::Sequential;
use crate::recipe::Recipe;
use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

/// Whether the parameter `name` lies under `prefix`: a prefix ending in `.` matches by
/// string (`layer1.` matches `layer1.0.conv1.weight`); one without is a module or a
/// parameter name (`layer1` matches `layer1.…` but not `layer10.…`; `fc.weight` matches
/// itself).
pub fn under_prefix(name: &str, prefix: &str) -> bool {
    if prefix.ends_with('.') {
        name.starts_with(prefix)
    } else {
        name == prefix
            || name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    }
}

impl Sequential {
    /// The name prefix of the classifier head: the layer holding the last parameter, e.g.
    /// `fc.` for ResNet, GoogLeNet and Inception, `classifier.6.` for AlexNet and VGG,
    /// `fc3.` for the article's network. An error for a model without parameters.
    pub fn head_prefix(&self) -> Result<String> {
        let names = self.param_names();
        let (last, _) = names
            .last()
            .ok_or_else(|| Error::Invalid("the model has no parameters, so no head".into()))?;
        let cut = last.rfind('.').map_or(0, |i| i + 1);
        Ok(last[..cut].to_string())
    }

    /// Freezes every parameter under `prefix` (see [`under_prefix`]), besides those already
    /// frozen; returns how many. An error, freezing nothing, when no parameter is under it.
    pub fn freeze_prefix(&mut self, prefix: &str) -> Result<usize> {
        let hits = self
            .param_names()
            .iter()
            .filter(|(n, _)| under_prefix(n, prefix))
            .count();
        if hits == 0 {
            let first: Vec<String> = self
                .layers()
                .map(|(n, _, _)| n.to_string())
                .take(12)
                .collect();
            return Err(Error::Invalid(format!(
                "freeze: no parameter is under {prefix:?} (the model's layers: {}…; \
                 parameters are named like {})",
                first.join(", "),
                self.param_names()
                    .first()
                    .map_or("(none)".into(), |(n, _)| n.clone())
            )));
        }
        Ok(self.freeze_if(&|n| under_prefix(n, prefix)))
    }

    /// Freezes the parameters of the top-level layers `range` (indices as
    /// [`Sequential::summary`] numbers them); returns how many. An error for a range
    /// outside the model.
    pub fn freeze_layers(&mut self, range: Range<usize>) -> Result<usize> {
        let names: Vec<String> = self.layers().map(|(n, _, _)| format!("{n}.")).collect();
        if range.start >= range.end || range.end > names.len() {
            return Err(Error::Invalid(format!(
                "freeze: layers {}..{} are not a range of this model's {} layers",
                range.start,
                range.end,
                names.len()
            )));
        }
        let chosen = &names[range];
        Ok(self.freeze_if(&|n| chosen.iter().any(|p| n.starts_with(p.as_str()))))
    }

    /// Freezes every parameter but the head's ([`Sequential::head_prefix`]); returns how
    /// many.
    pub fn freeze_backbone(&mut self) -> Result<usize> {
        let head = self.head_prefix()?;
        Ok(self.freeze_if(&|n| !n.starts_with(head.as_str())))
    }

    /// Replaces the head, which must be a `Dense` layer, with a freshly initialised one of
    /// `classes` outputs under the same name (so the saved model keeps torchvision's names:
    /// `fc.weight` becomes `[classes, 512]` for a ResNet-18). Every other parameter and
    /// buffer, the normalisation, the frozen set and the learning-rate factors are kept;
    /// the class names are dropped (they belonged to the old head). The new head is drawn
    /// from `seed`. On error the model is unchanged.
    pub fn replace_head(&mut self, classes: usize, seed: u64) -> Result<()> {
        if classes == 0 {
            return Err(Error::Invalid("replace_head: 0 classes".into()));
        }
        let head = self.head_prefix()?;
        let mut specs = self.specs();
        let spec = find_spec(&mut specs, "", &head).ok_or_else(|| {
            Error::Invalid(format!("replace_head: cannot find the layer {head:?}"))
        })?;
        if spec.kind != "Dense" {
            return Err(Error::Invalid(format!(
                "replace_head: the head {:?} is a {}, not a Dense layer",
                head.trim_end_matches('.'),
                spec.kind
            )));
        }
        for (name, value) in &mut spec.settings {
            if name == "outputs" {
                *value = Setting::Int(classes);
            }
        }
        let mut fresh = Sequential::from_specs(self.input_shape(), &specs, seed)?;
        if fresh.output_shape() != [classes] {
            return Err(Error::Invalid(format!(
                "replace_head: with {classes} outputs in {:?} the model gives {:?}; the head \
                 must be the last layer that computes the scores",
                head.trim_end_matches('.'),
                fresh.output_shape()
            )));
        }
        let mut kept: HashMap<String, Vec<f32>> = HashMap::new();
        self.visit_values(&mut |v| {
            if !v.name.starts_with(head.as_str()) {
                kept.insert(v.name.to_string(), v.values.to_vec());
            }
        });
        let mut take = |name: &str, dst: &mut [f32]| {
            if let Some(v) = kept.remove(name).filter(|v| v.len() == dst.len()) {
                dst.copy_from_slice(&v);
            }
        };
        fresh.visit_params(&mut |name, p| take(name, p.value));
        fresh.visit_buffers(&mut |name, b| take(name, b));
        if let Some(n) = self.normalization() {
            fresh.set_normalization(n.clone())?;
        }
        let frozen = self.frozen_params();
        let factors: Vec<(String, f32)> = self
            .param_names()
            .into_iter()
            .map(|(n, _)| {
                let f = self.lr_factor(&n);
                (n, f)
            })
            .filter(|(_, f)| *f != 1.0)
            .collect();
        fresh.freeze_if(&|n| frozen.iter().any(|f| f == n));
        for (name, factor) in factors {
            fresh.set_lr_factor_if(&|n| n == name, factor)?;
        }
        *self = fresh;
        Ok(())
    }
}

/// The spec of the leaf layer whose parameters are named `target` + `…`, among `children`
/// named under `prefix`.
fn find_spec<'a>(
    children: &'a mut [(String, Spec)],
    prefix: &str,
    target: &str,
) -> Option<&'a mut Spec> {
    for (name, spec) in children.iter_mut() {
        let path = if name.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}{name}.")
        };
        if !target.starts_with(&path) {
            continue;
        }
        if path == target && spec.children.is_empty() {
            return Some(spec);
        }
        if let Some(found) = find_spec(&mut spec.children, &path, target) {
            return Some(found);
        }
    }
    None
}

/// What to freeze, as the `--freeze` flag spells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Freeze {
    /// Nothing (`none`).
    #[default]
    Nothing,
    /// Everything but the classifier head (`backbone`), see [`Sequential::freeze_backbone`].
    Backbone,
    /// The parameters under these name prefixes (`layer1.,layer2` or `features`), see
    /// [`under_prefix`].
    Prefixes(Vec<String>),
    /// The top-level layers of this index range (`0..6`).
    Layers(Range<usize>),
}

impl Freeze {
    /// Parses `none`, `backbone`, a layer range `A..B`, or comma-separated name prefixes.
    pub fn parse(s: &str) -> Result<Freeze> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Freeze::Nothing);
        }
        if s == "backbone" {
            return Ok(Freeze::Backbone);
        }
        if let Some((a, b)) = s.split_once("..") {
            let num = |t: &str| t.trim().parse::<usize>().ok();
            let start = if a.trim().is_empty() { Some(0) } else { num(a) };
            if let (Some(start), Some(end)) = (start, num(b)) {
                return Ok(Freeze::Layers(start..end));
            }
        }
        let prefixes: Vec<String> = s.split(',').map(|p| p.trim().to_string()).collect();
        if prefixes
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(Error::Invalid(format!(
                "--freeze {s:?}: expected none, backbone, a layer range A..B or \
                 comma-separated name prefixes (layer1.,layer2)"
            )));
        }
        Ok(Freeze::Prefixes(prefixes))
    }

    /// The spelling [`Freeze::parse`] reads back.
    pub fn describe(&self) -> String {
        match self {
            Freeze::Nothing => "none".into(),
            Freeze::Backbone => "backbone".into(),
            Freeze::Prefixes(p) => p.join(","),
            Freeze::Layers(r) => format!("{}..{}", r.start, r.end),
        }
    }

    /// Freezes what it names in `model`; returns how many parameters are frozen after it.
    /// An error when a prefix or range names nothing, or when nothing would be left to
    /// train.
    pub fn apply(&self, model: &mut Sequential) -> Result<usize> {
        match self {
            Freeze::Nothing => return Ok(model.frozen_params().len()),
            Freeze::Backbone => {
                model.freeze_backbone()?;
            }
            Freeze::Prefixes(prefixes) => {
                for p in prefixes {
                    model.freeze_prefix(p)?;
                }
            }
            Freeze::Layers(r) => {
                model.freeze_layers(r.clone())?;
            }
        }
        let frozen = model.frozen_params().len();
        if frozen == model.param_names().len() {
            return Err(Error::Invalid(format!(
                "--freeze {}: every parameter would be frozen, nothing left to train",
                self.describe()
            )));
        }
        Ok(frozen)
    }
}

/// How a run fine-tunes: where its weights come from, what it freezes, the head's rate.
/// The default does none of it (a run from the seed's initial weights).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FineTune {
    /// Start from these weights: a torchvision `state_dict` saved with
    /// `safetensors.torch.save_file`, or a model saved here, of the recipe's architecture.
    /// Its head may have another number of classes: it is then replaced.
    pub pretrained: Option<PathBuf>,
    /// Replace the head even when the pretrained one has the data's number of classes
    /// (when the classes themselves differ).
    pub fresh_head: bool,
    /// What to freeze (after the head is replaced; the new head is never frozen by
    /// `backbone`).
    pub freeze: Freeze,
    /// The head's learning rate (scheduled like the rest); the other trainable parameters
    /// train at the recipe's rate.
    pub head_lr: Option<f32>,
}

impl FineTune {
    /// True when it changes anything over a plain run.
    pub fn is_active(&self) -> bool {
        *self != FineTune::default()
    }

    /// The recipe's model for `input` images and `classes` classes, from `seed`, with
    /// this fine-tuning applied: pretrained weights loaded, the head replaced when its
    /// class count differs (or `fresh_head`), parameters frozen, the head's rate set.
    pub fn build(
        &self,
        recipe: &Recipe,
        input: &[usize],
        classes: usize,
        seed: u64,
    ) -> Result<Sequential> {
        let mut model = recipe.build_model(input, classes, seed)?;
        if let Some(path) = &self.pretrained {
            let st = SafeTensors::read(path)?;
            let head = model.head_prefix()?;
            let stored = st
                .tensors
                .get(&format!("{head}weight"))
                .and_then(|t| t.shape.first().copied());
            if let Some(n) = stored.filter(|&n| n != classes && n > 0) {
                model = recipe.build_model(input, n, seed)?;
            }
            checkpoint::load_model(&mut model, &st, path)?;
            if model.output_shape() != [classes] || self.fresh_head {
                model.replace_head(classes, seed)?;
            }
        }
        self.freeze.apply(&mut model)?;
        if let Some(lr) = self.head_lr {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::Invalid(format!(
                    "--head-lr {lr}: it must be positive"
                )));
            }
            let head = model.head_prefix()?;
            if model.is_frozen(&format!("{head}weight")) {
                return Err(Error::Invalid(format!(
                    "--head-lr: the head {:?} is frozen",
                    head.trim_end_matches('.')
                )));
            }
            model.set_lr_factor_if(&|n| n.starts_with(head.as_str()), lr / recipe.lr)?;
        }
        Ok(model)
    }

    /// What a checkpoint records of it (only what is set): `pretrained` (the file name),
    /// `fresh_head`, `freeze`, `head_lr`.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut m = Vec::new();
        if let Some(p) = &self.pretrained {
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            m.push(("pretrained".into(), name));
        }
        if self.fresh_head {
            m.push(("fresh_head".into(), "true".into()));
        }
        if self.freeze != Freeze::Nothing {
            m.push(("freeze".into(), self.freeze.describe()));
        }
        if let Some(lr) = self.head_lr {
            m.push(("head_lr".into(), lr.to_string()));
        }
        m
    }
}
