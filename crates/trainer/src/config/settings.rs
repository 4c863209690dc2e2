//! Every training setting, declared once: its name, type, default, help text, group, check and
//! whether a resumed run may change it. [`TrainConfig`] (the run's
//! `config.json`), [`TrainOverrides`] (`cnn train`'s flags, preset files and
//! library callers: "leave it as the base has it" or a new value), their merge, the defaults,
//! the per-setting checks and [`SETTINGS`] all follow from the one table at the end of this file.
//!
//! Adding a setting is one entry in that table plus its use; see `docs/architecture.md`.

/// What the table says of one setting, for code that lists them (`cnn train --help` groups,
/// error messages that turn a setting's name into its flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingInfo {
    /// The field's name in `config.json`, presets and [`TrainError::InvalidSetting`].
    ///
    /// [`TrainError::InvalidSetting`]: crate::TrainError::InvalidSetting
    pub name: &'static str,
    /// The group it is listed under.
    pub group: &'static str,
    /// Whether `--resume` may change it.
    pub changeable_on_resume: bool,
}

impl SettingInfo {
    /// The command-line flag: `--` and the name with dashes.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// How a flag's value applies to a setting's base value.
pub trait Merge<Base> {
    /// `base` with this flag's value applied; `Err(reason)` when it cannot be read.
    fn merge(&self, base: Base) -> Result<Base, String>;
}

/// A value replaces the base's when given.
impl<T: Clone> Merge<T> for Option<T> {
    fn merge(&self, base: T) -> Result<T, String> {
        Ok(self.clone().unwrap_or(base))
    }
}

/// An optional setting (`None` is a value of its own) is replaced when the flag is given.
impl<T: Clone> Merge<Option<T>> for Option<T> {
    fn merge(&self, base: Option<T>) -> Result<Option<T>, String> {
        Ok(self.clone().or(base))
    }
}

/// A switch can only be switched on.
impl Merge<bool> for bool {
    fn merge(&self, base: bool) -> Result<bool, String> {
        Ok(*self || base)
    }
}

/// An augmentation preset name or pipeline file.
impl Merge<Pipeline> for Option<String> {
    fn merge(&self, base: Pipeline) -> Result<Pipeline, String> {
        match self {
            Some(text) => Pipeline::from_arg(text).map_err(|e| format!("{text} is not a preset or pipeline file: {e}")),
            None => Ok(base),
        }
    }
}

/// Declares the settings. Each entry:
///
/// ```text
/// /// help text (also the field's documentation)
/// name: Type = default, flag(FlagType), group "Heading", fixed|changeable [, clap(extra args)] [, check |v| reason];
/// ```
///
/// The flag's type says how it applies ([`Merge`]): `Option<Type>` replaces the base's value
/// when given; for a `Type` that is an `Option` already, the flag is that same `Option`; a
/// `bool` flag can only switch a `bool` setting on; `Option<String>` is parsed into a `Type`
/// that is not a string (the augmentation pipeline). (The flag's type is written out because
/// clap reads `Option` and `bool` from the field's tokens.) `changeable` marks the settings a
/// resumed run may change (`fixed`: the run's own value only). A check yields `Some(reason)`
/// when the value is bad.
macro_rules! settings {
    (@changeable changeable, $cfg:ident, $over:expr, $base:expr, $name:ident) => {
        $cfg.$name = settings!(@merge $over, $base, $name)
    };
    (@changeable fixed, $cfg:ident, $over:expr, $base:expr, $name:ident) => {};

    (@merge $over:expr, $base:expr, $name:ident) => {
        Merge::merge(&$over, $base).map_err(|reason| crate::error::TrainError::InvalidSetting {
            setting: stringify!($name),
            reason,
        })?
    };

    (@is_resume changeable) => { true };
    (@is_resume fixed) => { false };

    (@check $value:expr, $name:ident) => {};
    (@check $value:expr, $name:ident, |$v:ident| $check:expr) => {{
        let $v = &$value;
        if let Some(reason) = $check {
            return Err(crate::error::TrainError::InvalidSetting { setting: stringify!($name), reason });
        }
    }};

    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $ty:ty = $default:expr, flag($($flag:tt)+), group $group:literal, $resume:ident
        $(, clap($($clap:tt)*))? $(, check |$v:ident| $check:expr)?;
    )*) => {
        /// Settings of one training run. Serialised as `config.json` in the run folder; a
        /// setting missing from an older file takes its default.
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct TrainConfig {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for TrainConfig {
            /// Every setting's default: LeNet-5 on the embedded MNIST digits.
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        /// Every training setting as "leave it as the base has it" (`None`/`false`) or a new
        /// value, on top of a preset: what `cnn train`'s flags, a preset file and library
        /// callers give. With the `clap` feature it is also the set of `cnn train`'s flags.
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::Args))]
        #[serde(default, deny_unknown_fields)]
        pub struct TrainOverrides {
            /// Start from a named recipe (`--preset list` lists them) or a preset file
            /// (.toml); other flags override its settings.
            #[cfg_attr(feature = "clap", arg(long))]
            pub preset: Option<String>,
            $(
                $(#[doc = $doc])*
                #[cfg_attr(feature = "clap", arg(long, help_heading = $group $(, $($clap)*)?))]
                pub $name: $($flag)+,
            )*
        }

        impl TrainOverrides {
            /// `base` with every setting given here replacing the base's (the preset aside).
            pub(crate) fn apply_to(&self, base: TrainConfig) -> crate::error::Result<TrainConfig> {
                Ok(TrainConfig {
                    $( $name: settings!(@merge self.$name, base.$name, $name), )*
                })
            }

            /// `run` with only the settings a resumed run may change taken from here.
            pub(crate) fn apply_changeable(&self, run: TrainConfig) -> crate::error::Result<TrainConfig> {
                let mut cfg = run.clone();
                $( settings!(@changeable $resume, cfg, self.$name, run.$name, $name); )*
                Ok(cfg)
            }
        }

        impl TrainConfig {
            /// Each setting's own check, in the table's order: the first bad value.
            pub(crate) fn check_each(&self) -> crate::error::Result<()> {
                $( settings!(@check self.$name, $name $(, |$v| $check)?); )*
                Ok(())
            }
        }

        /// Every setting, in the order of `config.json`.
        pub const SETTINGS: &[SettingInfo] = &[
            $( SettingInfo {
                name: stringify!($name),
                group: $group,
                changeable_on_resume: settings!(@is_resume $resume),
            }, )*
        ];
    };

}

