//! # cnn-kernels
//!
//! Our own kernels for burn's flex CPU backend, each a burn backend extension
//! (`#[backend_extension(Flex, Autodiff)]`) with a hand-written autodiff node, so training runs
//! our backward passes too:
//!
//! - [`fast_conv`]: 2-D convolution (im2col + GEMM over whole batch ranges), forward and both
//!   gradients; switch: `CNN_FAST_CONV=0`;
//! - [`fused_bn`]: batch normalisation in training mode with the residual add and ReLU that
//!   follow it, forward and backward, running statistics as PyTorch keeps them; switch:
//!   `CNN_FUSED_BN=0`;
//! - [`fast_pool`]: 2-D max pooling (forward with indices; the backward is the backend's own
//!   scatter); switch: `CNN_FAST_POOL=0`;
//! - [`fast_tanh`]: tanh, vectorised, forward and backward; switch: `CNN_FAST_TANH=0`.
//!
//! On every other backend (ndarray, wgpu) and dtype the entry points are exactly burn's own
//! operations. Each kernel has parity tests against burn's operations (in `cnn-models`, at the
//! zoo's layer shapes and through whole networks) and an environment switch, so that before and
//! after can be compared in one binary. `cnn-models` re-exports both modules.

pub mod fast_conv;
pub mod fast_pool;
pub mod fast_tanh;
#[cfg(feature = "flex")]
mod flex_tensors;
pub mod fused_bn;
mod switch;

/// Whether `x` lives on a flex device (with or without autodiff): where our kernels run.
#[cfg(feature = "flex")]
pub(crate) fn on_flex<const D: usize>(x: &burn::tensor::Tensor<D>) -> bool {
    matches!(
        x.device().as_dispatch().clone().inner(),
        burn::backend::DispatchDevice::Flex(_)
    )
}
