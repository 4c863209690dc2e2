//! The optimiser a run's settings ask for.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer};
use cnn_models::fused_sgd::FusedSgdConfig;

use crate::config::{OptimizerKind, TrainConfig};

/// The optimiser `cfg` asks for.
pub fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let decay = (cfg.optim.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.optim.weight_decay as f32));
    match cfg.optim.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_weight_decay(cfg.optim.weight_decay as f32)
            .init(),
        // burn's `Sgd`, computed in one pass per parameter on flex (bit-identical).
        OptimizerKind::Sgd => sgd_momentum(cfg.optim.momentum, decay.map(|d| d.penalty)),
    }
}

/// SGD with PyTorch-style (undampened) momentum and an optional L2 penalty: the training
/// loop's and the benchmark's optimiser.
pub fn sgd_momentum(momentum: f64, weight_decay: Option<f32>) -> ModuleOptimizer {
    FusedSgdConfig {
        momentum: Some(MomentumConfig::new().with_momentum(momentum).with_dampening(0.0)),
        weight_decay,
    }
    .init()
}
