//! What a training run is asked to do.

use cnn_data_augment::Pipeline;
use cnn_models::registry;
use serde::{Deserialize, Serialize};

pub mod overrides;
pub mod presets;

use crate::error::{Result, TrainError};

/// How the learning rate changes after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// ×0.1 after half of the epochs and again after three quarters (He et al. 2016's recipe,
    /// scaled to the run's length).
    Step,
    /// Cosine annealing from the rate to 0 over the epochs after the warm-up (per batch).
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "constant" => Ok(Schedule::Constant),
            "step" => Ok(Schedule::Step),
            "cosine" => Ok(Schedule::Cosine),
            other => Err(format!(
                "unknown schedule '{other}' (expected constant, step or cosine)"
            )),
        }
    }
}

/// The optimiser used for training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (PyTorch-style, undampened) momentum.
    Sgd,
    /// Adam (Kingma & Ba 2015); `--weight-decay` adds L2 to the gradient.
    Adam,
    /// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.
    AdamW,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            other => Err(format!("unknown optimizer '{other}' (expected sgd, adam or adamw)")),
        }
    }
}

/// Settings of one training run. Serialised as `config.json` in the run folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Model name from the `cnn-models` registry.
    pub model: String,
    /// Data set name (e.g. `mnist-5k`).
    pub dataset: String,
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Images per mini-batch.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Momentum (SGD only).
    pub momentum: f64,
    /// Seed for weight initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW); 0 = none.
    #[serde(default)]
    pub weight_decay: f64,
    /// Learning-rate schedule after the warm-up.
    #[serde(default)]
    pub schedule: Schedule,
    /// Epochs of linear learning-rate warm-up (per batch, from lr/steps to lr).
    #[serde(default)]
    pub warmup: usize,
    /// Stop when the validation loss has not improved for this many epochs.
    #[serde(default)]
    pub early_stop: Option<usize>,
    /// Start from these weights (torchvision `.pth`/`.safetensors`); the head is replaced when
    /// the data set has another number of classes.
    #[serde(default)]
    pub weights: Option<std::path::PathBuf>,
    /// With `weights`: always start from a fresh head (a new task), even with the same number
    /// of classes.
    #[serde(default)]
    pub new_head: bool,
    /// Which stages of the backbone to freeze (`none`, `all`, `upto:<stage>`, `auto`).
    #[serde(default)]
    pub freeze: cnn_transfer::FreezePolicy,
    /// The backbone's learning rate as a share of `lr` (the head always trains at `lr`); with
    /// `stage_lr_decay`, the top stage's share (see [`cnn_transfer::rates`]).
    #[serde(default = "one")]
    pub backbone_lr_scale: f64,
    /// Each stage below the top trains at this many times its upper neighbour's rate
    /// (discriminative rates; 1 = the whole backbone at `backbone_lr_scale`).
    #[serde(default = "one")]
    pub stage_lr_decay: f64,
    /// With `freeze: all`: run the backbone once per split, cache its features on disk and train
    /// the head from them.
    #[serde(default)]
    pub cache_features: bool,
    /// Where feature caches live (default: `<data dir>/features`).
    #[serde(default)]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Train on a stratified, seeded sample of this many training images (before the
    /// validation split); `None`: all of them.
    #[serde(default)]
    pub subset: Option<usize>,
    /// Share of the training set held out (stratified, seeded) for validation each epoch;
    /// 0 validates on the test set.
    #[serde(default = "default_valid_split")]
    pub valid_split: f64,
    /// Augmentation of the training images (empty: none).
    #[serde(default)]
    pub augment: Pipeline,
    /// Folder holding downloaded data sets (default: `~/.cache/cnn-casestudies`).
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// Start each residual block's last batch-norm γ at zero, so every block starts as the
    /// identity (torchvision's `zero_init_residual`; ResNets only, not with `weights`).
    #[serde(default)]
    pub zero_init_residual: bool,
    /// Train (and test) on these classes of the data set only, relabelled 0, 1, … in this order
    /// (`None`: all classes).
    #[serde(default)]
    pub classes: Option<Vec<usize>>,
    /// Input height and width in pixels (`None`: the rule of [`crate::run::input_size`]; a run
    /// folder's `config.json` records the size it was trained at).
    #[serde(default)]
    pub input_size: Option<usize>,
    /// Data worker threads (0: build batches on the training thread).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Most finished batches waiting in the loader's queue (`None`: two per worker).
    #[serde(default)]
    pub prefetch: Option<usize>,
}

fn one() -> f64 {
    1.0
}

fn default_valid_split() -> f64 {
    0.1
}

fn default_workers() -> usize {
    cnn_data_augment::LoaderConfig::new(1).workers
}

