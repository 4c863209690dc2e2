//! Freezing by depth (`--freeze none | all | upto:<stage> | auto`).
//!
//! Frozen parameters get no gradients, so the optimiser leaves them untouched, and frozen
//! BatchNorm and Dropout layers behave as in inference: BatchNorm normalises with its running
//! statistics and does not update them (burn's `freeze_group`, not merely `no_grad`).
//!
//! Stages, in depth order, per family (torchvision names):
//!
//! | family | stages | head (never frozen) |
//! | --- | --- | --- |
//! | ResNet (ImageNet and CIFAR) | `conv1` (with `bn1`), `layer1` … `layer4` | `fc` |
//! | VGG, AlexNet | `features.N` for each convolution at index N | `classifier` |
//! | GoogLeNet | `conv1`, `conv2`, `conv3`, `inception3a` … `inception5b` | `fc`, `aux1`, `aux2` |
//! | LeNet-5 | `conv1`, `conv2`, `fc1`, `fc2` | `fc3` |
//!
//! `auto` follows our measurements (README, "Transfer with few labels"; `docs/transfer.md`): with
//! up to [`AutoThresholds::large`] labelled images per class, train everything from the weights
//! with discriminative rates ([`AUTO_RATES`]: the top stage at 0.3 × the head's rate, halving
//! stage by stage towards the stem), within one standard deviation of the best method at every
//! size we measured; with more, train everything at one rate. The course's rule — freeze the
//! whole backbone with few labels, the early half with a medium number — was the weakest way to
//! transfer at 10, 50 and 100 images per class.

use burn::module::{Module, ParamGroup};
use cnn_models::Model;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TransferError};

/// Which part of the backbone to freeze.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FreezePolicy {
    /// Train everything.
    #[default]
    None,
    /// Freeze every stage: only the head trains.
    All,
    /// Freeze the stages up to and including this one.
    UpTo(String),
    /// Choose from the number of labelled images per class (see [`AutoThresholds`]).
    Auto(AutoThresholds),
}

/// The threshold of `--freeze auto`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoThresholds {
    /// Up to this many labelled images per class the backbone trains at [`AUTO_RATES`];
    /// above, everything at one rate.
    pub large: usize,
}

impl Default for AutoThresholds {
    fn default() -> Self {
        Self { large: 1000 }
    }
}

/// The rates `--freeze auto` picks with few labels, as `(backbone_lr_scale, stage_lr_decay)`:
/// the transfer experiment's measured defaults.
pub const AUTO_RATES: (f64, f64) = (0.3, 0.5);

/// What a freeze policy means for one model and one amount of data.
#[derive(Clone, Debug, PartialEq)]
pub struct FreezePlan {
    /// The stages to freeze.
    pub frozen: Vec<Stage>,
    /// With `auto`: the rates it picks, as `(backbone_lr_scale, stage_lr_decay)` (`None`: the
    /// run's own).
    pub rates: Option<(f64, f64)>,
    /// One sentence saying what was picked and why.
    pub why: String,
}

impl std::str::FromStr for FreezePolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "all" => Ok(Self::All),
            "auto" => Ok(Self::Auto(AutoThresholds::default())),
            _ => {
                if let Some(stage) = s.strip_prefix("upto:").filter(|s| !s.is_empty()) {
                    return Ok(Self::UpTo(stage.to_string()));
                }
                if let Some(rest) = s.strip_prefix("auto:") {
                    let parts: Vec<Option<usize>> = rest.split(',').map(|p| p.trim().parse().ok()).collect();
                    // `auto:<small>,<large>` is how run folders of the earlier rule recorded it.
                    if let [Some(large)] | [Some(_), Some(large)] = parts[..] {
                        return Ok(Self::Auto(AutoThresholds { large }));
                    }
                }
                Err(format!(
                    "unknown freeze policy '{s}' (expected none, all, upto:<stage>, auto or auto:<large>)"
                ))
            }
        }
    }
}

impl TryFrom<String> for FreezePolicy {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<FreezePolicy> for String {
    fn from(p: FreezePolicy) -> String {
        match p {
            FreezePolicy::None => "none".into(),
            FreezePolicy::All => "all".into(),
            FreezePolicy::UpTo(s) => format!("upto:{s}"),
            FreezePolicy::Auto(t) if t == AutoThresholds::default() => "auto".into(),
            FreezePolicy::Auto(t) => format!("auto:{}", t.large),
        }
    }
}

/// One stage: its name and the key prefixes of its parameters (each family declares its own,
/// [`cnn_models::Network::stages`]).
pub use cnn_models::Stage;

/// The stages of `model`, in depth order (see the module docs).
pub fn stages(model: &Model) -> Vec<Stage> {
    cnn_models::Network::stages(model)
}

/// What `policy` freezes (and, for `auto`, at which rate the backbone trains), given
/// `images_per_class` labelled images per class.
pub fn resolve(model: &Model, policy: &FreezePolicy, images_per_class: usize) -> Result<FreezePlan> {
    let all = stages(model);
    let plan = |frozen: Vec<Stage>, why: String| FreezePlan {
        frozen,
        rates: None,
        why,
    };
    Ok(match policy {
        FreezePolicy::None => plan(Vec::new(), "nothing frozen".into()),
        FreezePolicy::All => plan(all, "whole backbone frozen: only the head trains".into()),
        FreezePolicy::UpTo(name) => {
            let end = all.iter().position(|s| s.name == *name).ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                TransferError::InvalidSetting {
                    setting: "freeze",
                    reason: format!("upto:{name}: no stage '{name}' in this model; its stages are {}", names.join(", ")),
                }
            })?;
            let why = format!("{} of {} stages frozen (up to {name})", end + 1, all.len());
            plan(all[..=end].to_vec(), why)
        }
        FreezePolicy::Auto(t) if images_per_class <= t.large => FreezePlan {
            frozen: Vec::new(),
            rates: Some(AUTO_RATES),
            why: format!(
                "`freeze` auto: {images_per_class} labelled images per class (≤ {}): nothing frozen, the top stage at {} × the head's rate and each stage below at {} × the one above (within one standard deviation of the best method at every size measured)",
                t.large, AUTO_RATES.0, AUTO_RATES.1
            ),
        },
        FreezePolicy::Auto(t) => plan(
            Vec::new(),
            format!(
                "`freeze` auto: {images_per_class} labelled images per class (> {}): nothing frozen, one rate for all",
                t.large
            ),
        ),
    })
}

