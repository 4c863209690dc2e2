//! Named training recipes (`cnn train --preset NAME`, `cargo xtask train --preset NAME`): the
//! settings behind the results quoted in the README, so anyone can rerun them.
//!
//! Each is a TOML file in this crate's `presets/` folder — a `description` and a `[settings]`
//! table read as [`TrainOverrides`] (any setting by its name in `config.json`; unknown keys are
//! refused; `preset = "other"` starts from another recipe) — built into the binary. A path to
//! such a file works as a preset too (`--preset my-recipe.toml`).

use std::path::Path;

use serde::Deserialize;

use crate::config::{TrainConfig, TrainOverrides};
use crate::error::{Result, TrainError};

/// The built-in recipes: name and file. A new one is a file in `presets/` and a line here.
const BUILT_IN: &[(&str, &str)] = &[
    ("lenet5-mnist5k", include_str!("../../presets/lenet5-mnist5k.toml")),
    ("lenet5-fashion", include_str!("../../presets/lenet5-fashion.toml")),
    ("resnet20-fashion", include_str!("../../presets/resnet20-fashion.toml")),
    (
        "resnet20-fashion-long",
        include_str!("../../presets/resnet20-fashion-long.toml"),
    ),
    ("speedrun", include_str!("../../presets/speedrun.toml")),
    ("speedrun-hour", include_str!("../../presets/speedrun-hour.toml")),
    ("fashion-100k", include_str!("../../presets/fashion-100k.toml")),
];

/// How deep presets may start from other presets (a loop is an error, not a hang).
const MAX_CHAIN: usize = 8;

/// A named recipe as read from its file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// What it is for, and how long it takes.
    pub description: String,
    /// Its settings on top of the defaults (or of the preset it names).
    pub settings: TrainOverrides,
}

impl Preset {
    /// Reads a preset file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| TrainError::Preset {
            preset: origin.to_string(),
            reason: e.to_string().replace('\n', " "),
        })
    }
}

/// The built-in recipes, by name, in the README's order.
pub fn built_in() -> Result<Vec<(&'static str, Preset)>> {
    BUILT_IN
        .iter()
        .map(|(name, text)| Ok((*name, Preset::parse(text, name)?)))
        .collect()
}

/// The config of preset `name`: a built-in recipe, or the path of a preset file.
pub fn preset(name: &str) -> Result<TrainConfig> {
    resolve(name, 0)
}

fn resolve(name: &str, depth: usize) -> Result<TrainConfig> {
    if depth >= MAX_CHAIN {
        return Err(TrainError::Preset {
            preset: name.to_string(),
            reason: format!("presets start from each other more than {MAX_CHAIN} deep (a loop?)"),
        });
    }
    let preset = match BUILT_IN.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => Preset::parse(text, name)?,
        None if name.ends_with(".toml") => {
            let text = std::fs::read_to_string(Path::new(name)).map_err(|e| TrainError::Preset {
                preset: name.to_string(),
                reason: e.to_string(),
            })?;
            Preset::parse(&text, name)?
        }
        None => {
            let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
            return Err(TrainError::Preset {
                preset: name.to_string(),
                reason: format!(
                    "unknown; presets: {}, or the path of a .toml preset file",
                    names.join(", ")
                ),
            });
        }
    };
    let base = match &preset.settings.preset {
        Some(parent) => resolve(parent, depth + 1)?,
        None => TrainConfig::default(),
    };
    preset.settings.apply_to(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OptimizerKind, Schedule};

    #[test]
    fn every_preset_is_a_valid_config_and_unknown_names_list_them() {
        for (name, p) in built_in().unwrap() {
            let cfg = preset(name).unwrap();
            cfg.validate().unwrap();
            cnn_models::registry::lookup(&cfg.task.model).unwrap();
            assert!(
                cnn_data_augment::datasets::NAMES.contains(&cfg.task.dataset.as_str()),
                "{name}"
            );
            assert!(!p.description.is_empty(), "{name}");
        }
        assert_eq!(
            preset("lenet5-mnist5k").unwrap(),
            TrainConfig::new("lenet5", "mnist-5k")
        );
        let long = preset("resnet20-fashion-long").unwrap();
        assert_eq!(long.optim.epochs, 30);
        assert_eq!(long, preset("resnet20-fashion").unwrap().with_epochs(30));
        let err = preset("vgg-imagenet").unwrap_err().to_string();
        assert!(err.contains("resnet20-fashion"), "{err}");
    }

    /// The recipes behind the README's figures, as they were written before they became files.
    #[test]
    fn the_files_give_the_recipes_of_the_results() {
        let resnet = TrainConfig::new("resnet20", "fashion-mnist")
            .with_epochs(8)
            .with_batch_size(128)
            .with_optimizer(OptimizerKind::Sgd)
            .with_lr(0.1)
            .with_weight_decay(5e-4)
            .with_schedule(Schedule::Cosine)
            .with_warmup(1)
            .with_augment(cnn_data_augment::Pipeline::preset("cifar").unwrap());
        assert_eq!(preset("resnet20-fashion").unwrap(), resnet);
        let lenet = TrainConfig::new("lenet5_relu", "fashion-mnist")
            .with_valid_split(0.0)
            .with_epochs(15)
            .with_schedule(Schedule::Cosine);
        assert_eq!(preset("lenet5-fashion").unwrap(), lenet);
        let speedrun = TrainConfig::new("resnet9_w16", "fashion-mnist")
            .with_input_size(Some(28))
            .with_valid_split(0.02)
            .with_epochs(13)
            .with_batch_size(256)
            .with_optimizer(OptimizerKind::Sgd)
            .with_lr(0.2)
            .with_weight_decay(5e-4)
            .with_schedule(Schedule::OneCycle)
            .with_label_smoothing(0.1)
            .with_augment(cnn_data_augment::Pipeline::preset("fashion-alternating").unwrap())
            .with_test_flip(true);
        assert_eq!(preset("speedrun").unwrap(), speedrun.clone());
        let hour = speedrun.clone().with_model("resnet9_w32".into()).with_epochs(17);
        assert_eq!(preset("speedrun-hour").unwrap(), hour);
        let small = speedrun
            .with_model("resnet9_w7".into())
            .with_epochs(30)
            .with_augment(cnn_data_augment::Pipeline::preset("fashion").unwrap());
        assert_eq!(preset("fashion-100k").unwrap(), small);
    }

    #[test]
    fn a_preset_file_with_an_unknown_setting_or_a_loop_is_refused() {
        let err = Preset::parse("description = \"x\"\n[settings]\nepochz = 3\n", "bad.toml").unwrap_err();
        assert!(err.to_string().contains("epochz"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loop.toml");
        let text = format!("description = \"x\"\n[settings]\npreset = \"{}\"\n", file.display());
        std::fs::write(&file, text).unwrap();
        let err = preset(file.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.contains("a loop?"), "{err}");
        let mine = dir.path().join("mine.toml");
        std::fs::write(
            &mine,
            "description = \"x\"\n[settings]\npreset = \"resnet20-fashion\"\nlr = 0.05\n",
        )
        .unwrap();
        let cfg = preset(mine.to_str().unwrap()).unwrap();
        assert_eq!(
            (cfg.optim.lr, cfg.optim.epochs, cfg.task.model.as_str()),
            (0.05, 8, "resnet20")
        );
    }
}
