//! `cargo xtask experiment transfer` / `cnn experiment transfer`: the course's claim that
//! transfer wins when labels are few, measured with the methods practitioners use, several
//! labelled subsets per cell.

use std::path::PathBuf;

use burn::tensor::Device;
use cnn_transfer::FreezePolicy;

pub mod method;
pub mod report;

use cnn_trainer::config::TrainConfig;
use cnn_trainer::error::{Result, TrainError};
use cnn_trainer::fit::Progress;
use cnn_trainer::run::train_run;

use crate::reuse::{finished_result, train_or_reuse};
pub use method::{Method, TransferRow};
use report::write_outputs;

/// What the transfer experiment compares.
///
/// A backbone pretrained on one task (e.g. ResNet-20 on five Fashion-MNIST classes, a run's
/// `model.bpk`) is reused on another (the other five classes) with only a few labelled images
/// per class, each [`Method`], for several labelled subsets (seeds). All are evaluated on the
/// target task's whole test set, which no run sees before its final evaluation: each run
/// validates on a stratified share of its own labelled images.
#[derive(Clone, Debug)]
pub struct TransferOptions {
    /// The pretrained weights (`.bpk` of a run, or torchvision `.pth`/`.safetensors`); with
    /// `pretrain`, the run it trains writes them.
    pub pretrained: PathBuf,
    /// Train the source network first (into `<out>/pretrain`, reused when finished) and take its
    /// `model.bpk` as the pretrained weights.
    pub pretrain: Option<TrainConfig>,
    /// Folder holding the data sets.
    pub data_dir: Option<PathBuf>,
    /// The target task's classes of `dataset` (e.g. 5–9 of Fashion-MNIST); `None`: all.
    pub classes: Option<Vec<usize>>,
    /// The model the weights belong to.
    pub model: String,
    /// The target data set (default `mnist-5k`: 1,000 held-out digits).
    pub dataset: String,
    /// Labelled images per class to try (training and validation together).
    pub per_class: Vec<usize>,
    /// The methods to compare, in the table's order.
    pub methods: Vec<Method>,
    /// Labelled subsets per cell: seeds `seed`, `seed + 1`, … (each draws other labelled images
    /// and another initial head).
    pub seeds: usize,
    /// The first seed.
    pub seed: u64,
    /// Epochs of every run.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam's peak learning rate of the new head when the backbone is transferred (the
    /// backbone's follows from it), the peak of `schedule`.
    pub lr: f64,
    /// Adam's peak rate for [`Method::Scratch`]: a whole fresh network.
    pub scratch_lr: f64,
    /// The learning-rate schedule of every run.
    pub schedule: cnn_trainer::Schedule,
    /// Adam's peak rate for [`Method::FrozenCached`], whose only layer is the new softmax on
    /// the backbone's features: it needs a far larger rate than a whole network.
    pub head_only_lr: f64,
    /// The backbone's share of `lr` when everything is fine-tuned.
    pub backbone_lr_scale: f64,
    /// With [`Method::Discriminative`]: each stage's rate as a share of its upper neighbour's.
    pub stage_lr_decay: f64,
    /// Share of each labelled subset held out (stratified) to validate on after every epoch.
    pub valid_split: f64,
    /// Input size in pixels [default: the rule of `cnn train`, which follows the weights].
    pub input_size: Option<usize>,
    /// Output folder.
    pub out: PathBuf,
}

