//! Settings asked for on top of a base configuration — a preset, the defaults or a resumed
//! run's own — and the rules for merging them: what `cnn train`'s flags become, usable the same
//! way from a library or a JSON file.
//!
//! With the `clap` feature, [`TrainOverrides`] is also a set of `clap` arguments (its field
//! docs are the `--help` texts), so the command line and the library share one list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::run::RunFolder;
use crate::config::{OptimizerKind, Schedule, TrainConfig};
use crate::error::{Result, TrainError};

/// Every training setting as "leave it as the base has it" (`None`/`false`) or a new value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default, deny_unknown_fields)]
pub struct TrainOverrides {
    /// Start from a named recipe (lenet5-mnist5k, lenet5-fashion, resnet20-fashion,
    /// resnet20-fashion-long); other flags override its settings.
    #[cfg_attr(feature = "clap", arg(long))]
    pub preset: Option<String>,
    /// Model name (see `cnn models`) [default: lenet5].
    #[cfg_attr(feature = "clap", arg(long))]
    pub model: Option<String>,
    /// Data set: mnist-5k (embedded), mnist, fashion-mnist, cifar10, cifar100, or the path of an
    /// image folder (root/<class>/*.png|jpg…, or root/train/… and root/val/…) [default: mnist-5k].
    #[cfg_attr(feature = "clap", arg(long))]
    pub dataset: Option<String>,
    /// Folder holding the data sets' folders [default: ~/.cache/cnn-casestudies]; Debian's
    /// dataset-fashion-mnist works with --data-dir /usr/share/datasets.
    #[cfg_attr(feature = "clap", arg(long))]
    pub data_dir: Option<PathBuf>,
    /// Passes over the training set; with --resume, the total to reach [default: 10].
    #[cfg_attr(feature = "clap", arg(long))]
    pub epochs: Option<usize>,
    /// Images per mini-batch [default: 32].
    #[cfg_attr(feature = "clap", arg(long))]
    pub batch_size: Option<usize>,
    /// Learning rate (peak, after warm-up) [default: 0.001].
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub lr: Option<f64>,
    /// Optimiser: sgd, adam or adamw [default: adam].
    #[cfg_attr(feature = "clap", arg(long))]
    pub optimizer: Option<OptimizerKind>,
    /// Momentum for sgd [default: 0.9].
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub momentum: Option<f64>,
    /// Weight decay: L2 for sgd and adam, decoupled for adamw [default: 0].
    #[cfg_attr(feature = "clap", arg(long, allow_negative_numbers = true))]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: constant, step (x0.1 at 50% and 75% of the epochs) or cosine
    /// [default: constant].
    #[cfg_attr(feature = "clap", arg(long))]
    pub schedule: Option<Schedule>,
    /// Epochs of linear learning-rate warm-up [default: 0].
    #[cfg_attr(feature = "clap", arg(long))]
    pub warmup: Option<usize>,
    /// Stop when the validation loss has not improved for N epochs [default: off].
    #[cfg_attr(feature = "clap", arg(long))]
    pub early_stop: Option<usize>,
    /// Share of the training set held out for validation (stratified); 0 validates on the
    /// test set [default: 0.1].
    #[cfg_attr(feature = "clap", arg(long))]
    pub valid_split: Option<f64>,
    /// Start from torchvision weights (.pth/.safetensors); the head is replaced when the data
    /// set has another number of classes (see `cnn weights`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub weights: Option<PathBuf>,
    /// With --weights: start from a fresh head even when the class count matches (a new task).
    #[cfg_attr(feature = "clap", arg(long))]
    pub new_head: bool,
    /// Freeze part of the backbone: none, all (train only the head), upto:<stage> (e.g.
    /// upto:layer2, upto:features.10, upto:inception4a) or auto (up to 1,000 labelled images
    /// per class: nothing frozen, the top stage at 0.3 × --lr and each stage below at half the
    /// one above, as measured best; auto:<large> sets the threshold) [default: none].
    #[cfg_attr(feature = "clap", arg(long))]
    pub freeze: Option<cnn_transfer::FreezePolicy>,
    /// Train the backbone at this share of --lr, the new head at --lr (e.g. 0.1 to fine-tune
    /// pretrained weights gently); needs a model with stages [default: 1].
    #[cfg_attr(feature = "clap", arg(long))]
    pub backbone_lr_scale: Option<f64>,
    /// Discriminative rates: each stage below the top one trains at this many times its upper
    /// neighbour's rate (e.g. 0.5 halves the rate stage by stage towards the stem) [default: 1].
    #[cfg_attr(feature = "clap", arg(long))]
    pub stage_lr_decay: Option<f64>,
    /// With --freeze all: run the backbone once over each split, cache the features on disk and
    /// train the head from them (no augmentation possible).
    #[cfg_attr(feature = "clap", arg(long))]
    pub cache_features: bool,
    /// Folder for feature caches [default: ~/.cache/cnn-casestudies/features].
    #[cfg_attr(feature = "clap", arg(long))]
    pub cache_dir: Option<PathBuf>,
    /// Train on a stratified sample of this many training images [default: all].
    #[cfg_attr(feature = "clap", arg(long))]
    pub subset: Option<usize>,
    /// Seed for initialisation, shuffling, augmentation and dropout [default: 42].
    #[cfg_attr(feature = "clap", arg(long))]
    pub seed: Option<u64>,
    /// Augmentation of the training images: a preset (none, flip, mnist, cifar, imagenet) or a
    /// .toml/.json pipeline file [default: none].
    #[cfg_attr(feature = "clap", arg(long))]
    pub augment: Option<String>,
    /// Start every residual block's last batch-norm γ at zero, so each block starts as the
    /// identity (torchvision's zero_init_residual; ResNets only).
    #[cfg_attr(feature = "clap", arg(long))]
    pub zero_init_residual: bool,
    /// Train and test on these classes of the data set only, by label, comma-separated (e.g.
    /// 5,6,7,8,9); they are numbered 0, 1, … in this order [default: all].
    #[cfg_attr(feature = "clap", arg(long, value_delimiter = ','))]
    pub classes: Option<Vec<usize>>,
    /// Input height and width in pixels [default: the model's own up to 64 px; 64 for
    /// ImageNet-sized networks trained from scratch; with --weights, the size they were
    /// trained at (224 for torchvision's, a run's own size for its model.bpk)].
    #[cfg_attr(feature = "clap", arg(long))]
    pub input_size: Option<usize>,
    /// Data worker threads that prepare batches in the background; 0 = on the training thread
    /// [default: cores - 1, at least 1].
    #[cfg_attr(feature = "clap", arg(long))]
    pub workers: Option<usize>,
    /// Most finished batches kept waiting for the training loop (bounds memory)
    /// [default: 2 per worker].
    #[cfg_attr(feature = "clap", arg(long))]
    pub prefetch: Option<usize>,
}

