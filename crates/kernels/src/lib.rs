//! # cnn-kernels
//!
//! Our own kernels for burn's flex CPU backend, each a burn backend extension
//! (`#[backend_extension(Flex, Autodiff)]`) with a hand-written autodiff node, so training runs
//! our backward passes too:
//!
//! - [`fast_conv`]: 2-D convolution (im2col + GEMM over whole batch ranges, the padded image
//!   read in place for stride 1, Winograd F(2×2, 3×3) on small maps), forward and both
//!   gradients; switches: `CNN_FAST_CONV=0` and one per path (`CNN_OWN_GEMM`, `CNN_WINOGRAD`,
//!   `CNN_ROWS_KERNEL`, `CNN_TURNED_DX`, `CNN_PIXELS_KERNEL`, `CNN_TAPWISE`);
//! - [`fused_bn`]: batch normalisation in training mode with the residual add and ReLU that
//!   follow it, forward and backward, running statistics as PyTorch keeps them; switch:
//!   `CNN_FUSED_BN=0`;
//! - [`fast_pool`]: 2-D max pooling (forward with indices; the backward is the backend's own
//!   scatter); switch: `CNN_FAST_POOL=0`;
//! - [`fast_tanh`]: tanh, vectorised, forward and backward; switch: `CNN_FAST_TANH=0`;
//! - [`fast_linear`]: a fully connected layer's three products at small batches (VGG's and
//!   AlexNet's classifiers), the weight read once and in place, on AVX-512; switch:
//!   `CNN_FAST_LINEAR=0`;
//! - [`fused_sgd`]: the SGD-with-momentum update as one in-place pass per parameter, bit-identical
//!   to burn's `Sgd`; switch: `CNN_FUSED_SGD=0`.
//!
//! Beside them, [`bf16`]: products of bf16 operands with f32 sums (AVX512-BF16 where the CPU has
//! it), and the convolution's forward pass on them (`fast_conv::kernel::forward_bf16`), which
//! every convolution on flex runs when [`precision`] says bf16.
//!
//! Every switch is a [`Kernel`]: its variable, what it does, and whether it is active on this
//! CPU (`cnn kernels` prints them).
//!
//! On every other backend (ndarray, wgpu) and dtype the entry points are exactly burn's own
//! operations. Each kernel has parity tests against burn's operations (in `cnn-models`, at the
//! zoo's layer shapes and through whole networks) and an environment switch, so that before and
//! after can be compared in one binary. `cnn-models` re-exports them all.
//!
//! A convolution through the fast kernel, against burn's own:
//!
//! ```
//! use burn::nn::conv::Conv2dConfig;
//! use burn::tensor::{Device, Distribution, Tensor};
//! use cnn_kernels::fast_conv;
//!
//! let device = Device::flex();
//! let conv = Conv2dConfig::new([8, 16], [3, 3]).init(&device);
//! let x = Tensor::<4>::random([2, 8, 12, 12], Distribution::Default, &device);
//! let fast = fast_conv::conv2d(&conv, x.clone());
//! let gap = (fast - conv.forward(x)).abs().max().into_scalar::<f32>();
//! assert!(gap < 1e-4);
//! ```

#[cfg(feature = "flex")]
pub mod bf16;
pub mod fast_conv;
pub mod fast_linear;
pub mod fast_pool;
pub mod fast_tanh;
#[cfg(feature = "flex")]
mod flex_tensors;
pub mod fused_bn;
pub mod fused_sgd;
pub mod precision;
mod switch;

pub use switch::Kernel;

/// Whether `x` lives on a flex device (with or without autodiff): where our kernels run.
#[cfg(feature = "flex")]
pub(crate) fn on_flex<const D: usize>(x: &burn::tensor::Tensor<D>) -> bool {
    matches!(
        x.device().as_dispatch().clone().inner(),
        burn::backend::DispatchDevice::Flex(_)
    )
}
