//! A complete run: resolve names, train with a checkpoint after every epoch, evaluate, and
//! write the run folder (see [`super::folder`] for its files). A run can be resumed from its last
//! checkpoint and then ends exactly as an uninterrupted run would.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use cnn_models::{Model, precision, registry};

use super::checkpoint::{self, CHECKPOINT_FILE};
use super::data::RunData;
use super::features::split_features;
use super::folder::{RunReport, pretty};
use super::lock::FolderLock;
use super::start::{build_model, start_state};
use crate::atomic::write_file;
use crate::config::TrainConfig;
use crate::distributed::collective::{Collective, average_running_statistics, evaluate_sharded};
use crate::error::{Result, TrainError};
use crate::eval::cached::{Features, evaluate_head, fit_head};
use crate::eval::{TestViews, evaluate_views};
use crate::fit::{EpochMetrics, Fitted, Hooks, Progress, Stop, TrainData, TrainState, fit_across};
use crate::report::csv::metrics_csv;
use crate::report::plot;

/// A run resumes only as the model it was trained as (its `config.json` says which).
fn check_same_model(dir: &Path, cfg: &TrainConfig) -> Result<()> {
    let path = dir.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    // Only the model name is read, so that configs written by other versions still resume.
    let trained: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: not a run's config: {e}", path.display())))?;
    let Some(trained) = trained.get("model").and_then(|m| m.as_str()) else {
        return Ok(());
    };
    let (was, now) = (
        registry::lookup(trained).map(|m| m.name).unwrap_or(trained),
        registry::lookup(&cfg.task.model)?.name,
    );
    if was != now {
        return Err(TrainError::Checkpoint(format!(
            "{} is a run of {was}; it cannot be resumed as {now} (resume it with its own settings, or start a new run with `out`)",
            dir.display()
        )));
    }
    Ok(())
}

/// Trains `cfg.model` on `cfg.dataset` on `device` and writes the run into `dir`.
///
/// With `resume`, `dir` must hold a run's checkpoint: training continues after its last
/// completed epoch until `cfg.epochs` in total (`cfg` is normally the run's own `config.json`,
/// with `epochs` possibly raised). Without, `dir` must not hold a run yet.
pub fn train_run(
    cfg: &TrainConfig,
    device: &Device,
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    train_run_on(cfg, std::slice::from_ref(device), dir, resume, progress)
}

/// [`train_run`] on several devices: the model lives on the first, and every training batch is
/// split over all of them (data-parallel, see [`crate::distributed::parallel`]). Evaluation, feature caching
/// and checkpoints use the first device.
///
/// The stages: data → model (and weights, freezing) → the run folder's settings → optimiser
/// or resume → training → the finished folder. Everything that can refuse the settings runs
/// before the run folder is created.
pub fn train_run_on(
    cfg: &TrainConfig,
    devices: &[Device],
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    train_run_with(cfg, (devices, None), dir, resume, progress)
}

/// [`train_run_on`] as one process of `group`, a group of processes that train one model
/// together (data-parallel, see [`crate::distributed::collective`]): every process calls it with the same
/// settings. Each trains on its slice of every batch (split again over its `devices` when it has
/// several) and evaluates its share of the images; rank 0 alone
/// writes the run folder. Batch norm's running statistics are averaged over the processes
/// before every checkpoint. With `resume`, every process reads the checkpoint in `dir`, so
/// processes on several machines need `dir` on a shared file system; any number of processes
/// may resume a run (the global batches do not depend on it).
pub fn train_run_across(
    cfg: &TrainConfig,
    devices: &[Device],
    group: &dyn Collective,
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    if cfg.transfer.cache_features {
        return Err(TrainError::InvalidSetting {
            setting: "cache_features",
            reason: "trains in one process; leave it out of a distributed run".into(),
        });
    }
    train_run_with(cfg, (devices, Some(group)), dir, resume, progress)
}

/// The one body of [`train_run_on`] and [`train_run_across`], in the run's precision.
fn train_run_with(
    cfg: &TrainConfig,
    (devices, group): (&[Device], Option<&dyn Collective>),
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    // On this thread (and the replica threads the run starts), not process-wide: runs and tests
    // side by side in one process each keep their own.
    precision::with(cfg.task.precision, || {
        train_run_in(cfg, (devices, group), dir, resume, progress)
    })
}

