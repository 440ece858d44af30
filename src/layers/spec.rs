//! What a layer is, as data: its kind and settings, enough to rebuild it without code.
//! A saved model carries one [`Spec`] per layer (see [`crate::Sequential::save`]), so any
//! model made of built-in layers reloads with [`crate::Sequential::load`] alone.
//!
//! In a model file a spec is JSON:
//! `{"kind":"Conv2d","settings":{"in_channels":3,"out_channels":6,"kernel":5,…},"children":[]}`;
//! a composite lists its sub-layers as `"children":[["0",{…}],["1",{…}]]`.

use super::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Block, Concat, Conv2d, Dense, Dropout, Flatten,
    Gelu, GlobalAvgPool, GlobalMaxPool, Layer, MaxPool2d, ReLU, ResBlock, Residual, Scale,
};
use crate::json::{self, Value};

/// One setting of a layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Setting {
    /// A count or size.
    Int(usize),
    /// A rate or constant (stored from an `f32`, read back to the same `f32`).
    Float(f64),
    /// An on/off switch.
    Flag(bool),
}

/// A layer's kind, settings and (for composites) named sub-layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The layer type, e.g. `"Conv2d"`.
    pub kind: String,
    /// Settings by name, in the order the layer lists them.
    pub settings: Vec<(String, Setting)>,
    /// Named sub-layers, in order (empty but for composites).
    pub children: Vec<(String, Spec)>,
}

impl Spec {
    /// A spec of `kind` with no settings yet.
    pub fn new(kind: &str) -> Self {
        Spec {
            kind: kind.to_string(),
            settings: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Adds an integer setting.
    pub fn int(mut self, name: &str, value: usize) -> Self {
        self.settings.push((name.into(), Setting::Int(value)));
        self
    }

    /// Adds a floating-point setting.
    pub fn float(mut self, name: &str, value: f32) -> Self {
        self.settings
            .push((name.into(), Setting::Float(f64::from(value))));
        self
    }

    /// Adds an on/off setting.
    pub fn flag(mut self, name: &str, value: bool) -> Self {
        self.settings.push((name.into(), Setting::Flag(value)));
        self
    }

    /// Adds a named sub-layer.
    pub fn child(mut self, name: &str, spec: Spec) -> Self {
        self.children.push((name.into(), spec));
        self
    }

    pub(crate) fn setting(&self, name: &str) -> Result<&Setting, String> {
        self.settings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("{}: no setting {name:?}", self.kind))
    }

    /// The integer setting `name`, or a message saying it is missing or not an integer.
    pub fn get_int(&self, name: &str) -> Result<usize, String> {
        match self.setting(name)? {
            Setting::Int(v) => Ok(*v),
            other => Err(format!("{}: {name} = {other:?}, not an integer", self.kind)),
        }
    }

    /// The floating-point setting `name` (an integer is accepted too).
    pub fn get_float(&self, name: &str) -> Result<f32, String> {
        match self.setting(name)? {
            Setting::Float(v) => Ok(*v as f32),
            Setting::Int(v) => Ok(*v as f32),
            other => Err(format!("{}: {name} = {other:?}, not a number", self.kind)),
        }
    }

    /// The on/off setting `name`.
    pub fn get_flag(&self, name: &str) -> Result<bool, String> {
        match self.setting(name)? {
            Setting::Flag(v) => Ok(*v),
            other => Err(format!("{}: {name} = {other:?}, not true/false", self.kind)),
        }
    }

    /// The spec as compact JSON.
    pub fn to_json(&self) -> String {
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(name, v)| {
                let v = match v {
                    Setting::Int(i) => i.to_string(),
                    // `{:?}` keeps a decimal point, so the value reads back as a float.
                    Setting::Float(f) => format!("{f:?}"),
                    Setting::Flag(b) => b.to_string(),
                };
                format!("{}:{v}", json::string(name))
            })
            .collect();
        let children: Vec<String> = self
            .children
            .iter()
            .map(|(name, c)| format!("[{},{}]", json::string(name), c.to_json()))
            .collect();
        format!(
            "{{\"kind\":{},\"settings\":{{{}}},\"children\":[{}]}}",
            json::string(&self.kind),
            settings.join(","),
            children.join(",")
        )
    }

