//! One step's settings and the step as burn's `Sgd` computes it, which the fused kernel
//! reproduces bit for bit (and runs itself where the kernel does not apply).

use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Scalar;

/// One step's settings, as the f32 values burn's `Sgd` multiplies by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdHyper {
    /// Learning rate.
    pub lr: f32,
    /// L2 penalty `λ` (`g ← λ·p + g`).
    pub penalty: Option<f32>,
    /// `(μ, 1 − dampening)` of the momentum update.
    pub momentum: Option<(f32, f32)>,
    /// Nesterov momentum (taken through burn's operations, also on flex).
    pub nesterov: bool,
}

/// The step as burn's `Sgd` computes it, operation by operation.
pub(super) fn burn_step<B: Backend>(
    param: FloatTensor<B>,
    grad: FloatTensor<B>,
    velocity: Option<FloatTensor<B>>,
    h: SgdHyper,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let scale = |t: FloatTensor<B>, s: f32| B::float_mul_scalar(t, Scalar::Float(f64::from(s)));
    let grad = match h.penalty {
        Some(penalty) => B::float_add(scale(param.clone(), penalty), grad),
        None => grad,
    };
    let (direction, velocity) = match h.momentum {
        Some((momentum, keep)) => {
            let v = match velocity {
                Some(v) => B::float_add(scale(grad.clone(), keep), scale(v, momentum)),
                None => grad.clone(),
            };
            let direction = if h.nesterov {
                B::float_add(scale(v.clone(), momentum), grad)
            } else {
                v.clone()
            };
            (direction, Some(v))
        }
        None => (grad, None),
    };
    (B::float_sub(param, scale(direction, h.lr)), velocity)
}
