//! `cargo xtask experiment degradation`: He et al. (2016), Fig. 1 and 6, in miniature. Plain
//! networks get *worse at fitting their training data* as they get deeper; residual networks of
//! the same depth do not. Trains plain-20, plain-56, ResNet-20 and ResNet-56 (CIFAR-style,
//! identical budget and seed) on a stratified subset of Fashion-MNIST, then writes
//! `degradation.csv` and `degradation.png` (training error per epoch, one curve per network).
//!
//! Each network gets its own run folder under the output folder; rerunning the experiment
//! skips finished runs and resumes interrupted ones.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::checkpoint;
use crate::config::{OptimizerKind, Schedule, TrainConfig};
use crate::error::Result;
use crate::fit::{EpochMetrics, Progress};
use crate::plot::{Series, line_chart};
use crate::run::write_file;
use crate::train::train_run;

/// What the experiment trains, and on what.
#[derive(Clone, Debug)]
pub struct DegradationOptions {
    /// Networks, in plot order.
    pub nets: Vec<String>,
    /// Data set name (default `fashion-mnist`).
    pub dataset: String,
    /// Data folder (default: the standard one).
    pub data_dir: Option<PathBuf>,
    /// Training images used (stratified sample).
    pub subset: usize,
    /// Epochs per network.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Peak learning rate (SGD, momentum 0.9, weight decay 1e-4, 1 warm-up epoch, cosine).
    pub lr: f64,
    /// Seed shared by all networks.
    pub seed: u64,
    /// Data workers.
    pub workers: usize,
    /// Input size in pixels [default: the networks' own, 32].
    pub input_size: Option<usize>,
    /// Output folder.
    pub out: PathBuf,
}

impl Default for DegradationOptions {
    /// 4,000 Fashion-MNIST images, 8 epochs, batch 64, lr 0.05: about 30 minutes on 2 cores.
    fn default() -> Self {
        Self {
            nets: ["plain20", "plain56", "resnet20", "resnet56"]
                .map(String::from)
                .to_vec(),
            dataset: "fashion-mnist".into(),
            data_dir: None,
            subset: 4000,
            epochs: 8,
            batch_size: 64,
            lr: 0.05,
            seed: 42,
            workers: TrainConfig::new("x", "y").workers,
            input_size: None,
            out: PathBuf::from("runs/degradation"),
        }
    }
}

impl DegradationOptions {
    /// The training config of one network.
    pub fn config(&self, net: &str) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer: OptimizerKind::Sgd,
            lr: self.lr,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            warmup: 1.min(self.epochs.saturating_sub(1)),
            seed: self.seed,
            subset: Some(self.subset),
            data_dir: self.data_dir.clone(),
            workers: self.workers,
            input_size: self.input_size,
            ..TrainConfig::new(net, &self.dataset)
        }
    }

    /// Checks every network's name and training config before any training starts.
    pub fn validate(&self) -> Result<()> {
        for net in &self.nets {
            self.config(net).validate()?;
            cnn_models::registry::lookup(net)?;
        }
        Ok(())
    }
}

/// One network's result.
#[derive(Clone, Debug)]
pub struct NetResult {
    /// Network name.
    pub net: String,
    /// Its per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// Its final test accuracy.
    pub test_accuracy: f64,
}

/// Runs the experiment; `progress` gets the network's name with each report.
pub fn degradation(
    opts: &DegradationOptions,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<Vec<NetResult>> {
    // One experiment per folder at a time; each run inside also locks its own folder.
    let _lock = crate::lock::FolderLock::acquire(&opts.out)?;
    let mut results = Vec::new();
    for net in &opts.nets {
        let result = train_or_reuse(net, &opts.config(net), &opts.out.join(net), device, &mut |p| progress(net, p))?;
        results.push(result);
        write_outputs(&opts.out, &results)?;
    }
    Ok(results)
}

/// Trains `cfg` into `dir`, or reuses the run there when it finished with the same number of
/// epochs (said through `progress`), or resumes it when it was interrupted: how every
/// experiment gets its runs, so that repeating an experiment redoes nothing.
pub(crate) fn train_or_reuse(
    net: &str,
    cfg: &TrainConfig,
    dir: &Path,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<NetResult> {
    let finished = dir.join("summary.json").is_file() && checkpoint::info(dir).is_ok_and(|i| i.epoch == cfg.epochs);
    if finished {
        progress(Progress::Warning(format!("{} is finished: reusing it", dir.display())));
        return finished_result(net, dir);
    }
    let resume = checkpoint::info(dir).is_ok();
    let report = train_run(cfg, device, dir, resume, progress)?;
    Ok(NetResult {
        net: net.to_string(),
        history: report.history,
        test_accuracy: report.test.accuracy,
    })
}

pub(crate) fn finished_result(net: &str, dir: &Path) -> Result<NetResult> {
    let info = checkpoint::info(dir)?;
    let summary: serde_json::Value = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok(NetResult {
        net: net.to_string(),
        history: info.history,
        test_accuracy: summary["test_accuracy"].as_f64().unwrap_or(f64::NAN),
    })
}

/// `degradation.csv` and `degradation.png` for the networks done so far.
fn write_outputs(out: &Path, results: &[NetResult]) -> Result<()> {
    let mut csv = String::from("net,epoch,train_error,valid_error,train_loss,valid_loss\n");
    for r in results {
        for m in &r.history {
            csv.push_str(&format!(
                "{},{},{:.6},{:.6},{:.6},{:.6}\n",
                r.net,
                m.epoch,
                1.0 - m.train_accuracy,
                1.0 - m.valid_accuracy,
                m.train_loss,
                m.valid_loss
            ));
        }
    }
    write_file(&out.join("degradation.csv"), csv.as_bytes())?;
    let series: Vec<Series> = results
        .iter()
        .map(|r| Series {
            name: r.net.clone(),
            points: r
                .history
                .iter()
                .map(|m| (m.epoch as f64, 100.0 * (1.0 - m.train_accuracy)))
                .collect(),
        })
        .collect();
    line_chart(
        &out.join("degradation.png"),
        "training error: plain vs residual networks",
        "epoch",
        "training error (%)",
        &series,
    )
}