impl TransferOptions {
    /// The experiment's defaults for `model` on `dataset`: every method, 10/50/100 images per
    /// class, 3 seeds from 42, 30 epochs, batch 16, Adam at a peak of 3e-3 from scratch and of
    /// 1e-3 for a transferred network's new head, with a
    /// cosine schedule (a constant rate leaves the last epoch's weights wherever the
    /// oscillation of the validation accuracy happens to be) and 0.3 for the softmax alone on
    /// cached features, the backbone at
    /// 0.3× when fine-tuned whole, halving stage by stage for discriminative rates, 20% of the
    /// labelled images for validation.
    pub fn new(model: impl Into<String>, dataset: impl Into<String>, pretrained: PathBuf) -> Self {
        Self {
            pretrained,
            pretrain: None,
            data_dir: None,
            classes: None,
            model: model.into(),
            dataset: dataset.into(),
            per_class: vec![10, 50, 100],
            methods: Method::ALL.to_vec(),
            seeds: 3,
            seed: 42,
            epochs: 30,
            batch_size: 16,
            lr: 1e-3,
            scratch_lr: 3e-3,
            schedule: cnn_trainer::Schedule::Cosine,
            head_only_lr: 0.3,
            backbone_lr_scale: 0.3,
            stage_lr_decay: 0.5,
            valid_split: 0.2,
            input_size: None,
            out: PathBuf::from("runs/transfer"),
        }
    }

    /// The config of one run; `top_freeze` is the stage [`Method::FinetuneTop`] freezes up to.
    pub fn config(&self, method: Method, per_class: usize, classes: usize, seed: u64, top_freeze: &str) -> TrainConfig {
        let base = TrainConfig::new(&self.model, &self.dataset)
            .with_seed(seed)
            .with_subset(Some(per_class * classes))
            .with_valid_split(self.valid_split)
            .with_input_size(self.input_size)
            .with_classes(self.classes.clone())
            .with_data_dir(self.data_dir.clone())
            .with_epochs(self.epochs)
            .with_batch_size(self.batch_size)
            .with_lr(self.lr)
            .with_schedule(self.schedule);
        let transferred = base
            .clone()
            .with_weights(Some(self.pretrained.clone()))
            .with_new_head(true);
        match method {
            Method::Scratch => base.with_lr(self.scratch_lr),
            Method::FrozenCached => transferred
                .with_lr(self.head_only_lr)
                .with_freeze(FreezePolicy::All)
                .with_cache_features(true)
                .with_cache_dir(Some(self.out.join("features"))),
            Method::FinetuneTop => transferred.with_freeze(FreezePolicy::UpTo(top_freeze.to_string())),
            Method::FinetuneAll => transferred.with_backbone_lr_scale(self.backbone_lr_scale),
            Method::Discriminative => transferred
                .with_backbone_lr_scale(self.backbone_lr_scale)
                .with_stage_lr_decay(self.stage_lr_decay),
        }
    }

    /// The seeds of every cell.
    pub fn seed_list(&self) -> Vec<u64> {
        (0..self.seeds as u64).map(|i| self.seed + i).collect()
    }
}

/// The stage that [`Method::FinetuneTop`] freezes up to: the one before the model's last.
fn top_freeze(model: &str) -> Result<String> {
    let device = Device::flex();
    let net = cnn_models::build(model, cnn_models::BuildOptions::classes(2), &device)?;
    let stages = cnn_transfer::stages(&net);
    match stages.len() {
        0 | 1 => Err(TrainError::Unsupported {
            model: model.to_string(),
            reason: format!(
                "{} stage(s), and fine-tuning the last stage needs at least two",
                stages.len()
            ),
        }),
        n => Ok(stages[n - 2].name.clone()),
    }
}

