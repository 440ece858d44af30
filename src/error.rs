//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in ferroconv, each variant carrying enough context
/// (file, record, layer, shapes) to say what went wrong and where.
#[derive(Debug)]
pub enum Error {
    /// An I/O operation on `path` failed.
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// What the operation was for, e.g. "opening CIFAR-10 batch".
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A data file exists but its contents are not what the format says.
    Format {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, with the record or offset where it was found.
        detail: String,
    },
    /// Two shapes that must agree do not.
    Shape {
        /// Where the mismatch was found (layer, operation).
        context: String,
        /// The shape that was expected.
        expected: Vec<usize>,
        /// The shape that was given.
        got: Vec<usize>,
    },
    /// A layer does not accept what the layer before it produces (or its own settings
    /// are impossible), found when a model is built.
    Build {
        /// Position of the layer in the model.
        index: usize,
        /// The layer's name (its index unless it was given one).
        name: String,
        /// The layer's one-line description.
        layer: String,
        /// The item shape it was given.
        input: Vec<usize>,
        /// Why it does not fit.
        reason: String,
    },
    /// A file's tensors do not match a model's: each list says what differs.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Tensors the model has and the file lacks, with the shape the model needs.
        missing: Vec<(String, Vec<usize>)>,
        /// Tensors the file has and the model lacks.
        unexpected: Vec<String>,
        /// `(name, shape in the file, shape the model needs)`.
        shape: Vec<(String, Vec<usize>, Vec<usize>)>,
        /// `(name, dtype in the file)` for tensors the model cannot take in that type.
        dtype: Vec<(String, String)>,
    },
    /// A number that must be finite is not: a loss during training, a weight being saved
    /// or loaded, a prediction.
    NonFinite {
        /// What and where, e.g. "training loss at epoch 3, step 1204".
        what: String,
    },
    /// An argument is out of range or inconsistent (zero batch, bad label...).
    Invalid(String),
}

/// Shows at most a few items of a list, then how many more.
fn list<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    let mut parts: Vec<String> = items.iter().take(6).map(show).collect();
    if items.len() > 6 {
        parts.push(format!("… {} more", items.len() - 6));
    }
    parts.join(", ")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, what, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            Error::Format { path, detail } => write!(f, "{}: {detail}", path.display()),
            Error::Shape {
                context,
                expected,
                got,
            } => write!(f, "{context}: expected shape {expected:?}, got {got:?}"),
            Error::Build {
                index,
                name,
                layer,
                input,
                reason,
            } => {
                let named = if *name == index.to_string() {
                    String::new()
                } else {
                    format!(" {name:?}")
                };
                write!(
                    f,
                    "layer {index}{named} ({layer}) given {input:?}: {reason}"
                )
            }
            Error::Mismatch {
                path,
                missing,
                unexpected,
                shape,
                dtype,
            } => {
                let mut counts = Vec::new();
                for (n, what) in [
                    (missing.len(), "missing"),
                    (unexpected.len(), "unexpected"),
                    (shape.len(), "of another shape"),
                    (dtype.len(), "of another dtype"),
                ] {
                    if n > 0 {
                        counts.push(format!("{n} {what}"));
                    }
                }
                write!(
                    f,
                    "{} does not match the model: tensors {}",
                    path.display(),
                    counts.join(", ")
                )?;
                if !missing.is_empty() {
                    let l = list(missing, |(n, s)| format!("{n} {s:?}"));
                    write!(f, "\n  missing: {l}")?;
                }
                if !unexpected.is_empty() {
                    write!(f, "\n  unexpected: {}", list(unexpected, |n| n.clone()))?;
                }
                if !shape.is_empty() {
                    let l = list(shape, |(n, got, want)| {
                        format!("{n} is {got:?} in the file, the model needs {want:?}")
                    });
                    write!(f, "\n  shape: {l}")?;
                }
                if !dtype.is_empty() {
                    let l = list(dtype, |(n, t)| format!("{n} is {t}, the model needs F32"));
                    write!(f, "\n  dtype: {l}")?;
                }
                Ok(())
            }
            Error::NonFinite { what } => write!(f, "{what} is not finite (NaN or infinite)"),
            Error::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `Result` with [`Error`] as the error type.
pub type Result<T> = std::result::Result<T, Error>;
