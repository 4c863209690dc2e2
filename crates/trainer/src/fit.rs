//! The training loop: mini-batch SGD/Adam/AdamW over any [`Source`], validated every epoch.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor};
use std::sync::Arc;

use cnn_data_augment::{Batch, Loader, LoaderConfig, Preprocess, Source};
use cnn_models::ImageClassifier;
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, TrainConfig};
use crate::error::{Result, TrainError};
use crate::parallel::{DataParallel, StepResult};
use crate::schedule::learning_rate;

/// Weight of each auxiliary classifier's loss (Szegedy et al. 2015).
pub const AUX_LOSS_WEIGHT: f32 = 0.3;

/// Images per batch when evaluating (no gradients, so larger batches are cheap).
const EVAL_BATCH: usize = 250;

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

/// Loss and accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub accuracy: f64,
    /// Top-5 accuracy in [0, 1] (top-k with k = classes when fewer than 5).
    pub top5: f64,
    /// Number of images evaluated.
    pub images: usize,
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

/// Trains `model` (built on `device.autodiff()`) on `train`, validating on `valid` after every
/// epoch, and returns the trained model with the per-epoch metrics.
///
/// Batches come from a background [`Loader`] with `cfg.workers` threads, augmented with
/// `cfg.augment`; their order and contents depend only on `(cfg.seed, epoch)`, so the same seed
/// gives the same run whatever the number of workers.
pub fn fit<M: ImageClassifier + Send + 'static>(
    model: M,
    train: Arc<dyn Source>,
    valid: &dyn Source,
    pre: &Preprocess,
    cfg: &TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(M, Vec<EpochMetrics>)> {
    let fitted = fit_from(
        model,
        build_optimizer(cfg),
        Vec::new(),
        train,
        valid,
        pre,
        cfg,
        std::slice::from_ref(device),
        progress,
        &mut |_, _, _| Ok(()),
    )?;
    Ok((fitted.model, fitted.history))
}

/// [`fit`], continuing after the epochs in `history` with `optimizer`'s state (a resumed run),
/// calling `after_epoch` after each epoch, and stopping early when `cfg.early_stop` says so.
///
/// Every source of randomness is a function of `(cfg.seed, epoch)`: batch order and
/// augmentation by construction, and the backend's generator (dropout) is re-seeded at the start
/// of every epoch. So a run resumed from a checkpoint repeats an uninterrupted run exactly.
///
/// `devices` are autodiff devices; the model lives on the first. With more than one, every
/// batch is split over them and trained data-parallel (see [`crate::parallel`]).
#[allow(clippy::too_many_arguments)]
pub fn fit_from<M: ImageClassifier + Send + 'static>(
    mut model: M,
    mut optimizer: ModuleOptimizer,
    mut history: Vec<EpochMetrics>,
    train: Arc<dyn Source>,
    valid: &dyn Source,
    pre: &Preprocess,
    cfg: &TrainConfig,
    devices: &[Device],
    progress: &mut dyn FnMut(Progress<'_>),
    after_epoch: &mut EpochHook<'_, M>,
) -> Result<Fitted<M>> {
    cfg.validate()?;
    let device = devices
        .first()
        .ok_or_else(|| TrainError::Config("no device to train on".into()))?;
    let parallel = match devices.len() {
        1 => None,
        _ => Some(DataParallel::<M>::new(devices)?),
    };
    if train.is_empty() {
        return Err(TrainError::Config("the training set is empty".into()));
    }
    let images = train.len();
    let loader_config = LoaderConfig {
        batch_size: cfg.batch_size,
        workers: cfg.workers,
        prefetch: cfg.prefetch_batches(),
        shuffle: true,
        seed: cfg.seed,
    };
    let loader = Loader::new(train, cfg.augment.clone(), pre.clone(), loader_config)?;
    let loss_fn = CrossEntropyLossConfig::new().init(device);

    for epoch in history.len() + 1..=cfg.epochs {
        if early_stop(&history, cfg.early_stop).is_some() {
            break;
        }
        device.seed(epoch_seed(cfg.seed, epoch));
        let started = Instant::now();
        let mut batches = loader.epoch(epoch as u64);
        let total = batches.total();
        let (mut loss_sum, mut correct, mut top5) = (0f64, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (b, batch) in batches.by_ref().enumerate() {
            if crate::interrupt::stop_requested() {
                return Err(interrupted(epoch, b, &history));
            }
            let batch = batch?;
            let n = batch.len();
            let (images, labels) = batch.to_device(device);
            let step = match &parallel {
                Some(parallel) => parallel.step(&model, images, labels)?,
                None => single_step(&model, images, labels, &loss_fn),
            };
            correct += step.correct;
            top5 += step.top5;
            let loss_value = step.loss;
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: loss_value,
                });
            }
            lr = learning_rate(cfg, epoch, b, total);
            model = optimizer.step(lr, model, step.grads);
            loss_sum += f64::from(loss_value) * n as f64;
            progress(Progress::Batch {
                epoch,
                batch: b + 1,
                batches: total,
                loss: loss_value,
                lr,
            });
        }

        let train_seconds = started.elapsed().as_secs_f64();
        let waited = batches.waited().as_secs_f64();
        drop(batches);
        let eval = evaluate(&model.valid(), valid, pre, device)?;
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / images as f64,
            train_accuracy: correct as f64 / images as f64,
            train_top5: top5 as f64 / images as f64,
            valid_loss: eval.loss,
            valid_accuracy: eval.accuracy,
            valid_top5: eval.top5,
            lr,
            train_seconds,
            images_per_second: images as f64 / train_seconds.max(1e-9),
            data_wait_share: waited / train_seconds.max(1e-9),
        };
        history.push(metrics);
        after_epoch(&model, &optimizer, &history)?;
        progress(Progress::Epoch(history.last().expect("just pushed")));
    }
    Ok(Fitted::new(model, optimizer, history, cfg))
}