impl TrainConfig {
    /// The defaults for `model` on `dataset`: Adam, lr 1e-3 (constant, no warm-up, no weight
    /// decay), batch 32, 10 epochs, seed 42, no augmentation, 10% of the training set held out
    /// for validation, no early stopping, cores − 1 data workers (at least 1).
    pub fn new(model: impl Into<String>, dataset: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            dataset: dataset.into(),
            epochs: 10,
            batch_size: 32,
            lr: 1e-3,
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            seed: 42,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            warmup: 0,
            early_stop: None,
            valid_split: default_valid_split(),
            subset: None,
            weights: None,
            new_head: false,
            cache_features: false,
            cache_dir: None,
            freeze: cnn_transfer::FreezePolicy::None,
            backbone_lr_scale: 1.0,
            stage_lr_decay: 1.0,
            augment: Pipeline::default(),
            data_dir: None,
            zero_init_residual: false,
            input_size: None,
            classes: None,
            workers: default_workers(),
            prefetch: None,
        }
    }

    /// Batches the loader may keep ready: `prefetch`, or two per worker.
    pub fn prefetch_batches(&self) -> usize {
        self.prefetch.unwrap_or(2 * self.workers.max(1))
    }

    /// Checks that every value is usable, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        /// Bounds beyond which a value is a typo, not a setting.
        const MAX_EPOCHS: usize = 100_000;
        const MAX_BATCH: usize = 65_536;
        const MAX_LR: f64 = 10.0;
        let bad = |msg: String| Err(TrainError::Config(msg));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1".into());
        }
        if let Some(size) = self.input_size
            && !(1..=4096).contains(&size)
        {
            return bad(format!("--input-size must be between 1 and 4096 pixels, not {size}"));
        }
        if self.epochs > MAX_EPOCHS {
            return bad(format!("--epochs {} is absurd (at most {MAX_EPOCHS})", self.epochs));
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if self.batch_size > MAX_BATCH {
            return bad(format!(
                "--batch-size {} is absurd (at most {MAX_BATCH})",
                self.batch_size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("--lr must be a positive number, got {}", self.lr));
        }
        if self.lr > MAX_LR {
            return bad(format!(
                "--lr {} is absurd: no network here trains above {MAX_LR} (typical: 0.1 for SGD, 0.001 for Adam)",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(format!("--momentum must be in [0, 1), got {}", self.momentum));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("--weight-decay must be 0 or more, got {}", self.weight_decay));
        }
        if self.warmup >= self.epochs && self.warmup > 0 {
            return bad(format!(
                "--warmup {} must be shorter than --epochs {}",
                self.warmup, self.epochs
            ));
        }
        for (flag, value) in [
            ("--backbone-lr-scale", self.backbone_lr_scale),
            ("--stage-lr-decay", self.stage_lr_decay),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= 10.0) {
                return bad(format!("{flag} must be a number in (0, 10], got {value}"));
            }
        }
        if self.cache_features && self.freeze != cnn_transfer::FreezePolicy::All {
            return bad(
                "--cache-features needs --freeze all: the cache replaces a backbone that does not train".into(),
            );
        }
        if self.cache_features && !self.augment.ops.is_empty() {
            return bad(
                "--cache-features and --augment do not mix: the backbone sees each image once, so augmentation cannot apply"
                    .into(),
            );
        }
        if self.zero_init_residual && self.weights.is_some() {
            return bad("--zero-init-residual initialises a network from scratch; it cannot apply to --weights".into());
        }
        if self.subset == Some(0) {
            return bad("--subset must be at least 1 image".into());
        }
        if self.early_stop == Some(0) {
            return bad("--early-stop must be at least 1 epoch".into());
        }
        if !(0.0..0.9).contains(&self.valid_split) {
            return bad(format!("--valid-split must be in [0, 0.9), got {}", self.valid_split));
        }
        if self.workers > 256 {
            return bad(format!("--workers {} is absurd (at most 256)", self.workers));
        }
        if let Some(p) = self.prefetch
            && !(1..=4096).contains(&p)
        {
            return bad(format!("--prefetch must be between 1 and 4096 batches, got {p}"));
        }
        self.augment
            .validate()
            .map_err(|e| TrainError::Config(format!("--augment: {e}")))?;
        Ok(())
    }

    /// Settings a resumed run may change: the total epochs and the data loader's threads.
    pub const CHANGEABLE_ON_RESUME: [&'static str; 3] = ["epochs", "workers", "prefetch"];

    /// What a resume of `run` with the settings `self` would change, one entry per setting as
    /// `--flag value (the run's: value)`, leaving out [`Self::CHANGEABLE_ON_RESUME`]. Empty when
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
                !Self::CHANGEABLE_ON_RESUME.contains(&key.as_str()) && was.get(key.as_str()) != Some(value)
            })
            .map(|(key, value)| {
                format!(
                    "--{} {} (the run's: {})",
                    key.replace('_', "-"),
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
            ["--model resnet20 (the run's: lenet5)", "--seed 12 (the run's: 11)"]
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
        assert_eq!(names, ["--augment", "--data-dir"]);
    }

    #[test]
    fn validation_names_the_flag() {
        let ok = TrainConfig::new("lenet5", "mnist-5k");
        assert!(ok.validate().is_ok());
        for (cfg, flag) in [
            (
                TrainConfig {
                    epochs: 0,
                    ..ok.clone()
                },
                "--epochs",
            ),
            (
                TrainConfig {
                    batch_size: 0,
                    ..ok.clone()
                },
                "--batch-size",
            ),
            (TrainConfig { lr: -1.0, ..ok.clone() }, "--lr"),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..ok.clone()
                },
                "--lr",
            ),
            (
                TrainConfig {
                    momentum: 1.5,
                    ..ok.clone()
                },
                "--momentum",
            ),
            (
                TrainConfig {
                    weight_decay: -0.1,
                    ..ok.clone()
                },
                "--weight-decay",
            ),
            (
                TrainConfig {
                    warmup: 10,
                    ..ok.clone()
                },
                "--warmup",
            ),
            (
                TrainConfig {
                    early_stop: Some(0),
                    ..ok.clone()
                },
                "--early-stop",
            ),
            (
                TrainConfig {
                    valid_split: 0.95,
                    ..ok.clone()
                },
                "--valid-split",
            ),
        ] {
            assert!(cfg.validate().unwrap_err().to_string().contains(flag));
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
