//! The f32 kernels behind [`super`]: a whole-batch im2col, one GEMM per chunk of images, and the
//! two backward GEMMs (weights, and input through col2im).
//!
//! Why not burn-flex's own convolution: it runs one GEMM per image and per 512-pixel tile, so on
//! the small maps of a network's late layers (4×4, 2×2) the GEMMs have 4–16 columns and the
//! `gemm` crate spends its time in edge kernels; and its backward pass goes through the
//! backend-generic fallback, which computes the weight gradient as a convolution with the batch
//! as channels — one thin GEMM (9 columns for a 3×3 kernel) per input channel. Here the columns
//! of every GEMM are the pixels of a whole chunk of images, and each gradient is one GEMM.
//!
//! Matrix layout: the column matrix is `[K, B·P]`, row `k = (c, kh, kw)` (the order of the
//! weight's own `[O, C, KH, KW]` layout, so the weight is a plain `[O, K]` matrix), column
//! `j = (image, output pixel)`.

use super::passes;
use super::scratch::with_turned;

pub use super::geometry::ConvGeometry;

/// `[forward, backward]` calls of the kernel in this process so far.
pub fn calls() -> [usize; 2] {
    crate::Kernel::FastConv.calls()
}

/// Forward convolution: `x` `[N, C, H, W]`, `weight` `[O, C, KH, KW]`, `bias` `[O]`, all
/// contiguous; returns `[N, O, OH, OW]`.
pub fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    crate::Kernel::FastConv.record(false);
    let mut out = unfilled(g.batch * g.channels_out * g.pixels_out());
    passes::forward(g, x, weight, bias, &mut out);
    out
}

/// Forward convolution with bf16 products and f32 sums ([`crate::bf16`]): as [`forward`] with
/// `x` and `weight` rounded to bf16 (relative error at most 2⁻⁹ each), the bias and the sums in
/// f32. Fast where [`crate::bf16::supported`]; elsewhere correct but slow. Faster than
/// [`forward`] only where [`bf16_pays`].
pub fn forward_bf16(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    crate::Kernel::FastConv.record(false);
    let mut out = unfilled(g.batch * g.channels_out * g.pixels_out());
    super::bf16_forward::forward(g, x, weight, bias, &mut out);
    out
}

/// Fewest output columns (images × output pixels) for which [`forward_bf16`] beats [`forward`]:
/// below it, packing the weight into bf16 pairs costs more than the faster product saves.
const BF16_MIN_COLUMNS: usize = 512;
/// Fewest output channels likewise: packing the input costs the same whatever the channels, the
/// product shrinks with them (before this limit LeNet-5, 6 and 16 channels, ran 0.73× as fast in
/// bf16 as in f32, `cnn bench --phase infer`, median of 5 noisy rounds).
const BF16_MIN_CHANNELS: usize = 16;

/// Whether [`forward_bf16`] is faster than [`forward`] for `g`, so `--precision bf16` runs it:
/// not where f32 multiplies less (Winograd: 2.25× fewer multiplications; tap by tap: no products
/// on padding), nor on so few output columns that packing the weight dominates, nor on so few
/// output channels that packing the input does. Measured with
/// `examples/conv_passes` (AMD EPYC Zen 4, 2026-12-07), f32 against bf16 ms: ResNet-18's
/// 512-channel 2×2 maps (Winograd) 1.49 against 5.90; its 256→512 stride-2 layer at 32 × 4
/// columns 1.71 against 2.91, at 32 × 16 columns (128→256) 1.63 against 1.51; VGG-16's
/// 64-channel 64×64 layer 24.9 against 12.7.
pub fn bf16_pays(g: &ConvGeometry) -> bool {
    !passes::fewer_products_in_f32(g)
        && g.batch * g.pixels_out() >= BF16_MIN_COLUMNS
        && g.channels_out >= BF16_MIN_CHANNELS
}

/// A vector of `len` floats for a pass that writes every element before anything reads it
/// (zeroing it first cost ~9% of ResNet-20's 16-channel 32×32 forward: 8 MiB a call).
fn unfilled(len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: the capacity holds `len` floats, and every caller hands the vector to a pass that
    // writes each element before any is read (`every_pass_writes_its_whole_output` checks each
    // path on buffers filled with NaN) — as burn-flex does for its own outputs.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
    v
}
/// The gradients a backward pass asked for.
#[derive(Debug, Default)]
pub struct Gradients {
    /// `[N, C, H, W]`, when asked for.
    pub input: Option<Vec<f32>>,
    /// `[O, C, KH, KW]`, when asked for.
    pub weight: Option<Vec<f32>>,
    /// `[O]`, when asked for.
    pub bias: Option<Vec<f32>>,
}

/// Backward convolution: from `grad` (`[N, O, OH, OW]`) computes the gradients of the input,
/// the weight and the bias that are asked for (`[input, weight, bias]`).
pub fn backward(g: &ConvGeometry, x: &[f32], weight: &[f32], grad: &[f32], want: [bool; 3]) -> Gradients {
    backward_in(g, (x, weight, grad), want, [false, false])
}

