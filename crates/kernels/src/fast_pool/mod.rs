//! A faster 2-D max pooling for the flex CPU backend, forward (with the indices training needs)
//! and backward.
//!
//! burn-flex 0.22 pools through its general 3-D routine: for every output value it works out the
//! window's bounds in all three dimensions (with divisions) and walks it with bounds checks —
//! ResNet-18's stem pooling took ~15% of an inference step at 64 px. [`kernel`] works out each
//! row's and column's window once per call and walks the planes in order. Its results equal
//! burn's exactly (values, the choice among equal values, NaN, indices); the backward pass is
//! the backend's own scatter of the gradient by those indices.
//!
//! [`avg_pool2d`] does the same for average pooling over unpadded windows (LeNet-5's
//! subsampling), forward and backward, with burn-flex's arithmetic exactly.
//!
//! Everywhere else — ndarray, wgpu, dilation, asymmetric padding, other dtypes — [`max_pool2d`]
//! is exactly [`MaxPool2d::forward`] (and [`avg_pool2d`] [`AvgPool2d::forward`]). `CNN_FAST_POOL=0` (or [`set_enabled`]) switches it off.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::tensor::Tensor;

use crate::switch::Kernel;

#[cfg(feature = "flex")]
mod backend;
#[cfg(feature = "flex")]
pub mod kernel;
#[cfg(feature = "flex")]
mod geometry;
#[cfg(feature = "flex")]
mod indexed;

#[cfg(feature = "flex")]
pub use backend::{FastAvgPoolBackend, FastPoolBackend, PoolOptions};

const SWITCH: Kernel = Kernel::FastPool;

/// Whether [`max_pool2d`] uses the kernel on flex on this thread (on unless `CNN_FAST_POOL=0`,
/// [`set_enabled`] or [`with_fast_pool`] say otherwise).
pub fn enabled() -> bool {
    SWITCH.enabled()
}

/// Turns the kernel on or off for the whole process (benchmarks).
pub fn set_enabled(on: bool) {
    SWITCH.set(on);
}

/// Runs `f` with the kernel on or off on this thread only (parity tests).
pub fn with_fast_pool<R>(on: bool, f: impl FnOnce() -> R) -> R {
    SWITCH.with(on, f)
}

/// Forward runs of the kernels (max and average pooling) in this process so far.
pub fn calls() -> usize {
    SWITCH.calls()[0]
}

/// `pool.forward(x)`, through the kernel where it applies (see the module docs).
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => Some([top, left]),
        _ => None,
    };
    match padding.filter(|_| pool.dilation == [1, 1]) {
        Some(padding) => {
            pool_with(x, pool.kernel_size, pool.stride, padding, pool.ceil_mode).unwrap_or_else(|x| pool.forward(x))
        }
        None => pool.forward(x),
    }
}

/// `pool.forward(x)` (average pooling), through the kernel where the windows are unpadded and
/// inside the image (LeNet-5's subsampling); burn's operation elsewhere.
pub fn avg_pool2d(pool: &AvgPool2d, x: Tensor<4>) -> Tensor<4> {
    let unpadded = matches!(
        pool.padding,
        PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
    );
    #[cfg(feature = "flex")]
    if enabled() && unpadded && !pool.ceil_mode && crate::on_flex(&x) {
        use burn::backend::Dispatch;
        let options = PoolOptions {
            kernel: pool.kernel_size,
            stride: pool.stride,
            padding: [0, 0],
            ceil_mode: false,
        };
        let out = <Dispatch as FastAvgPoolBackend>::fast_avg_pool2d(x.into_dispatch(), options);
        return Tensor::from_dispatch(out);
    }
    let _ = unpadded;
    pool.forward(x)
}

/// Max pooling with symmetric `padding` and dilation 1 (what [`max_pool2d`] takes, and ResNet's
/// strided subsampling: a 1×1 window); burn's operation where the kernel does not apply.
pub fn max_pool(
    x: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
) -> Tensor<4> {
    pool_with(x, kernel, stride, padding, ceil_mode).unwrap_or_else(|x| {
        use burn::tensor::module::max_pool2d;
        use burn::tensor::ops::MaxPoolOptions;
        let options = MaxPoolOptions::new(kernel)
            .with_stride(stride)
            .with_padding(padding)
            .with_ceil_mode(ceil_mode);
        max_pool2d(x, options)
    })
}

/// The kernel's result, or `Err(x)` back where it does not apply.
fn pool_with(
    x: Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    ceil_mode: bool,
) -> Result<Tensor<4>, Tensor<4>> {
    #[cfg(feature = "flex")]
    if enabled() && crate::on_flex(&x) {
        use burn::backend::Dispatch;
        let options = PoolOptions {
            kernel,
            stride,
            padding,
            ceil_mode,
        };
        let out = <Dispatch as FastPoolBackend>::fast_max_pool2d(x.into_dispatch(), options);
        return Ok(Tensor::from_dispatch(out));
    }
    let _ = (kernel, stride, padding, ceil_mode);
    Err(x)
}