/// A run to start or continue: its settings, its folder and whether it resumes.
#[derive(Clone, Debug, PartialEq)]
pub struct RunPlan {
    /// The merged, validated settings.
    pub config: TrainConfig,
    /// The run folder to write (or to continue).
    pub dir: PathBuf,
    /// Whether the run continues from the folder's last checkpoint.
    pub resume: bool,
}

impl TrainOverrides {
    /// The defaults (LeNet-5 on the embedded MNIST digits), or the preset if one is named,
    /// with these settings applied.
    pub fn config(&self) -> Result<TrainConfig> {
        self.apply(TrainConfig::new("lenet5", "mnist-5k"))
    }

    /// `defaults` (or the named preset instead) with every setting given here replacing the
    /// base's; flags (`new_head`, `cache_features`) can only be switched on.
    pub fn apply(&self, defaults: TrainConfig) -> Result<TrainConfig> {
        let base = match &self.preset {
            Some(name) => crate::config::presets::preset(name)?,
            None => defaults,
        };
        let augment = match &self.augment {
            Some(a) => cnn_data_augment::Pipeline::from_arg(a)
                .map_err(|e| TrainError::Config(format!("--augment {a}: {e}")))?,
            None => base.augment.clone(),
        };
        Ok(TrainConfig {
            model: self.model.clone().unwrap_or(base.model),
            dataset: self.dataset.clone().unwrap_or(base.dataset),
            epochs: self.epochs.unwrap_or(base.epochs),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            lr: self.lr.unwrap_or(base.lr),
            optimizer: self.optimizer.unwrap_or(base.optimizer),
            momentum: self.momentum.unwrap_or(base.momentum),
            weight_decay: self.weight_decay.unwrap_or(base.weight_decay),
            schedule: self.schedule.unwrap_or(base.schedule),
            warmup: self.warmup.unwrap_or(base.warmup),
            early_stop: self.early_stop.or(base.early_stop),
            valid_split: self.valid_split.unwrap_or(base.valid_split),
            subset: self.subset.or(base.subset),
            weights: self.weights.clone().or(base.weights),
            new_head: self.new_head || base.new_head,
            freeze: self.freeze.clone().unwrap_or(base.freeze),
            backbone_lr_scale: self.backbone_lr_scale.unwrap_or(base.backbone_lr_scale),
            stage_lr_decay: self.stage_lr_decay.unwrap_or(base.stage_lr_decay),
            cache_features: self.cache_features || base.cache_features,
            cache_dir: self.cache_dir.clone().or(base.cache_dir),
            seed: self.seed.unwrap_or(base.seed),
            workers: self.workers.unwrap_or(base.workers),
            prefetch: self.prefetch.or(base.prefetch),
            data_dir: self.data_dir.clone().or(base.data_dir),
            zero_init_residual: self.zero_init_residual || base.zero_init_residual,
            input_size: self.input_size.or(base.input_size),
            classes: self.classes.clone().or(base.classes),
            augment,
        })
    }

