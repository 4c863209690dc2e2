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

use std::cell::RefCell;

use rayon::prelude::*;

use super::columns::{im2col, pad, padded};
use super::passes;

thread_local! {
    /// Scratch buffers reused from call to call on this thread: a fresh 16 MiB buffer per
    /// convolution cost page faults and zeroing (measured ~5% of a ResNet-18 training step).
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
    /// The turned weight of [`with_turned`], reused likewise.
    static TURNED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with three scratch slices of `lens` elements (contents unspecified).
pub(super) fn with_scratch<R>(lens: [usize; 3], f: impl FnOnce([&mut [f32]; 3]) -> R) -> R {
    // Taken out while in use, so a nested call (none today) would allocate instead of alias.
    let mut bufs = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    for (buf, &len) in bufs.iter_mut().zip(&lens) {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let [a, b, c] = &mut bufs;
    let result = f([&mut a[..lens[0]], &mut b[..lens[1]], &mut c[..lens[2]]]);
    SCRATCH.with(|s| *s.borrow_mut() = bufs);
    result
}

/// `[forward, backward]` calls of the kernel in this process so far.
pub fn calls() -> [usize; 2] {
    crate::Kernel::FastConv.calls()
}

/// Column-matrix budget per chunk of images, in floats (1 MiB, about a core's L2 cache: the
/// matrix is written by im2col and read back by the GEMM, measured 1.4× faster at 8×8 maps than
/// with a 16 MiB budget) ...
const COLUMN_BUDGET: usize = 1 << 18;
/// ... unless the GEMM would then have fewer columns than this (2×2 and 4×4 maps, where wide
/// products matter more: 512 channels at 2×2 ran 1.2× slower held to the budget).
const MIN_COLUMNS: usize = 128;

/// One image per GEMM is enough from this many output pixels (ResNet-18's first stage at 64 px
/// has 256) and multiply-adds per image (8 Mi; ResNet-20's 16-channel stage, 2.4 M, measured
/// 25% slower that way: the `gemm` crate's per-call cost): below, the batch is grouped so that
/// late layers' 2×2 maps and thin layers still make wide GEMMs.
const SINGLE_IMAGE_PIXELS: usize = 256;
const SINGLE_IMAGE_MACS: usize = 1 << 23;

/// Ranges of the batch per thread, at most (see [`ConvGeometry::per_range`]): ResNet-20's training
/// step at batch 128, four ranges of 16 images per thread against one of 64, five rounds
/// alternating: 1.21 / 1.05 / 0.99 / 1.07 / 1.12× faster.
const RANGES_PER_THREAD: usize = 4;
/// Images per range, at least (where the batch has that many per thread).
const MIN_RANGE: usize = 16;

/// The sizes of one 2-D convolution (groups = 1), all in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels.
    pub channels_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride, padding (both sides) and dilation, as in `ConvOptions`.
    pub stride: [usize; 2],
    /// Zero padding added before and after each spatial side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// Output height and width; `None` when the kernel does not fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let side = |i: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            let padded = self.input[i] + 2 * self.padding[i];
            (padded >= span && self.stride[i] > 0).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some([side(0)?, side(1)?])
    }

    pub(super) fn out(&self) -> [usize; 2] {
        self.output().expect("convolution geometry checked by the caller")
    }

    /// Rows of the column matrix: `C·KH·KW`.
    pub(super) fn rows(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    pub(super) fn pixels_out(&self) -> usize {
        let [oh, ow] = self.out();
        oh * ow
    }

    pub(super) fn pixels_in(&self) -> usize {
        self.input[0] * self.input[1]
    }

    pub(super) fn is_padded(&self) -> bool {
        self.padding != [0, 0]
    }

    /// Stride 1, no dilation and a padding smaller than the kernel: the input gradient is itself
    /// such a convolution ([`with_turned`]), so passes that take one take the other.
    pub(super) fn is_turnable(&self) -> bool {
        let small_padding = self.padding[0] < self.kernel[0] && self.padding[1] < self.kernel[1];
        self.stride == [1, 1] && self.dilation == [1, 1] && small_padding
    }

    /// A 1×1, stride-1, unpadded convolution: one image's column matrix is the image itself.
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && !self.is_padded()
    }

    /// Elements of one image's padded input planes (0 when there is no padding).
    pub(super) fn padded_plane(&self) -> usize {
        let (hp, wp) = padded(self);
        if self.is_padded() {
            self.channels_in * hp * wp
        } else {
            0
        }
    }

    /// Images in each contiguous range of the batch (the passes' unit of parallel work): up to
    /// [`RANGES_PER_THREAD`] ranges per thread, so that a core the host slows down leaves ranges
    /// for the others to take, but no fewer than [`MIN_RANGE`] images a range where the batch
    /// has them (narrower products cost more than the balance gains: ResNet-18's batch of 32).
    pub(super) fn per_range(&self) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let even = self.batch.div_ceil(threads).max(1);
        let fine = self.batch.div_ceil(RANGES_PER_THREAD * threads).max(1);
        fine.max(MIN_RANGE.min(even))
    }

    /// Images per chunk: one where an image alone gives the GEMMs enough columns (then no
    /// regrouping copies are needed), else as many as fit one column matrix in
    /// [`COLUMN_BUDGET`] but at least [`MIN_COLUMNS`] columns' worth.
    pub(super) fn chunk(&self) -> usize {
        let image_macs = self.channels_out * self.rows() * self.pixels_out();
        if self.pixels_out() >= SINGLE_IMAGE_PIXELS && image_macs >= SINGLE_IMAGE_MACS {
            return 1;
        }
        let per_image = (self.rows() * self.pixels_out()).max(1);
        let wide_enough = MIN_COLUMNS.div_ceil(self.pixels_out().max(1));
        (COLUMN_BUDGET / per_image).max(wide_enough).clamp(1, self.batch.max(1))
    }
}

