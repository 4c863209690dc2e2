//! Where a run starts: the model built (seeded, with `--weights` loaded, stages frozen, a
//! learning rate per part) and the state training continues from — fresh, or a checkpoint's.

use std::path::Path;

use burn::tensor::Device;
use cnn_models::{BuildOptions, Model, registry};
use cnn_transfer::Stage;

use super::checkpoint;
use super::data::RunData;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::fit::ema::Ema;
use crate::fit::{Progress, TrainState, build_optimizer};

/// The model on `autodiff`, seeded by `cfg.seed`, with `--weights` loaded, the stages that
/// `--freeze` freezes and the learning rate of each part.
pub(crate) fn build_model(
    cfg: &TrainConfig,
    data: &RunData,
    autodiff: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Model, Vec<Stage>, cnn_transfer::LayerRates)> {
    let info = registry::lookup(&cfg.task.model)?;
    autodiff.seed(cfg.task.seed);
    let options = BuildOptions {
        num_classes: data.loaded.class_names.len(),
        in_channels: Some(data.pre.channels),
    };
    let mut model = registry::build(info.name, options, autodiff)?;
    model
        .check_input_size(data.pre.channels, data.pre.size)
        .map_err(|e| TrainError::Unsupported {
            model: info.name.to_string(),
            reason: e.to_string(),
        })?;
    if cfg.task.zero_init_residual {
        model = match model {
            cnn_models::Model::ResNet(net) if net.layer1.iter().all(|b| b.residual) => {
                cnn_models::Model::ResNet(net.zero_init_residual())
            }
            _ => {
                return Err(TrainError::InvalidSetting {
                    setting: "zero_init_residual",
                    reason: format!("applies to networks with shortcuts (resnet*), not {}", info.name),
                });
            }
        };
    }
    checkpoint::materialize(&model);
    if let Some(weights) = &cfg.transfer.weights {
        let (loaded, report, _) = if cfg.transfer.new_head {
            cnn_transfer::load_with_new_head(info.name, weights, options.num_classes, autodiff)?
        } else {
            cnn_transfer::load_fitting(info.name, weights, Some(options.num_classes), autodiff)?
        };
        tracing::info!(weights = %weights.display(), %report, "weights loaded");
        progress(Progress::Note(format!("weights from {}: {report}", weights.display())));
        model = loaded;
    }
    let images_per_class = data.train.len() / options.num_classes.max(1);
    let plan = cnn_transfer::resolve(&model, &cfg.transfer.freeze, images_per_class)?;
    if cfg.transfer.freeze != cnn_transfer::FreezePolicy::None {
        tracing::info!(policy = ?cfg.transfer.freeze, frozen = plan.frozen.len(), why = %plan.why, "freeze");
        progress(Progress::Note(format!("freeze: {}", plan.why)));
    }
    // `--freeze auto` picks the backbone's rate too, unless the run sets rates of its own.
    let own_rates = cfg.transfer.backbone_lr_scale != 1.0 || cfg.transfer.stage_lr_decay != 1.0;
    let (scale, decay) = match plan.rates {
        Some(rates) if !own_rates => rates,
        _ => (cfg.transfer.backbone_lr_scale, cfg.transfer.stage_lr_decay),
    };
    let rates = cnn_transfer::LayerRates::for_model(&model, scale, decay)?;
    if !rates.is_uniform() {
        let described = rates.describe(cfg.optim.lr);
        tracing::info!(rates = %described, "learning rates per stage");
        progress(Progress::Note(format!("learning rates (peak): {described}")));
    }
    Ok((model, plan.frozen, rates))
}

/// A fresh optimiser, or the model, optimiser and history of `dir`'s checkpoint; frozen stages
/// frozen either way (freezing is not part of a checkpoint).
pub(super) fn start_state(
    dir: &Path,
    resume: bool,
    cfg: &TrainConfig,
    model: Model,
    (frozen, rates): (&[Stage], cnn_transfer::LayerRates),
) -> Result<TrainState<Model>> {
    let optimizer = build_optimizer(cfg);
    let (model, optimizer, history, ema) = if resume {
        let restored = checkpoint::restore(dir, model, optimizer)?;
        // A run stopped after its last checkpoint but before its weights were written resumes
        // to write them; a finished run has nothing left to do.
        if restored.history.len() >= cfg.optim.epochs && dir.join("model.bpk").exists() {
            return Err(TrainError::InvalidSetting {
                setting: "epochs",
                reason: format!(
                    "must be more than the {} epochs {} has already trained: pass a larger total to train on",
                    restored.history.len(),
                    dir.display()
                ),
            });
        }
        (restored.model, restored.optimizer, restored.history, restored.ema)
    } else {
        (model, optimizer, Vec::new(), None)
    };
    let model = cnn_transfer::freeze(model, frozen)?;
    // A fresh average starts at the starting weights; a resumed one continues from its file.
    let ema = cfg.optim.ema.map(|decay| match ema {
        Some(average) => Ema {
            model: average,
            decay,
            every: cfg.optim.ema_every,
        },
        None => Ema::new(&model, decay, cfg.optim.ema_every),
    });
    Ok(TrainState {
        model,
        optimizer,
        history,
        rates,
        ema,
    })
}
