//! Checkpoints in the safetensors format, read and written by this small module.
//!
//! The format: an 8-byte little-endian header length `N`; `N` bytes of JSON mapping
//! each tensor name to `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`
//! (offsets into the data section), plus an optional `"__metadata__"` object of strings;
//! then the raw little-endian data. Files written here open in PyTorch with
//! `safetensors.torch.load_file`, and theirs open here: F32 tensors are read as values;
//! tensors of other dtypes (a PyTorch batch norm's I64 `num_batches_tracked`, say) are
//! read as raw bytes into [`SafeTensors::other`], so their names, shapes and types are
//! known when a file is matched against a model (see [`load_model`]).
//!
//! Writes are atomic: a temporary file beside the target is written, flushed to disk,
//! and renamed over it, so a crash leaves either the old checkpoint or the new one.

use crate::error::{Error, Result};
use crate::json;
use crate::layers::Spec;
use crate::model::Sequential;
use crate::optim::Optimizer;
use byteorder::{ByteOrder, LittleEndian};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest header accepted (100 MB, the reference implementation's limit).
const MAX_HEADER: u64 = 100_000_000;

/// A tensor read from a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Values (F32).
    pub data: Vec<f32>,
}

/// A tensor of a dtype other than F32, kept as its raw little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    /// The safetensors dtype name, e.g. `"I64"`.
    pub dtype: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// The bytes, `shape.product() × dtype size` of them.
    pub bytes: Vec<u8>,
}

/// Bytes per element of a safetensors dtype, `None` for a dtype this reader does not know.
fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

/// The contents of a safetensors file: named tensors and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SafeTensors {
    /// F32 tensors by name.
    pub tensors: BTreeMap<String, StoredTensor>,
    /// Tensors of every other dtype, by name (read, never written).
    pub other: BTreeMap<String, RawTensor>,
    /// The `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

impl SafeTensors {
    /// Serialises to the safetensors byte layout (tensors in name order).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = String::from("{");
        if !self.metadata.is_empty() {
            header.push_str("\"__metadata__\":{");
            let items: Vec<String> = self
                .metadata
                .iter()
                .map(|(k, v)| format!("{}:{}", json::string(k), json::string(v)))
                .collect();
            header.push_str(&items.join(","));
            header.push_str("},");
        }
        let mut offset = 0usize;
        let mut items = Vec::new();
        for (name, t) in &self.tensors {
            let bytes = t.data.len() * 4;
            let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            items.push(format!(
                "{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                json::string(name),
                shape.join(","),
                offset,
                offset + bytes
            ));
            offset += bytes;
        }
        header.push_str(&items.join(","));
        header.push('}');
        // Pad the header with spaces so the data starts 8-byte aligned, as the reference does.
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut out = Vec::with_capacity(8 + header.len() + offset);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        for t in self.tensors.values() {
            let start = out.len();
            out.resize(start + t.data.len() * 4, 0);
            LittleEndian::write_f32_into(&t.data, &mut out[start..]);
        }
        out
    }

    /// Parses safetensors bytes; `path` only names the source in errors. Never panics.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |detail: String| Error::Format {
            path: path.to_path_buf(),
            detail,
        };
        if bytes.len() < 8 {
            return Err(bad(format!(
                "{} bytes: too short for a safetensors header",
                bytes.len()
            )));
        }
        let n = LittleEndian::read_u64(&bytes[..8]);
        if n > MAX_HEADER || n > (bytes.len() - 8) as u64 {
            return Err(bad(format!(
                "header length {n} does not fit the file ({} bytes): truncated or not safetensors",
                bytes.len()
            )));
        }
        let header = std::str::from_utf8(&bytes[8..8 + n as usize])
            .map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
        let data = &bytes[8 + n as usize..];
        let json = json::parse(header).map_err(|e| bad(format!("header JSON: {e}")))?;
        let json::Value::Object(entries) = json else {
            return Err(bad("header is not a JSON object".into()));
        };
        let mut out = SafeTensors::default();
        let mut spans = Vec::new();
        for (name, value) in entries {
            if name == "__metadata__" {
                let json::Value::Object(meta) = value else {
                    return Err(bad("__metadata__ is not an object".into()));
                };
                for (k, v) in meta {
                    let json::Value::String(v) = v else {
                        return Err(bad(format!("__metadata__.{k} is not a string")));
                    };
                    out.metadata.insert(k, v);
                }
                continue;
            }
            let (t, span) =
                parse_entry(value, data).map_err(|e| bad(format!("tensor {name:?}: {e}")))?;
            spans.push((span, name.clone()));
            let twice = match t {
                Entry::F32(t) => out.tensors.insert(name.clone(), t).is_some(),
                Entry::Raw(t) => out.other.insert(name.clone(), t).is_some(),
            };
            if twice || (out.tensors.contains_key(&name) && out.other.contains_key(&name)) {
                return Err(bad(format!("tensor {name:?} appears twice")));
            }
        }
        // The data section must be covered exactly, without overlaps (as the reference checks).
        spans.sort();
        let mut end = 0;
        for ((begin, stop), name) in &spans {
            if *begin != end {
                return Err(bad(format!(
                    "tensor {name:?} starts at {begin}, expected {end}"
                )));
            }
            end = *stop;
        }
        if end != data.len() {
            return Err(bad(format!(
                "data section is {} bytes, tensors cover {end}",
                data.len()
            )));
        }
        Ok(out)
    }

    /// Reads a safetensors file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            what: "cannot read checkpoint",
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes a safetensors file atomically (temporary file, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }
}

