//! Named training recipes (`cnn train --preset NAME`, `cargo xtask train --preset NAME`): the
//! one table of the settings behind the results quoted in the README, so anyone can rerun them.

use cnn_data_augment::Pipeline;

use crate::config::{OptimizerKind, Schedule, TrainConfig};
use crate::error::{Result, TrainError};

/// A named recipe.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// `--preset` name.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// Model name.
    pub model: &'static str,
    /// Data set name.
    pub dataset: &'static str,
    /// Epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Schedule after the warm-up.
    pub schedule: Schedule,
    /// Warm-up epochs.
    pub warmup: usize,
    /// Augmentation preset name.
    pub augment: &'static str,
    /// Share of the training set held out for validation (0: validate on the test set).
    pub valid_split: f64,
}

/// ResNet-20's recipe, also the base of its longer variant.
const RESNET20_FASHION: Preset = Preset {
    name: "resnet20-fashion",
    description: "CIFAR-style ResNet-20 on Fashion-MNIST with crops and flips, 8 epochs (about 32 min on 2 cores)",
    model: "resnet20",
    dataset: "fashion-mnist",
    epochs: 8,
    batch_size: 128,
    optimizer: OptimizerKind::Sgd,
    lr: 0.1,
    weight_decay: 5e-4,
    schedule: Schedule::Cosine,
    warmup: 1,
    augment: "cifar",
    valid_split: 0.1,
};

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "lenet5-mnist5k",
        description: "the default: LeNet-5 on the embedded 5,000 digits (about 20 s on 2 cores)",
        model: "lenet5",
        dataset: "mnist-5k",
        epochs: 10,
        batch_size: 32,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        weight_decay: 0.0,
        schedule: Schedule::Constant,
        warmup: 0,
        augment: "none",
        valid_split: 0.1,
    },
    Preset {
        name: "lenet5-fashion",
        description: "LeNet-5 (ReLU) on all 60,000 Fashion-MNIST images, 15 epochs (about 8 min on 2 cores)",
        model: "lenet5_relu",
        dataset: "fashion-mnist",
        epochs: 15,
        batch_size: 32,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        weight_decay: 0.0,
        schedule: Schedule::Cosine,
        warmup: 0,
        augment: "none",
        valid_split: 0.0,
    },
    RESNET20_FASHION,
    Preset {
        name: "resnet20-fashion-long",
        description: "resnet20-fashion for 30 epochs, the longer recipe behind the 0.94 goal (about 2 h on 2 cores)",
        epochs: 30,
        ..RESNET20_FASHION
    },
];

/// The config of preset `name` (momentum 0.9, seed 42, default workers).
pub fn preset(name: &str) -> Result<TrainConfig> {
    let p = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        TrainError::Config(format!("unknown preset '{name}'; presets: {}", names.join(", ")))
    })?;
    Ok(TrainConfig {
        epochs: p.epochs,
        batch_size: p.batch_size,
        optimizer: p.optimizer,
        lr: p.lr,
        weight_decay: p.weight_decay,
        schedule: p.schedule,
        warmup: p.warmup,
        augment: Pipeline::preset(p.augment)?,
        valid_split: p.valid_split,
        ..TrainConfig::new(p.model, p.dataset)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_config_and_unknown_names_list_them() {
        for p in PRESETS {
            let cfg = preset(p.name).unwrap();
            cfg.validate().unwrap();
            cnn_models::registry::lookup(&cfg.model).unwrap();
            assert!(cnn_data_augment::datasets::NAMES.contains(&p.dataset), "{}", p.name);
        }
        assert_eq!(
            preset("lenet5-mnist5k").unwrap(),
            TrainConfig::new("lenet5", "mnist-5k")
        );
        let long = preset("resnet20-fashion-long").unwrap();
        assert_eq!(long.epochs, 30);
        assert_eq!(long, TrainConfig { epochs: 30, ..preset("resnet20-fashion").unwrap() });
        let err = preset("vgg-imagenet").unwrap_err().to_string();
        assert!(err.contains("resnet20-fashion"), "{err}");
    }
}
