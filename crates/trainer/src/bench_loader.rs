//! The data-pipeline benchmark: does training wait for data? One epoch is timed four ways —
//! loading only (batches built and dropped), compute only (batches built beforehand), and the
//! real thing with batches built on the training thread (0 workers) and by N workers.

use std::sync::Arc;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use cnn_data_augment::{Batch, Loader, LoaderConfig, Preprocess, Source};
use cnn_models::{BuildOptions, ImageClassifier, registry};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::Result;
use crate::fit::build_optimizer;

/// One timing of the pipeline benchmark.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineTiming {
    /// What was timed.
    pub what: String,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
    /// Share of the time the training thread waited for batches (epochs with training only).
    pub data_wait_share: Option<f64>,
}

/// Times one epoch of `cfg` on `train` (with `num_classes` classes) four ways (see the module
/// docs).
pub fn bench_pipeline(
    cfg: &TrainConfig,
    train: Arc<dyn Source>,
    num_classes: usize,
    pre: &Preprocess,
    device: &Device,
) -> Result<Vec<PipelineTiming>> {
    let info = registry::lookup(&cfg.model)?;
    let autodiff = device.clone().autodiff();
    let loader = |workers: usize| {
        let config = LoaderConfig {
            batch_size: cfg.batch_size,
            workers,
            prefetch: TrainConfig { workers, ..cfg.clone() }.prefetch_batches(),
            shuffle: true,
            seed: cfg.seed,
        };
        Loader::new(train.clone(), cfg.augment.clone(), pre.clone(), config)
    };
    let options = BuildOptions {
        num_classes,
        in_channels: Some(pre.channels),
    };
    let mut out = Vec::new();

    let started = Instant::now();
    let batches: Vec<Batch> = loader(0)?.epoch(1).collect::<cnn_data_augment::Result<_>>()?;
    out.push(PipelineTiming {
        what: "loading only, 1 thread".into(),
        seconds: started.elapsed().as_secs_f64(),
        data_wait_share: None,
    });
    if cfg.workers > 0 {
        let started = Instant::now();
        for b in loader(cfg.workers)?.epoch(1) {
            drop(b?);
        }
        let what = format!("loading only, {} workers", cfg.workers);
        out.push(PipelineTiming {
            what,
            seconds: started.elapsed().as_secs_f64(),
            data_wait_share: None,
        });
    }

    let step = |model: cnn_models::Model, batch: Batch, optim: &mut burn::optim::ModuleOptimizer| {
        let loss_fn = CrossEntropyLossConfig::new().init(&autodiff);
        let (images, labels) = batch.to_device(&autodiff);
        let loss = loss_fn.forward(ImageClassifier::logits(&model, images), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(cfg.lr, model, grads)
    };
    // Two untimed steps first: the backend's first steps pay for allocation and kernel set-up,
    // which would otherwise land on whichever timing runs first.
    let mut model = registry::build(info.name, options, &autodiff)?;
    let mut optim = build_optimizer(cfg);
    for batch in batches.iter().take(2) {
        model = step(model, batch.clone(), &mut optim);
    }
    let mut model = registry::build(info.name, options, &autodiff)?;
    let mut optim = build_optimizer(cfg);
    let started = Instant::now();
    for batch in batches {
        model = step(model, batch, &mut optim);
    }
    out.push(PipelineTiming {
        what: "compute only (pre-built batches)".into(),
        seconds: started.elapsed().as_secs_f64(),
        data_wait_share: None,
    });

    let mut worker_counts = vec![0];
    if cfg.workers > 0 {
        worker_counts.push(cfg.workers);
    }
    for workers in worker_counts {
        let mut model = registry::build(info.name, options, &autodiff)?;
        let mut optim = build_optimizer(cfg);
        let started = Instant::now();
        let mut epoch = loader(workers)?.epoch(1);
        for batch in epoch.by_ref() {
            model = step(model, batch?, &mut optim);
        }
        let seconds = started.elapsed().as_secs_f64();
        let share = epoch.waited().as_secs_f64() / seconds.max(1e-9);
        out.push(PipelineTiming {
            what: format!("training, {workers} workers"),
            seconds,
            data_wait_share: Some(share),
        });
    }
    Ok(out)
}