fn train_run_in(
    cfg: &TrainConfig,
    (devices, group): (&[Device], Option<&dyn Collective>),
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    let started = Instant::now();
    let device = check_settings(cfg, devices)?;
    let root = group.is_none_or(|g| g.rank() == 0);
    tracing::info!(model = %cfg.task.model, dataset = %cfg.task.dataset, dir = %dir.display(), resume, devices = devices.len(), "training run");
    // An existing folder is claimed at once, so a second process stops before doing any work.
    let mut lock = (root && dir.is_dir()).then(|| FolderLock::acquire(dir)).transpose()?;
    let data = RunData::load(cfg, progress)?;
    if root || resume {
        check_folder(dir, resume, cfg)?;
    }
    let autodiff = device.clone().autodiff();
    let (model, frozen, rates) = build_model(cfg, &data, &autodiff, progress)?;
    // Only now, with the model built and its weights loaded, does the run folder appear.
    if root && lock.is_none() {
        lock = Some(FolderLock::acquire(dir)?);
    }
    // The size is recorded as trained, so a resume or a later run from these weights uses it.
    let mut recorded = cfg.clone();
    recorded.task.input_size = Some(data.pre.size);
    if root {
        write_file(&dir.join("config.json"), pretty(&recorded).as_bytes())?;
        write_file(&dir.join("preprocess.json"), pretty(&data.pre).as_bytes())?;
        write_file(&dir.join("classes.json"), pretty(&data.loaded.class_names).as_bytes())?;
    }
    let state = start_state(dir, resume, cfg, model, (&frozen, rates))?;
    let (fitted, test_features) = match fit_run(cfg, &data, state, (dir, devices, group), progress) {
        Ok(done) => done,
        Err(e @ TrainError::Diverged { .. }) => {
            if let Ok(last) = checkpoint::info(dir) {
                progress(Progress::Warning(format!(
                    "the last good checkpoint (epoch {}) is kept in {}",
                    last.epoch,
                    dir.display()
                )));
            }
            return Err(e);
        }
        Err(e) => return Err(e.in_run_folder(dir)),
    };
    // The average of the weights is tested instead when it validated better after the last epoch.
    let last = fitted.history.last();
    let ema_better = last.and_then(|m| m.ema_valid_accuracy.map(|a| a > m.valid_accuracy)) == Some(true);
    let (inference, tested) = match &fitted.ema {
        Some(ema) if ema_better => (ema.valid(), checkpoint::EMA_FILE),
        _ => (fitted.model.valid(), "model.bpk"),
    };
    let views = TestViews::of(&cfg.task);
    let test = match (&test_features, group) {
        (Some(f), _) => evaluate_head(&inference, f, device)?,
        (None, Some(group)) => evaluate_sharded(group, &*data.loaded.test, |shard| {
            evaluate_views(&inference, shard, &data.pre, views, device)
        })?,
        (None, None) => evaluate_views(&inference, &*data.loaded.test, &data.pre, views, device)?,
    };
    let report = finish_run(dir, fitted, (test, tested), (started, root))?;
    drop(lock);
    Ok(report)
}

/// The first device, once the settings are consistent with the devices.
fn check_settings<'a>(cfg: &TrainConfig, devices: &'a [Device]) -> Result<&'a Device> {
    cfg.validate()?;
    let device = devices.first().ok_or(TrainError::NoDevice)?;
    if devices.len() > 1 && cfg.transfer.cache_features {
        return Err(TrainError::InvalidSetting {
            setting: "cache_features",
            reason: "trains only the head, on one device: drop the extra `devices`".into(),
        });
    }
    Ok(device)
}

/// A resume needs a run of the same model in `dir`; a new run needs `dir` without one.
fn check_folder(dir: &Path, resume: bool, cfg: &TrainConfig) -> Result<()> {
    if resume {
        checkpoint::info(dir)?;
        check_same_model(dir, cfg)
    } else if dir.join(CHECKPOINT_FILE).exists() || dir.join("model.bpk").exists() {
        Err(TrainError::Checkpoint(format!(
            "{} already holds a run: continue it with `resume` {}, or pick another `out`",
            dir.display(),
            dir.display()
        )))
    } else {
        Ok(())
    }
}