/// One parsed tensor: F32 values, or the raw bytes of another dtype.
enum Entry {
    F32(StoredTensor),
    Raw(RawTensor),
}

/// Parses one tensor entry; returns the tensor and its `[begin, end)` byte span.
fn parse_entry(
    value: json::Value,
    data: &[u8],
) -> std::result::Result<(Entry, (usize, usize)), String> {
    let json::Value::Object(fields) = value else {
        return Err("entry is not an object".into());
    };
    let field = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let dtype = match field("dtype") {
        Some(json::Value::String(s)) => s.as_str(),
        _ => return Err("no dtype".into()),
    };
    let size = dtype_size(dtype).ok_or_else(|| format!("unknown dtype {dtype:?}"))?;
    let ints = |key: &str| -> std::result::Result<Vec<usize>, String> {
        match field(key) {
            Some(json::Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    json::Value::Int(i) => Ok(*i),
                    _ => Err(format!("{key} holds a non-integer")),
                })
                .collect(),
            _ => Err(format!("no {key} array")),
        }
    };
    let shape = ints("shape")?;
    let offsets = ints("data_offsets")?;
    let &[begin, end] = offsets.as_slice() else {
        return Err("data_offsets must be [begin, end]".into());
    };
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("shape overflows")?;
    if end < begin || end > data.len() {
        return Err(format!(
            "data_offsets [{begin}, {end}] outside the {}-byte data section",
            data.len()
        ));
    }
    if count.checked_mul(size) != Some(end - begin) {
        return Err(format!(
            "shape {shape:?} of {dtype} needs {count}×{size} bytes, data_offsets give {}",
            end - begin
        ));
    }
    if dtype != "F32" {
        let dtype = dtype.to_string();
        let bytes = data[begin..end].to_vec();
        return Ok((
            Entry::Raw(RawTensor {
                dtype,
                shape,
                bytes,
            }),
            (begin, end),
        ));
    }
    let mut values = vec![0.0f32; count];
    LittleEndian::read_f32_into(&data[begin..end], &mut values);
    Ok((
        Entry::F32(StoredTensor {
            shape,
            data: values,
        }),
        (begin, end),
    ))
}

