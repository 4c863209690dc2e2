//! The training loop: mini-batch SGD/Adam over an in-memory data set, evaluated every epoch.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor};
use std::sync::Arc;

use cnn_data_augment::{Batch, Loader, LoaderConfig, Preprocess, Source};
use cnn_models::ImageClassifier;
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, TrainConfig};
use crate::error::{Result, TrainError};

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
    /// Mean loss on the held-out set after the epoch.
    pub test_loss: f64,
    /// Top-1 accuracy on the held-out set after the epoch.
    pub test_accuracy: f64,
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
    },
    /// An epoch finished and was evaluated.
    Epoch(&'a EpochMetrics),
    /// Something the user should know that does not stop the run (e.g. skipped image files).
    Warning(String),
}

/// Loss and accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub accuracy: f64,
    /// Number of images evaluated.
    pub images: usize,
}

/// Trains `model` (built on `device.autodiff()`) on `train`, evaluating on `test` after every
/// epoch, and returns the trained model with the per-epoch metrics.
///
/// Batches come from a background [`Loader`] with `cfg.workers` threads, augmented with
/// `cfg.augment`; their order and contents depend only on `(cfg.seed, epoch)`, so the same seed
/// gives the same run whatever the number of workers.
pub fn fit<M: ImageClassifier>(
    mut model: M,
    train: Arc<dyn Source>,
    test: &dyn Source,
    pre: &Preprocess,
    cfg: &TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(M, Vec<EpochMetrics>)> {
    cfg.validate()?;
    if train.is_empty() {
        return Err(TrainError::Config("the training set is empty".into()));
    }
    let images = train.len();
    let loader_config = LoaderConfig {
        batch_size: cfg.batch_size,
        workers: cfg.workers,
        prefetch: 2 * cfg.workers.max(1),
        shuffle: true,
        seed: cfg.seed,
    };
    let loader = Loader::new(train, cfg.augment.clone(), pre.clone(), loader_config)?;
    let mut optimizer = build_optimizer(cfg);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut history = Vec::with_capacity(cfg.epochs);

    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let mut batches = loader.epoch(epoch as u64);
        let total = batches.total();
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        for (b, batch) in batches.by_ref().enumerate() {
            let b = b + 1;
            let batch = batch?;
            let n = batch.len();
            let (images, labels) = batch.to_device(device);
            let out = model.train_outputs(images);
            correct += count_correct(out.logits.clone(), labels.clone());
            let mut loss = loss_fn.forward(out.logits, labels.clone());
            for aux in out.aux {
                // GoogLeNet's auxiliary classifiers count 0.3 each, as in the paper.
                loss = loss + loss_fn.forward(aux, labels.clone()).mul_scalar(AUX_LOSS_WEIGHT);
            }
            let loss_value = loss.clone().into_scalar::<f32>();
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b,
                    loss: loss_value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(cfg.lr, model, grads);
            loss_sum += f64::from(loss_value) * n as f64;
            progress(Progress::Batch {
                epoch,
                batch: b,
                batches: total,
                loss: loss_value,
            });
        }

        let train_seconds = started.elapsed().as_secs_f64();
        let waited = batches.waited().as_secs_f64();
        drop(batches);
        let eval = evaluate(&model.valid(), test, pre, device)?;
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / images as f64,
            train_accuracy: correct as f64 / images as f64,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            train_seconds,
            images_per_second: images as f64 / train_seconds.max(1e-9),
            data_wait_share: waited / train_seconds.max(1e-9),
        };
        progress(Progress::Epoch(&metrics));
        history.push(metrics);
    }
    Ok((model, history))
}

/// Loss and top-1 accuracy of `model` (in inference mode) on `data`.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &dyn Source,
    pre: &Preprocess,
    device: &Device,
) -> Result<Evaluation> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut correct) = (0f64, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(EVAL_BATCH) {
        let samples = indices
            .iter()
            .map(|&i| data.get(i))
            .collect::<cnn_data_augment::Result<Vec<_>>>()?;
        let (images, labels) = Batch::from_images(&samples, pre)?.to_device(device);
        let logits = model.logits(images);
        correct += count_correct(logits.clone(), labels.clone());
        let loss = loss_fn.forward(logits, labels).into_scalar::<f32>();
        loss_sum += f64::from(loss) * indices.len() as f64;
    }
    let n = data.len().max(1) as f64;
    Ok(Evaluation {
        loss: loss_sum / n,
        accuracy: correct as f64 / n,
        images: data.len(),
    })
}

fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> usize {
    let predicted: Tensor<1, Int> = logits.argmax(1).squeeze_dim(1);
    predicted.equal(labels).int().sum().into_scalar::<i64>() as usize
}

/// The optimiser `cfg` asks for.
pub(crate) fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match cfg.optimizer {
        OptimizerKind::Adam => AdamConfig::new().init(),
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(cfg.momentum).with_dampening(0.0),
            ))
            .init(),
    }
}
