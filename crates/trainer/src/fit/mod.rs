//! Fitting a model to data: [`fit`] and [`fit_from`] feed the loader's batches to the one
//! epoch loop ([`epochs`]) with the way of stepping ([`step`], [`strategy`]) the devices and
//! process group call for.

pub mod ema;
pub mod epochs;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod schedule;
pub mod step;
pub mod strategy;

use std::sync::Arc;
use std::time::Duration;

use burn::tensor::Device;
use cnn_data_augment::augment::BatchMix;
use cnn_data_augment::seed::{derive, stream};
use cnn_data_augment::{EpochIter, Loader, LoaderConfig, Preprocess, Source};
use cnn_models::ImageClassifier;

use crate::config::TrainConfig;
use crate::distributed::collective::{Collective, evaluate_sharded};
use crate::error::{Result, TrainError};
use crate::eval::{TestViews, evaluate_views};
use ema::Ema;

pub(crate) use epochs::{Batches, EpochLoop};
pub use epochs::{Hooks, TrainState};
pub use loss::{AUX_LOSS_WEIGHT, Loss, Targets};
pub use metrics::{EpochHook, EpochMetrics, Fitted, Progress, Stop, early_stop};
pub use optim::{build_optimizer, sgd_momentum};
pub use step::ImageBatch;
use strategy::ImageStep;

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
/// gives the same run whatever the number of workers. With `cfg.optim.ema` the average of the
/// weights is validated every epoch (in the metrics); [`fit_from`]'s [`Fitted::ema`] returns it.
pub fn fit<M: ImageClassifier + Send + 'static>(
    model: M,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(M, Vec<EpochMetrics>)> {
    if cfg.transfer.backbone_lr_scale != 1.0 || cfg.transfer.stage_lr_decay != 1.0 {
        // Rates per stage need to know the model's stages: a `cnn_models::Model`, through
        // `train_run` or a `TrainState` whose `rates` come from `LayerRates::for_model`.
        return Err(TrainError::InvalidSetting {
            setting: if cfg.transfer.backbone_lr_scale != 1.0 { "backbone_lr_scale" } else { "stage_lr_decay" },
            reason: "needs the model's stages, which fit does not know (it trains any model at one rate): build a TrainState with LayerRates::for_model and call fit_from".into(),
        });
    }
    let state = TrainState {
        ema: cfg.optim.ema.map(|decay| Ema::new(&model, decay, cfg.optim.ema_every)),
        model,
        optimizer: build_optimizer(cfg),
        history: Vec::new(),
        rates: cnn_transfer::LayerRates::uniform(),
    };
    let hooks = Hooks {
        progress,
        after_epoch: &mut |_, _, _, _| Ok(()),
    };
    let fitted = fit_from(state, data, cfg, std::slice::from_ref(device), hooks)?;
    Ok((fitted.model, fitted.history))
}

/// [`fit`], continuing after the epochs in `state.history` with `state.optimizer`'s state (a
/// resumed run repeats an uninterrupted one exactly: see [`epochs`]), calling the hooks,
/// and stopping early when `cfg.early_stop` says so.
///
/// `devices` are autodiff devices; the model lives on the first. With more than one, every
/// batch is split over them and trained data-parallel (see [`crate::distributed::parallel`]).
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
/// ([`crate::distributed::collective`]), and validation is sharded over the group.
pub(crate) fn fit_across<M: ImageClassifier + Send + 'static>(
    state: TrainState<M>,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    devices: &[Device],
    group: Option<&dyn Collective>,
    hooks: Hooks<'_, M>,
) -> Result<Fitted<M>> {
    cnn_models::precision::with(cfg.task.precision, || fit_in(state, data, cfg, (devices, group), hooks))
}

fn fit_in<M: ImageClassifier + Send + 'static>(
    state: TrainState<M>,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    (devices, group): (&[Device], Option<&dyn Collective>),
    hooks: Hooks<'_, M>,
) -> Result<Fitted<M>> {
    cfg.validate()?;
    let device = devices.first().ok_or(TrainError::NoDevice)?;
    if data.train.is_empty() {
        return Err(TrainError::Dataset {
            dataset: cfg.task.dataset.clone(),
            reason: "the training set is empty".into(),
        });
    }
    let batches = TrainBatches::new(cfg, data.train.clone(), data.pre)?;
    let (valid, pre, views) = (data.valid, data.pre, TestViews::of(&cfg.task));
    let (rank, ranks) = group.map_or((0, 1), |g| (g.rank(), g.size()));
    let epochs = EpochLoop {
        cfg,
        device,
        step: ImageStep::new(devices, group, cfg.optim.label_smoothing)?,
        batches: |epoch: usize| Ok(batches.epoch(epoch, (rank, ranks), device)),
        evaluate: |model: &M| {
            let model = model.valid();
            match group {
                Some(group) => evaluate_sharded(group, valid, |shard| evaluate_views(&model, shard, pre, views, device)),
                None => evaluate_views(&model, valid, pre, views, device),
            }
        },
    };
    epochs.run(state, hooks)
}

/// Where a run's training batches come from: the loader (shuffled, augmented per image in the
/// background) and the batch mixing (mixup, cutmix) of the run's settings.
pub(crate) struct TrainBatches {
    loader: Loader<dyn Source>,
    mix: Option<BatchMix>,
    seed: u64,
}

impl TrainBatches {
    /// The batches of `cfg` over `train`, fitted with `pre`.
    pub fn new(cfg: &TrainConfig, train: Arc<dyn Source>, pre: &Preprocess) -> Result<Self> {
        let loader_config = LoaderConfig {
            batch_size: cfg.optim.batch_size,
            workers: cfg.loader.workers,
            prefetch: cfg.prefetch_batches(),
            shuffle: true,
            seed: cfg.task.seed,
        };
        let augment = &cfg.augmentation;
        let loader = Loader::new(
            train,
            augment.augment.clone(),
            pre.for_pipeline(&augment.augment),
            loader_config,
        )?;
        Ok(Self {
            loader,
            mix: BatchMix::new(augment.mixup, augment.cutmix, augment.mix_switch),
            seed: cfg.task.seed,
        })
    }

    /// Epoch `epoch` (1-based) of process `rank` of `ranks` (its slice of every batch), moved
    /// to `device` batch by batch.
    pub fn epoch<'a>(&self, epoch: usize, (rank, ranks): (usize, usize), device: &'a Device) -> DeviceBatches<'a> {
        DeviceBatches {
            epoch: self.loader.shard_epoch(epoch as u64, rank, ranks),
            device,
            mix: self.mix.map(|mix| (mix, [stream::MIX, epoch as u64, rank as u64])),
            seed: self.seed,
            next: 0,
        }
    }
}

/// An epoch of the loader's batches, mixed (mixup, cutmix) when the run asks for it and moved
/// to the main device as they come.
pub(crate) struct DeviceBatches<'a> {
    epoch: EpochIter,
    device: &'a Device,
    /// The batch mixing and the seed path of this epoch (and process) that each batch's draws
    /// extend with its index.
    mix: Option<(BatchMix, [u64; 3])>,
    seed: u64,
    /// The index of the next batch.
    next: u64,
}

impl Iterator for DeviceBatches<'_> {
    type Item = Result<ImageBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = match self.epoch.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(e.into())),
        };
        let index = self.next;
        self.next += 1;
        let mixed = self.mix.and_then(|(mix, [stream, epoch, rank])| {
            mix.apply(&mut batch, derive(self.seed, &[stream, epoch, rank, index]))
        });
        let (images, labels) = batch.to_device(self.device);
        Some(Ok((images, Targets::new(labels, mixed, self.device))))
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
