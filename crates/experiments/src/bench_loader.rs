//! The data-pipeline benchmark: does training wait for data? One epoch is timed four ways —
//! loading only (batches built and dropped), compute only (batches built beforehand), and the
//! real thing with batches built on the training thread (0 workers) and by N workers.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;
use cnn_data_augment::{Batch, Loader, LoaderConfig, Preprocess, Source};
use cnn_models::{BuildOptions, registry};
use serde::{Deserialize, Serialize};

use cnn_trainer::config::TrainConfig;
use cnn_trainer::error::Result;
use cnn_trainer::fit::Targets;
use cnn_trainer::fit::build_optimizer;
use cnn_trainer::fit::step::{OneDevice, Step};

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
    let loader = |workers: usize| {
        let config = LoaderConfig {
            batch_size: cfg.optim.batch_size,
            workers,
            prefetch: cfg.clone().with_workers(workers).prefetch_batches(),
            shuffle: true,
            seed: cfg.task.seed,
        };
        Loader::new(train.clone(), cfg.augmentation.augment.clone(), pre.clone(), config)
    };
    let timing = |what: String, started: Instant, data_wait_share| PipelineTiming {
        what,
        seconds: started.elapsed().as_secs_f64(),
        data_wait_share,
    };
    let mut out = Vec::new();
    let started = Instant::now();
    let batches: Vec<Batch> = loader(0)?.epoch(1).collect::<cnn_data_augment::Result<_>>()?;
    out.push(timing("loading only, 1 thread".into(), started, None));
    if cfg.loader.workers > 0 {
        let started = Instant::now();
        for b in loader(cfg.loader.workers)?.epoch(1) {
            drop(b?);
        }
        out.push(timing(
            format!("loading only, {} workers", cfg.loader.workers),
            started,
            None,
        ));
    }

    let training = Training::new(cfg, num_classes, pre, device)?;
    // Two untimed steps first: the backend's first steps pay for allocation and kernel set-up,
    // which would otherwise land on whichever timing runs first.
    training.epoch(batches.iter().take(2).cloned().map(Ok))?;
    let started = Instant::now();
    training.epoch(batches.into_iter().map(Ok))?;
    out.push(timing("compute only (pre-built batches)".into(), started, None));

    let mut worker_counts = vec![0];
    if cfg.loader.workers > 0 {
        worker_counts.push(cfg.loader.workers);
    }
    for workers in worker_counts {
        let started = Instant::now();
        let mut epoch = loader(workers)?.epoch(1);
        training.epoch(epoch.by_ref().map(|b| b.map_err(Into::into)))?;
        let share = epoch.waited().as_secs_f64() / started.elapsed().as_secs_f64().max(1e-9);
        out.push(timing(format!("training, {workers} workers"), started, Some(share)));
    }
    Ok(out)
}

/// A fresh model and optimiser for each timed epoch, trained by the loop's own step.
struct Training<'a> {
    cfg: &'a TrainConfig,
    name: &'static str,
    options: BuildOptions,
    autodiff: Device,
}

impl<'a> Training<'a> {
    fn new(cfg: &'a TrainConfig, num_classes: usize, pre: &Preprocess, device: &Device) -> Result<Self> {
        Ok(Self {
            cfg,
            name: registry::lookup(&cfg.task.model)?.name,
            options: BuildOptions {
                num_classes,
                in_channels: Some(pre.channels),
            },
            autodiff: device.clone().autodiff(),
        })
    }

    /// One epoch over `batches` from a fresh model.
    fn epoch(&self, batches: impl Iterator<Item = Result<Batch>>) -> Result<()> {
        let mut model = registry::build(self.name, self.options, &self.autodiff)?;
        let mut optimizer = build_optimizer(self.cfg);
        let step = OneDevice::new(&self.autodiff, self.cfg.optim.label_smoothing);
        for batch in batches {
            let (images, labels) = batch?.to_device(&self.autodiff);
            let grads = step.step(&model, (images, Targets::plain(labels)), 1.0)?.grads;
            model = optimizer.step(self.cfg.optim.lr, model, grads);
        }
        Ok(())
    }
}
