//! Every training setting, declared once: its name, type, default, help text, group, check and
//! whether a resumed run may change it. [`TrainConfig`] (the run's
//! `config.json`), [`TrainOverrides`] (`cnn train`'s flags, preset files and
//! library callers: "leave it as the base has it" or a new value), their merge, the defaults,
//! the per-setting checks and [`SETTINGS`] all follow from the one table at the end of this file.
//!
//! Adding a setting is one entry in that table plus its use; see `docs/architecture.md`.

use std::path::PathBuf;

use cnn_data_augment::Pipeline;
use cnn_models::precision::Precision;
use cnn_transfer::FreezePolicy;

use super::choices::{OptimizerKind, Schedule};
pub use super::declare::SettingInfo;

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

/// `Some(reason)` unless `alpha` is a usable Beta(α, α) parameter for mixup or cutmix.
fn mix_alpha(alpha: f64) -> Option<String> {
    (!(alpha.is_finite() && alpha > 0.0 && alpha <= 100.0)).then(|| format!("α must be in (0, 100], got {alpha}"))
}

/// `Some(reason)` when an optional count is given as 0.
fn at_least_one(value: &Option<usize>, unit: &str) -> Option<String> {
    (*value == Some(0)).then(|| format!("must be at least 1 {unit}"))
}

