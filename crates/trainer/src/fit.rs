//! The training loop: mini-batch SGD/Adam/AdamW over any [`Source`], validated every epoch.

use std::sync::Arc;
use std::time::Duration;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer};
use cnn_models::fused_sgd::FusedSgdConfig;
use burn::tensor::Device;
use cnn_data_augment::{EpochIter, Loader, LoaderConfig, Preprocess, Source};
use cnn_models::ImageClassifier;
use serde::{Deserialize, Serialize};

use crate::collective::{Collective, evaluate_sharded};
use crate::config::{OptimizerKind, TrainConfig};
use crate::epochs::{Batches, EpochLoop, Hooks, TrainState};
use crate::error::{Result, TrainError};
use crate::eval::evaluate;
use crate::step::{ImageBatch, ImageStep};

pub use crate::eval::Evaluation;
pub use crate::step::AUX_LOSS_WEIGHT;

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

/// Why [`fit_from`] stopped.
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

/// The result of [`fit_from`].
pub struct Fitted<M> {
    /// The trained model (still on the autodiff device).
    pub model: M,
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
    pub(crate) fn new(model: M, optimizer: ModuleOptimizer, history: Vec<EpochMetrics>, cfg: &TrainConfig) -> Self {
        let stop = match early_stop(&history, cfg.early_stop) {
            Some(best_epoch) if history.len() < cfg.epochs => Stop::EarlyStopped { best_epoch },
            _ => Stop::Completed,
        };
        Self {
            model,
            optimizer,
            history,
            stop,
        }
    }
}

/// Called after every epoch with the model, the optimiser and the history so far (e.g. to write
/// a checkpoint); an error stops training.
pub type EpochHook<'a, M> = dyn FnMut(&M, &ModuleOptimizer, &[EpochMetrics]) -> Result<()> + 'a;

/// What a run trains and validates on: the training images (augmented by the loader), the
/// validation images and how both are fitted to the model.
pub struct TrainData<'a> {
    /// The training set.
    pub train: Arc<dyn Source>,
    /// The validation set, evaluated after every epoch.
    pub valid: &'a dyn Source,
    /// Resizing and normalisation for the model.
    pub pre: &'a Preprocess,
}

/// Trains `model` (built on `device.autodiff()`) on `train`, validating on `valid` after every
/// epoch, and returns the trained model with the per-epoch metrics.
///
/// Batches come from a background [`Loader`] with `cfg.workers` threads, augmented with
/// `cfg.augment`; their order and contents depend only on `(cfg.seed, epoch)`, so the same seed
/// gives the same run whatever the number of workers.
pub fn fit<M: ImageClassifier + Send + 'static>(
    model: M,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(M, Vec<EpochMetrics>)> {
    if cfg.backbone_lr_scale != 1.0 || cfg.stage_lr_decay != 1.0 {
        // Rates per stage need to know the model's stages: a `cnn_models::Model`, through
        // `train_run` or a `TrainState` whose `rates` come from `LayerRates::for_model`.
        return Err(TrainError::Config(
            "fit trains any model at one rate; for rates per stage (backbone_lr_scale, stage_lr_decay) build a TrainState with LayerRates::for_model and call fit_from".into(),
        ));
    }
    let state = TrainState {
        model,
        optimizer: build_optimizer(cfg),
        history: Vec::new(),
        rates: cnn_transfer::LayerRates::uniform(),
    };
    let hooks = Hooks {
        progress,
        after_epoch: &mut |_, _, _| Ok(()),
    };
    let fitted = fit_from(state, data, cfg, std::slice::from_ref(device), hooks)?;
    Ok((fitted.model, fitted.history))
}