/// Runs `f` with the stride-1 convolution whose forward pass is `g`'s input gradient (for a
/// padding smaller than the kernel): dY padded by `K − 1 − pad`, convolved with the kernel
/// turned 180° and its channel axes swapped — that geometry and its weight `[C, O, KH, KW]`.
pub(super) fn with_turned<R>(g: &ConvGeometry, weight: &[f32], f: impl FnOnce(&ConvGeometry, &[f32]) -> R) -> R {
    let [kh, kw] = g.kernel;
    let (c_in, out_ch) = (g.channels_in, g.channels_out);
    let turned = ConvGeometry {
        channels_in: out_ch,
        input: g.out(),
        channels_out: c_in,
        padding: [kh - 1 - g.padding[0], kw - 1 - g.padding[1]],
        ..*g
    };
    // turned[c][o][tap] = weight[o][c][taps − 1 − tap] (the taps reversed = turned 180°), in
    // bands of `BAND` input channels, each band writing its `BAND` rows of the result in order
    // (the bands side by side on the pool). Going filter by filter instead wrote every 36 bytes
    // to another page, and a fresh buffer per call faulted its pages in: 7 ms for ResNet-18's
    // 512×512×3×3, longer than the convolution it serves.
    const BAND: usize = 16;
    let taps = kh * kw;
    let mut buf = TURNED.with(|t| std::mem::take(&mut *t.borrow_mut()));
    if buf.len() < weight.len() {
        buf.resize(weight.len(), 0.0);
    }
    let turned_weight = &mut buf[..weight.len()];
    let bands = turned_weight.par_chunks_mut((BAND * out_ch * taps).max(1));
    bands.enumerate().for_each(|(band, dst)| {
        let first = band * BAND;
        let channels = dst.len() / (out_ch * taps);
        for o in 0..out_ch {
            for c in 0..channels {
                let filter = &weight[(o * c_in + first + c) * taps..][..taps];
                let dst = &mut dst[(c * out_ch + o) * taps..][..taps];
                dst.iter_mut().zip(filter.iter().rev()).for_each(|(d, w)| *d = *w);
            }
        }
    });
    let result = f(&turned, turned_weight);
    TURNED.with(|t| *t.borrow_mut() = buf);
    result
}

