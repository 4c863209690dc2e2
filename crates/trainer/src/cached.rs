//! Training only the head from backbone features cached on disk (`--freeze all
//! --cache-features`): the images pass through the frozen backbone once, then every epoch reads
//! features only. The cache format and its key are [`cnn_transfer::cache`]'s.

use std::path::Path;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use cnn_data_augment::{Batch, Preprocess, Source};
use cnn_models::Model;
use cnn_transfer::{CacheKey, CacheWriter, FeatureCache};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::fit::{EpochHook, EpochMetrics, Evaluation, Fitted, Progress, count_correct, early_stop};
use crate::schedule::learning_rate;

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
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
        let features = model
            .backbone(images)
            .ok_or_else(|| TrainError::Config("this model has no backbone/head split to cache".into()))?;
        let values = features
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TrainError::Config(format!("feature read-back: {e:?}")))?;
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
pub fn evaluate_head(model: &Model, data: &Features, device: &Device) -> Evaluation {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut top1, mut top5) = (0f64, 0usize, 0usize);
    let rows: Vec<usize> = (0..data.len()).collect();
    for chunk in rows.chunks(1024) {
        let (x, y) = data.batch(chunk, device);
        let logits = model.head(x);
        let (c1, c5) = count_correct(logits.clone(), y.clone());
        (top1, top5) = (top1 + c1, top5 + c5);
        loss_sum += f64::from(loss_fn.forward(logits, y).into_scalar::<f32>()) * chunk.len() as f64;
    }
    let n = data.len().max(1) as f64;
    Evaluation {
        loss: loss_sum / n,
        accuracy: top1 as f64 / n,
        top5: top5 as f64 / n,
        images: data.len(),
    }
}

/// Trains `model`'s head (on the autodiff `device`) from cached features: the same schedule,
/// optimiser, early stopping and per-epoch hook as [`crate::fit::fit_from`], with batches of
/// feature rows shuffled from `(seed, epoch)`.
#[allow(clippy::too_many_arguments)]
pub fn fit_head(
    mut model: Model,
    mut optimizer: ModuleOptimizer,
    mut history: Vec<EpochMetrics>,
    train: &Features,
    valid: &Features,
    cfg: &TrainConfig,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
    after_epoch: &mut EpochHook<'_, Model>,
) -> Result<Fitted<Model>> {
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    for epoch in history.len() + 1..=cfg.epochs {
        if early_stop(&history, cfg.early_stop).is_some() {
            break;
        }
        let started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            cfg.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9),
        ));
        let batches: Vec<&[usize]> = order.chunks(cfg.batch_size).collect();
        let (mut loss_sum, mut top1, mut top5, mut lr) = (0f64, 0usize, 0usize, cfg.lr);
        for (b, rows) in batches.iter().enumerate() {
            if crate::interrupt::stop_requested() {
                return Err(crate::fit::interrupted(epoch, b, &history));
            }
            let (x, y) = train.batch(rows, device);
            let logits = model.head(x);
            let (c1, c5) = count_correct(logits.clone(), y.clone());
            (top1, top5) = (top1 + c1, top5 + c5);
            let loss = loss_fn.forward(logits, y);
            let value = loss.clone().into_scalar::<f32>();
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: value,
                });
            }
            lr = learning_rate(cfg, epoch, b, batches.len());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
            loss_sum += f64::from(value) * rows.len() as f64;
            progress(Progress::Batch {
                epoch,
                batch: b + 1,
                batches: batches.len(),
                loss: value,
                lr,
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let eval = evaluate_head(&model, valid, device);
        let n = train.len().max(1) as f64;
        history.push(EpochMetrics {
            epoch,
            train_loss: loss_sum / n,
            train_accuracy: top1 as f64 / n,
            train_top5: top5 as f64 / n,
            valid_loss: eval.loss,
            valid_accuracy: eval.accuracy,
            valid_top5: eval.top5,
            lr,
            train_seconds,
            images_per_second: n / train_seconds.max(1e-9),
            data_wait_share: 0.0,
        });
        after_epoch(&model, &optimizer, &history)?;
        progress(Progress::Epoch(history.last().expect("just pushed")));
    }
    Ok(Fitted::new(model, optimizer, history, cfg))
}
