//! The error type of the trainer.

use std::path::PathBuf;
use thiserror::Error;

/// Everything that can stop a training or evaluation run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// Options of one command cannot be used together or have a bad value (`resume` with `out`,
    /// a `class` out of range, an experiment's counts). `option` is named in backticks in
    /// `reason` where it is not the first word; the CLI turns names into flags.
    #[error("invalid option: `{option}` {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why its value cannot be used.
        reason: String,
    },
    /// A preset cannot be found or read.
    #[error("preset {preset}: {reason}")]
    Preset {
        /// The preset's name or file.
        preset: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The data set is unknown or cannot be trained on as it is.
    #[error("data set {dataset}: {reason}")]
    Dataset {
        /// The data set's name or folder.
        dataset: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No data set of that name is known (and no folder has that path).
    #[error("unknown dataset '{name}'{}; known datasets: {}, or the path of an image folder",
        suggestion.as_ref().map(|n| format!(" (did you mean '{n}'?)")).unwrap_or_default(), known.join(", "))]
    UnknownDataset {
        /// The name given.
        name: String,
        /// The nearest known name, if one is near.
        suggestion: Option<String>,
        /// Every known name.
        known: Vec<&'static str>,
    },
    /// The model cannot do what was asked of it (no convolutional stage, too small an input, …).
    #[error("{model}: {reason}")]
    Unsupported {
        /// The model's name.
        model: String,
        /// What it cannot do, and what to do instead.
        reason: String,
    },
    /// The members of an ensemble do not fit together.
    #[error("ensemble: {0}")]
    Ensemble(String),
    /// A data label the model has no output for.
    #[error("the data has label {label} but the model has {classes} classes")]
    LabelOutOfRange {
        /// The label.
        label: usize,
        /// The model's number of classes.
        classes: usize,
    },
    /// No device was given to train on.
    #[error("no device to train on")]
    NoDevice,
    /// A data-parallel worker or MPI failed.
    #[error("{0}")]
    Distributed(String),
    /// A tensor could not be read back from its device, or a gradient is missing.
    #[error("backend: {0}")]
    Backend(String),
    /// A setting's value is out of range or does not fit the others. `setting` is its name in
    /// `config.json` and in [`crate::config::SETTINGS`] (the CLI turns it into its flag); the
    /// reason names other settings in backticks the same way.
    #[error("invalid setting: `{setting}` {reason}")]
    InvalidSetting {
        /// The setting's name.
        setting: &'static str,
        /// Why its value cannot be used.
        reason: String,
    },
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
    #[error("training diverged at epoch {epoch}, batch {batch}: loss is {loss} (try a smaller `lr`)")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The offending loss value.
        loss: f32,
    },
    /// Another process (or another run of this one) holds the run folder.
    #[error("{} is in use by another cnn process{}", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse {
        /// The folder.
        dir: PathBuf,
        /// The holder's process id, when its lock file says.
        pid: Option<u32>,
    },
    /// A stop was requested ([`crate::run::interrupt::request_stop`], e.g. Ctrl-C); the run folder
    /// keeps its last checkpoint.
    #[error("interrupted in epoch {epoch} after {batches} batch(es): {}", resume_hint(dir, *checkpoint_epoch))]
    Interrupted {
        /// The run folder.
        dir: PathBuf,
        /// The 1-based epoch that was stopped.
        epoch: usize,
        /// Batches of that epoch that had been trained (their work is not kept).
        batches: usize,
        /// The last completed epoch, saved in the folder's checkpoint (0: none yet).
        checkpoint_epoch: usize,
    },
}

impl TrainError {
    /// The error with the run folder filled in where it names one (the training loops do not
    /// know the folder they train for).
    pub(crate) fn in_run_folder(self, run: &std::path::Path) -> Self {
        match self {
            TrainError::Interrupted {
                epoch,
                batches,
                checkpoint_epoch,
                ..
            } => TrainError::Interrupted {
                dir: run.to_path_buf(),
                epoch,
                batches,
                checkpoint_epoch,
            },
            other => other,
        }
    }
}

fn resume_hint(dir: &std::path::Path, checkpoint_epoch: usize) -> String {
    match checkpoint_epoch {
        0 => format!(
            "no epoch had finished, so {} holds no checkpoint yet: run the same command again to start over",
            dir.display()
        ),
        n => format!(
            "resume with `resume` {} (the checkpoint of epoch {n} is kept; epoch {} starts again)",
            dir.display(),
            n + 1
        ),
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