settings! {
    /// What is trained on what: the network, the data set and its split, the seed.
    task: TaskSettings, "Model and data" {
        /// Model name (see `cnn models`) [default: lenet5].
        model: String = "lenet5".into(), flag(Option<String>), fixed;
        /// Data set: mnist-5k (embedded), mnist, fashion-mnist, cifar10, cifar100, or the path of an
        /// image folder (root/<class>/*.png|jpg…, or root/train/… and root/val/…) [default: mnist-5k].
        dataset: String = "mnist-5k".into(), flag(Option<String>), fixed;
        /// Seed for initialisation, shuffling, augmentation and dropout [default: 42].
        seed: u64 = 42, flag(Option<u64>), fixed;
        /// Train on a stratified, seeded sample of this many training images (before the
        /// validation split) [default: all].
        subset: Option<usize> = None, flag(Option<usize>), fixed, check |v| at_least_one(v, "image");
        /// Share of the training set held out for validation (stratified, seeded); 0 validates on
        /// the test set [default: 0.1].
        valid_split: f64 = 0.1, flag(Option<f64>), fixed,
            check |v| (!(0.0..0.9).contains(v)).then(|| format!("must be in [0, 0.9), got {v}"));
        /// Folder holding the data sets' folders [default: ~/.cache/cnn-casestudies]; Debian's
        /// dataset-fashion-mnist works with --data-dir /usr/share/datasets.
        data_dir: Option<PathBuf> = None, flag(Option<PathBuf>), fixed;
        /// Start every residual block's last batch-norm γ at zero, so each block starts as the
        /// identity (torchvision's zero_init_residual; ResNets only, not with --weights).
        zero_init_residual: bool = false, flag(bool), fixed;
        /// Train and test on these classes of the data set only, by label, comma-separated (e.g.
        /// 5,6,7,8,9); they are numbered 0, 1, … in this order [default: all].
        classes: Option<Vec<usize>> = None, flag(Option<Vec<usize>>), fixed, clap(value_delimiter = ',');
        /// Input height and width in pixels [default: the model's own up to 64 px; 64 for
        /// ImageNet-sized networks trained from scratch; with --weights, the size they were
        /// trained at (224 for torchvision's, a run's own size for its model.bpk)].
        input_size: Option<usize> = None, flag(Option<usize>), fixed, check |v| match *v {
            Some(size) if !(1..=4096).contains(&size) => Some(format!("must be between 1 and 4096 pixels, not {size}")),
            _ => None,
        };
        /// Validate and test each image together with its left-right mirror, averaging the two
        /// predictions' class probabilities (test-time flipping, for classes that look the same
        /// mirrored, as clothes do; `cnn eval` does the same for the run) [default: off].
        test_flip: bool = false, flag(bool), fixed;
        /// Also validate and test each image moved this many pixels down-right and up-left (edges
        /// repeated into the gap; with --test-flip each shifted view mirrored too), averaging the
        /// class probabilities of all views (airbench's test-time translation) [default: 0: off].
        test_shift: usize = 0, flag(Option<usize>), fixed,
            check |v| (*v > 8).then(|| format!("must be at most 8 pixels, got {v}"));
        /// Products of the convolutions: f32, or bf16 operands with f32 sums in their forward and
        /// backward passes where bf16 is faster (the weights, their updates and every other layer
        /// stay f32). Fast on flex with
        /// AVX512-BF16; on other CPUs flex computes the same bf16 products slowly, and other
        /// backends run f32 [default: f32].
        precision: Precision = Precision::F32, flag(Option<Precision>), fixed;
    }
    /// How the weights are updated: epochs, batches, rate, optimiser, schedule, early stop.
    optim: OptimSettings, "Optimiser" {
        /// Passes over the training set; with --resume, the total to reach [default: 10].
        epochs: usize = 10, flag(Option<usize>), changeable, check |v| match *v {
            0 => Some("must be at least 1".into()),
            n if n > MAX_EPOCHS => Some(format!("{n} is absurd (at most {MAX_EPOCHS})")),
            _ => None,
        };
        /// Images per mini-batch [default: 32].
        batch_size: usize = 32, flag(Option<usize>), fixed, check |v| match *v {
            0 => Some("must be at least 1".into()),
            n if n > MAX_BATCH => Some(format!("{n} is absurd (at most {MAX_BATCH})")),
            _ => None,
        };
        /// Learning rate (peak, after warm-up) [default: 0.001].
        lr: f64 = 1e-3, flag(Option<f64>), fixed, clap(allow_negative_numbers = true), check |v| {
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
        optimizer: OptimizerKind = OptimizerKind::Adam, flag(Option<OptimizerKind>), fixed;
        /// Momentum for sgd [default: 0.9].
        momentum: f64 = 0.9, flag(Option<f64>), fixed, clap(allow_negative_numbers = true),
            check |v| (!(0.0..1.0).contains(v)).then(|| format!("must be in [0, 1), got {v}"));
        /// Weight decay: L2 for sgd and adam, decoupled for adamw [default: 0].
        weight_decay: f64 = 0.0, flag(Option<f64>), fixed, clap(allow_negative_numbers = true),
            check |v| (!(v.is_finite() && *v >= 0.0)).then(|| format!("must be 0 or more, got {v}"));
        /// Nesterov momentum for sgd (PyTorch's `nesterov=True`: the step is g + momentum × v)
        /// [default: off].
        nesterov: bool = false, flag(bool), fixed;
        /// Weight decay on convolution kernels and linear matrices only, not on biases and
        /// batch-norm scales and shifts (the parameters of rank 1), as timm and the fast CIFAR-10
        /// records do [default: off: every parameter decays].
        decay_weights_only: bool = false, flag(bool), fixed;
        /// Learning-rate schedule after the warm-up: constant, step (x0.1 at 50% and 75% of the
        /// epochs), cosine, or onecycle (PyTorch's OneCycleLR: up from lr/25 to lr over 30% of the
        /// updates, then down; no --warmup) [default: constant].
        schedule: Schedule = Schedule::Constant, flag(Option<Schedule>), fixed;
        /// Epochs of linear learning-rate warm-up (per batch, from lr/steps to lr) [default: 0].
        warmup: usize = 0, flag(Option<usize>), fixed;
        /// Stop when the validation loss has not improved for N epochs [default: off].
        early_stop: Option<usize> = None, flag(Option<usize>), fixed, check |v| at_least_one(v, "epoch");
        /// Label smoothing of the training loss: each target puts 1 - s on its label and s spread
        /// evenly over all classes, as PyTorch's label_smoothing (e.g. 0.1) [default: 0].
        label_smoothing: f64 = 0.0, flag(Option<f64>), fixed, clap(allow_negative_numbers = true),
            check |v| (!(0.0..1.0).contains(v)).then(|| format!("must be in [0, 1), got {v}"));
        /// Keep an exponential moving average of the weights with this decay (e.g. 0.999): after
        /// an update, average = decay × average + (1 - decay) × weights. It is validated after
        /// every epoch, saved as model-ema.bpk, and tested instead of the trained weights when
        /// better on validation [default: off].
        ema: Option<f64> = None, flag(Option<f64>), fixed, clap(allow_negative_numbers = true),
            check |v| v.and_then(|d| (!(d > 0.0 && d < 1.0)).then(|| format!("decay must be in (0, 1), got {d}")));
        /// With --ema: average after every N updates only [default: 1].
        ema_every: usize = 1, flag(Option<usize>), fixed,
            check |v| (*v == 0).then(|| "must be at least 1 update".into());
        /// Sum the gradients of K batches before each update: the update of a K times larger
        /// batch (batch-norm statistics aside) in the memory of one [default: 1].
        accumulate: usize = 1, flag(Option<usize>), fixed, check |v| match *v {
            0 => Some("must be at least 1 batch".into()),
            n if n > MAX_BATCH => Some(format!("{n} is absurd (at most {MAX_BATCH})")),
            _ => None,
        };
    }
    /// Starting from trained weights: which, what is frozen, the rates per stage, cached features.
    transfer: TransferSettings, "Transfer" {
        /// Start from these weights: torchvision's (.pth/.safetensors) or a run's model.bpk; the
        /// head is replaced when the data set has another number of classes (see `cnn weights`).
        weights: Option<PathBuf> = None, flag(Option<PathBuf>), fixed;
        /// With --weights: start from a fresh head even when the class count matches (a new task).
        new_head: bool = false, flag(bool), fixed;
        /// Freeze part of the backbone: none, all (train only the head), upto:<stage> (e.g.
        /// upto:layer2, upto:features.10, upto:inception4a) or auto (up to 1,000 labelled images
        /// per class: nothing frozen, the top stage at 0.3 × --lr and each stage below at half the
        /// one above, as measured best; auto:<large> sets the threshold) [default: none].
        freeze: FreezePolicy = FreezePolicy::None, flag(Option<FreezePolicy>), fixed;
        /// Train the backbone at this share of --lr, the new head at --lr (e.g. 0.1 to fine-tune
        /// pretrained weights gently); with --stage-lr-decay, the top stage's share; needs a model
        /// with stages [default: 1].
        backbone_lr_scale: f64 = 1.0, flag(Option<f64>), fixed, check |v| positive_up_to(*v, 10.0);
        /// Discriminative rates: each stage below the top one trains at this many times its upper
        /// neighbour's rate (e.g. 0.5 halves the rate stage by stage towards the stem) [default: 1].
        stage_lr_decay: f64 = 1.0, flag(Option<f64>), fixed, check |v| positive_up_to(*v, 10.0);
        /// With --freeze all: run the backbone once over each split, cache the features on disk and
        /// train the head from them (no augmentation possible).
        cache_features: bool = false, flag(bool), fixed;
        /// Folder for feature caches [default: ~/.cache/cnn-casestudies/features].
        cache_dir: Option<PathBuf> = None, flag(Option<PathBuf>), fixed;
    }
    /// What is done to the training images.
    augmentation: AugmentSettings, "Augmentation" {
        /// Augmentation of the training images: a preset (none, flip, mnist, cifar, imagenet) or a
        /// .toml/.json pipeline file [default: none].
        augment: Pipeline = Pipeline::default(), flag(Option<String>), fixed,
            check |v| v.validate().err().map(|e| format!("is not a valid pipeline: {e}"));
        /// Mixup: blend each training image with another of its batch, and their labels, by
        /// λ ~ Beta(α, α); the value is α (e.g. 0.2) [default: off].
        mixup: Option<f64> = None, flag(Option<f64>), fixed, clap(allow_negative_numbers = true),
            check |v| v.and_then(|a| mix_alpha(a));
        /// CutMix: paste a box of another image of the batch into each training image, the labels
        /// weighted by area, λ ~ Beta(α, α); the value is α (e.g. 1.0) [default: off].
        cutmix: Option<f64> = None, flag(Option<f64>), fixed, clap(allow_negative_numbers = true),
            check |v| v.and_then(|a| mix_alpha(a));
        /// With both --mixup and --cutmix: the probability that a batch takes cutmix rather than
        /// mixup [default: 0.5].
        mix_switch: f64 = 0.5, flag(Option<f64>), fixed,
            check |v| (!(0.0..=1.0).contains(v)).then(|| format!("must be in [0, 1], got {v}"));
    }
    /// The background threads that prepare the batches.
    loader: LoaderSettings, "Data loader" {
        /// Data worker threads that prepare batches in the background; 0 = on the training thread
        /// [default: cores - 1, at least 1].
        workers: usize = default_workers(), flag(Option<usize>), changeable,
            check |v| (*v > 256).then(|| format!("{v} is absurd (at most 256)"));
        /// Most finished batches kept waiting for the training loop (bounds memory)
        /// [default: 2 per worker].
        prefetch: Option<usize> = None, flag(Option<usize>), changeable, check |v| match *v {
            Some(p) if !(1..=4096).contains(&p) => Some(format!("must be between 1 and 4096 batches, got {p}")),
            _ => None,
        };
    }
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
        let expected = TrainConfig::new("resnet20", "fashion-mnist")
            .with_seed(7)
            .with_epochs(8)
            .with_batch_size(128)
            .with_lr(0.1)
            .with_optimizer(OptimizerKind::Sgd);
        assert_eq!(cfg, expected);
    }

    #[test]
    fn a_config_json_written_before_the_settings_were_grouped_loads_and_writes_back_the_same() {
        // A ResNet-20 run's config.json as the flat struct wrote it, key for key.
        let old = r#"{"model":"resnet20","dataset":"mnist-5k","epochs":2,"batch_size":64,"lr":0.05,
            "optimizer":"sgd","momentum":0.9,"seed":42,"weight_decay":0.0005,"schedule":"cosine",
            "warmup":1,"early_stop":null,"weights":null,"new_head":false,"freeze":"none",
            "backbone_lr_scale":1.0,"stage_lr_decay":1.0,"cache_features":false,"cache_dir":null,
            "subset":1000,"valid_split":0.1,"augment":{"ops":[{"op":"random_crop","size":32,
            "padding":4,"padding_mode":"zero"},{"op":"horizontal_flip","p":0.5}]},"data_dir":null,
            "zero_init_residual":false,"classes":null,"input_size":32,"workers":1,"prefetch":null}"#;
        let cfg: TrainConfig = serde_json::from_str(old).unwrap();
        let expected = TrainConfig::new("resnet20", "mnist-5k")
            .with_epochs(2)
            .with_batch_size(64)
            .with_lr(0.05)
            .with_optimizer(OptimizerKind::Sgd)
            .with_weight_decay(0.0005)
            .with_schedule(Schedule::Cosine)
            .with_warmup(1)
            .with_subset(Some(1000))
            .with_augment(Pipeline::preset("cifar").unwrap())
            .with_input_size(Some(32))
            .with_workers(1);
        assert_eq!(cfg, expected);
        // Every key written back as it was (settings added since come on top).
        let written = serde_json::to_value(&cfg).unwrap();
        let old: serde_json::Value = serde_json::from_str(old).unwrap();
        for (key, value) in old.as_object().unwrap() {
            assert_eq!(&written[key], value, "{key}");
        }
    }

    #[test]
    fn flags_merge_by_their_kind() {
        let base = TrainConfig::default().with_early_stop(Some(3)).with_new_head(true);
        let flags = TrainOverrides {
            lr: Some(0.5),
            subset: Some(100),
            augment: Some("flip".into()),
            ..TrainOverrides::default()
        };
        let cfg = flags.apply_to(base.clone()).unwrap();
        assert_eq!(
            (
                cfg.optim.lr,
                cfg.task.subset,
                cfg.optim.early_stop,
                cfg.transfer.new_head
            ),
            (0.5, Some(100), Some(3), true)
        );
        assert_eq!(cfg.augmentation.augment, Pipeline::preset("flip").unwrap());
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