/// Trains from `state`, with a checkpoint, `metrics.csv` and `curves.png` after every epoch:
/// the whole model on the images, or (`--cache-features`) the head on cached backbone features,
/// then also returning the test split's features.
fn fit_run(
    cfg: &TrainConfig,
    data: &RunData,
    state: TrainState<Model>,
    (dir, devices, group): (&Path, &[Device], Option<&dyn Collective>),
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Fitted<Model>, Option<Features>)> {
    let title = format!("{} on {}", cfg.task.model, cfg.task.dataset);
    let mut after_epoch = |model: &Model, ema: Option<&Model>, optim: &ModuleOptimizer, history: &[EpochMetrics]| {
        if let Some(group) = group {
            // Every rank takes part; the last epoch's average is also the final weights'.
            average_running_statistics(group, model);
            if group.rank() != 0 {
                return Ok(());
            }
        }
        checkpoint::save(dir, (model, ema), optim, history)?;
        write_file(&dir.join("metrics.csv"), metrics_csv(history).as_bytes())?;
        plot::training_curves(&dir.join("curves.png"), &title, history)
    };
    if cfg.transfer.cache_features {
        let [train, valid, test] = split_features(cfg, data, &state.model, &devices[0], progress)?;
        let autodiff = devices[0].clone().autodiff();
        let hooks = Hooks {
            progress,
            after_epoch: &mut after_epoch,
        };
        return fit_head(state, (&train, &valid), cfg, &autodiff, hooks).map(|f| (f, Some(test)));
    }
    let train_data = TrainData {
        train: data.train.clone(),
        valid: &*data.valid,
        pre: &data.pre,
    };
    let hooks = Hooks {
        progress,
        after_epoch: &mut after_epoch,
    };
    let autodiff: Vec<_> = devices.iter().map(|d| d.clone().autodiff()).collect();
    fit_across(state, train_data, cfg, &autodiff, group, hooks).map(|f| (f, None))
}

/// Writes the trained weights (`model.bpk`), their average (`model-ema.bpk`, with `ema`) and
/// `summary.json` (`final_weights`: the file `test` evaluated), and reports the run.
fn finish_run(
    dir: &Path,
    fitted: Fitted<Model>,
    (test, tested): (crate::eval::Evaluation, &str),
    (started, root): (Instant, bool),
) -> Result<RunReport> {
    let report = RunReport {
        dir: dir.to_path_buf(),
        history: fitted.history.clone(),
        test: test.clone(),
        stop: fitted.stop,
    };
    if !root {
        return Ok(report);
    }
    let models = [
        ("model.bpk", Some(&fitted.model)),
        (checkpoint::EMA_FILE, fitted.ema.as_ref()),
    ];
    for (file, model) in models {
        let Some(model) = model else { continue };
        let weights = model
            .valid()
            .into_record()
            .into_bytes()
            .map_err(|e| TrainError::Write {
                path: dir.join(file),
                reason: e.to_string(),
            })?;
        write_file(&dir.join(file), &weights)?;
    }
    let best = fitted
        .history
        .iter()
        .min_by(|a, b| a.valid_loss.total_cmp(&b.valid_loss))
        .map(|m| m.epoch);
    let mut summary = serde_json::json!({
        "test_accuracy": test.accuracy,
        "test_top5": test.top5,
        "test_loss": test.loss,
        "test_images": test.images,
        "epochs": fitted.history.len(),
        "best_epoch_by_valid_loss": best,
        "stopped": match fitted.stop {
            Stop::Completed => "completed".to_string(),
            Stop::EarlyStopped { best_epoch } => format!("early stop: no better valid loss since epoch {best_epoch}"),
        },
        "seconds_this_session": started.elapsed().as_secs_f64(),
        "training_seconds_all_epochs": fitted.history.iter().map(|m| m.train_seconds).sum::<f64>(),
    });
    if fitted.ema.is_some() {
        summary["final_weights"] = tested.into();
    }
    write_file(&dir.join("summary.json"), pretty(&summary).as_bytes())?;
    tracing::info!(dir = %dir.display(), test_accuracy = test.accuracy, epochs = fitted.history.len(), "run finished");
    Ok(report)
}
