//! Training only the head from backbone features cached on disk (`--freeze all
//! --cache-features`): the images pass through the frozen backbone once, then every epoch reads
//! features only. The cache format and its key are [`cnn_transfer::cache`]'s.

use cnn_models::Network;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use cnn_data_augment::seed::epoch_order;
use cnn_data_augment::{Batch, Preprocess, Source};
use cnn_models::Model;
use cnn_transfer::{CacheKey, CacheWriter, FeatureCache};
use sha2::{Digest, Sha256};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::eval::{Evaluation, evaluate_batches};
use crate::fit::epochs::{Batches, EpochLoop, Hooks, TrainState};
use crate::fit::loss::{Loss, Targets};
use crate::fit::metrics::Fitted;
use crate::fit::step::{Step, StepResult, finish_step};

/// Images per backbone batch when filling a cache.
const EXTRACT_BATCH: usize = 128;

/// SHA-256 of every label and pixel of `source`, in order: the data part of a cache key.
pub fn fingerprint(source: &dyn Source) -> Result<String> {
    let mut h = Sha256::new();
    for i in 0..source.len() {
        let (img, label) = source.get(i)?;
        h.update((label as u64).to_le_bytes());
        h.update([img.width as u8, img.height as u8, img.channels as u8]);
        h.update(&img.data);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Features of `source` through `model`'s backbone (in inference mode, on `device`): read from
/// the cache under `root` when one with this `key` exists, otherwise computed and written.
/// Returns the cache and whether it was built now.
pub fn cached_features(
    model: &Model,
    source: &dyn Source,
    pre: &Preprocess,
    device: &Device,
    root: &Path,
    key: CacheKey,
) -> Result<(FeatureCache, bool)> {
    if let Some(cache) = FeatureCache::open(root, &key)? {
        return Ok((cache, false));
    }
    std::fs::create_dir_all(root).map_err(|e| TrainError::Write {
        path: root.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut writer = CacheWriter::new(root, key)?;
    let all: Vec<usize> = (0..source.len()).collect();
    for chunk in all.chunks(EXTRACT_BATCH) {
        let samples = chunk
            .iter()
            .map(|&i| source.get(i))
            .collect::<cnn_data_augment::Result<Vec<_>>>()?;
        let batch = Batch::from_images(&samples, pre)?;
        let labels: Vec<u32> = batch.labels.iter().map(|&l| l as u32).collect();
        let (images, _) = batch.to_device(device);
        let features = model.backbone(images).ok_or_else(|| TrainError::Unsupported {
            model: "the model".into(),
            reason: "it has no backbone/head split to cache".into(),
        })?;
        let values = features
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Backend(format!("feature read-back: {e:?}")))?;
        writer.push(&values, &labels)?;
    }
    Ok((writer.finish()?, true))
}

/// Cached features in memory.
pub struct Features {
    /// `[len, dim]`, row-major.
    pub values: Vec<f32>,
    /// One label per row.
    pub labels: Vec<u32>,
    /// Row length.
    pub dim: usize,
}

impl Features {
    /// Reads a whole cache.
    pub fn read(cache: &FeatureCache) -> Result<Self> {
        let (values, labels) = cache.read_all()?;
        Ok(Self {
            values,
            labels,
            dim: cache.dim(),
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` without rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn batch(&self, rows: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let mut x = Vec::with_capacity(rows.len() * self.dim);
        for &r in rows {
            x.extend_from_slice(&self.values[r * self.dim..(r + 1) * self.dim]);
        }
        let y: Vec<i64> = rows.iter().map(|&r| i64::from(self.labels[r])).collect();
        (
            Tensor::from_data(TensorData::new(x, [rows.len(), self.dim]), device),
            Tensor::from_data(TensorData::new(y, [rows.len()]), device),
        )
    }
}

/// Loss, top-1 and top-5 of `model`'s head on cached features.
pub fn evaluate_head(model: &Model, data: &Features, device: &Device) -> Result<Evaluation> {
    let rows: Vec<usize> = (0..data.len()).collect();
    let batches = rows.chunks(1024).map(|rows| Ok(data.batch(rows, device)));
    Ok(evaluate_batches(batches, |x| model.head(x), None, device)?.summary)
}

/// The head's training step: forward through the head only, from a batch of feature rows.
pub(crate) struct HeadStep {
    loss: Loss,
}

impl Step<Model> for HeadStep {
    type Input = (Tensor<2>, Tensor<1, Int>);

    fn step(&self, model: &Model, (x, labels): Self::Input, weight: f32) -> Result<StepResult> {
        let logits = model.head(x);
        Ok(finish_step(
            model,
            (logits.clone(), Targets::plain(labels)),
            weight,
            |targets| self.loss.of(logits, targets),
        ))
    }
}

/// An epoch of feature rows in batches, shuffled from `(seed, epoch)`.
struct FeatureBatches<'a> {
    features: &'a Features,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    device: &'a Device,
}

impl Iterator for FeatureBatches<'_> {
    type Item = Result<(Tensor<2>, Tensor<1, Int>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.order.chunks(self.batch_size).nth(self.next)?;
        self.next += 1;
        Some(Ok(self.features.batch(rows, self.device)))
    }
}

impl Batches for FeatureBatches<'_> {
    type Input = (Tensor<2>, Tensor<1, Int>);

    fn total(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }
}

/// Trains `model`'s head (on the autodiff `device`) from cached features: the same loop,
/// schedule, optimiser, early stopping and hooks as [`crate::fit::fit_from`], with batches of
/// feature rows shuffled from `(seed, epoch)`.
pub fn fit_head(
    state: TrainState<Model>,
    (train, valid): (&Features, &Features),
    cfg: &TrainConfig,
    device: &Device,
    hooks: Hooks<'_, Model>,
) -> Result<Fitted<Model>> {
    let epochs = EpochLoop {
        cfg,
        device,
        step: HeadStep {
            loss: Loss::new(cfg.optim.label_smoothing, device),
        },
        batches: |epoch: usize| {
            Ok(FeatureBatches {
                features: train,
                order: epoch_order(train.len(), cfg.task.seed, epoch as u64),
                batch_size: cfg.optim.batch_size,
                next: 0,
                device,
            })
        },
        evaluate: |model: &Model| evaluate_head(model, valid, device),
    };
    epochs.run(state, hooks)
}
