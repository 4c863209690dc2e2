//! What a training run is asked to do.

use cnn_models::registry;

pub mod choices;
pub mod overrides;
pub mod presets;
pub mod settings;

pub use choices::{OptimizerKind, Schedule};
pub use settings::{SETTINGS, SettingInfo, TrainConfig, TrainOverrides};

use crate::error::{Result, TrainError};

impl TrainConfig {
    /// The defaults for `model` on `dataset`: Adam, lr 1e-3 (constant, no warm-up, no weight
    /// decay), batch 32, 10 epochs, seed 42, no augmentation, 10% of the training set held out
    /// for validation, no early stopping, cores − 1 data workers (at least 1).
    pub fn new(model: impl Into<String>, dataset: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            dataset: dataset.into(),
            ..Self::default()
        }
    }

    /// Batches the loader may keep ready: `prefetch`, or two per worker.
    pub fn prefetch_batches(&self) -> usize {
        self.prefetch.unwrap_or(2 * self.workers.max(1))
    }

    /// Checks that every value is usable, naming the first bad one: each setting's own check
    /// (in [`settings`]), then the rules between settings.
    pub fn validate(&self) -> Result<()> {
        self.check_each()?;
        let bad = |setting: &'static str, reason: String| Err(TrainError::InvalidSetting { setting, reason });
        if self.warmup >= self.epochs && self.warmup > 0 {
            return bad("warmup", format!("{} must be shorter than `epochs` {}", self.warmup, self.epochs));
        }
        if self.cache_features && self.freeze != cnn_transfer::FreezePolicy::All {
            return bad(
                "cache_features",
                "needs `freeze` all: the cache replaces a backbone that does not train".into(),
            );
        }
        if self.cache_features && !self.augment.ops.is_empty() {
            return bad(
                "cache_features",
                "and `augment` do not mix: the backbone sees each image once, so augmentation cannot apply".into(),
            );
        }
        if self.zero_init_residual && self.weights.is_some() {
            return bad(
                "zero_init_residual",
                "initialises a network from scratch; it cannot apply to `weights`".into(),
            );
        }
        Ok(())
    }

    /// What a resume of `run` with the settings `self` would change, one entry per setting as
    /// `` `name` value (the run's: value)``, leaving out the settings a resume may change (the
    /// total epochs and the data loader's threads: `changeable` in [`settings`]). Empty when
    /// `self` asks for the run's own settings, so the original command plus `--resume` passes.
    pub fn changes_for_resume(&self, run: &TrainConfig) -> Vec<String> {
        let mut wanted = self.clone();
        // A model alias names the same network.
        if let (Ok(a), Ok(b)) = (registry::lookup(&wanted.model), registry::lookup(&run.model))
            && a.name == b.name
        {
            wanted.model = run.model.clone();
        }
        let (serde_json::Value::Object(wanted), serde_json::Value::Object(was)) =
            (serde_json::json!(wanted), serde_json::json!(run))
        else {
            unreachable!("a TrainConfig serialises to a JSON object");
        };
        let show = |v: Option<&serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "none".into(),
            Some(v) => v.to_string(),
        };
        wanted
            .iter()
            .filter(|(key, value)| {
                !SETTINGS.iter().any(|s| s.name == key.as_str() && s.changeable_on_resume)
                    && was.get(key.as_str()) != Some(value)
            })
            .map(|(key, value)| {
                format!(
                    "`{}` {} (the run's: {})",
                    key,
                    show(Some(value)),
                    show(was.get(key.as_str()))
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_accepts_the_runs_own_settings_and_names_each_change() {
        let run = TrainConfig {
            seed: 11,
            batch_size: 64,
            epochs: 2,
            ..TrainConfig::new("lenet5", "mnist-5k")
        };
        let same = TrainConfig {
            epochs: 5,
            workers: run.workers + 3,
            prefetch: Some(9),
            ..run.clone()
        };
        assert!(same.changes_for_resume(&run).is_empty());
        let changed = TrainConfig {
            seed: 12,
            model: "resnet20".into(),
            ..run.clone()
        };
        assert_eq!(
            changed.changes_for_resume(&run),
            ["`model` resnet20 (the run's: lenet5)", "`seed` 12 (the run's: 11)"]
        );
        let more = TrainConfig {
            data_dir: Some("/data".into()),
            augment: cnn_data_augment::Pipeline::from_arg("flip").unwrap(),
            ..run.clone()
        };
        let names: Vec<String> = more
            .changes_for_resume(&run)
            .iter()
            .map(|c| c.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["`augment`", "`data_dir`"]);
    }

    #[test]
    fn validation_names_the_setting() {
        let ok = TrainConfig::new("lenet5", "mnist-5k");
        assert!(ok.validate().is_ok());
        for (cfg, flag) in [
            (
                TrainConfig {
                    epochs: 0,
                    ..ok.clone()
                },
                "epochs",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..ok.clone()
                },
                "batch_size",
            ),
            (TrainConfig { lr: -1.0, ..ok.clone() }, "lr"),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..ok.clone()
                },
                "lr",
            ),
            (
                TrainConfig {
                    momentum: 1.5,
                    ..ok.clone()
                },
                "momentum",
            ),
            (
                TrainConfig {
                    weight_decay: -0.1,
                    ..ok.clone()
                },
                "weight_decay",
            ),
            (
                TrainConfig {
                    warmup: 10,
                    ..ok.clone()
                },
                "warmup",
            ),
            (
                TrainConfig {
                    early_stop: Some(0),
                    ..ok.clone()
                },
                "early_stop",
            ),
            (
                TrainConfig {
                    valid_split: 0.95,
                    ..ok.clone()
                },
                "valid_split",
            ),
        ] {
            match cfg.validate().unwrap_err() {
                TrainError::InvalidSetting { setting, .. } => assert_eq!(setting, flag),
                other => panic!("{flag}: {other}"),
            }
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = TrainConfig::new("lenet5", "mnist-5k");
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
        assert_eq!("SGD".parse::<OptimizerKind>(), Ok(OptimizerKind::Sgd));
        assert_eq!("adamw".parse::<OptimizerKind>(), Ok(OptimizerKind::AdamW));
        assert!("rmsprop".parse::<OptimizerKind>().unwrap_err().contains("adamw"));
        // A config.json written before these fields existed still loads, with their defaults.
        let old = r#"{"model":"lenet5","dataset":"mnist-5k","epochs":1,"batch_size":8,"lr":0.001,
            "optimizer":"adam","momentum":0.9,"seed":1}"#;
        let cfg: TrainConfig = serde_json::from_str(old).unwrap();
        assert_eq!(
            (cfg.schedule, cfg.warmup, cfg.valid_split),
            (Schedule::Constant, 0, 0.1)
        );
    }
}