/// Freezes the parameters of `stages` in `model` (see the module docs for what that means).
pub fn freeze(model: Model, stages: &[Stage]) -> Result<Model> {
    if stages.is_empty() {
        return Ok(model);
    }
    let group = stage_group(&model, stages)?;
    Ok(model.freeze_group(group))
}

/// The parameters of `stages` in `model` as one burn [`ParamGroup`] (for freezing, or for a
/// learning rate of their own).
pub fn stage_group(model: &Model, stages: &[Stage]) -> Result<ParamGroup> {
    // burn's module paths start with the enum variant (`ResNet.conv1.weight`); torchvision's
    // names do not. Match both, anchored at the root so `layer1.0.conv1` is not `conv1`.
    let variant = variant_name(model);
    let patterns: Vec<String> = stages
        .iter()
        .flat_map(|s| s.prefixes.iter())
        .map(|p| {
            let name = p.trim_end_matches('.').replace('.', "\\.");
            format!("^({variant}\\.)?{name}(\\.|$)")
        })
        .collect();
    ParamGroup::from_any_regexes(patterns).map_err(|e| TransferError::Weights(format!("parameter group: {e:?}")))
}

/// The name burn gives the `Model` variant in module paths.
pub(crate) fn variant_name(model: &Model) -> &'static str {
    match model {
        Model::LeNet5(_) => "LeNet5",
        Model::AlexNet(_) => "AlexNet",
        Model::Vgg(_) => "Vgg",
        Model::ResNet(_) => "ResNet",
        Model::ResNet9(_) => "ResNet9",
        Model::GoogLeNet(_) => "GoogLeNet",
        Model::Inception(_) => "Inception",
        Model::Conv1x1(_) => "Conv1x1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use cnn_models::BuildOptions;

    #[test]
    fn policies_parse_and_print_back() {
        for s in ["none", "all", "upto:layer2", "auto", "auto:500"] {
            let p: FreezePolicy = s.parse().unwrap();
            assert_eq!(String::from(p), s);
        }
        // Run folders of the earlier rule recorded two thresholds; the larger one still counts.
        assert_eq!("auto:50,500".parse::<FreezePolicy>(), Ok(FreezePolicy::Auto(AutoThresholds { large: 500 })));
        assert!("upto:".parse::<FreezePolicy>().is_err());
        assert!("auto:x".parse::<FreezePolicy>().unwrap_err().contains("upto:<stage>"));
    }

    #[test]
    fn stages_per_family_and_auto_by_images_per_class() {
        let device = Device::flex();
        let build = |n| cnn_models::build(n, BuildOptions::classes(10), &device).unwrap();
        let names = |m: &Model| stages(m).into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(&build("resnet18")),
            ["conv1", "layer1", "layer2", "layer3", "layer4"]
        );
        assert_eq!(names(&build("resnet20")), ["conv1", "layer1", "layer2", "layer3"]);
        assert_eq!(names(&build("vgg11")).len(), 8);
        assert_eq!(stages(&build("vgg11_bn"))[0].prefixes, ["features.0.", "features.1."]);
        assert_eq!(
            names(&build("alexnet")),
            ["features.0", "features.3", "features.6", "features.8", "features.10"]
        );
        assert_eq!(names(&build("googlenet")).last().unwrap(), "inception5b");

        let resnet = build("resnet18");
        let auto = FreezePolicy::Auto(AutoThresholds::default());
        for few in [10, 100, 1000] {
            let plan = resolve(&resnet, &auto, few).unwrap();
            assert!(plan.frozen.is_empty());
            assert_eq!(plan.rates, Some(AUTO_RATES));
            assert!(plan.why.contains("≤ 1000") && plan.why.contains("0.3 × the head's rate"), "{}", plan.why);
        }
        let many = resolve(&resnet, &auto, 5000).unwrap();
        assert!(many.frozen.is_empty() && many.rates.is_none(), "{many:?}");
        let upto = resolve(&resnet, &FreezePolicy::UpTo("layer2".into()), 0).unwrap();
        assert_eq!((upto.frozen.len(), upto.why.as_str()), (3, "3 of 5 stages frozen (up to layer2)"));
        let err = resolve(&resnet, &FreezePolicy::UpTo("layer9".into()), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer1, layer2"), "{err}");
    }
}