/// The error that ends a loop stopped by [`crate::interrupt`] before batch `batches + 1` of
/// `epoch`; the caller that knows the run folder fills in `dir`.
pub(crate) fn interrupted(epoch: usize, batches: usize, history: &[EpochMetrics]) -> TrainError {
    TrainError::Interrupted {
        dir: std::path::PathBuf::new(),
        epoch,
        batches,
        checkpoint_epoch: history.len(),
    }
}

/// Cross-entropy of the logits, plus each auxiliary classifier's weighted by
/// [`AUX_LOSS_WEIGHT`] (GoogLeNet's, as in the paper).
pub(crate) fn training_loss(
    out: cnn_models::TrainOutput,
    labels: Tensor<1, Int>,
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
) -> Tensor<1> {
    let mut loss = loss_fn.forward(out.logits, labels.clone());
    for aux in out.aux {
        loss = loss + loss_fn.forward(aux, labels.clone()).mul_scalar(AUX_LOSS_WEIGHT);
    }
    loss
}

/// Forward, backward and the batch's statistics on one device.
fn single_step<M: ImageClassifier>(
    model: &M,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    loss_fn: &burn::nn::loss::CrossEntropyLoss,
) -> StepResult {
    let out = model.train_outputs(images);
    let (correct, top5) = count_correct(out.logits.clone(), labels.clone());
    let loss = training_loss(out, labels, loss_fn);
    let value = loss.clone().into_scalar::<f32>();
    StepResult {
        grads: GradientsParams::from_grads(loss.backward(), model),
        loss: value,
        correct,
        top5,
    }
}

/// The seed of the backend's generator for `epoch`: a function of the run's seed and the epoch
/// only, so that a resumed run draws what an uninterrupted one would.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (epoch as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// `Some(best epoch)` when the validation loss has not improved for `patience` epochs.
pub fn early_stop(history: &[EpochMetrics], patience: Option<usize>) -> Option<usize> {
    let patience = patience?;
    let best = history.iter().min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss))?;
    (history.len() - best.epoch.min(history.len()) >= patience).then_some(best.epoch)
}

/// Loss and top-1 accuracy of `model` (in inference mode) on `data`.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &dyn Source,
    pre: &Preprocess,
    device: &Device,
) -> Result<Evaluation> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut correct, mut top5) = (0f64, 0usize, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(EVAL_BATCH) {
        let samples = indices
            .iter()
            .map(|&i| data.get(i))
            .collect::<cnn_data_augment::Result<Vec<_>>>()?;
        let (images, labels) = Batch::from_images(&samples, pre)?.to_device(device);
        let logits = model.logits(images);
        let (c1, c5) = count_correct(logits.clone(), labels.clone());
        correct += c1;
        top5 += c5;
        let loss = loss_fn.forward(logits, labels).into_scalar::<f32>();
        loss_sum += f64::from(loss) * indices.len() as f64;
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        top5: top5 as f64 / n,
        images: data.len(),
    })
}

/// `(top-1, top-5)` correct predictions in a batch; top-5 counts a label whose logit is beaten
/// by fewer than 5 others (by fewer than all others when there are at most 5 classes).
pub(crate) fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> (usize, usize) {
    let [batch, classes] = logits.dims();
    let predicted: Tensor<1, Int> = logits.clone().argmax(1).squeeze_dim(1);
    let top1 = predicted.equal(labels.clone()).int().sum().into_scalar::<i64>() as usize;
    let k = classes.min(5) as i64;
    let own = logits
        .clone()
        .gather(1, labels.unsqueeze_dim(1))
        .expand([batch, classes]);
    let beaten_by = logits.greater(own).int().sum_dim(1);
    let top5 = beaten_by.lower_elem(k).int().sum().into_scalar::<i64>() as usize;
    (top1, top5)
}

/// The optimiser `cfg` asks for.
pub fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let decay = (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
    match cfg.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::AdamW => AdamWConfig::new().with_weight_decay(cfg.weight_decay as f32).init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(cfg.momentum).with_dampening(0.0),
            ))
            .init(),
    }
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

    #[test]
    fn top1_and_top5_counts() {
        let device = Device::flex();
        // 3 samples, 6 classes; label ranks: 1st, 6th (last), 3rd.
        let logits = Tensor::<2>::from_floats(
            [
                [9.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                [1.0, 6.0, 5.0, 2.0, 3.0, 4.0],
            ],
            &device,
        );
        let labels = Tensor::<1, Int>::from_ints([0, 0, 5], &device);
        assert_eq!(count_correct(logits, labels), (1, 2));
    }
}
