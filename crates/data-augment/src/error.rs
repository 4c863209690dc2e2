//! The error type of this crate.

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong while reading or preparing data.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its contents are not what the format promises.
    #[error("{path}: {reason}")]
    Format {
        /// The file involved (or the name of an embedded resource).
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// Two files that belong together disagree (e.g. image and label counts).
    #[error("{images} and {labels} do not match: {reason}")]
    Mismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// What differs.
        reason: String,
    },
    /// An augmentation op has a bad parameter.
    #[error("augmentation op #{index} `{op}`: `{field}` {reason}")]
    Augment {
        /// 1-based position of the op in the pipeline.
        index: usize,
        /// The op's name.
        op: String,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file's checksum is not the published one.
    #[error("{path}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// The file involved.
        path: PathBuf,
        /// The published checksum.
        expected: String,
        /// What the file has.
        actual: String,
    },
    /// A download failed from every source.
    #[error("{0}")]
    Download(String),
    /// A request that cannot be satisfied by the data (bad index, bad size, …).
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
