//! Checkpoints in a run folder, written so that a crash at any moment leaves a usable one.
//!
//! ```text
//! run/checkpoint.json          {"epoch": 3, "folder": "checkpoint-0003", "history": [...]}
//! run/checkpoint-0003/model.bpk       weights and BatchNorm statistics (burnpack)
//! run/checkpoint-0003/optimizer.bpk   optimiser state (momenta, Adam moments)
//! run/checkpoint-0003/model-ema.bpk   with `ema`: the average of the weights
//! run/best.bpk                 weights of the epoch with the lowest validation loss
//! ```
//!
//! After epoch N the files go into `checkpoint-000N.tmp/`, which is flushed and renamed to
//! `checkpoint-000N/`; only then is `checkpoint.json` replaced (through a temporary file and a
//! rename), and older checkpoint folders removed. `checkpoint.json` therefore always names a
//! complete folder, and leftovers of an interrupted write (`*.tmp`) are ignored. The learning-
//! rate schedule and the random generators are functions of `(seed, epoch)`, so the epoch is
//! all the "scheduler and RNG state" a resume needs.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::atomic::write_file;
use crate::error::{Result, TrainError};
use crate::fit::EpochMetrics;

/// The pointer file of the newest complete checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

/// The average of the weights (`ema`), in a checkpoint and beside a run's `model.bpk`.
pub const EMA_FILE: &str = "model-ema.bpk";

/// What `checkpoint.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Epochs completed.
    pub epoch: usize,
    /// The folder (inside the run folder) holding `model.bpk` and `optimizer.bpk`.
    pub folder: String,
    /// Metrics of every completed epoch.
    pub history: Vec<EpochMetrics>,
}

/// A checkpoint read back: the model and optimiser to continue with.
pub struct Restored<M> {
    /// The model with the checkpoint's weights.
    pub model: M,
    /// The average of its weights, when the run keeps one (`model-ema.bpk`).
    pub ema: Option<M>,
    /// The optimiser with the checkpoint's state.
    pub optimizer: ModuleOptimizer,
    /// Metrics of the completed epochs.
    pub history: Vec<EpochMetrics>,
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {e}", path.display()))
}

/// Writes the checkpoint of the last epoch in `history` into `dir` (see the module docs), and
/// `best.bpk` when that epoch has the lowest validation loss so far.
pub fn save<M: Module>(
    dir: &Path,
    (model, ema): (&M, Option<&M>),
    optimizer: &ModuleOptimizer,
    history: &[EpochMetrics],
) -> Result<()> {
    tracing::debug!(dir = %dir.display(), epoch = history.len(), "checkpoint");
    let epoch = history.last().map_or(0, |m| m.epoch);
    let folder = format!("checkpoint-{epoch:04}");
    let tmp = dir.join(format!("{folder}.tmp"));
    let final_dir = dir.join(&folder);
    let _ = std::fs::remove_dir_all(&tmp);
    let model_bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| write_err(&tmp, e))?;
    let optim_bytes = optimizer.to_record().into_bytes().map_err(|e| write_err(&tmp, e))?;
    let ema_bytes = ema
        .map(|ema| ema.clone().into_record().into_bytes().map_err(|e| write_err(&tmp, e)))
        .transpose()?;
    let staged = std::fs::create_dir_all(&tmp)
        .map_err(|e| write_err(&tmp, e))
        .and_then(|()| write_file(&tmp.join("model.bpk"), &model_bytes))
        .map(|()| super::faults::in_checkpoint(epoch))
        .and_then(|()| write_file(&tmp.join("optimizer.bpk"), &optim_bytes))
        .and_then(|()| match &ema_bytes {
            Some(bytes) => write_file(&tmp.join(EMA_FILE), bytes),
            None => Ok(()),
        });
    if let Err(e) = staged {
        // The previous checkpoint stays the current one; free what this attempt took.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| write_err(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| write_err(&final_dir, e))?;

    let is_best = history
        .iter()
        .all(|m| m.epoch == epoch || m.valid_loss > history[history.len() - 1].valid_loss);
    if is_best {
        write_file(&dir.join("best.bpk"), &model_bytes)?;
    }

    let info = CheckpointInfo {
        epoch,
        folder: folder.clone(),
        history: history.to_vec(),
    };
    let json = serde_json::to_string_pretty(&info).expect("checkpoint info serialises");
    write_file(&dir.join(CHECKPOINT_FILE), json.as_bytes())?;

    // Older checkpoints are no longer pointed at.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("checkpoint-") && name != folder && !name.ends_with(".tmp") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

/// Reads `dir/checkpoint.json`, or says why there is none.
pub fn info(dir: &Path) -> Result<CheckpointInfo> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            TrainError::Checkpoint(format!(
                "{} has no {CHECKPOINT_FILE}: no epoch of that run finished, or it is not a run folder",
                dir.display()
            ))
        } else {
            read_err(&path, e)
        }
    })?;
    serde_json::from_str(&text).map_err(|e| read_err(&path, format!("not a checkpoint file ({e})")))
}

