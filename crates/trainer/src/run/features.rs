//! `--cache-features`: the frozen backbone's features of a run's splits, read from the
//! feature cache or computed into it.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use cnn_models::{Model, registry};
use cnn_transfer::CacheKey;

use super::data::RunData;
use super::folder::pretty;
use crate::config::TrainConfig;
use crate::error::Result;
use crate::eval::cached::{Features, cached_features, fingerprint};
use crate::fit::Progress;

/// The frozen backbone's features of the training, validation and test images, read from the
/// cache or computed into it (the backbone runs once per split).
pub(super) fn split_features(
    cfg: &TrainConfig,
    data: &RunData,
    model: &Model,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<[Features; 3]> {
    let root = cfg
        .transfer
        .cache_dir
        .clone()
        .unwrap_or_else(|| cnn_data_augment::datasets::default_data_dir().join("features"));
    let weights_id = match &cfg.transfer.weights {
        Some(w) => format!("sha256 {}", cnn_transfer::cache::file_sha256(w)?),
        None => format!("random initialisation, seed {}", cfg.task.seed),
    };
    let base = CacheKey::default()
        .with("model", registry::lookup(&cfg.task.model)?.name)
        .with("weights", weights_id)
        .with("preprocess", pretty(&data.pre))
        .with("dataset", cfg.task.dataset.clone());
    let inference = model.valid();
    let splits = [
        ("train", &data.train),
        ("valid", &data.valid),
        ("test", &data.loaded.test),
    ];
    let mut features = splits.into_iter().map(|(split, source)| {
        let key = base
            .clone()
            .with("split", split)
            .with("data_sha256", fingerprint(&**source)?);
        let started = Instant::now();
        let (cache, built) = cached_features(&inference, &**source, &data.pre, device, &root, key)?;
        tracing::info!(split, built, rows = cache.len(), dim = cache.dim(), dir = %cache.dir().display(), "features");
        progress(Progress::Note(format!(
            "{split} features ({} x {}): {} {} in {:.1} s",
            cache.len(),
            cache.dim(),
            if built { "computed into" } else { "read from the cache" },
            cache.dir().display(),
            started.elapsed().as_secs_f64()
        )));
        Features::read(&cache)
    });
    let mut next = || features.next().expect("three splits");
    Ok([next()?, next()?, next()?])
}