    /// The settings for continuing `run`: its own, with the few a resume may change
    /// ([`TrainConfig::CHANGEABLE_ON_RESUME`]). Repeating the run's own values is accepted, so
    /// the original command plus `--resume` works; any other change is refused and named.
    pub fn resumed(&self, run: &TrainConfig, dir: &Path) -> Result<TrainConfig> {
        let changes = self.apply(run.clone())?.changes_for_resume(run);
        if !changes.is_empty() {
            return Err(TrainError::Config(format!(
                "--resume continues {} with its own settings (its config.json), and this command changes {}: drop those flags, or start a new run with --out",
                dir.display(),
                changes.join(", ")
            )));
        }
        Ok(TrainConfig {
            epochs: self.epochs.unwrap_or(run.epochs),
            workers: self.workers.unwrap_or(run.workers),
            prefetch: self.prefetch.or(run.prefetch),
            ..run.clone()
        })
    }

    /// What to do: continue the run in `resume` (its settings, checked against these), or start
    /// a new one in `out` (default `runs/<model>-<data set>-<unix time>`). The settings are
    /// validated and the model name looked up, so a bad request fails before any work.
    pub fn plan(&self, out: Option<&Path>, resume: Option<&Path>) -> Result<RunPlan> {
        let plan = match (resume, out) {
            (Some(_), Some(_)) => {
                return Err(TrainError::Config(
                    "give either --resume (continue a run) or --out (a new run's folder), not both".into(),
                ));
            }
            (Some(dir), None) => RunPlan {
                config: self.resumed(&RunFolder::open(dir)?.config, dir)?,
                dir: dir.to_path_buf(),
                resume: true,
            },
            (None, out) => {
                let config = self.config()?;
                let dir = out.map_or_else(|| default_run_dir(&config), Path::to_path_buf);
                RunPlan {
                    config,
                    dir,
                    resume: false,
                }
            }
        };
        plan.config.validate()?;
        cnn_models::registry::lookup(&plan.config.model)?;
        Ok(plan)
    }
}

/// `runs/<model>-<data set's last path part>-<unix seconds>`.
fn default_run_dir(cfg: &TrainConfig) -> PathBuf {
    let data = Path::new(&cfg.dataset)
        .file_name()
        .map_or(cfg.dataset.clone(), |n| n.to_string_lossy().into_owned());
    let base = format!("{}-{data}-{}", cfg.model, local_timestamp());
    // Two runs started in the same minute get `-2`, `-3`, … rather than one folder.
    let mut dir = PathBuf::from("runs").join(&base);
    for n in 2.. {
        if !dir.exists() {
            break;
        }
        dir = PathBuf::from("runs").join(format!("{base}-{n}"));
    }
    dir
}