/// [`fit`], continuing after the epochs in `state.history` with `state.optimizer`'s state (a
/// resumed run repeats an uninterrupted one exactly: see [`crate::epochs`]), calling the hooks,
/// and stopping early when `cfg.early_stop` says so.
///
/// `devices` are autodiff devices; the model lives on the first. With more than one, every
/// batch is split over them and trained data-parallel (see [`crate::parallel`]).
pub fn fit_from<M: ImageClassifier + Send + 'static>(
    state: TrainState<M>,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    devices: &[Device],
    hooks: Hooks<'_, M>,
) -> Result<Fitted<M>> {
    fit_across(state, data, cfg, devices, None, hooks)
}

/// [`fit_from`] in one process of `group` (when given): this process trains on its slice of
/// every batch on the first device, the gradients are summed over the group
/// ([`crate::collective`]), and validation is sharded over the group.
pub(crate) fn fit_across<M: ImageClassifier + Send + 'static>(
    state: TrainState<M>,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    devices: &[Device],
    group: Option<&dyn Collective>,
    hooks: Hooks<'_, M>,
) -> Result<Fitted<M>> {
    cfg.validate()?;
    let device = devices
        .first()
        .ok_or_else(|| TrainError::Config("no device to train on".into()))?;
    if data.train.is_empty() {
        return Err(TrainError::Config("the training set is empty".into()));
    }
    let loader_config = LoaderConfig {
        batch_size: cfg.batch_size,
        workers: cfg.workers,
        prefetch: cfg.prefetch_batches(),
        shuffle: true,
        seed: cfg.seed,
    };
    let loader = Loader::new(data.train, cfg.augment.clone(), data.pre.for_pipeline(&cfg.augment), loader_config)?;
    let (valid, pre) = (data.valid, data.pre);
    let (rank, ranks) = group.map_or((0, 1), |g| (g.rank(), g.size()));
    let epochs = EpochLoop {
        cfg,
        device,
        step: ImageStep::new(devices, group)?,
        batches: |epoch: usize| {
            Ok(DeviceBatches {
                epoch: loader.shard_epoch(epoch as u64, rank, ranks),
                device,
            })
        },
        evaluate: |model: &M| {
            let model = model.valid();
            match group {
                Some(group) => evaluate_sharded(group, valid, |shard| evaluate(&model, shard, pre, device)),
                None => evaluate(&model, valid, pre, device),
            }
        },
    };
    epochs.run(state, hooks)
}

/// An epoch of the loader's batches, moved to the main device as they come.
struct DeviceBatches<'a> {
    epoch: EpochIter,
    device: &'a Device,
}

impl Iterator for DeviceBatches<'_> {
    type Item = Result<ImageBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.epoch.next()?;
        Some(batch.map_err(TrainError::from).map(|batch| batch.to_device(self.device)))
    }
}

impl Batches for DeviceBatches<'_> {
    type Input = ImageBatch;

    fn total(&self) -> usize {
        self.epoch.total()
    }

    fn waited(&self) -> Duration {
        self.epoch.waited()
    }
}

/// `Some(best epoch)` when the validation loss has not improved for `patience` epochs.
pub fn early_stop(history: &[EpochMetrics], patience: Option<usize>) -> Option<usize> {
    let patience = patience?;
    let best = history.iter().min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss))?;
    (history.len() - best.epoch.min(history.len()) >= patience).then_some(best.epoch)
}

/// The optimiser `cfg` asks for.
pub fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let decay = (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::AdamW => AdamWConfig::new().with_weight_decay(cfg.weight_decay as f32).init(),
        // burn's `Sgd`, computed in one pass per parameter on flex (bit-identical).
        OptimizerKind::Sgd => sgd_momentum(cfg.momentum, decay.map(|d| d.penalty)),
    }
}

/// SGD with PyTorch-style (undampened) momentum and an optional L2 penalty: the training
/// loop's and the benchmark's optimiser.
pub fn sgd_momentum(momentum: f64, weight_decay: Option<f32>) -> ModuleOptimizer {
    FusedSgdConfig {
        momentum: Some(MomentumConfig::new().with_momentum(momentum).with_dampening(0.0)),
        weight_decay,
    }
    .init()
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
