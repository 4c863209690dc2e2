//! What a training run is asked to do.

use cnn_data_augment::Pipeline;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// The optimiser used for training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (PyTorch-style, undampened) momentum.
    Sgd,
    /// Adam (Kingma & Ba 2015).
    Adam,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            other => Err(format!("unknown optimizer '{other}' (expected sgd or adam)")),
        }
    }
}

/// Settings of one training run. Serialised as `config.json` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Model name from the `cnn-models` registry.
    pub model: String,
    /// Data set name (e.g. `mnist-5k`).
    pub dataset: String,
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Images per mini-batch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Momentum (SGD only).
    pub momentum: f64,
    /// Seed for weight initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Augmentation of the training images (empty: none).
    #[serde(default)]
    pub augment: Pipeline,
    /// Folder holding downloaded data sets (default: `~/.cache/cnn-casestudies`).
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Data worker threads (0: build batches on the training thread).
    #[serde(default = "default_workers")]
    pub workers: usize,
}

fn default_workers() -> usize {
    cnn_data_augment::LoaderConfig::new(1).workers
}

impl TrainConfig {
    /// The defaults for `model` on `dataset`: Adam, lr 1e-3, batch 32, 10 epochs, seed 42, no
    /// augmentation, cores − 1 data workers (at least 1).
    pub fn new(model: impl Into<String>, dataset: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            dataset: dataset.into(),
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            seed: 42,
            augment: Pipeline::default(),
            data_dir: None,
            workers: default_workers(),
        }
    }

    /// Checks that every value is usable, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(TrainError::Config(msg));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr must be a positive number, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("--momentum must be in [0, 1), got {}", self.momentum));
        }
        if self.workers > 256 {
            return bad(format!("--workers {} is absurd (at most 256)", self.workers));
        }
        self.augment
            .validate()
            .map_err(|e| TrainError::Config(format!("--augment: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let ok = TrainConfig::new("lenet5", "mnist-5k");
        assert!(ok.validate().is_ok());
        for (cfg, flag) in [
            (
                TrainConfig {
                    epochs: 0,
                    ..ok.clone()
                },
                "--epochs",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..ok.clone()
                },
                "--batch-size",
            ),
            (TrainConfig { lr: -1.0, ..ok.clone() }, "--lr"),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..ok.clone()
                },
                "--lr",
            ),
            (
                TrainConfig {
                    momentum: 1.5,
                    ..ok.clone()
                },
                "--momentum",
            ),
        ] {
            assert!(cfg.validate().unwrap_err().to_string().contains(flag));
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = TrainConfig::new("lenet5", "mnist-5k");
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
        assert_eq!("SGD".parse::<OptimizerKind>(), Ok(OptimizerKind::Sgd));
    }
}
