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

use cnn_trainer::atomic::write_file;
use cnn_trainer::config::{OptimizerKind, Schedule, TrainConfig};
use cnn_trainer::error::Result;
use cnn_trainer::fit::Progress;
use cnn_trainer::report::plot::{Series, line_chart};

pub use crate::reuse::NetResult;
use crate::reuse::train_or_reuse;

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
            workers: TrainConfig::new("x", "y").loader.workers,
            input_size: None,
            out: PathBuf::from("runs/degradation"),
        }
    }
}

impl DegradationOptions {
    /// The training config of one network.
    pub fn config(&self, net: &str) -> TrainConfig {
        TrainConfig::new(net, &self.dataset)
            .with_seed(self.seed)
            .with_subset(Some(self.subset))
            .with_data_dir(self.data_dir.clone())
            .with_input_size(self.input_size)
            .with_epochs(self.epochs)
            .with_batch_size(self.batch_size)
            .with_optimizer(OptimizerKind::Sgd)
            .with_lr(self.lr)
            .with_momentum(0.9)
            .with_weight_decay(1e-4)
            .with_schedule(Schedule::Cosine)
            .with_warmup(1.min(self.epochs.saturating_sub(1)))
            .with_workers(self.workers)
    }

    /// The plain and residual CIFAR twins of each depth (`plain20`, `resnet20`, `plain32`, …):
    /// what `--depths 20,32,44,56` trains, for the plot of final training error against depth.
    pub fn with_depths(self, depths: &[usize]) -> Self {
        let nets = depths
            .iter()
            .flat_map(|d| [format!("plain{d}"), format!("resnet{d}")])
            .collect();
        Self { nets, ..self }
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

/// Runs the experiment; `progress` gets the network's name with each report.
pub fn degradation(
    opts: &DegradationOptions,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<Vec<NetResult>> {
    // One experiment per folder at a time; each run inside also locks its own folder.
    let _lock = cnn_trainer::FolderLock::acquire(&opts.out)?;
    let mut results = Vec::new();
    for net in &opts.nets {
        let result = train_or_reuse(net, &opts.config(net), &opts.out.join(net), device, &mut |p| {
            progress(net, p)
        })?;
        results.push(result);
        write_outputs(&opts.out, &results)?;
    }
    Ok(results)
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
    write_depth_outputs(out, results)?;
    let series: Vec<Series> = results
        .iter()
        .map(|r| {
            let errors = r
                .history
                .iter()
                .map(|m| (m.epoch as f64, 100.0 * (1.0 - m.train_accuracy)));
            Series::new(r.net.clone(), errors.collect())
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

/// A CIFAR network's depth and whether it has shortcuts, from its registry name.
fn depth_and_kind(net: &str) -> Option<(usize, bool)> {
    match cnn_models::registry::lookup(net).ok()?.family {
        cnn_models::registry::Family::CifarResNet(depth, residual)
        | cnn_models::registry::Family::ResNet(depth, residual) => Some((depth, residual)),
        _ => None,
    }
}

/// One line per kind (plain, residual): `(layers, final training error %, test accuracy)` of
/// the finished networks, by depth.
pub fn by_depth(results: &[NetResult]) -> [(&'static str, Vec<(usize, f64, f64)>); 2] {
    let line = |residual: bool| {
        let mut points: Vec<(usize, f64, f64)> = results
            .iter()
            .filter_map(|r| {
                let (depth, kind) = depth_and_kind(&r.net)?;
                let last = r.history.last()?;
                (kind == residual).then_some((depth, 100.0 * (1.0 - last.train_accuracy), r.test_accuracy))
            })
            .collect();
        points.sort_by_key(|p| p.0);
        points
    };
    [("plain", line(false)), ("residual", line(true))]
}

/// `degradation-depth.csv` and `degradation-depth.png` (the course's figure: final training
/// error against the number of layers, plain vs residual), once some kind has two depths.
fn write_depth_outputs(out: &Path, results: &[NetResult]) -> Result<()> {
    let lines = by_depth(results);
    if lines.iter().all(|(_, points)| points.len() < 2) {
        return Ok(());
    }
    let mut csv = String::from("kind,layers,train_error,test_accuracy\n");
    for (kind, points) in &lines {
        for (layers, error, test) in points {
            csv.push_str(&format!("{kind},{layers},{:.6},{test:.6}\n", error / 100.0));
        }
    }
    write_file(&out.join("degradation-depth.csv"), csv.as_bytes())?;
    let series: Vec<Series> = lines
        .iter()
        .filter(|(_, points)| !points.is_empty())
        .map(|(kind, points)| {
            Series::new(
                *kind,
                points
                    .iter()
                    .map(|&(layers, error, _)| (layers as f64, error))
                    .collect(),
            )
        })
        .collect();
    line_chart(
        &out.join("degradation-depth.png"),
        "final training error against depth",
        "layers",
        "training error (%)",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_trainer::EpochMetrics;

    fn finished(net: &str, train_accuracy: f64, test_accuracy: f64) -> NetResult {
        let m = EpochMetrics {
            epoch: 1,
            train_loss: 1.0,
            train_accuracy,
            train_top5: 1.0,
            valid_loss: 1.0,
            valid_accuracy: test_accuracy,
            valid_top5: 1.0,
            lr: 0.1,
            train_seconds: 1.0,
            images_per_second: 1.0,
            data_wait_share: 0.0,
            ema_valid_loss: None,
            ema_valid_accuracy: None,
        };
        NetResult {
            net: net.into(),
            history: vec![m],
            test_accuracy,
        }
    }

    #[test]
    fn depths_name_plain_and_residual_twins_and_validate() {
        let opts = DegradationOptions::default().with_depths(&[20, 32, 110]);
        assert_eq!(
            opts.nets,
            ["plain20", "resnet20", "plain32", "resnet32", "plain110", "resnet110"]
        );
        opts.validate().unwrap();
        assert!(DegradationOptions::default().with_depths(&[21]).validate().is_err());
    }

    #[test]
    fn the_depth_plot_has_one_line_per_kind_sorted_by_layers() {
        let results = [
            finished("plain56", 0.66, 0.70),
            finished("resnet20", 0.885, 0.88),
            finished("plain20", 0.865, 0.86),
            finished("resnet56", 0.876, 0.83),
        ];
        let [(plain, p), (residual, r)] = by_depth(&results);
        assert_eq!((plain, residual), ("plain", "residual"));
        assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), [20, 56]);
        assert!((p[1].1 - 34.0).abs() < 1e-9 && (r[0].1 - 11.5).abs() < 1e-9);
        let dir = tempfile::tempdir().unwrap();
        write_outputs(dir.path(), &results).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("degradation-depth.csv")).unwrap();
        assert_eq!(csv.lines().nth(2), Some("plain,56,0.340000,0.700000"), "{csv}");
        assert!(
            std::fs::metadata(dir.path().join("degradation-depth.png"))
                .unwrap()
                .len()
                > 1000
        );
        // One depth of each kind: no depth plot.
        let dir = tempfile::tempdir().unwrap();
        write_outputs(dir.path(), &results[1..3]).unwrap();
        assert!(!dir.path().join("degradation-depth.png").exists());
    }
}