/// Writes `bytes` to `path` atomically: a temporary sibling, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |what, source| Error::Io {
        path: path.to_path_buf(),
        what,
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| io("cannot create temporary file for", e))?;
        f.write_all(bytes).map_err(|e| io("cannot write", e))?;
        f.sync_all().map_err(|e| io("cannot flush", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("cannot move checkpoint into place at", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Copies the model's parameters and buffers (batch-norm statistics) into named tensors.
pub fn model_tensors(model: &Sequential) -> BTreeMap<String, StoredTensor> {
    let mut out = BTreeMap::new();
    model.visit_values(&mut |v| {
        out.insert(
            v.name.to_string(),
            StoredTensor {
                shape: v.shape.to_vec(),
                data: v.values.to_vec(),
            },
        );
    });
    out
}

/// Metadata key of the file format tag.
const FORMAT: &str = "format";
/// The format tag of model files (architecture included).
pub const MODEL_FORMAT: &str = "ferroconv-model-1";

/// Everything [`crate::Sequential::save`] writes: the tensors, and in the metadata the
/// format tag, the input shape, the architecture (every layer's name, kind and settings),
/// and the normalisation and class names when the model has them. Refuses a model with a
/// NaN or infinite value (an [`Error::NonFinite`] naming the tensor), so a diverged model
/// never replaces a good file.
pub fn model_file(model: &Sequential) -> Result<SafeTensors> {
    if let Some(name) = model.first_non_finite() {
        return Err(Error::NonFinite {
            what: format!("tensor {name:?} of the model being saved"),
        });
    }
    let mut metadata = BTreeMap::new();
    metadata.insert(FORMAT.into(), MODEL_FORMAT.into());
    metadata.insert("input_shape".into(), ints_json(model.input_shape()));
    let layers: Vec<String> = model
        .specs()
        .iter()
        .map(|(name, spec)| format!("[{},{}]", json::string(name), spec.to_json()))
        .collect();
    metadata.insert("architecture".into(), format!("[{}]", layers.join(",")));
    if let Some(n) = model.normalization() {
        let floats = |v: &[f32]| {
            let items: Vec<String> = v.iter().map(|x| format!("{:?}", f64::from(*x))).collect();
            format!("[{}]", items.join(","))
        };
        metadata.insert(
            "normalization".into(),
            format!(
                "{{\"mean\":{},\"std\":{}}}",
                floats(&n.mean),
                floats(&n.std)
            ),
        );
    }
    if let Some(classes) = model.classes() {
        let names: Vec<String> = classes.iter().map(|c| json::string(c)).collect();
        metadata.insert("classes".into(), format!("[{}]", names.join(",")));
    }
    for (key, value) in model.card() {
        metadata.insert(format!("{CARD}{key}"), value.clone());
    }
    Ok(SafeTensors {
        tensors: model_tensors(model),
        metadata,
        other: BTreeMap::new(),
    })
}

fn ints_json(v: &[usize]) -> String {
    let items: Vec<String> = v.iter().map(|d| d.to_string()).collect();
    format!("[{}]", items.join(","))
}

/// Rebuilds the model a [`model_file`] (or a training checkpoint) describes and loads its
/// weights. Errors name the file and what is wrong with it.
pub fn model_from_file(st: &SafeTensors, path: &Path) -> Result<Sequential> {
    let bad = |detail: String| Error::Format {
        path: path.to_path_buf(),
        detail,
    };
    let meta = |key: &str| -> Result<json::Value> {
        let text = st.metadata.get(key).ok_or_else(|| {
            bad(format!(
                "no {key:?} in the metadata: not a ferroconv model file (safetensors from \
                 elsewhere load into a model built in code, with Sequential::load_weights)"
            ))
        })?;
        json::parse(text).map_err(|e| bad(format!("metadata {key}: {e}")))
    };
    let json::Value::Array(dims) = meta("input_shape")? else {
        return Err(bad("metadata input_shape is not an array".into()));
    };
    let input_shape = dims
        .iter()
        .map(|d| match d {
            json::Value::Int(i) => Ok(*i),
            _ => Err(bad("metadata input_shape holds a non-integer".into())),
        })
        .collect::<Result<Vec<usize>>>()?;
    let json::Value::Array(layers) = meta("architecture")? else {
        return Err(bad("metadata architecture is not an array".into()));
    };
    let specs = layers
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            json::Value::Array(pair) => match pair.as_slice() {
                [json::Value::String(name), spec] => Spec::from_value(spec)
                    .map(|s| (name.clone(), s))
                    .map_err(|e| bad(format!("architecture, layer {i}: {e}"))),
                _ => Err(bad(format!("architecture, layer {i}: not [name, layer]"))),
            },
            _ => Err(bad(format!("architecture, layer {i}: not [name, layer]"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut model = Sequential::from_specs(&input_shape, &specs, 0)
        .map_err(|e| bad(format!("architecture: {e}")))?;
    if st.metadata.contains_key("normalization") {
        let v = meta("normalization")?;
        let floats = |key: &str| -> Result<Vec<f32>> {
            match v.get(key) {
                Some(json::Value::Array(items)) => items
                    .iter()
                    .map(|x| match x {
                        json::Value::Float(f) => Ok(*f as f32),
                        json::Value::Int(i) => Ok(*i as f32),
                        _ => Err(bad(format!("normalization {key} holds a non-number"))),
                    })
                    .collect(),
                _ => Err(bad(format!("normalization has no {key} array"))),
            }
        };
        let n = crate::data::Normalize::new(&floats("mean")?, &floats("std")?)
            .and_then(|n| model.set_normalization(n))
            .map_err(|e| bad(format!("normalization: {e}")));
        n?;
    }
    if st.metadata.contains_key("classes") {
        let json::Value::Array(items) = meta("classes")? else {
            return Err(bad("metadata classes is not an array".into()));
        };
        let names = items
            .iter()
            .map(|c| match c {
                json::Value::String(s) => Ok(s.clone()),
                _ => Err(bad("metadata classes holds a non-string".into())),
            })
            .collect::<Result<Vec<_>>>()?;
        model
            .set_classes(names)
            .map_err(|e| bad(format!("classes: {e}")))?;
    }
    for (key, value) in &st.metadata {
        if let Some(card_key) = key.strip_prefix(CARD) {
            model
                .set_card(card_key, value.clone())
                .map_err(|e| bad(format!("metadata {key:?}: {e}")))?;
        }
    }
    load_model(&mut model, st, path)?;
    Ok(model)
}

/// Prefix of the model card's entries in the metadata ([`Sequential::card`]).
const CARD: &str = "card.";

/// True for the tensors a training checkpoint adds to a model's: optimizer state.
fn is_optimizer_state(name: &str) -> bool {
    name.starts_with("momentum.") || name.starts_with("exp_avg") || name.starts_with("lookahead.")
}

/// True for a PyTorch batch norm's step counter, `<layer>.num_batches_tracked` (I64,
/// one value). It only matters to a batch norm built with `momentum=None` (a cumulative
/// average), which no torchvision model uses, so loading accepts and ignores it.
pub fn is_num_batches_tracked(name: &str, t: &RawTensor) -> bool {
    (name == "num_batches_tracked" || name.ends_with(".num_batches_tracked"))
        && t.dtype == "I64"
        && t.shape.iter().product::<usize>() == 1
}

/// Loads parameters and buffers into `model` by name. Every tensor the model has must be
/// present as F32 with the same shape and finite values, and no tensor the model lacks may
/// be there (optimizer state, `momentum.*` and `exp_avg*`, is left to [`load_training`];
/// a PyTorch batch norm's I64 `num_batches_tracked` is ignored, see
/// [`is_num_batches_tracked`]). A tensor the model has, stored in another dtype, is
/// reported in [`Error::Mismatch`]'s `dtype` list.
/// Everything is checked before anything is written: on error the model is unchanged.
pub fn load_model(model: &mut Sequential, st: &SafeTensors, path: &Path) -> Result<()> {
    let expected = model_tensors(model);
    let (mut missing, mut unexpected, mut shape) = (Vec::new(), Vec::new(), Vec::new());
    let mut dtype = Vec::new();
    for (name, want) in &expected {
        match st.tensors.get(name) {
            None => match st.other.get(name) {
                Some(t) => dtype.push((name.clone(), t.dtype.clone())),
                None => missing.push((name.clone(), want.shape.clone())),
            },
            Some(t) if t.shape != want.shape => {
                shape.push((name.clone(), t.shape.clone(), want.shape.clone()))
            }
            Some(_) => {}
        }
    }
    for name in st.tensors.keys() {
        if !is_optimizer_state(name) && !expected.contains_key(name) {
            unexpected.push(name.clone());
        }
    }
    for (name, t) in &st.other {
        if !expected.contains_key(name) && !is_num_batches_tracked(name, t) {
            unexpected.push(name.clone());
        }
    }
    if !(missing.is_empty() && unexpected.is_empty() && shape.is_empty() && dtype.is_empty()) {
        return Err(Error::Mismatch {
            path: path.to_path_buf(),
            missing,
            unexpected,
            shape,
            dtype,
        });
    }
    for (name, want) in &expected {
        let t = &st.tensors[name];
        if t.data.len() != want.data.len() {
            return Err(Error::Format {
                path: path.to_path_buf(),
                detail: format!(
                    "tensor {name:?} holds {} values, its shape {:?} needs {}",
                    t.data.len(),
                    t.shape,
                    want.data.len()
                ),
            });
        }
        if t.data.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!("tensor {name:?} in {}", path.display()),
            });
        }
    }
    model.visit_params(&mut |name, p| p.value.copy_from_slice(&st.tensors[name].data));
    model.visit_buffers(&mut |name, b| b.copy_from_slice(&st.tensors[name].data));
    Ok(())
}

/// Everything a resumed run needs: the model file ([`model_file`]), the optimizer state
/// and step count, and the caller's `metadata` (the run's settings and epoch). Written
/// atomically; refused (the old file kept) when any value is NaN or infinite.
pub fn save_training(
    path: &Path,
    model: &Sequential,
    opt: &mut dyn Optimizer,
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let mut st = model_file(model)?;
    for (k, v) in metadata {
        st.metadata.entry(k).or_insert(v);
    }
    for (name, buf) in opt.state(model) {
        if buf.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!("optimizer state {name:?} being saved"),
            });
        }
        st.tensors.insert(
            name,
            StoredTensor {
                shape: vec![buf.len()],
                data: buf.clone(),
            },
        );
    }
    st.metadata
        .insert("optimizer_steps".into(), opt.steps().to_string());
    st.write(path)
}