/// [`backward`] with bf16 products (dY, the weight and the input rounded to bf16, the sums in
/// f32) where they pay: the input gradient of a stride-1 convolution as the forward pass of its
/// turned convolution (dY padded, the kernel turned 180° with its channel axes swapped), run as
/// [`forward_bf16`] where [`bf16_pays`] for that convolution
/// ([`bf16_input_gradient_pays`]); the weight gradient where it is one product with many output
/// channels, pairs along the pixels, the padded images read in place or as column matrices
/// ([`bf16_weight_gradient_pays`]). Elsewhere as [`backward`].
pub fn backward_bf16(g: &ConvGeometry, x: &[f32], weight: &[f32], grad: &[f32], want: [bool; 3]) -> Gradients {
    let bf16 = [bf16_input_gradient_pays(g), bf16_weight_gradient_pays(g)];
    backward_in(g, (x, weight, grad), want, bf16)
}

/// Whether [`backward_bf16`] computes the input gradient of `g` in bf16.
pub fn bf16_input_gradient_pays(g: &ConvGeometry) -> bool {
    g.is_turnable() && !g.is_pointwise() && bf16_pays(&g.turned())
}

/// Fewest output channels for the weight gradient in bf16: packing the image side costs a store
/// per pair of pixels and row of `dW` whatever the channels, the product shrinks with them. At
/// 64 and more it measured faster (`examples/conv_passes`: ResNet-18's 64→64 16×16 4.07 → 3.67
/// ms, VGG-16's 128→128 32×32 25.4 → 17.9); at ResNet-20's 16 and 32 it measured slower, with
/// the limit lowered to 16 for the run (16→16 32×32 4.52 → 8.65 ms, 32→32 16×16 3.82 → 4.35).
/// On column matrices (AMD EPYC Zen 4, three runs): ResNet-18's stem 7.7 → 4.9 ms and its
/// strided layers 2.3–2.9 → 1.5–2.2, ResNet-9 width 32's 64→128 14×14 41.8 → 27.5–36.3, 64→64
/// 14×14 22.0–24.2 → 18.1–23.3; ResNet-20's 64→64 8×8 even (3.8–4.4 both); AlexNet's 11×11
/// stride-4 stem even (9.0–10.0 against 9.9–10.9).
const BF16_WEIGHT_MIN_CHANNELS: usize = 64;

/// Whether [`backward_bf16`] computes the weight gradient of `g` in bf16: a weight gradient
/// that is one product (see `passes::weight_gradient_is_a_product`), or Winograd on an odd map
/// (`passes::winograd_weight_gradient_overhangs`), with at least [`BF16_WEIGHT_MIN_CHANNELS`]
/// output channels. The odd maps measured (`examples/conv_passes resnet9w32`, three alternating
/// runs, AMD EPYC Zen 4, 2026-12-08): ResNet-9 width 32's 128→256 7×7 (batch 256) 43.1–51.6 ms
/// as Winograd against 27.6–33.8 in bf16 on columns, its 256→256 3×3 23.3–23.6 against
/// 15.6–21.7; on even maps (ResNet-18's 8×8, 4×4, 2×2) Winograd stays ahead.
pub fn bf16_weight_gradient_pays(g: &ConvGeometry) -> bool {
    crate::Kernel::OwnGemm.enabled()
        && (passes::weight_gradient_is_a_product(g) || passes::winograd_weight_gradient_overhangs(g))
        && g.channels_out >= BF16_WEIGHT_MIN_CHANNELS
}

/// The backward pass, with `[input gradient, weight gradient]` in bf16 where `bf16` says so:
/// the input gradient as the bf16 forward pass of the turned convolution (for a
/// [`ConvGeometry::is_turnable`] `g`), the weight gradient as `bf16_weight::weight_gradient`.
fn backward_in(
    g: &ConvGeometry,
    (x, weight, grad): (&[f32], &[f32], &[f32]),
    [want_input, want_weight, want_bias]: [bool; 3],
    [bf16_input, bf16_weight]: [bool; 2],
) -> Gradients {
    crate::Kernel::FastConv.record(true);
    let (rows, pixels, out_ch) = (g.rows(), g.pixels_out(), g.channels_out);
    let mut result = Gradients {
        input: want_input.then(|| {
            let len = g.batch * g.channels_in * g.pixels_in();
            if bf16_input || passes::input_gradient_overwrites(g) {
                unfilled(len)
            } else {
                vec![0.0f32; len]
            }
        }),
        weight: want_weight.then(|| vec![0.0f32; out_ch * rows]),
        bias: want_bias.then(|| bias_gradient(grad, out_ch, pixels)),
    };
    if !want_input && !want_weight {
        return result;
    }
    match result.input.as_mut() {
        Some(dx) if bf16_input => with_turned(g, weight, |turned, turned_weight| {
            super::bf16_forward::forward(turned, grad, turned_weight, None, dx)
        }),
        Some(dx) => passes::input_gradient(g, weight, grad, dx),
        None => {}
    }
    match result.weight.as_mut() {
        Some(dw) if bf16_weight => super::bf16_weight::weight_gradient(g, x, grad, dw),
        Some(dw) => passes::weight_gradient(g, x, grad, dw),
        None => {}
    }
    result
}

fn bias_gradient(grad: &[f32], out_ch: usize, pixels: usize) -> Vec<f32> {
    let mut db = vec![0.0f32; out_ch];
    for (index, plane) in grad.chunks_exact(pixels.max(1)).enumerate() {
        db[index % out_ch] += plane.iter().sum::<f32>();
    }
    db
}

#[cfg(test)]
#[path = "kernel_tests.rs"]
mod tests;
