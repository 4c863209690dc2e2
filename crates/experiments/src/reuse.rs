//! How every experiment gets its runs: trained once, reused when finished, resumed when
//! interrupted, so that repeating an experiment redoes nothing.

use std::path::Path;

use burn::tensor::Device;
use cnn_trainer::config::TrainConfig;
use cnn_trainer::error::Result;
use cnn_trainer::fit::{EpochMetrics, Progress};
use cnn_trainer::run::checkpoint;
use cnn_trainer::run::train_run;

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
    let finished =
        dir.join("summary.json").is_file() && checkpoint::info(dir).is_ok_and(|i| i.epoch == cfg.optim.epochs);
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

/// The result of the finished run in `dir`, from its checkpoint and `summary.json`.
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