/// The local date and time to the minute, `YYYYMMDD-HHMM`, for run folders' names.
#[cfg(unix)]
fn local_timestamp() -> String {
    // SAFETY: `time` with a null pointer only returns the time; `localtime_r` writes the
    // zeroed `tm` it is given and keeps no pointer to it.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}{:02}{:02}-{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

/// Seconds since 1970 where the local time zone cannot be read.
#[cfg(not(unix))]
fn local_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    secs.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_folder_is_named_after_model_data_and_the_local_minute() {
        let dir = default_run_dir(&TrainConfig::new("lenet5", "mnist-5k"));
        let name = dir.file_name().unwrap().to_str().unwrap();
        let stamp = name.strip_prefix("lenet5-mnist-5k-").expect(name);
        let (date, time) = stamp.split_once('-').expect(stamp);
        assert!(date.len() == 8 && time.len() == 4, "{name}");
        assert!(date.chars().chain(time.chars()).all(|c| c.is_ascii_digit()), "{name}");
        let (year, month, hour) = (&date[..4], &date[4..6], &time[..2]);
        assert!(year >= "2024" && ("01"..="12").contains(&month) && hour < "24", "{name}");
    }

    #[test]
    fn settings_replace_the_base_and_a_preset_replaces_the_defaults() {
        let asked = TrainOverrides {
            preset: Some("resnet20-fashion".into()),
            epochs: Some(3),
            augment: Some("flip".into()),
            ..TrainOverrides::default()
        };
        let cfg = asked.config().unwrap();
        let preset = crate::config::presets::preset("resnet20-fashion").unwrap();
        assert_eq!(cfg.epochs, 3);
        assert_eq!(cfg.augment, cnn_data_augment::Pipeline::from_arg("flip").unwrap());
        assert_eq!(
            TrainConfig {
                epochs: preset.epochs,
                augment: preset.augment.clone(),
                ..cfg
            },
            preset
        );
        assert_eq!(TrainOverrides::default().config().unwrap(), TrainConfig::new("lenet5", "mnist-5k"));
    }

    #[test]
    fn overrides_read_from_json_and_refuse_unknown_keys() {
        let asked: TrainOverrides = serde_json::from_str(r#"{"model": "resnet20", "lr": 0.1}"#).unwrap();
        let cfg = asked.config().unwrap();
        assert_eq!((cfg.model.as_str(), cfg.lr), ("resnet20", 0.1));
        let typo = serde_json::from_str::<TrainOverrides>(r#"{"learning_rate": 0.1}"#).unwrap_err();
        assert!(typo.to_string().contains("learning_rate"), "{typo}");
    }

    #[test]
    fn a_resume_keeps_the_runs_settings_and_names_changes() {
        let run = TrainConfig {
            seed: 11,
            epochs: 4,
            ..TrainConfig::new("lenet5", "mnist-5k")
        };
        let dir = Path::new("runs/x");
        let more = TrainOverrides {
            epochs: Some(8),
            seed: Some(11),
            workers: Some(3),
            ..TrainOverrides::default()
        };
        let cfg = more.resumed(&run, dir).unwrap();
        assert_eq!(
            cfg,
            TrainConfig {
                epochs: 8,
                workers: 3,
                ..run.clone()
            }
        );
        let changed = TrainOverrides {
            seed: Some(12),
            ..TrainOverrides::default()
        };
        let err = changed.resumed(&run, dir).unwrap_err().to_string();
        assert!(err.contains("--seed 12 (the run's: 11)"), "{err}");
    }

    #[test]
    fn a_plan_checks_settings_before_any_work() {
        let bad = TrainOverrides {
            model: Some("resnet21".into()),
            ..TrainOverrides::default()
        };
        assert!(bad.plan(None, None).is_err());
        let zero = TrainOverrides {
            epochs: Some(0),
            ..TrainOverrides::default()
        };
        assert!(zero.plan(None, None).unwrap_err().to_string().contains("--epochs"));
        let plan = TrainOverrides::default().plan(Some(Path::new("out/a")), None).unwrap();
        assert_eq!((plan.dir.as_path(), plan.resume), (Path::new("out/a"), false));
        let fresh = TrainOverrides::default().plan(None, None).unwrap();
        assert!(fresh.dir.starts_with("runs"), "{}", fresh.dir.display());
        assert!(TrainOverrides::default().plan(Some(Path::new("a")), Some(Path::new("b"))).is_err());
    }
}
