//! Batch normalisation in training mode as one operation: statistics, normalisation, affine
//! map, and optionally the residual add and the ReLU that follow it in ResNet, VGG-BN and
//! GoogLeNet, forward and backward.
//!
//! burn-flex 0.22 has no batch norm of its own: burn-backend's generic default computes it with
//! a dozen separate element-wise passes and allocations (and as many again in the backward), then
//! the add and the ReLU are two more operations each way. On a flex autodiff device,
//! [`batch_norm`] runs [`kernel`] instead — two reads of the input for the statistics, one pass
//! that writes the output, and two passes backward — through a burn backend extension with its
//! own autodiff node. Everywhere else (inference, ndarray, wgpu, other dtypes) it composes burn's
//! own operations. `CNN_FUSED_BN=0` (or [`set_enabled`]) switches the kernel off, to compare.
//!
//! The running statistics follow PyTorch: `running = (1 − momentum)·running + momentum·batch`,
//! with the *unbiased* batch variance for `running_var` (burn's `BatchNorm` uses the biased one),
//! so eval-mode outputs after training match a PyTorch model trained the same way.

use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use crate::switch::Kernel;

#[cfg(feature = "flex")]
mod backend;
#[cfg(feature = "flex")]
pub mod kernel;

#[cfg(feature = "flex")]
pub use backend::FusedBatchNormBackend;

const SWITCH: Kernel = Kernel::FusedBn;

/// Whether [`batch_norm`] uses the fused kernel on flex on this thread (on unless
/// `CNN_FUSED_BN=0`, [`set_enabled`] or [`with_fused_bn`] say otherwise).
pub fn enabled() -> bool {
    SWITCH.enabled()
}

/// Turns the fused kernel on or off for the whole process (benchmarks).
pub fn set_enabled(on: bool) {
    SWITCH.set(on);
}

/// Runs `f` with the fused kernel on or off on this thread only (parity tests). The backward
/// pass follows the forward's choice.
pub fn with_fused_bn<R>(on: bool, f: impl FnOnce() -> R) -> R {
    SWITCH.with(on, f)
}

/// `relu?(bn(x) + residual?)`: the layer in training mode (an autodiff device and the layer not
/// frozen) with the batch's statistics, updating its running statistics as PyTorch does; in
/// inference with its running statistics.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>, apply_relu: bool) -> Tensor<4> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        #[cfg(feature = "flex")]
        if enabled() && !x.device().is_autodiff() && crate::on_flex(&x) {
            return eval_forward(bn, x, residual, apply_relu);
        }
        let out = bn.forward(x);
        let out = match residual {
            Some(r) => out + r,
            None => out,
        };
        return if apply_relu { relu(out) } else { out };
    }
    let [batch, _, height, width] = x.dims();
    let (out, mean, variance) = train_forward(bn, x, residual, apply_relu);
    update_running_statistics(bn, mean, variance, batch * height * width);
    out
}

/// Inference on flex (no autodiff): the layer, the add and the ReLU as one pass.
#[cfg(feature = "flex")]
fn eval_forward(bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>, apply_relu: bool) -> Tensor<4> {
    use burn::backend::Dispatch;
    let device = x.device();
    let mean = bn.running_mean.value().to_device(&device).into_dispatch();
    let variance = bn.running_var.value().to_device(&device).into_dispatch();
    let (gamma, beta) = (bn.gamma.val().into_dispatch(), bn.beta.val().into_dispatch());
    let (x, eps) = (x.into_dispatch(), bn.epsilon);
    Tensor::from_dispatch(match residual {
        Some(r) => <Dispatch as FusedBatchNormBackend>::fused_batch_norm_eval_add(
            x,
            r.into_dispatch(),
            gamma,
            beta,
            mean,
            variance,
            eps,
            apply_relu,
        ),
        None => {
            <Dispatch as FusedBatchNormBackend>::fused_batch_norm_eval(x, gamma, beta, mean, variance, eps, apply_relu)
        }
    })
}

/// `(output, batch mean, biased batch variance)`.
fn train_forward(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    apply_relu: bool,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    #[cfg(feature = "flex")]
    if enabled() && crate::on_flex(&x) {
        use burn::backend::Dispatch;
        let (gamma, beta) = (bn.gamma.val().into_dispatch(), bn.beta.val().into_dispatch());
        let (out, mean, variance) = match residual {
            Some(r) => <Dispatch as FusedBatchNormBackend>::fused_batch_norm_add(
                x.into_dispatch(),
                r.into_dispatch(),
                gamma,
                beta,
                bn.epsilon,
                apply_relu,
            ),
            None => <Dispatch as FusedBatchNormBackend>::fused_batch_norm(
                x.into_dispatch(),
                gamma,
                beta,
                bn.epsilon,
                apply_relu,
            ),
        };
        return (
            Tensor::from_dispatch(out),
            Tensor::from_dispatch(mean),
            Tensor::from_dispatch(variance),
        );
    }
    let r = burn::tensor::module::batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let out = match residual {
        Some(residual) => r.output + residual,
        None => r.output,
    };
    (if apply_relu { relu(out) } else { out }, r.mean, r.variance)
}

/// PyTorch's update: the mean as is, the variance unbiased (`· n / (n − 1)`).
fn update_running_statistics(bn: &BatchNorm, mean: Tensor<1>, variance: Tensor<1>, count: usize) {
    let device = mean.device();
    let momentum = bn.momentum;
    let unbiased = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean.mul_scalar(1.0 - momentum) + mean.detach().mul_scalar(momentum);
    let running_var = running_var.mul_scalar(1.0 - momentum) + variance.detach().mul_scalar(momentum * unbiased);
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}
