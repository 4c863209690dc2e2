//! Learning rates per part of the network (`--backbone-lr-scale`, `--stage-lr-decay`).
//!
//! Fine-tuning a pretrained network with few labels works best when the new head learns at the
//! full rate and the pretrained backbone at a fraction of it: the backbone's features move
//! only as far as the new task needs. Discriminative rates (Howard & Ruder 2018, fastai's
//! `lr_max=slice(lo, hi)`) go one step further: each stage trains at a rate that shrinks with
//! its distance from the head, because early stages hold the most general features.
//!
//! With `n` stages (see [`crate::stages`]), the stage at depth `i` (0 = the stem) trains at
//! `lr × backbone_scale × decay^(n − 1 − i)` and the head at `lr`: the last stage gets
//! `backbone_scale`, each stage below it `decay` times its upper neighbour's factor.
//!
//! burn's optimisers take one learning rate per parameter through its
//! [`ModuleLearningRate`]; [`LayerRates::at`] builds one from the scheduled rate of each step, so
//! every optimiser (the fused SGD included) and every way of stepping applies the same rates.

use burn::module::ParamGroup;
use burn::optim::lr_scheduler::LrSchedulerConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrSchedulerConfig};
use cnn_models::Model;

use crate::error::{Result, TransferError};
use crate::freeze::{stage_group, stages};

/// One stage's parameters and the factor its rate is multiplied by.
#[derive(Clone, Debug)]
struct RateGroup {
    name: String,
    group: ParamGroup,
    factor: f64,
}

/// The learning-rate factors of a model's stages (the head and anything outside the stages at
/// factor 1).
#[derive(Clone, Debug, Default)]
pub struct LayerRates {
    groups: Vec<RateGroup>,
}

impl LayerRates {
    /// Every parameter at the one rate.
    pub fn uniform() -> Self {
        Self::default()
    }