/// The left operand of a pass's products (its weights): `m × k`, element `(i, p)` at
/// `i·strides[0] + p·strides[1]`.
pub(super) struct Lhs<'a> {
    pub m: usize,
    pub k: usize,
    pub src: &'a [f32],
    pub strides: [usize; 2],
}

impl Lhs<'_> {
    /// `dst[m, n] (+)= self · rhs[k, n]` (`dst` row-major, rows `dst_rs` apart), through the
    /// `gemm` crate: on the column matrices of strided and small-map convolutions (hundreds to
    /// thousands of reductions) its blocking beat our own product by 10–30%.
    pub(super) fn times(
        &self,
        n: usize,
        dst: (&mut [f32], usize, bool),
        rhs: &[f32],
        rhs_strides: [usize; 2],
        parallel: bool,
    ) {
        let Lhs { m, k, src, strides } = *self;
        let (dst, dst_rs, accumulate) = dst;
        crate_gemm([m, n, k], (dst, [dst_rs, 1], accumulate), (src, strides), (rhs, rhs_strides), parallel)
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` through the `gemm` crate (what burn-flex uses), each
/// matrix given with its `[row, column]` strides (`dst` added to when `accumulate`).
pub(super) fn crate_gemm(
    [m, n, k]: [usize; 3],
    (dst, [dst_rs, dst_cs], accumulate): (&mut [f32], [usize; 2], bool),
    (lhs, [lhs_rs, lhs_cs]): (&[f32], [usize; 2]),
    (rhs, [rhs_rs, rhs_cs]): (&[f32], [usize; 2]),
    parallel: bool,
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(dst.len() >= last(m, n, dst_rs, dst_cs), "gemm: destination too short");
    assert!(lhs.len() >= last(m, k, lhs_rs, lhs_cs), "gemm: left operand too short");
    assert!(rhs.len() >= last(k, n, rhs_rs, rhs_cs), "gemm: right operand too short");
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices,
    // and `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

/// Forward convolution: `x` `[N, C, H, W]`, `weight` `[O, C, KH, KW]`, `bias` `[O]`, all
/// contiguous; returns `[N, O, OH, OW]`.
pub fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    crate::Kernel::FastConv.record(false);
    let mut out = unfilled(g.batch * g.channels_out * g.pixels_out());
    passes::forward(g, x, weight, bias, &mut out);
    out
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

/// The column matrix `[K, images·P]` of `xs` (images `[images, C, H, W]`): `xs` itself for a
/// pointwise convolution of one image, else built in `col_buf` (through `xpad` when padded).
pub(super) fn columns<'a>(
    g: &ConvGeometry,
    xs: &'a [f32],
    images: usize,
    col_buf: &'a mut [f32],
    xpad: &mut [f32],
) -> &'a [f32] {
    if g.is_pointwise() && images == 1 {
        return xs;
    }
    let xp = if g.is_padded() {
        let xp = &mut xpad[..images * g.padded_plane()];
        pad(g, xs, xp);
        &*xp
    } else {
        xs
    };
    let col = &mut col_buf[..g.rows() * images * g.pixels_out()];
    im2col(g, xp, images, col);
    col
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
pub fn backward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    grad: &[f32],
    [want_input, want_weight, want_bias]: [bool; 3],
) -> Gradients {
    crate::Kernel::FastConv.record(true);
    let (rows, pixels, out_ch) = (g.rows(), g.pixels_out(), g.channels_out);
    let mut result = Gradients {
        input: want_input.then(|| {
            let len = g.batch * g.channels_in * g.pixels_in();
            if passes::input_gradient_overwrites(g) {
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
    if let Some(dx) = result.input.as_mut() {
        passes::input_gradient(g, weight, grad, dx);
    }
    if let Some(dw) = result.weight.as_mut() {
        passes::weight_gradient(g, x, grad, dw);
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
