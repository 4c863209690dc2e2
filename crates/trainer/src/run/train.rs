//! A complete run: resolve names, train with a checkpoint after every epoch, evaluate, and
//! write the run folder (see [`super::folder`] for its files). A run can be resumed from its last
//! checkpoint and then ends exactly as an uninterrupted run would.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use cnn_models::{BuildOptions, Model, precision, registry};
use cnn_transfer::Stage;

use cnn_transfer::CacheKey;

use super::checkpoint::{self, CHECKPOINT_FILE};
use super::data::RunData;
use super::folder::RunReport;
use super::lock::FolderLock;
use crate::atomic::write_file;
use crate::config::TrainConfig;
use crate::distributed::collective::{Collective, average_running_statistics, evaluate_sharded};
use crate::error::{Result, TrainError};
use crate::eval::cached::{Features, cached_features, evaluate_head, fingerprint, fit_head};
use crate::eval::{TestViews, evaluate_views};
use crate::fit::ema::Ema;
use crate::fit::{EpochMetrics, Fitted, Hooks, Progress, Stop, TrainData, TrainState, build_optimizer, fit_across};
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

/// The model on `autodiff`, seeded by `cfg.seed`, with `--weights` loaded, the stages that
/// `--freeze` freezes and the learning rate of each part.
pub(crate) fn build_model(
    cfg: &TrainConfig,
    data: &RunData,
    autodiff: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Model, Vec<Stage>, cnn_transfer::LayerRates)> {
    let info = registry::lookup(&cfg.task.model)?;
    autodiff.seed(cfg.task.seed);
    let options = BuildOptions {
        num_classes: data.loaded.class_names.len(),
        in_channels: Some(data.pre.channels),
    };
    let mut model = registry::build(info.name, options, autodiff)?;
    model
        .check_input_size(data.pre.channels, data.pre.size)
        .map_err(|e| TrainError::Unsupported {
            model: info.name.to_string(),
            reason: e.to_string(),
        })?;
    if cfg.task.zero_init_residual {
        model = match model {
            cnn_models::Model::ResNet(net) if net.layer1.iter().all(|b| b.residual) => {
                cnn_models::Model::ResNet(net.zero_init_residual())
            }
            _ => {
                return Err(TrainError::InvalidSetting {
                    setting: "zero_init_residual",
                    reason: format!("applies to networks with shortcuts (resnet*), not {}", info.name),
                });
            }
        };
    }
    checkpoint::materialize(&model);
    if let Some(weights) = &cfg.transfer.weights {
        let (loaded, report, _) = if cfg.transfer.new_head {
            cnn_transfer::load_with_new_head(info.name, weights, options.num_classes, autodiff)?
        } else {
            cnn_transfer::load_fitting(info.name, weights, Some(options.num_classes), autodiff)?
        };
        tracing::info!(weights = %weights.display(), %report, "weights loaded");
        progress(Progress::Note(format!("weights from {}: {report}", weights.display())));
        model = loaded;
    }
    let images_per_class = data.train.len() / options.num_classes.max(1);
    let plan = cnn_transfer::resolve(&model, &cfg.transfer.freeze, images_per_class)?;
    if cfg.transfer.freeze != cnn_transfer::FreezePolicy::None {
        tracing::info!(policy = ?cfg.transfer.freeze, frozen = plan.frozen.len(), why = %plan.why, "freeze");
        progress(Progress::Note(format!("freeze: {}", plan.why)));
    }
    // `--freeze auto` picks the backbone's rate too, unless the run sets rates of its own.
    let own_rates = cfg.transfer.backbone_lr_scale != 1.0 || cfg.transfer.stage_lr_decay != 1.0;
    let (scale, decay) = match plan.rates {
        Some(rates) if !own_rates => rates,
        _ => (cfg.transfer.backbone_lr_scale, cfg.transfer.stage_lr_decay),
    };
    let rates = cnn_transfer::LayerRates::for_model(&model, scale, decay)?;
    if !rates.is_uniform() {
        let described = rates.describe(cfg.optim.lr);
        tracing::info!(rates = %described, "learning rates per stage");
        progress(Progress::Note(format!("learning rates (peak): {described}")));
    }
    Ok((model, plan.frozen, rates))
}

/// A fresh optimiser, or the model, optimiser and history of `dir`'s checkpoint; frozen stages
/// frozen either way (freezing is not part of a checkpoint).
fn start_state(
    dir: &Path,
    resume: bool,
    cfg: &TrainConfig,
    model: Model,
    (frozen, rates): (&[Stage], cnn_transfer::LayerRates),
) -> Result<TrainState<Model>> {
    let optimizer = build_optimizer(cfg);
    let (model, optimizer, history, ema) = if resume {
        let restored = checkpoint::restore(dir, model, optimizer)?;
        // A run stopped after its last checkpoint but before its weights were written resumes
        // to write them; a finished run has nothing left to do.
        if restored.history.len() >= cfg.optim.epochs && dir.join("model.bpk").exists() {
            return Err(TrainError::InvalidSetting {
                setting: "epochs",
                reason: format!(
                    "must be more than the {} epochs {} has already trained: pass a larger total to train on",
                    restored.history.len(),
                    dir.display()
                ),
            });
        }
        (restored.model, restored.optimizer, restored.history, restored.ema)
    } else {
        (model, optimizer, Vec::new(), None)
    };
    let model = cnn_transfer::freeze(model, frozen)?;
    // A fresh average starts at the starting weights; a resumed one continues from its file.
    let ema = cfg.optim.ema.map(|decay| match ema {
        Some(average) => Ema {
            model: average,
            decay,
            every: cfg.optim.ema_every,
        },
        None => Ema::new(&model, decay, cfg.optim.ema_every),
    });
    Ok(TrainState {
        model,
        optimizer,
        history,
        rates,
        ema,
    })
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

/// The frozen backbone's features of the training, validation and test images, read from the
/// cache or computed into it (the backbone runs once per split).
fn split_features(
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

fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("run files serialise")
}