    /// The factors for `model`: its stages at `backbone_scale × decay^(stages above it)`.
    ///
    /// Both 1 is [`Self::uniform`]. Anything else needs a backbone/head split: a model without
    /// stages (the course's single Inception module, the 1×1 convolution demo) is refused, and
    /// so is a factor that is not a positive number.
    pub fn for_model(model: &Model, backbone_scale: f64, decay: f64) -> Result<Self> {
        for (name, value) in [("backbone_lr_scale", backbone_scale), ("stage_lr_decay", decay)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(TransferError::InvalidSetting {
                    setting: name,
                    reason: format!("must be a positive number, got {value}"),
                });
            }
        }
        if backbone_scale == 1.0 && decay == 1.0 {
            return Ok(Self::uniform());
        }
        let all = stages(model);
        if all.is_empty() {
            return Err(TransferError::InvalidSetting {
                setting: if backbone_scale != 1.0 {
                    "backbone_lr_scale"
                } else {
                    "stage_lr_decay"
                },
                reason:
                    "cannot apply: this model has no backbone/head split (no stages), so its parts cannot train at different rates"
                        .into(),
            });
        }
        let n = all.len();
        let groups = all
            .into_iter()
            .enumerate()
            .map(|(i, stage)| {
                let factor = backbone_scale * decay.powi((n - 1 - i) as i32);
                Ok(RateGroup {
                    group: stage_group(model, std::slice::from_ref(&stage))?,
                    name: stage.name,
                    factor,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { groups })
    }

    /// Whether every parameter trains at the one rate.
    pub fn is_uniform(&self) -> bool {
        self.groups.iter().all(|g| g.factor == 1.0)
    }

    /// Each stage's name and factor, stem first.
    pub fn factors(&self) -> Vec<(&str, f64)> {
        self.groups.iter().map(|g| (g.name.as_str(), g.factor)).collect()
    }

    /// The rate of every parameter when the head's rate is `lr`, as burn's optimisers take it.
    pub fn at(&self, lr: f64) -> ModuleLearningRate {
        if self.groups.is_empty() {
            return lr.into();
        }
        let config = self.groups.iter().fold(
            ModuleLrSchedulerConfig::new(LrSchedulerConfig::Constant(lr)),
            |config, g| config.with_group(g.group.clone(), LrSchedulerConfig::Constant(lr * g.factor)),
        );
        config.init().expect("constant schedules always build").step()
    }

    /// One line for the user: `head 1.0e-3, layer3 3.0e-4, …` at the head's rate `lr`.
    pub fn describe(&self, lr: f64) -> String {
        let mut parts = vec![format!("head {lr:.1e}")];
        parts.extend(
            self.groups
                .iter()
                .rev()
                .map(|g| format!("{} {:.1e}", g.name, lr * g.factor)),
        );
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
    use burn::tensor::{Device, Tensor};
    use cnn_models::fused_sgd::FusedSgdConfig;
    use cnn_models::{BuildOptions, ImageClassifier};

    fn lenet(device: &Device) -> Model {
        device.seed(7);
        cnn_models::build("lenet5", BuildOptions::classes(10), device).unwrap()
    }

    /// The gradients of a loss on a fixed batch (`shift` picks one of two batches); no random
    /// generator is involved, so tests running beside this one cannot change it.
    fn gradients(model: &Model, shift: f32, device: &Device) -> GradientsParams {
        let values: Vec<f32> = (0..4 * 32 * 32).map(|i| (i as f32 * 0.37 + shift).sin()).collect();
        let images = Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [4, 1, 32, 32]), device);
        let loss = model.logits(images).powi_scalar(2).mean();
        GradientsParams::from_grads(loss.backward(), model)
    }

    /// Each layer's weight, by its torchvision name.
    fn weights(model: &Model) -> Vec<(&'static str, Vec<f32>)> {
        let Model::LeNet5(net) = model else { unreachable!() };
        let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let conv = |c: &burn::nn::conv::Conv2d| v(c.weight.val().flatten::<2>(0, 2));
        vec![
            ("conv1", conv(&net.conv1)),
            ("conv2", conv(&net.conv2)),
            ("fc1", v(net.fc1.weight.val())),
            ("fc2", v(net.fc2.weight.val())),
            ("fc3", v(net.fc3.weight.val())),
        ]
    }

    /// Two steps with per-stage rates leave every layer exactly where two steps of one rate,
    /// that layer's, leave it (same gradients): for Adam (whose update does not scale with the gradient, so
    /// only a rate of its own can slow a layer) and for the fused SGD with momentum.
    #[test]
    fn each_stage_steps_as_a_single_rate_optimiser_at_its_own_rate() {
        let device = Device::flex().autodiff();
        let optimisers: [(&str, fn() -> ModuleOptimizer); 2] = [
            ("adam", || AdamConfig::new().init()),
            ("sgd", || {
                FusedSgdConfig {
                    momentum: Some(burn::optim::momentum::MomentumConfig::new().with_momentum(0.9)),
                    weight_decay: Some(1e-4),
                }
                .init()
            }),
        ];
        let lr = 0.01;
        // One network for every variant (clones share their weights and parameter ids).
        let model = lenet(&device);
        for (name, optimiser) in optimisers {
            let rates = LayerRates::for_model(&model, 0.25, 0.5).unwrap();
            assert_eq!(
                rates.factors(),
                [("conv1", 0.03125), ("conv2", 0.0625), ("fc1", 0.125), ("fc2", 0.25)]
            );
            // Both steps' gradients come from the starting weights, so that every variant
            // sees the same gradients and only the rates (and the optimiser's state) differ.
            let step_twice = |rate: &dyn Fn(f64) -> ModuleLearningRate| {
                let (mut model, mut optim) = (model.clone(), optimiser());
                let grads = [gradients(&model, 0.0, &device), gradients(&model, 1.0, &device)];
                for g in grads {
                    model = optim.step(rate(lr), model, g);
                }
                weights(&model)
            };
            let grouped = step_twice(&|lr| rates.at(lr));
            let before = weights(&model);
            for (layer, factor) in [
                ("conv1", 0.03125),
                ("conv2", 0.0625),
                ("fc1", 0.125),
                ("fc2", 0.25),
                ("fc3", 1.0),
            ] {
                let single = step_twice(&|lr| (lr * factor).into());
                let pick = |w: &[(&str, Vec<f32>)]| w.iter().find(|(n, _)| *n == layer).unwrap().1.clone();
                assert_eq!(pick(&grouped), pick(&single), "{name}: {layer} at {factor} × lr");
                assert_ne!(pick(&grouped), pick(&before), "{name}: {layer} did not move");
            }
        }
    }

    #[test]
    fn uniform_rates_and_refusals() {
        let device = Device::flex();
        let model = lenet(&device);
        assert!(LayerRates::for_model(&model, 1.0, 1.0).unwrap().is_uniform());
        let only_backbone = LayerRates::for_model(&model, 0.1, 1.0).unwrap();
        assert!(only_backbone.factors().iter().all(|(_, f)| *f == 0.1));
        assert_eq!(
            only_backbone.describe(1e-3),
            "head 1.0e-3, fc2 1.0e-4, fc1 1.0e-4, conv2 1.0e-4, conv1 1.0e-4"
        );
        for bad in [0.0, -1.0, f64::NAN] {
            let err = LayerRates::for_model(&model, bad, 1.0).unwrap_err().to_string();
            assert!(err.starts_with("`backbone_lr_scale` must be a positive number"), "{err}");
        }
        let module = cnn_models::build("conv1x1_example", BuildOptions::classes(10), &device).unwrap();
        let err = LayerRates::for_model(&module, 1.0, 0.5).unwrap_err().to_string();
        assert!(
            err.contains("stage_lr_decay") && err.contains("no backbone/head split"),
            "{err}"
        );
    }
}
