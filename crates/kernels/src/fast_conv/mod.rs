//! A faster 2-D convolution for the flex CPU backend, forward and backward.
//!
//! Every convolution in this crate's models goes through [`conv2d`]. On a flex device (with or
//! without autodiff) it runs [`kernel`]: im2col + GEMM with the batch split into ranges of
//! images over the threads and, on small maps, several images per GEMM; a backward pass of one GEMM
//! per gradient and chunk — where burn-flex 0.22 runs one GEMM per image (thin GEMMs on small
//! feature maps) and computes the weight gradient through the generic fallback (one 9-column
//! GEMM per input channel). The GEMMs are the same `gemm` crate kernels burn-flex uses, on the
//! same rayon pool. The results equal burn's convolution up to float rounding (tested against it
//! and against torchvision's fixtures) and do not depend on thread timing. Measured in
//! `docs/benchmarks.md`: ResNet-18 at 64 px trains 1.5–2× and infers 1.5–2.5× faster.
//!
//! 3×3 stride-1 convolutions of maps up to 8 wide run as Winograd F(2×2, 3×3) instead
//! ([`winograd`], `CNN_WINOGRAD=0` to switch off); stride-1 convolutions of wider maps read the
//! padded image in place ([`implicit`]); kernels that mostly read padding (3×3 on 2×2 maps) run
//! one product per tap over the pixels it reaches ([`tapwise`], `CNN_TAPWISE=0`).
//!
//! The products run on our own packed GEMM ([`matmul`], with a register tile chosen for the CPU
//! at run time: AVX-512, AVX2 + FMA or portable); `CNN_OWN_GEMM=0` switches to the `gemm`
//! crate's, for comparison.
//!
//! Each thread keeps its scratch matrices (about 1–16 MiB) between calls.
//!
//! Everywhere else — ndarray, wgpu, grouped convolutions, asymmetric padding, other dtypes —
//! it is exactly [`Conv2d::forward`]. Set `CNN_FAST_CONV=0` (or call [`set_enabled`]) to run
//! burn's own convolution on flex too, e.g. to compare the two.

use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;

use crate::switch::Kernel;

#[cfg(feature = "flex")]
mod backend;
#[cfg(feature = "flex")]
mod bf16_forward;
#[cfg(feature = "flex")]
mod bf16_weight;
#[cfg(feature = "flex")]
mod columns;
#[cfg(feature = "flex")]
mod crate_gemm;
#[cfg(feature = "flex")]
mod geometry;
#[cfg(feature = "flex")]
mod implicit;
#[cfg(feature = "flex")]
pub mod kernel;
#[cfg(feature = "flex")]
mod matmul;
#[cfg(feature = "flex")]
pub(crate) mod microkernel;
#[cfg(feature = "flex")]
mod passes;
#[cfg(feature = "flex")]
mod scratch;
#[cfg(feature = "flex")]
mod tapwise;
#[cfg(all(test, feature = "flex"))]
pub(crate) mod testing;
#[cfg(feature = "flex")]
mod winograd;

#[cfg(feature = "flex")]
pub use backend::FastConvBackend;

const SWITCH: Kernel = Kernel::FastConv;
/// Whether [`conv2d`] uses the fast kernel on flex on this thread (on unless `CNN_FAST_CONV=0`,
/// [`set_enabled`] or [`with_fast_conv`] say otherwise).
pub fn enabled() -> bool {
    SWITCH.enabled()
}

/// Turns the fast kernel on or off for the whole process (benchmarks and parity tests).
pub fn set_enabled(on: bool) {
    SWITCH.set(on);
}

/// Runs `f` with the fast kernel on or off on this thread only (what the parity tests use to
/// build the same model both ways side by side). The backward pass follows the forward's choice.
pub fn with_fast_conv<R>(on: bool, f: impl FnOnce() -> R) -> R {
    SWITCH.with(on, f)
}

/// `conv.forward(x)`, through the fast kernel where it applies (see the module docs).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    match try_conv2d(conv, &x) {
        Some(out) => out,
        None => conv.forward(x),
    }
}

/// `Some(conv.forward(x))` computed by the fast kernel, or `None` where it does not apply.
pub fn try_conv2d(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    #[cfg(not(feature = "flex"))]
    {
        let _ = (conv, x);
        None
    }
    #[cfg(feature = "flex")]
    fast_forward(conv, x)
}

#[cfg(feature = "flex")]
fn fast_forward(conv: &Conv2d, x: &Tensor<4>) -> Option<Tensor<4>> {
    use burn::backend::Dispatch;
    use burn::backend::ops::ConvOptions;

    if !enabled() || conv.groups != 1 || !crate::on_flex(x) {
        return None;
    }
    let [_, _, height, width] = x.dims();
    let ((top, bottom), (left, right)) = padding_pairs(conv, height, width);
    if top != bottom || left != right {
        return None;
    }
    let options = ConvOptions::new(conv.stride, [top, left], conv.dilation, 1);
    let out = <Dispatch as FastConvBackend>::fast_conv2d(
        x.clone().into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
    );
    let out = Tensor::<4>::from_dispatch(out);
    Some(match &conv.bias {
        Some(bias) => {
            let channels = bias.dims()[0];
            out + bias.val().reshape([1, channels, 1, 1])
        }
        None => out,
    })
}

/// `(before, after)` padding per axis, exactly as burn's `Conv2d::forward` computes it (its own
/// helper is private to burn-nn).
#[cfg(feature = "flex")]
fn padding_pairs(conv: &Conv2d, height: usize, width: usize) -> ((usize, usize), (usize, usize)) {
    use burn::nn::PaddingConfig2d;

    let same = |kernel: usize, stride: usize, size: usize| {
        let out = size.div_ceil(stride);
        let total = if out > 0 {
            ((out - 1) * stride + kernel).saturating_sub(size)
        } else {
            0
        };
        (total / 2, total - total / 2)
    };
    match conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Same => (
            same(conv.kernel_size[0], conv.stride[0], height),
            same(conv.kernel_size[1], conv.stride[1], width),
        ),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
    }
}