/// Restores model and optimizer from [`save_training`]'s file; returns its metadata.
/// The model is checked first (a near-twin model gets the model mismatch, not an
/// optimizer-state one); nothing changes on error.
pub fn load_training(
    path: &Path,
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
) -> Result<BTreeMap<String, String>> {
    let st = SafeTensors::read(path)?;
    let bad = |detail: String| Error::Format {
        path: path.to_path_buf(),
        detail,
    };
    // Check the model's tensors on a copy, then the optimizer's, before changing anything.
    let backup = model_tensors(model);
    load_model(model, &st, path)?;
    let restore = |model: &mut Sequential| {
        model.visit_params(&mut |name, p| p.value.copy_from_slice(&backup[name].data));
        model.visit_buffers(&mut |name, b| b.copy_from_slice(&backup[name].data));
    };
    let mut problem = None;
    for (name, buf) in opt.state(model) {
        match st.tensors.get(&name) {
            Some(t) if t.data.len() == buf.len() && t.data.iter().all(|v| v.is_finite()) => {}
            Some(t) if t.data.len() == buf.len() => {
                problem = Some(Error::NonFinite {
                    what: format!("optimizer state {name:?} in {}", path.display()),
                });
            }
            Some(t) => {
                let (got, want) = (t.data.len(), buf.len());
                problem = Some(bad(format!(
                    "optimizer state {name:?} has {got} values, expected {want}"
                )));
            }
            None => {
                problem = Some(bad(format!(
                    "missing optimizer state {name:?} (saved with another optimizer?)"
                )));
            }
        }
        if problem.is_some() {
            break;
        }
    }
    let steps = st
        .metadata
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok());
    if problem.is_none() && steps.is_none() {
        problem = Some(bad(
            "metadata optimizer_steps missing or not a number".into()
        ));
    }
    if let Some(e) = problem {
        restore(model);
        return Err(e);
    }
    for (name, buf) in opt.state(model) {
        buf.copy_from_slice(&st.tensors[&name].data);
    }
    opt.set_steps(steps.expect("checked"));
    Ok(st.metadata)
}
