//! The error type of this crate.

use thiserror::Error;

/// What can go wrong while transferring weights.
#[derive(Debug, Error)]
pub enum TransferError {
    /// A weights file cannot be used (missing, unreadable, wrong keys or shapes).
    #[error("{0}")]
    Weights(String),
    /// A feature cache cannot be read or written.
    #[error("feature cache: {0}")]
    Cache(String),
    /// Weights could not be downloaded or imported into the cache.
    #[error(transparent)]
    Download(#[from] cnn_data_augment::DataError),
    /// A setting's value cannot be used for this model.
    #[error("`{setting}` {reason}")]
    InvalidSetting {
        /// The setting's name (as in `config.json`; the CLI turns it into its flag).
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A model cannot be written as ONNX.
    #[error("ONNX export: {0}")]
    Onnx(String),
    /// A model could not be built.
    #[error(transparent)]
    Model(#[from] cnn_models::ModelError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;