    /// Parses [`Spec::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Spec, String> {
        Self::from_value(&json::parse(text)?)
    }

    pub(crate) fn from_value(v: &Value) -> Result<Spec, String> {
        let Some(Value::String(kind)) = v.get("kind") else {
            return Err("a layer without a \"kind\" string".into());
        };
        let mut spec = Spec::new(kind);
        match v.get("settings") {
            Some(Value::Object(items)) => {
                for (name, value) in items {
                    let s = match value {
                        Value::Int(i) => Setting::Int(*i),
                        Value::Float(f) => Setting::Float(*f),
                        Value::Bool(b) => Setting::Flag(*b),
                        other => return Err(format!("{kind}: setting {name} = {other:?}")),
                    };
                    spec.settings.push((name.clone(), s));
                }
            }
            None => {}
            Some(_) => return Err(format!("{kind}: \"settings\" is not an object")),
        }
        match v.get("children") {
            Some(Value::Array(items)) => {
                for item in items {
                    let Value::Array(pair) = item else {
                        return Err(format!("{kind}: a child is not a [name, layer] pair"));
                    };
                    let [Value::String(name), layer] = pair.as_slice() else {
                        return Err(format!("{kind}: a child is not a [name, layer] pair"));
                    };
                    spec.children.push((name.clone(), Spec::from_value(layer)?));
                }
            }
            None => {}
            Some(_) => return Err(format!("{kind}: \"children\" is not an array")),
        }
        Ok(spec)
    }
}

/// Builds a built-in layer from its spec (the inverse of [`Layer::spec`]), or says why not.
pub fn from_spec(spec: &Spec) -> Result<Box<dyn Layer>, String> {
    let no_settings = || -> Result<(), String> {
        match spec.settings.first() {
            None => Ok(()),
            Some((name, _)) => Err(format!("{}: unexpected setting {name:?}", spec.kind)),
        }
    };
    Ok(match spec.kind.as_str() {
        "Conv2d" => Box::new(Conv2d::from_spec(spec)?),
        "Dense" => Box::new(Dense::from_spec(spec)?),
        "MaxPool2d" => Box::new(MaxPool2d::from_spec(spec)?),
        "BatchNorm2d" => Box::new(BatchNorm2d::from_spec(spec)?),
        "Dropout" => Box::new(Dropout::new(spec.get_float("p")?)),
        "Scale" => Box::new(Scale::new(spec.get_float("factor")?)),
        "Residual" => Box::new(Residual::from_spec(spec)?),
        "Block" => Box::new(Block::from_spec(spec)?),
        "Concat" => Box::new(Concat::from_spec(spec)?),
        "ResBlock" => Box::new(ResBlock::from_spec(spec)?),
        "AvgPool2d" => Box::new(AvgPool2d::from_spec(spec)?),
        "AdaptiveAvgPool2d" => Box::new(AdaptiveAvgPool2d::from_spec(spec)?),
        "ReLU" => no_settings().map(|_| Box::new(ReLU::new()))?,
        "GELU" => no_settings().map(|_| Box::new(Gelu::new()))?,
        "Flatten" => no_settings().map(|_| Box::new(Flatten::new()))?,
        "GlobalAvgPool" => no_settings().map(|_| Box::new(GlobalAvgPool::new()))?,
        "GlobalMaxPool" => no_settings().map(|_| Box::new(GlobalMaxPool::new()))?,
        other => {
            return Err(format!(
                "layer kind {other:?} is not built in: rebuild the model in code and load \
                 its weights with Sequential::load_weights"
            ));
        }
    })
}
