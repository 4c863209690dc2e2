//! tanh for the flex CPU backend, forward and backward, vectorised.
//!
//! burn-flex 0.22 computes tanh with libm's `tanhf`, one call per value: half of a LeNet-5
//! (tanh) training step went there. [`tanh`] runs [`kernel`] on flex (with or without
//! autodiff): Eigen's rational approximation, within 1e-6 of the exact value, in loops the
//! compiler vectorises, and a one-pass backward from the saved output. Everywhere else it is
//! exactly burn's `activation::tanh`. `CNN_FAST_TANH=0` (or [`set_enabled`]) switches it off.

use burn::tensor::Tensor;

use crate::switch::Kernel;

#[cfg(feature = "flex")]
mod backend;
#[cfg(feature = "flex")]
pub mod kernel;

#[cfg(feature = "flex")]
pub use backend::FastTanhBackend;

const SWITCH: Kernel = Kernel::FastTanh;

/// Whether [`tanh`] uses the kernel on flex on this thread (on unless `CNN_FAST_TANH=0`,
/// [`set_enabled`] or [`with_fast_tanh`] say otherwise).
pub fn enabled() -> bool {
    SWITCH.enabled()
}

/// Turns the kernel on or off for the whole process (benchmarks).
pub fn set_enabled(on: bool) {
    SWITCH.set(on);
}

/// Runs `f` with the kernel on or off on this thread only (parity tests).
pub fn with_fast_tanh<R>(on: bool, f: impl FnOnce() -> R) -> R {
    SWITCH.with(on, f)
}

/// `[forward, backward]` runs of the kernel in this process so far.
pub fn calls() -> [usize; 2] {
    SWITCH.calls()
}

/// `tanh(x)`, through the kernel on flex (see the module docs).
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if enabled() && crate::on_flex(&x) {
        use burn::backend::Dispatch;
        return Tensor::from_dispatch(<Dispatch as FastTanhBackend>::fast_tanh(x.into_dispatch()));
    }
    burn::tensor::activation::tanh(x)
}
