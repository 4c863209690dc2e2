//! `cargo xtask experiment transfer` / `cnn experiment transfer`: the course's claim that
//! transfer wins when labels are few, measured.

use std::path::PathBuf;

use burn::tensor::Device;

use crate::config::TrainConfig;
use crate::error::Result;
use crate::experiment::{finished_result, train_or_reuse};
use crate::fit::Progress;
use crate::run::write_file;
use crate::train::train_run;

/// What the transfer experiment compares.
///
/// A backbone pretrained on one data set (e.g. LeNet-5 on Fashion-MNIST, a run's `model.bpk`) is
/// reused on another (the embedded digits) with only a few labelled images per class, three
/// ways: from scratch; the frozen backbone with a new softmax trained from cached features; and
/// fine-tuning with `--freeze auto`. All are evaluated on the same held-out test set.
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
    /// Labelled training images per class to try.
    pub per_class: Vec<usize>,
    /// Epochs of every run.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of every run.
    pub seed: u64,
    /// Input size in pixels [default: the rule of `cnn train`, which follows the weights].
    pub input_size: Option<usize>,
    /// Output folder.
    pub out: PathBuf,
}

/// The three ways of [`TransferOptions`].
pub const TRANSFER_METHODS: [&str; 3] = ["scratch", "frozen-cached", "finetune-auto"];

/// One cell of the transfer table.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferRow {
    /// Labelled images per class.
    pub per_class: usize,
    /// One of [`TRANSFER_METHODS`].
    pub method: String,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Training seconds of all epochs.
    pub train_seconds: f64,
}

impl TransferOptions {
    /// The config of one cell.
    pub fn config(&self, method: &str, per_class: usize, classes: usize) -> TrainConfig {
        let base = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            subset: Some(per_class * classes),
            valid_split: 0.0,
            input_size: self.input_size,
            classes: self.classes.clone(),
            data_dir: self.data_dir.clone(),
            ..TrainConfig::new(&self.model, &self.dataset)
        };
        match method {
            "scratch" => base,
            "frozen-cached" => TrainConfig {
                weights: Some(self.pretrained.clone()),
                new_head: true,
                freeze: cnn_transfer::FreezePolicy::All,
                cache_features: true,
                cache_dir: Some(self.out.join("features")),
                ..base
            },
            _ => TrainConfig {
                weights: Some(self.pretrained.clone()),
                new_head: true,
                freeze: cnn_transfer::FreezePolicy::Auto(cnn_transfer::AutoThresholds::default()),
                ..base
            },
        }
    }
}

/// Runs every cell (finished ones are reused) and writes `transfer.csv` and `transfer.md`.
pub fn transfer(
    opts: &TransferOptions,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<Vec<TransferRow>> {
    let classes = crate::run::load_data(&opts.dataset, opts.data_dir.as_deref(), opts.seed)?
        .only_classes(opts.classes.as_deref())?
        .class_names
        .len();
    // One experiment per folder at a time; each run inside also locks its own folder.
    let _lock = crate::lock::FolderLock::acquire(&opts.out)?;
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
        for method in TRANSFER_METHODS {
            let label = format!("{method}-{n}");
            let dir = opts.out.join(&label);
            let cfg = opts.config(method, n, classes);
            let (history, test_accuracy) = if dir.join("summary.json").is_file() {
                progress(
                    &label,
                    Progress::Warning(format!("{} is finished: reusing it", dir.display())),
                );
                let r = finished_result(&label, &dir)?;
                (r.history, r.test_accuracy)
            } else {
                let _ = std::fs::remove_dir_all(&dir);
                let report = train_run(&cfg, device, &dir, false, &mut |p| progress(&label, p))?;
                (report.history, report.test.accuracy)
            };
            rows.push(TransferRow {
                per_class: n,
                method: method.to_string(),
                test_accuracy,
                train_seconds: history.iter().map(|m| m.train_seconds).sum(),
            });
        }
    }
    let mut csv = String::from("per_class,method,test_accuracy,train_seconds\n");
    let mut md = format!(
        "| labelled images per class | {} |\n| ---: | ---: | ---: | ---: |\n",
        TRANSFER_METHODS.join(" | ")
    );
    for n in &opts.per_class {
        let cells: Vec<String> = TRANSFER_METHODS
            .iter()
            .map(|m| {
                rows.iter()
                    .find(|r| r.per_class == *n && r.method == *m)
                    .map_or("-".into(), |r| format!("{:.4}", r.test_accuracy))
            })
            .collect();
        md.push_str(&format!("| {n} | {} |\n", cells.join(" | ")));
    }
    for r in &rows {
        csv.push_str(&format!(
            "{},{},{:.6},{:.3}\n",
            r.per_class, r.method, r.test_accuracy, r.train_seconds
        ));
    }
    write_file(&opts.out.join("transfer.csv"), csv.as_bytes())?;
    write_file(&opts.out.join("transfer.md"), md.as_bytes())?;
    Ok(rows)
}
