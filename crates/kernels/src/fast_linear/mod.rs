//! A fully connected layer for the flex CPU backend at small batches, forward and backward.
//!
//! burn-flex 0.22 runs `x · W` through the `gemm` crate, which packs its operands first: with 16
//! rows of `x` against VGG's 25088 × 4096 weight (392 MiB) the packing copies the whole weight on
//! every call, and the product takes 2.5× PyTorch's time (124 against 49 ms on a 2-core Xeon; the
//! two backward products alike). [`linear`] runs [`kernel`] instead where the batch is small (at
//! most [`kernel::MAX_BATCH`] rows), the output a multiple of 16 wide and the CPU has AVX-512:
//! each product reads the weight once, in place, in the order it lies in memory (see
//! [`kernel`]). Everywhere else it is exactly burn's [`Linear::forward`]. `CNN_FAST_LINEAR=0`
//! (or [`set_enabled`]) switches it off.

use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::switch::Kernel;

#[cfg(feature = "flex")]
mod backend;
#[cfg(feature = "flex")]
pub mod kernel;

#[cfg(feature = "flex")]
pub use backend::FastLinearBackend;

const SWITCH: Kernel = Kernel::FastLinear;

/// Whether [`linear`] uses the kernel on flex on this thread (on unless `CNN_FAST_LINEAR=0`,
/// [`set_enabled`] or [`with_fast_linear`] say otherwise).
pub fn enabled() -> bool {
    SWITCH.enabled()
}

/// Turns the kernel on or off for the whole process (benchmarks).
pub fn set_enabled(on: bool) {
    SWITCH.set(on);
}

/// Runs `f` with the kernel on or off on this thread only (parity tests).
pub fn with_fast_linear<R>(on: bool, f: impl FnOnce() -> R) -> R {
    SWITCH.with(on, f)
}

/// `[forward, backward]` runs of the kernel in this process so far.
pub fn calls() -> [usize; 2] {
    SWITCH.calls()
}

/// `layer.forward(x)`, through the kernel where it applies (see the module docs).
pub fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if enabled() && crate::on_flex(&x) {
        use burn::backend::Dispatch;
        let weight = layer.weight.val();
        let [rows, _] = x.dims();
        let [inputs, outputs] = weight.dims();
        if x.dims()[1] == inputs && kernel::applies([rows, inputs, outputs]) {
            let out = <Dispatch as FastLinearBackend>::fast_linear(x.into_dispatch(), weight.into_dispatch());
            let out = Tensor::<2>::from_dispatch(out);
            return match &layer.bias {
                Some(bias) => out + bias.val().unsqueeze::<2>(),
                None => out,
            };
        }
    }
    layer.forward(x)
}
