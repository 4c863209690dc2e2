//! The error type of the trainer.

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can stop a training or evaluation run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A run folder, checkpoint or weights file cannot be used.
    #[error("{0}")]
    Checkpoint(String),
    /// The model name is unknown.
    #[error(transparent)]
    Model(#[from] cnn_models::ModelError),
    /// The data could not be read or prepared.
    #[error(transparent)]
    Data(#[from] cnn_data_augment::DataError),
    /// Weights could not be loaded or a freeze policy applied.
    #[error(transparent)]
    Transfer(#[from] cnn_transfer::TransferError),
    /// The run folder or one of its files could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file or folder involved.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, batch {batch}: loss is {loss} (try a smaller --lr)")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The offending loss value.
        loss: f32,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
