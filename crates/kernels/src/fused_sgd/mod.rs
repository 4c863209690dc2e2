//! SGD with momentum and weight decay as one pass per parameter.
//!
//! burn's `Sgd` updates a parameter in five to seven element-wise operations, each a pass over
//! the parameter with a fresh allocation (weight decay: `p·λ + g`; momentum: `g·(1 − d)`,
//! `v·μ`, their sum; then `v·lr` and `p − v·lr`). For VGG-16's 138 million parameters that is
//! gigabytes of memory traffic per step. [`FusedSgd`] computes the same values — the same f32
//! operations in the same order, so the results are bit-identical to burn's (tested) — in one
//! pass that writes the parameter and its velocity in place when nothing else holds them.
//! On other backends, and with `CNN_FUSED_SGD=0` (or [`set_enabled`]), the step is the same
//! formula in burn's tensor operations. Its state is recorded under the names burn's `Sgd` uses
//! (`momentum.velocity`), so checkpoints of either load into the other.

use burn::optim::momentum::MomentumConfig;
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource, join_path};
use burn::backend::Dispatch;
use burn::tensor::{Device, Tensor};

use crate::switch::Kernel;

#[cfg(feature = "flex")]
mod backend;
mod formula;

#[cfg(feature = "flex")]
pub use backend::FusedSgdBackend;
pub use formula::SgdHyper;
use formula::burn_step;

const SWITCH: Kernel = Kernel::FusedSgd;

/// Whether the step runs the fused kernel on flex on this thread (on unless `CNN_FUSED_SGD=0`,
/// [`set_enabled`] or [`with_fused_sgd`] say otherwise).
pub fn enabled() -> bool {
    SWITCH.enabled()
}

/// Turns the kernel on or off for the whole process (benchmarks).
pub fn set_enabled(on: bool) {
    SWITCH.set(on);
}

/// Runs `f` with the kernel on or off on this thread only (parity tests).
pub fn with_fused_sgd<R>(on: bool, f: impl FnOnce() -> R) -> R {
    SWITCH.with(on, f)
}

/// `[updates, 0]`: parameters the kernel has updated in this process so far.
pub fn calls() -> [usize; 2] {
    SWITCH.calls()
}

/// Settings of [`FusedSgd`]: burn's `SgdConfig` without gradient clipping.
#[derive(Clone, Debug, Default)]
pub struct FusedSgdConfig {
    /// Momentum (`None`: plain SGD).
    pub momentum: Option<MomentumConfig>,
    /// L2 penalty added to the gradient (`None`: none).
    pub weight_decay: Option<f32>,
}

impl FusedSgdConfig {
    /// The optimiser.
    pub fn build(&self) -> FusedSgd {
        FusedSgd {
            hyper: SgdHyper {
                lr: 0.0,
                penalty: self.weight_decay,
                momentum: self.momentum.as_ref().map(|m| (m.momentum as f32, (1.0 - m.dampening) as f32)),
                nesterov: self.momentum.as_ref().is_some_and(|m| m.nesterov),
            },
        }
    }

    /// The optimiser for a whole module.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.build())
    }
}

/// SGD with PyTorch-style momentum (`v ← μ·v + (1 − d)·g`, the first step `v = g`) and L2
/// weight decay (`g ← g + λ·p`), updating `p ← p − lr·v` (Nesterov: `p ← p − lr·(g + μ·v)`).
#[derive(Clone, Debug)]
pub struct FusedSgd {
    /// The settings, with `lr` filled in at each step.
    hyper: SgdHyper,
}

/// The optimiser state of one parameter: its velocity once a momentum step has run.
#[derive(Clone, Debug)]
pub struct SgdState<const D: usize> {
    /// `v` of the momentum update.
    pub velocity: Option<Tensor<D>>,
}

/// The record path of the velocity, as burn's `SgdState { momentum: Some(MomentumState { velocity }) }`.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(v) = &self.velocity {
            out.push_tensor(&join_path(prefix, MOMENTUM), VELOCITY, v.clone().into_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let velocity = src
            .take_tensor(&join_path(prefix, MOMENTUM), VELOCITY)
            .map(|data| Tensor::from_data(data, device));
        Some(Self { velocity })
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let hyper = SgdHyper {
            lr: lr as f32,
            ..self.hyper
        };
        let velocity = state.and_then(|s| s.velocity);
        let (param, velocity) = step(tensor, grad, velocity, hyper, enabled());
        (param, Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        SgdState {
            velocity: state.velocity.map(|v| v.to_device(device)),
        }
    }
}

/// One step of `tensor`: the kernel on flex when `fused` (momentum without Nesterov), burn's
/// operations otherwise.
fn step<const D: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
    hyper: SgdHyper,
    fused: bool,
) -> (Tensor<D>, Option<Tensor<D>>) {
    #[cfg(feature = "flex")]
    if fused && hyper.momentum.is_some() && !hyper.nesterov && crate::on_flex(&tensor) {
        let fresh = velocity.is_none();
        let velocity = velocity.unwrap_or_else(|| tensor.zeros_like());
        let (p, v) = <Dispatch as FusedSgdBackend>::sgd_momentum_step(
            tensor.into_dispatch(),
            grad.into_dispatch(),
            velocity.into_dispatch(),
            hyper,
            fresh,
        );
        return (Tensor::from_dispatch(p), Some(Tensor::from_dispatch(v)));
    }
    let _ = fused;
    let (p, v) = burn_step::<Dispatch>(
        tensor.into_dispatch(),
        grad.into_dispatch(),
        velocity.map(Tensor::into_dispatch),
        hyper,
    );
    (Tensor::from_dispatch(p), v.map(Tensor::from_dispatch))
}
