//! Settings asked for on top of a base configuration — a preset, the defaults or a resumed
//! run's own — and the rules for merging them: what `cnn train`'s flags become, usable the same
//! way from a library or a JSON file.
//!
//! [`TrainOverrides`] itself is generated from the one table of settings
//! ([`super::settings`]); with the `clap` feature it is also the set of `cnn train`'s flags.

use std::path::{Path, PathBuf};

use crate::config::{TrainConfig, TrainOverrides};
use crate::error::{Result, TrainError};
use crate::run::RunFolder;

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
    /// base's; switches (`new_head`, `cache_features`, `zero_init_residual`) can only be
    /// switched on.
    pub fn apply(&self, defaults: TrainConfig) -> Result<TrainConfig> {
        let base = match &self.preset {
            Some(name) => crate::config::presets::preset(name)?,
            None => defaults,
        };
        self.apply_to(base)
    }

    /// The settings for continuing `run`: its own, with the few a resume may change
    /// (those whose [`crate::config::SettingInfo::changeable_on_resume`] is set). Repeating the run's own values is accepted, so
    /// the original command plus `--resume` works; any other change is refused and named.
    pub fn resumed(&self, run: &TrainConfig, dir: &Path) -> Result<TrainConfig> {
        let changes = self.apply(run.clone())?.changes_for_resume(run);
        if !changes.is_empty() {
            return Err(TrainError::InvalidOption {
                option: "resume",
                reason: format!(
                    "continues {} with its own settings (its config.json), and this command changes {}: drop those flags, or start a new run with `out`",
                    dir.display(),
                    changes.join(", ")
                ),
            });
        }
        self.apply_changeable(run.clone())
    }

    /// What to do: continue the run in `resume` (its settings, checked against these), or start
    /// a new one in `out` (default `runs/<model>-<data set>-<date>-<time>`). The settings are
    /// validated and the model name looked up, so a bad request fails before any work.
    pub fn plan(&self, out: Option<&Path>, resume: Option<&Path>) -> Result<RunPlan> {
        let plan = match (resume, out) {
            (Some(_), Some(_)) => {
                return Err(TrainError::InvalidOption {
                    option: "resume",
                    reason: "continues a run and `out` names a new run's folder: give one of them, not both".into(),
                });
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
        cnn_models::registry::lookup(&plan.config.task.model)?;
        Ok(plan)
    }
}

/// `runs/<model>-<data set's last path part>-<local date>-<hour and minute>`.
fn default_run_dir(cfg: &TrainConfig) -> PathBuf {
    let base = format!("{}-{}-{}", cfg.task.model, cfg.dataset_tag(), local_timestamp());
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
        assert!(
            year >= "2024" && ("01"..="12").contains(&month) && hour < "24",
            "{name}"
        );
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
        assert_eq!(cfg.optim.epochs, 3);
        assert_eq!(
            cfg.augmentation.augment,
            cnn_data_augment::Pipeline::from_arg("flip").unwrap()
        );
        assert_eq!(
            cfg.with_epochs(preset.optim.epochs)
                .with_augment(preset.augmentation.augment.clone()),
            preset
        );
        assert_eq!(
            TrainOverrides::default().config().unwrap(),
            TrainConfig::new("lenet5", "mnist-5k")
        );
    }

    #[test]
    fn overrides_read_from_json_and_refuse_unknown_keys() {
        let asked: TrainOverrides = serde_json::from_str(r#"{"model": "resnet20", "lr": 0.1}"#).unwrap();
        let cfg = asked.config().unwrap();
        assert_eq!((cfg.task.model.as_str(), cfg.optim.lr), ("resnet20", 0.1));
        let typo = serde_json::from_str::<TrainOverrides>(r#"{"learning_rate": 0.1}"#).unwrap_err();
        assert!(typo.to_string().contains("learning_rate"), "{typo}");
    }

    #[test]
    fn a_resume_keeps_the_runs_settings_and_names_changes() {
        let run = TrainConfig::new("lenet5", "mnist-5k").with_seed(11).with_epochs(4);
        let dir = Path::new("runs/x");
        let more = TrainOverrides {
            epochs: Some(8),
            seed: Some(11),
            workers: Some(3),
            ..TrainOverrides::default()
        };
        let cfg = more.resumed(&run, dir).unwrap();
        assert_eq!(cfg, run.clone().with_epochs(8).with_workers(3));
        let changed = TrainOverrides {
            seed: Some(12),
            ..TrainOverrides::default()
        };
        let err = changed.resumed(&run, dir).unwrap_err().to_string();
        assert!(err.contains("`seed` 12 (the run's: 11)"), "{err}");
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
        assert!(zero.plan(None, None).unwrap_err().to_string().contains("`epochs`"));
        let plan = TrainOverrides::default().plan(Some(Path::new("out/a")), None).unwrap();
        assert_eq!((plan.dir.as_path(), plan.resume), (Path::new("out/a"), false));
        let fresh = TrainOverrides::default().plan(None, None).unwrap();
        assert!(fresh.dir.starts_with("runs"), "{}", fresh.dir.display());
        assert!(
            TrainOverrides::default()
                .plan(Some(Path::new("a")), Some(Path::new("b")))
                .is_err()
        );
    }
}
