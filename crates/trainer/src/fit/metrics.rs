//! What training reports: per-epoch metrics, progress, why it stopped, and its result.

use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::Result;

/// What one epoch measured. One row of `metrics.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Top-1 accuracy on the training batches, as seen during the epoch.
    pub train_accuracy: f64,
    /// Top-5 accuracy on the training batches (top-k with k = classes when fewer than 5).
    pub train_top5: f64,
    /// Mean loss on the validation set after the epoch.
    pub valid_loss: f64,
    /// Top-1 accuracy on the validation set after the epoch.
    pub valid_accuracy: f64,
    /// Top-5 accuracy on the validation set after the epoch.
    pub valid_top5: f64,
    /// Learning rate of the epoch's last batch.
    pub lr: f64,
    /// Wall time of the training part of the epoch, in seconds.
    pub train_seconds: f64,
    /// Training throughput.
    pub images_per_second: f64,
    /// Share of the epoch's training time spent waiting for batches (0 = never starved).
    pub data_wait_share: f64,
    /// With `ema`: the averaged weights' validation loss after the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_valid_loss: Option<f64>,
    /// With `ema`: the averaged weights' top-1 validation accuracy after the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_valid_accuracy: Option<f64>,
}

/// Progress reports while training runs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A training batch finished.
    Batch {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch index within the epoch.
        batch: usize,
        /// Batches in this epoch.
        batches: usize,
        /// This batch's loss.
        loss: f32,
        /// This batch's learning rate.
        lr: f64,
    },
    /// An epoch finished and was evaluated.
    Epoch(&'a EpochMetrics),
    /// Something the user should know that does not stop the run (e.g. skipped image files).
    Warning(String),
    /// A decision the run made, for the log (e.g. what `--freeze auto` chose).
    Note(String),
}

/// Why [`crate::fit_from`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// All `cfg.epochs` epochs ran.
    Completed,
    /// The validation loss did not improve for `cfg.early_stop` epochs after `best_epoch`.
    EarlyStopped {
        /// The epoch with the lowest validation loss.
        best_epoch: usize,
    },
}

/// The result of [`crate::fit_from`].
pub struct Fitted<M> {
    /// The trained model (still on the autodiff device).
    pub model: M,
    /// With `ema`: the average of its weights.
    pub ema: Option<M>,
    /// Its optimiser, with its state.
    pub optimizer: ModuleOptimizer,
    /// Metrics of every epoch, including those before a resume.
    pub history: Vec<EpochMetrics>,
    /// Why training stopped.
    pub stop: Stop,
}

impl<M> Fitted<M> {
    /// The end of training after `history`: early-stopped if `cfg.early_stop` says so before
    /// `cfg.epochs`, else completed.
    pub(crate) fn new(
        (model, ema): (M, Option<M>),
        optimizer: ModuleOptimizer,
        history: Vec<EpochMetrics>,
        cfg: &TrainConfig,
    ) -> Self {
        let stop = match early_stop(&history, cfg.optim.early_stop) {
            Some(best_epoch) if history.len() < cfg.optim.epochs => Stop::EarlyStopped { best_epoch },
            _ => Stop::Completed,
        };
        Self {
            model,
            ema,
            optimizer,
            history,
            stop,
        }
    }
}

/// Called after every epoch with the model, the average of its weights (with `ema`), the
/// optimiser and the history so far (e.g. to write a checkpoint); an error stops training.
pub type EpochHook<'a, M> = dyn FnMut(&M, Option<&M>, &ModuleOptimizer, &[EpochMetrics]) -> Result<()> + 'a;

/// `Some(best epoch)` when the validation loss has not improved for `patience` epochs.
pub fn early_stop(history: &[EpochMetrics], patience: Option<usize>) -> Option<usize> {
    let patience = patience?;
    let best = history.iter().min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss))?;
    (history.len() - best.epoch.min(history.len()) >= patience).then_some(best.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, valid_loss: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 1.0,
            train_accuracy: 0.5,
            train_top5: 0.9,
            valid_loss,
            valid_accuracy: 0.5,
            valid_top5: 0.9,
            lr: 0.1,
            train_seconds: 1.0,
            images_per_second: 1.0,
            data_wait_share: 0.0,
            ema_valid_loss: None,
            ema_valid_accuracy: None,
        }
    }

    #[test]
    fn early_stop_waits_patience_epochs_after_the_best_valid_loss() {
        let h: Vec<EpochMetrics> = [0.9, 0.5, 0.6, 0.55, 0.7]
            .iter()
            .enumerate()
            .map(|(i, &l)| epoch(i + 1, l))
            .collect();
        assert_eq!(early_stop(&h[..3], Some(2)), None);
        assert_eq!(early_stop(&h[..4], Some(2)), Some(2));
        assert_eq!(early_stop(&h, Some(4)), None);
        assert_eq!(early_stop(&h, None), None);
        // A tie is not an improvement.
        let flat: Vec<EpochMetrics> = (1..=3).map(|e| epoch(e, 0.5)).collect();
        assert_eq!(early_stop(&flat, Some(2)), Some(1));
    }
}
