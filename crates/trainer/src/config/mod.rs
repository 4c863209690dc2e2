//! What a training run is asked to do.

use cnn_models::registry;

pub mod choices;
#[macro_use]
mod declare;
pub mod overrides;
pub mod presets;
pub mod settings;

pub use choices::{OptimizerKind, Schedule};
pub use settings::{
    AugmentSettings, LoaderSettings, OptimSettings, SETTINGS, SettingInfo, TaskSettings, TrainConfig, TrainOverrides,
    TransferSettings,
};

use crate::error::{Result, TrainError};

impl TrainConfig {
    /// The data set's name for a folder name: the name, or an image folder's last component.
    pub fn dataset_tag(&self) -> String {
        let dataset = &self.task.dataset;
        std::path::Path::new(dataset)
            .file_name()
            .map_or_else(|| dataset.clone(), |n| n.to_string_lossy().into_owned())
    }

    /// The defaults for `model` on `dataset`: Adam, lr 1e-3 (constant, no warm-up, no weight
    /// decay), batch 32, 10 epochs, seed 42, no augmentation, 10% of the training set held out
    /// for validation, no early stopping, cores − 1 data workers (at least 1).
    pub fn new(model: impl Into<String>, dataset: impl Into<String>) -> Self {
        let mut cfg = Self::default();
        cfg.task.model = model.into();
        cfg.task.dataset = dataset.into();
        cfg
    }

    /// Batches the loader may keep ready: `prefetch`, or two per worker.
    pub fn prefetch_batches(&self) -> usize {
        self.loader.prefetch.unwrap_or(2 * self.loader.workers.max(1))
    }

    /// Checks that every value is usable, naming the first bad one: each setting's own check
    /// (in [`settings`]), then the rules between settings.
    pub fn validate(&self) -> Result<()> {
        self.check_each()?;
        let bad = |setting: &'static str, reason: String| Err(TrainError::InvalidSetting { setting, reason });
        if self.optim.warmup >= self.optim.epochs && self.optim.warmup > 0 {
            return bad(
                "warmup",
                format!(
                    "{} must be shorter than `epochs` {}",
                    self.optim.warmup, self.optim.epochs
                ),
            );
        }
        if self.optim.schedule == Schedule::OneCycle && self.optim.warmup > 0 {
            return bad(
                "warmup",
                "does not combine with `schedule` onecycle, which warms up by itself".into(),
            );
        }
        if self.optim.nesterov && (self.optim.optimizer != OptimizerKind::Sgd || self.optim.momentum == 0.0) {
            return bad("nesterov", "needs `optimizer` sgd with a `momentum` above 0".into());
        }
        if self.optim.decay_weights_only && self.optim.weight_decay == 0.0 {
            return bad("decay_weights_only", "says where `weight_decay` applies, but it is 0".into());
        }
        if self.transfer.cache_features && self.transfer.freeze != cnn_transfer::FreezePolicy::All {
            return bad(
                "cache_features",
                "needs `freeze` all: the cache replaces a backbone that does not train".into(),
            );
        }
        if self.transfer.cache_features && !self.augmentation.augment.ops.is_empty() {
            return bad(
                "cache_features",
                "and `augment` do not mix: the backbone sees each image once, so augmentation cannot apply".into(),
            );
        }
        if self.transfer.cache_features && (self.task.test_flip || self.task.test_shift > 0) {
            return bad(
                "cache_features",
                "and `test_flip`/`test_shift` do not mix: the cached features are of the images as they are".into(),
            );
        }
        let mixes = self.augmentation.mixup.is_some() || self.augmentation.cutmix.is_some();
        if self.transfer.cache_features && mixes {
            return bad(
                "cache_features",
                "and `mixup`/`cutmix` do not mix: the head trains on features computed once per image".into(),
            );
        }
        if self.task.zero_init_residual && self.transfer.weights.is_some() {
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
        if let (Ok(a), Ok(b)) = (registry::lookup(&wanted.task.model), registry::lookup(&run.task.model))
            && a.name == b.name
        {
            wanted.task.model = run.task.model.clone();
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
                !SETTINGS
                    .iter()
                    .any(|s| s.name == key.as_str() && s.changeable_on_resume)
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
        let run = TrainConfig::new("lenet5", "mnist-5k")
            .with_seed(11)
            .with_batch_size(64)
            .with_epochs(2);
        let same = run
            .clone()
            .with_epochs(5)
            .with_workers(run.loader.workers + 3)
            .with_prefetch(Some(9));
        assert!(same.changes_for_resume(&run).is_empty());
        let changed = run.clone().with_seed(12).with_model("resnet20".into());
        assert_eq!(
            changed.changes_for_resume(&run),
            ["`model` resnet20 (the run's: lenet5)", "`seed` 12 (the run's: 11)"]
        );
        let more = run
            .clone()
            .with_data_dir(Some("/data".into()))
            .with_augment(cnn_data_augment::Pipeline::from_arg("flip").unwrap());
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
            (ok.clone().with_epochs(0), "epochs"),
            (ok.clone().with_batch_size(0), "batch_size"),
            (ok.clone().with_lr(-1.0), "lr"),
            (ok.clone().with_lr(f64::NAN), "lr"),
            (ok.clone().with_momentum(1.5), "momentum"),
            (ok.clone().with_weight_decay(-0.1), "weight_decay"),
            (ok.clone().with_warmup(10), "warmup"),
            (ok.clone().with_early_stop(Some(0)), "early_stop"),
            (ok.clone().with_valid_split(0.95), "valid_split"),
            (ok.clone().with_label_smoothing(1.0), "label_smoothing"),
            (ok.clone().with_accumulate(0), "accumulate"),
            (ok.clone().with_ema(Some(1.0)), "ema"),
            (ok.clone().with_ema_every(0), "ema_every"),
            (ok.clone().with_mixup(Some(0.0)), "mixup"),
            (ok.clone().with_cutmix(Some(f64::INFINITY)), "cutmix"),
            (ok.clone().with_mix_switch(-0.5), "mix_switch"),
            (ok.clone().with_nesterov(true), "nesterov"),
            (ok.clone().with_optimizer(OptimizerKind::Sgd).with_momentum(0.0).with_nesterov(true), "nesterov"),
            (ok.clone().with_decay_weights_only(true), "decay_weights_only"),
            (
                ok.clone()
                    .with_freeze(cnn_transfer::FreezePolicy::All)
                    .with_cache_features(true)
                    .with_cutmix(Some(1.0)),
                "cache_features",
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
            (cfg.optim.schedule, cfg.optim.warmup, cfg.task.valid_split),
            (Schedule::Constant, 0, 0.1)
        );
    }
}