/// Loads the newest checkpoint of `dir` into `model` (built as the run built it) and
/// `optimizer` (built from the run's config).
///
/// burn materialises the optimiser's state on its *default* device (`BURN_DEVICE`, else the
/// first compiled-in backend in burn's order, GPU first) and moves it on the next step. When
/// training on another backend than that default, set `BURN_DEVICE` to it (the `cnn` binary
/// does), or the state makes a round trip through the default device.
pub fn restore<M: Module>(dir: &Path, model: M, optimizer: ModuleOptimizer) -> Result<Restored<M>> {
    let info = info(dir)?;
    let folder = dir.join(&info.folder);
    let ema_path = folder.join(EMA_FILE);
    let ema = ema_path
        .is_file()
        // Into an evaluation copy: a clone would share the model's batch-norm statistics.
        .then(|| load_weights(&ema_path, model.valid()))
        .transpose()?;
    let model = load_weights(&folder.join("model.bpk"), model)?;
    let optim_path = folder.join("optimizer.bpk");
    let bytes = std::fs::read(&optim_path).map_err(|e| read_err(&optim_path, e))?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| read_err(&optim_path, e))?;
    Ok(Restored {
        model,
        ema,
        optimizer: optimizer.load_record(record),
        history: info.history,
    })
}

/// Loads burnpack weights from `path` into `model`, naming the file in any error.
pub fn load_weights<M: Module>(path: &Path, model: M) -> Result<M> {
    let bytes = std::fs::read(path).map_err(|e| read_err(path, e))?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| read_err(path, e))?;
    model
        .try_load_record(record)
        .map_err(|e| read_err(path, format!("does not fit the model: {}", shorten(&e.to_string()))))
}

/// At most the first 300 characters of a long message (burn lists every missing tensor).
fn shorten(text: &str) -> String {
    const LIMIT: usize = 300;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{} … ({} more characters)", &text[..cut], text.len() - cut),
        None => text.to_string(),
    }
}

/// The weights file a finished or interrupted run offers for evaluation: `model.bpk` (final;
/// `model-ema.bpk` when the run's test chose the average of the weights), else the newest
/// checkpoint's.
pub fn run_weights(dir: &Path) -> Result<PathBuf> {
    // A run with `ema` names the weights its test used (the average when it validated better).
    let chosen = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|summary| summary["final_weights"].as_str().map(str::to_string));
    let name = if chosen.as_deref() == Some(EMA_FILE) {
        EMA_FILE
    } else {
        "model.bpk"
    };
    let final_weights = dir.join(name);
    if final_weights.is_file() {
        return Ok(final_weights);
    }
    let info = info(dir)?;
    Ok(dir.join(info.folder).join("model.bpk"))
}

/// Every float tensor of `model` (weights, biases and BatchNorm statistics), flattened, in the
/// module's visiting order: for comparing two models value by value.
pub fn parameter_values<M: Module>(model: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            self.0.push(data.try_into_vec::<f32>().unwrap_or_default());
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// Initialises every parameter of `model` now. burn initialises parameters lazily, on first
/// use; calling this right after seeding makes the initial weights a function of the seed alone,
/// whatever the code draws from the generator before the first forward pass.
pub fn materialize<M: Module>(model: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}
