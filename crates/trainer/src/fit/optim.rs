//! The optimiser a run's settings ask for.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Tensor};
use cnn_models::fused_sgd::FusedSgdConfig;

use crate::config::{OptimizerKind, TrainConfig};

/// The optimiser `cfg` asks for.
pub fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    let o = &cfg.optim;
    let decay = |on: bool| (on && o.weight_decay > 0.0).then_some(o.weight_decay as f32);
    // With `decay_weights_only` the parameters of rank 1 step with an undecayed twin.
    let only = o.decay_weights_only;
    match o.optimizer {
        OptimizerKind::Adam => {
            let adam = |on| {
                AdamConfig::new()
                    .with_weight_decay(decay(on).map(WeightDecayConfig::new))
                    .build()
            };
            split(adam(true), adam(false), only)
        }
        OptimizerKind::AdamW => {
            let adamw = |on| AdamWConfig::new().with_weight_decay(decay(on).unwrap_or(0.0)).build();
            split(adamw(true), adamw(false), only)
        }
        // burn's `Sgd`, computed in one pass per parameter on flex (bit-identical).
        OptimizerKind::Sgd => {
            let sgd = |on| sgd_config(o.momentum, o.nesterov, decay(on)).build();
            split(sgd(true), sgd(false), only)
        }
    }
}

/// `decayed` for every parameter, or (with `weights_only`) `decayed` for rank ≥ 2 and `plain`
/// for rank 1.
fn split<O: Optimizer>(decayed: O, plain: O, weights_only: bool) -> ModuleOptimizer {
    if weights_only {
        ModuleOptimizer::from(DecayWeightsOnly { decayed, plain })
    } else {
        ModuleOptimizer::from(decayed)
    }
}

/// SGD with PyTorch-style (undampened) momentum and an optional L2 penalty: the training
/// loop's and the benchmark's optimiser.
pub fn sgd_momentum(momentum: f64, weight_decay: Option<f32>) -> ModuleOptimizer {
    sgd_config(momentum, false, weight_decay).init()
}

fn sgd_config(momentum: f64, nesterov: bool, weight_decay: Option<f32>) -> FusedSgdConfig {
    let momentum = MomentumConfig::new()
        .with_momentum(momentum)
        .with_dampening(0.0)
        .with_nesterov(nesterov);
    FusedSgdConfig {
        momentum: Some(momentum),
        weight_decay,
    }
}

/// One optimiser in two settings: weights (rank ≥ 2: convolution kernels, linear matrices) step
/// with weight decay, biases and batch-norm parameters (rank 1) without. Both keep the same
/// state under the same names, so checkpoints read the same either way.
#[derive(Clone)]
struct DecayWeightsOnly<O> {
    decayed: O,
    plain: O,
}

impl<O: Optimizer> Optimizer for DecayWeightsOnly<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let optimizer = if D >= 2 { &self.decayed } else { &self.plain };
        optimizer.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        O::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::TensorData;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// A 2 → 1 linear layer with weight [1, 2] and bias [1].
    fn layer(device: &Device) -> Linear {
        let mut layer = LinearConfig::new(2, 1).init(device);
        layer.weight = Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0], [2, 1]), device));
        layer.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32], [1]),
            device,
        )));
        layer
    }

    /// The gradients of `sum(x·w + b) − 4·sum(b)` over two rows x = [0.25, −0.5]: linear in the
    /// parameters, so every step sees the weight gradient [0.5, −1] and the bias gradient −2.
    fn grads(layer: &Linear, device: &Device) -> GradientsParams {
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.25f32, -0.5, 0.25, -0.5], [2, 2]), device);
        let bias = layer.bias.as_ref().map(|b| b.val().sum()).unwrap();
        let loss = layer.forward(x).sum() - bias.mul_scalar(4.0);
        GradientsParams::from_grads(loss.backward(), layer)
    }

    fn sgd(weights_only: bool) -> TrainConfig {
        TrainConfig::new("lenet5", "mnist-5k")
            .with_optimizer(OptimizerKind::Sgd)
            .with_momentum(0.9)
            .with_nesterov(true)
            .with_weight_decay(0.5)
            .with_decay_weights_only(weights_only)
    }

    /// Two Nesterov steps at lr 0.1, momentum 0.9, decay 0.5, worked by hand as PyTorch's
    /// `SGD(nesterov=True)` computes them (g ← g + λp; v ← μv + g; p ← p − lr·(g + μv)):
    /// the bias (rank 1) decays only when every parameter does.
    #[test]
    fn decay_weights_only_leaves_biases_undecayed_and_nesterov_matches_pytorch() {
        let device = Device::flex().autodiff();
        // Weight, step 1: g = [0.5, -1] + 0.5·[1, 2] = [1, 0]; v = g; p -= 0.1·1.9·g → [0.81, 2].
        // Step 2 (same raw gradient): g = [0.5, -1] + 0.5·[0.81, 2] = [0.905, 0];
        // v = 0.9·[1, 0] + g = [1.805, 0]; p -= 0.1·(g + 0.9·v) = 0.1·[2.5295, 0] → [0.55705, 2].
        // Bias without decay: g = -2, v = -2, p = 1 + 0.38 = 1.38; then v = -3.8,
        // p += 0.1·(2 + 3.42) → 1.922.
        // Bias with decay: g = -2 + 0.5 = -1.5, p = 1 + 0.285 = 1.285; g = -2 + 0.6425 = -1.3575,
        // v = -1.35 - 1.3575 = -2.7075, p += 0.1·(1.3575 + 2.43675) → 1.6644250.
        for (weights_only, bias) in [(true, 1.922f32), (false, 1.664425)] {
            let mut optimizer = build_optimizer(&sgd(weights_only));
            let mut layer = layer(&device);
            for _ in 0..2 {
                let g = grads(&layer, &device);
                layer = optimizer.step(0.1, layer, g);
            }
            let w = values(layer.weight.val());
            let b = values(layer.bias.as_ref().unwrap().val());
            assert!((w[0] - 0.55705).abs() < 1e-5 && (w[1] - 2.0).abs() < 1e-5, "{w:?}");
            assert!((b[0] - bias).abs() < 1e-5, "weights_only {weights_only}: bias {b:?}");
        }
    }
}