use std::path::PathBuf;

use cnn_data_augment::Pipeline;
use cnn_transfer::FreezePolicy;

use super::choices::{OptimizerKind, Schedule};

/// Bounds beyond which a value is a typo, not a setting.
const MAX_EPOCHS: usize = 100_000;
const MAX_BATCH: usize = 65_536;
const MAX_LR: f64 = 10.0;

fn default_workers() -> usize {
    cnn_data_augment::LoaderConfig::new(1).workers
}

/// `Some(reason)` unless `value` is a finite number in `(0, max]`.
fn positive_up_to(value: f64, max: f64) -> Option<String> {
    (!(value.is_finite() && value > 0.0 && value <= max))
        .then(|| format!("must be a number in (0, {max}], got {value}"))
}

/// `Some(reason)` when an optional count is given as 0.
fn at_least_one(value: &Option<usize>, unit: &str) -> Option<String> {
    (*value == Some(0)).then(|| format!("must be at least 1 {unit}"))
}

settings! {
    /// Model name (see `cnn models`) [default: lenet5].
    model: String = "lenet5".into(), flag(Option<String>), group "Model and data", fixed;
    /// Data set: mnist-5k (embedded), mnist, fashion-mnist, cifar10, cifar100, or the path of an
    /// image folder (root/<class>/*.png|jpg…, or root/train/… and root/val/…) [default: mnist-5k].
    dataset: String = "mnist-5k".into(), flag(Option<String>), group "Model and data", fixed;
    /// Passes over the training set; with --resume, the total to reach [default: 10].
    epochs: usize = 10, flag(Option<usize>), group "Optimiser", changeable, check |v| match *v {
        0 => Some("must be at least 1".into()),
        n if n > MAX_EPOCHS => Some(format!("{n} is absurd (at most {MAX_EPOCHS})")),
        _ => None,
    };
    /// Images per mini-batch [default: 32].
    batch_size: usize = 32, flag(Option<usize>), group "Optimiser", fixed, check |v| match *v {
        0 => Some("must be at least 1".into()),
        n if n > MAX_BATCH => Some(format!("{n} is absurd (at most {MAX_BATCH})")),
        _ => None,
    };
    /// Learning rate (peak, after warm-up) [default: 0.001].
    lr: f64 = 1e-3, flag(Option<f64>), group "Optimiser", fixed, clap(allow_negative_numbers = true), check |v| {
        if !(v.is_finite() && *v > 0.0) {
            Some(format!("must be a positive number, got {v}"))
        } else if *v > MAX_LR {
            Some(format!(
                "{v} is absurd: no network here trains above {MAX_LR} (typical: 0.1 for SGD, 0.001 for Adam)"
            ))
        } else {
            None
        }
    };
    /// Optimiser: sgd, adam or adamw [default: adam].
    optimizer: OptimizerKind = OptimizerKind::Adam, flag(Option<OptimizerKind>), group "Optimiser", fixed;
    /// Momentum for sgd [default: 0.9].
    momentum: f64 = 0.9, flag(Option<f64>), group "Optimiser", fixed, clap(allow_negative_numbers = true),
        check |v| (!(0.0..1.0).contains(v)).then(|| format!("must be in [0, 1), got {v}"));
    /// Seed for initialisation, shuffling, augmentation and dropout [default: 42].
    seed: u64 = 42, flag(Option<u64>), group "Model and data", fixed;
    /// Weight decay: L2 for sgd and adam, decoupled for adamw [default: 0].
    weight_decay: f64 = 0.0, flag(Option<f64>), group "Optimiser", fixed, clap(allow_negative_numbers = true),
        check |v| (!(v.is_finite() && *v >= 0.0)).then(|| format!("must be 0 or more, got {v}"));
    /// Learning-rate schedule after the warm-up: constant, step (x0.1 at 50% and 75% of the
    /// epochs) or cosine [default: constant].
    schedule: Schedule = Schedule::Constant, flag(Option<Schedule>), group "Optimiser", fixed;
    /// Epochs of linear learning-rate warm-up (per batch, from lr/steps to lr) [default: 0].
    warmup: usize = 0, flag(Option<usize>), group "Optimiser", fixed;
    /// Stop when the validation loss has not improved for N epochs [default: off].
    early_stop: Option<usize> = None, flag(Option<usize>), group "Optimiser", fixed, check |v| at_least_one(v, "epoch");
    /// Start from these weights: torchvision's (.pth/.safetensors) or a run's model.bpk; the
    /// head is replaced when the data set has another number of classes (see `cnn weights`).
    weights: Option<PathBuf> = None, flag(Option<PathBuf>), group "Transfer", fixed;
    /// With --weights: start from a fresh head even when the class count matches (a new task).
    new_head: bool = false, flag(bool), group "Transfer", fixed;
    /// Freeze part of the backbone: none, all (train only the head), upto:<stage> (e.g.
    /// upto:layer2, upto:features.10, upto:inception4a) or auto (up to 1,000 labelled images
    /// per class: nothing frozen, the top stage at 0.3 × --lr and each stage below at half the
    /// one above, as measured best; auto:<large> sets the threshold) [default: none].
    freeze: FreezePolicy = FreezePolicy::None, flag(Option<FreezePolicy>), group "Transfer", fixed;
    /// Train the backbone at this share of --lr, the new head at --lr (e.g. 0.1 to fine-tune
    /// pretrained weights gently); with --stage-lr-decay, the top stage's share; needs a model
    /// with stages [default: 1].
    backbone_lr_scale: f64 = 1.0, flag(Option<f64>), group "Transfer", fixed, check |v| positive_up_to(*v, 10.0);
    /// Discriminative rates: each stage below the top one trains at this many times its upper
    /// neighbour's rate (e.g. 0.5 halves the rate stage by stage towards the stem) [default: 1].
    stage_lr_decay: f64 = 1.0, flag(Option<f64>), group "Transfer", fixed, check |v| positive_up_to(*v, 10.0);
    /// With --freeze all: run the backbone once over each split, cache the features on disk and
    /// train the head from them (no augmentation possible).
    cache_features: bool = false, flag(bool), group "Transfer", fixed;
    /// Folder for feature caches [default: ~/.cache/cnn-casestudies/features].
    cache_dir: Option<PathBuf> = None, flag(Option<PathBuf>), group "Transfer", fixed;
    /// Train on a stratified, seeded sample of this many training images (before the
    /// validation split) [default: all].
    subset: Option<usize> = None, flag(Option<usize>), group "Model and data", fixed, check |v| at_least_one(v, "image");
    /// Share of the training set held out for validation (stratified, seeded); 0 validates on
    /// the test set [default: 0.1].
    valid_split: f64 = 0.1, flag(Option<f64>), group "Model and data", fixed,
        check |v| (!(0.0..0.9).contains(v)).then(|| format!("must be in [0, 0.9), got {v}"));
    /// Augmentation of the training images: a preset (none, flip, mnist, cifar, imagenet) or a
    /// .toml/.json pipeline file [default: none].
    augment: Pipeline = Pipeline::default(), flag(Option<String>), group "Augmentation", fixed,
        check |v| v.validate().err().map(|e| format!("is not a valid pipeline: {e}"));
    /// Folder holding the data sets' folders [default: ~/.cache/cnn-casestudies]; Debian's
    /// dataset-fashion-mnist works with --data-dir /usr/share/datasets.
    data_dir: Option<PathBuf> = None, flag(Option<PathBuf>), group "Model and data", fixed;
    /// Start every residual block's last batch-norm γ at zero, so each block starts as the
    /// identity (torchvision's zero_init_residual; ResNets only, not with --weights).
    zero_init_residual: bool = false, flag(bool), group "Model and data", fixed;
    /// Train and test on these classes of the data set only, by label, comma-separated (e.g.
    /// 5,6,7,8,9); they are numbered 0, 1, … in this order [default: all].
    classes: Option<Vec<usize>> = None, flag(Option<Vec<usize>>), group "Model and data", fixed, clap(value_delimiter = ',');
    /// Input height and width in pixels [default: the model's own up to 64 px; 64 for
    /// ImageNet-sized networks trained from scratch; with --weights, the size they were
    /// trained at (224 for torchvision's, a run's own size for its model.bpk)].
    input_size: Option<usize> = None, flag(Option<usize>), group "Model and data", fixed, check |v| match *v {
        Some(size) if !(1..=4096).contains(&size) => Some(format!("must be between 1 and 4096 pixels, not {size}")),
        _ => None,
    };
    /// Data worker threads that prepare batches in the background; 0 = on the training thread
    /// [default: cores - 1, at least 1].
    workers: usize = default_workers(), flag(Option<usize>), group "Data loader", changeable,
        check |v| (*v > 256).then(|| format!("{v} is absurd (at most 256)"));
    /// Most finished batches kept waiting for the training loop (bounds memory)
    /// [default: 2 per worker].
    prefetch: Option<usize> = None, flag(Option<usize>), group "Data loader", changeable, check |v| match *v {
        Some(p) if !(1..=4096).contains(&p) => Some(format!("must be between 1 and 4096 batches, got {p}")),
        _ => None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_field_of_config_json_in_its_order() {
        let json = serde_json::to_value(TrainConfig::default()).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        // serde_json's map is ordered by key; the table is in the struct's order.
        assert_eq!(keys, sorted);
        assert_eq!(names.first(), Some(&"model"));
        let changeable: Vec<&str> = SETTINGS
            .iter()
            .filter(|s| s.changeable_on_resume)
            .map(|s| s.name)
            .collect();
        assert_eq!(changeable, ["epochs", "workers", "prefetch"]);
        assert_eq!(
            SETTINGS.iter().find(|s| s.name == "batch_size").unwrap().flag(),
            "--batch-size"
        );
    }

    #[test]
    fn a_config_json_written_before_a_setting_existed_loads_with_its_default() {
        // The keys of the oldest run folders: everything after `seed` came later.
        let old = r#"{"model":"resnet20","dataset":"fashion-mnist","epochs":8,"batch_size":128,
            "lr":0.1,"optimizer":"sgd","momentum":0.9,"seed":7}"#;
        let cfg: TrainConfig = serde_json::from_str(old).unwrap();
        let expected = TrainConfig {
            epochs: 8,
            batch_size: 128,
            lr: 0.1,
            optimizer: OptimizerKind::Sgd,
            seed: 7,
            ..TrainConfig::new("resnet20", "fashion-mnist")
        };
        assert_eq!(cfg, expected);
    }

    #[test]
    fn flags_merge_by_their_kind() {
        let base = TrainConfig {
            early_stop: Some(3),
            new_head: true,
            ..TrainConfig::default()
        };
        let flags = TrainOverrides {
            lr: Some(0.5),
            subset: Some(100),
            augment: Some("flip".into()),
            ..TrainOverrides::default()
        };
        let cfg = flags.apply_to(base.clone()).unwrap();
        assert_eq!(
            (cfg.lr, cfg.subset, cfg.early_stop, cfg.new_head),
            (0.5, Some(100), Some(3), true)
        );
        assert_eq!(cfg.augment, Pipeline::preset("flip").unwrap());
        let bad = TrainOverrides {
            augment: Some("no-such".into()),
            ..TrainOverrides::default()
        };
        match bad.apply_to(base).unwrap_err() {
            crate::TrainError::InvalidSetting { setting, reason } => {
                assert_eq!(setting, "augment");
                assert!(reason.contains("no-such"), "{reason}");
            }
            other => panic!("{other}"),
        }
    }
}