/// Runs every cell (finished runs are reused) and writes `transfer.csv`, `transfer.md` and
/// `transfer.png`.
pub fn transfer(
    opts: &TransferOptions,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<Vec<TransferRow>> {
    if opts.seeds == 0 || opts.methods.is_empty() || opts.per_class.is_empty() {
        return Err(TrainError::InvalidOption {
            option: if opts.seeds == 0 {
                "seeds"
            } else if opts.methods.is_empty() {
                "methods"
            } else {
                "per_class"
            },
            reason: "must be at least one (the transfer experiment needs a seed, a method and a size)".into(),
        });
    }
    let data = cnn_trainer::load_data(&opts.dataset, opts.data_dir.as_deref(), opts.seed)?
        .only_classes(opts.classes.as_deref())?;
    let classes = data.class_names.len();
    let top = top_freeze(&opts.model)?;
    // Every run's settings are checked before the first one trains.
    for &n in &opts.per_class {
        for &method in &opts.methods {
            opts.config(method, n, classes, opts.seed, &top).validate()?;
        }
    }
    // One experiment per folder at a time; each run inside also locks its own folder.
    let _lock = cnn_trainer::FolderLock::acquire(&opts.out)?;
    write_subsets(opts, &data.train, classes)?;
    let opts = &match &opts.pretrain {
        Some(cfg) => {
            let dir = opts.out.join("pretrain");
            train_or_reuse("pretrain", cfg, &dir, device, &mut |p| progress("pretrain", p))?;
            TransferOptions {
                pretrained: dir.join("model.bpk"),
                ..opts.clone()
            }
        }
        None => opts.clone(),
    };
    let mut rows = Vec::new();
    for &n in &opts.per_class {
        for seed in opts.seed_list() {
            for &method in &opts.methods {
                let label = format!("{}-{n}-s{seed}", method.name());
                let cfg = opts.config(method, n, classes, seed, &top);
                let (history, test_accuracy) = run_or_reuse(&label, &cfg, &opts.out.join(&label), device, progress)?;
                rows.push(TransferRow {
                    per_class: n,
                    method,
                    seed,
                    test_accuracy,
                    train_seconds: history.iter().map(|m| m.train_seconds).sum(),
                });
            }
            // The outputs grow with every finished subset, so a long experiment shows its
            // table so far (and loses nothing) if it stops.
            write_outputs(&opts.out, &opts.methods, &rows)?;
        }
    }
    Ok(rows)
}

/// `subsets.json`: the labelled images of every (size, seed) cell — the positions of its
/// training and validation images in the target task's training split (the data set's
/// training images of `classes`, in their order) — so that another framework
/// (`scripts/transfer_pytorch.py`) trains on exactly the same images.
fn write_subsets(
    opts: &TransferOptions,
    all_train: &std::sync::Arc<dyn cnn_data_augment::Source>,
    classes: usize,
) -> Result<()> {
    let mut cells = Vec::new();
    for &n in &opts.per_class {
        for seed in opts.seed_list() {
            let cfg = opts.config(Method::Scratch, n, classes, seed, "");
            let (train, valid) = cnn_trainer::run::labelled_split(&cfg, all_train.clone())?;
            cells.push(serde_json::json!({"per_class": n, "seed": seed, "train": train, "valid": valid}));
        }
    }
    let json = serde_json::json!({
        "dataset": opts.dataset,
        "classes": opts.classes,
        "positions": "in the training split of `dataset` restricted to `classes` (in the data set's order); labels 0.. follow the order of `classes`",
        "cells": cells,
    });
    cnn_trainer::atomic::write_file(&opts.out.join("subsets.json"), json.to_string().as_bytes())
}

/// A finished run's history and test accuracy, read back, or the run trained now.
fn run_or_reuse(
    label: &str,
    cfg: &TrainConfig,
    dir: &std::path::Path,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<(Vec<cnn_trainer::EpochMetrics>, f64)> {
    if dir.join("summary.json").is_file() {
        // Reused only when it was trained with these very settings.
        let stored = cnn_trainer::RunFolder::open(dir)?.config;
        // A run records the input size it chose when none was asked for.
        let wanted = cfg
            .clone()
            .with_input_size(cfg.task.input_size.or(stored.task.input_size));
        let changes = wanted.changes_for_resume(&stored);
        if changes.is_empty() && stored.optim.epochs == cfg.optim.epochs {
            progress(
                label,
                Progress::Warning(format!("{} is finished: reusing it", dir.display())),
            );
            let r = finished_result(label, dir)?;
            return Ok((r.history, r.test_accuracy));
        }
        progress(
            label,
            Progress::Warning(format!(
                "{} was trained with other settings ({}): training it again",
                dir.display(),
                if changes.is_empty() {
                    format!("`epochs` {}", stored.optim.epochs)
                } else {
                    changes.join(", ")
                }
            )),
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    let report = train_run(cfg, device, dir, false, &mut |p| progress(label, p))?;
    Ok((report.history, report.test.accuracy))
}
