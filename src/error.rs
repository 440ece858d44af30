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
    /// An argument is out of range or inconsistent (zero batch, bad label...).
    Invalid(String),
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
