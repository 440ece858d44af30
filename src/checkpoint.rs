//! Checkpoints in the safetensors format, read and written by this small module.
//!
//! The format: an 8-byte little-endian header length `N`; `N` bytes of JSON mapping
//! each tensor name to `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}`
//! (offsets into the data section), plus an optional `"__metadata__"` object of strings;
//! then the raw little-endian data. Files written here open in PyTorch with
//! `safetensors.torch.load_file`, and theirs open here (F32 tensors).
//!
//! Writes are atomic: a temporary file beside the target is written, flushed to disk,
//! and renamed over it, so a crash leaves either the old checkpoint or the new one.

use crate::error::{Error, Result};
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

/// The contents of a safetensors file: named tensors and string metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SafeTensors {
    /// Tensors by name.
    pub tensors: BTreeMap<String, StoredTensor>,
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
                .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
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
                json_string(name),
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
            let t = parse_entry(value, data).map_err(|e| bad(format!("tensor {name:?}: {e}")))?;
            spans.push((t.1, name.clone()));
            if out.tensors.insert(name.clone(), t.0).is_some() {
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

/// Parses one tensor entry; returns the tensor and its `[begin, end)` byte span.
fn parse_entry(
    value: json::Value,
    data: &[u8],
) -> std::result::Result<(StoredTensor, (usize, usize)), String> {
    let json::Value::Object(fields) = value else {
        return Err("entry is not an object".into());
    };
    let field = |key: &str| fields.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let dtype = match field("dtype") {
        Some(json::Value::String(s)) => s.as_str(),
        _ => return Err("no dtype".into()),
    };
    if dtype != "F32" {
        return Err(format!("dtype {dtype}, only F32 is supported"));
    }
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
    if count.checked_mul(4) != Some(end - begin) {
        return Err(format!(
            "shape {shape:?} needs {count}×4 bytes, data_offsets give {}",
            end - begin
        ));
    }
    let mut values = vec![0.0f32; count];
    LittleEndian::read_f32_into(&data[begin..end], &mut values);
    Ok((
        StoredTensor {
            shape,
            data: values,
        },
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
pub fn model_tensors(model: &mut Sequential) -> BTreeMap<String, StoredTensor> {
    let mut out = BTreeMap::new();
    model.visit_params(&mut |name, p| {
        out.insert(
            name.to_string(),
            StoredTensor {
                shape: p.shape.clone(),
                data: p.value.to_vec(),
            },
        );
    });
    model.visit_buffers(&mut |name, b| {
        out.insert(
            name.to_string(),
            StoredTensor {
                shape: vec![b.len()],
                data: b.to_vec(),
            },
        );
    });
    out
}

/// Loads parameters and buffers into `model`. Every tensor the model has must be present
/// with the same shape, and no tensor the model lacks may be there (optimizer state,
/// `momentum.*` and `exp_avg*`, is left to [`load_training`]). Nothing is changed on error.
pub fn load_model(model: &mut Sequential, st: &SafeTensors, path: &Path) -> Result<()> {
    let expected = model_tensors(model);
    let mut problems = Vec::new();
    for (name, want) in &expected {
        match st.tensors.get(name) {
            None => problems.push(format!("missing tensor {name:?} {:?}", want.shape)),
            Some(t) if t.shape != want.shape => problems.push(format!(
                "tensor {name:?} has shape {:?}, the model needs {:?}",
                t.shape, want.shape
            )),
            Some(_) => {}
        }
    }
    for name in st.tensors.keys() {
        let optimizer_state = name.starts_with("momentum.") || name.starts_with("exp_avg");
        if !optimizer_state && !expected.contains_key(name) {
            problems.push(format!("unexpected tensor {name:?} (not in this model)"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            detail: format!("does not match the model: {}", problems.join("; ")),
        });
    }
    model.visit_params(&mut |name, p| p.value.copy_from_slice(&st.tensors[name].data));
    model.visit_buffers(&mut |name, b| b.copy_from_slice(&st.tensors[name].data));
    Ok(())
}

/// Everything a resumed run needs: model, optimizer state, and where it stood.
pub fn save_training(
    path: &Path,
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    let mut st = SafeTensors {
        tensors: model_tensors(model),
        metadata,
    };
    for (name, buf) in opt.state(model) {
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
    // Check everything before changing anything.
    for (name, buf) in opt.state(model) {
        match st.tensors.get(&name) {
            Some(t) if t.data.len() == buf.len() => {}
            Some(t) => {
                let (got, want) = (t.data.len(), buf.len());
                return Err(bad(format!(
                    "optimizer state {name:?} has {got} values, expected {want}"
                )));
            }
            None => {
                return Err(bad(format!(
                    "missing optimizer state {name:?} (saved with another optimizer?)"
                )));
            }
        }
    }
    let steps = st
        .metadata
        .get("optimizer_steps")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("metadata optimizer_steps missing or not a number".into()))?;
    load_model(model, &st, path)?;
    for (name, buf) in opt.state(model) {
        buf.copy_from_slice(&st.tensors[&name].data);
    }
    opt.set_steps(steps);
    Ok(st.metadata)
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The small JSON subset safetensors headers use: objects, arrays, strings, non-negative
/// integers (plus other numbers, booleans and null, parsed and rejected where used).
mod json {
    /// A parsed JSON value.
    #[derive(Debug)]
    pub enum Value {
        Object(Vec<(String, Value)>),
        Array(Vec<Value>),
        String(String),
        Int(usize),
        Other,
    }

    /// Deepest nesting accepted (headers are two levels deep).
    const MAX_DEPTH: usize = 16;

    /// Parses a whole document.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }

        fn expect(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected '{}' at byte {}", c as char, self.i))
            }
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > MAX_DEPTH {
                return Err("nested too deeply".into());
            }
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(items));
                    }
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.expect(b':')?;
                        items.push((key, self.value(depth + 1)?));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(items));
                            }
                            _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return Err(format!("expected ',' or ']' at byte {}", self.i)),
                        }
                    }
                }
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(b'0'..=b'9') => {
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    if matches!(self.s.get(self.i), Some(b'.' | b'e' | b'E')) {
                        self.skip_number_tail();
                        return Ok(Value::Other);
                    }
                    let digits =
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                    digits
                        .parse()
                        .map(Value::Int)
                        .map_err(|_| format!("integer {digits} too large"))
                }
                Some(b'-') => {
                    self.i += 1;
                    self.skip_number_tail();
                    Ok(Value::Other)
                }
                Some(b't') => self.literal("true"),
                Some(b'f') => self.literal("false"),
                Some(b'n') => self.literal("null"),
                _ => Err(format!("unexpected input at byte {}", self.i)),
            }
        }

        fn skip_number_tail(&mut self) {
            while self.i < self.s.len()
                && matches!(
                    self.s[self.i],
                    b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                )
            {
                self.i += 1;
            }
        }

        fn literal(&mut self, word: &str) -> Result<Value, String> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(Value::Other)
            } else {
                Err(format!("unexpected input at byte {}", self.i))
            }
        }

        fn string(&mut self) -> Result<String, String> {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(format!("expected a string at byte {}", self.i));
            }
            self.i += 1;
            let mut out = Vec::new();
            loop {
                let Some(&c) = self.s.get(self.i) else {
                    return Err("unterminated string".into());
                };
                self.i += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            return Err("unterminated escape".into());
                        };
                        self.i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e),
                            b'n' => out.push(b'\n'),
                            b't' => out.push(b'\t'),
                            b'r' => out.push(b'\r'),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'u' => {
                                let hex =
                                    self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                                self.i += 4;
                                let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                                let code =
                                    u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                                out.extend_from_slice(ch.to_string().as_bytes());
                            }
                            _ => return Err(format!("bad escape at byte {}", self.i)),
                        }
                    }
                    c if c < 0x20 => {
                        return Err(format!(
                            "control character in string at byte {}",
                            self.i - 1
                        ));
                    }
                    c => out.push(c),
                }
            }
            String::from_utf8(out).map_err(|e| e.to_string())
        }
    }
}
