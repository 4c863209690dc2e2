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
    super::SWITCH.calls()
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
    super::SWITCH.record(false);
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
    super::SWITCH.record(true);
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
mod tests {
    use super::*;

    /// Direct seven-loop convolution, the reference for the kernels.
    fn naive_forward(g: &ConvGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let [oh, ow] = g.output().unwrap();
        let [h, wd] = g.input;
        let mut out = vec![0.0f32; g.batch * g.channels_out * oh * ow];
        for n in 0..g.batch {
            for o in 0..g.channels_out {
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b[o]) as f64;
                        for c in 0..g.channels_in {
                            for ky in 0..g.kernel[0] {
                                for kx in 0..g.kernel[1] {
                                    let iy = (y * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
                                    let ix = (xo * g.stride[1] + kx * g.dilation[1]) as isize - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xi = ((n * g.channels_in + c) * h + iy as usize) * wd + ix as usize;
                                    let wi = ((o * g.channels_in + c) * g.kernel[0] + ky) * g.kernel[1] + kx;
                                    acc += x[xi] as f64 * w[wi] as f64;
                                }
                            }
                        }
                        out[((n * g.channels_out + o) * oh + y) * ow + xo] = acc as f32;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, c, hw: [usize; 2], o, k: [usize; 2], s: [usize; 2], p: [usize; 2], d| ConvGeometry {
            batch,
            channels_in: c,
            input: hw,
            channels_out: o,
            kernel: k,
            stride: s,
            padding: p,
            dilation: [d, d],
        };
        vec![
            g(3, 4, [6, 5], 5, [3, 3], [1, 1], [1, 1], 1),
            g(2, 3, [9, 9], 4, [7, 7], [2, 2], [3, 3], 1),
            g(2, 6, [4, 4], 3, [1, 1], [2, 2], [0, 0], 1),
            g(5, 2, [2, 2], 3, [3, 3], [1, 1], [1, 1], 1),
            g(2, 3, [7, 6], 2, [3, 2], [2, 1], [0, 2], 2),
            g(1, 2, [5, 5], 2, [5, 5], [3, 3], [0, 0], 1),
            // One image per GEMM (256+ output pixels): padded, pointwise, and pointwise batch.
            g(2, 3, [16, 18], 4, [3, 3], [1, 1], [1, 1], 1),
            g(3, 5, [16, 16], 4, [1, 1], [1, 1], [0, 0], 1),
            g(3, 5, [4, 4], 4, [1, 1], [1, 1], [0, 0], 1),
            // Stride 1 at 16+ output columns: no column matrix (`implicit`), images grouped
            // side by side (with a shorter last group), other kernel sizes and paddings, an
            // asymmetric kernel; then a padded 1×1, which takes im2col (its padding is not smaller
            // than its kernel), as narrower maps do (the rows above).
            g(7, 5, [16, 16], 6, [3, 3], [1, 1], [1, 1], 1),
            g(3, 4, [18, 20], 9, [3, 3], [1, 1], [0, 0], 1),
            g(2, 3, [18, 20], 4, [5, 5], [1, 1], [2, 2], 1),
            g(4, 2, [16, 17], 3, [3, 2], [1, 1], [1, 0], 1),
            g(2, 3, [16, 16], 2, [1, 1], [1, 1], [1, 1], 1),
            // 3×3, stride 1, padding 1 on maps up to 8 wide with 128+ blocks of 2×2 outputs
            // (`winograd`): odd sizes (a cut-off last block), a batch that is no whole number of
            // lane blocks, 1×1 maps; then too few blocks, which takes im2col.
            g(9, 5, [7, 8], 6, [3, 3], [1, 1], [1, 1], 1),
            g(16, 4, [8, 5], 3, [3, 3], [1, 1], [1, 1], 1),
            g(130, 3, [1, 1], 2, [3, 3], [1, 1], [1, 1], 1),
            g(3, 4, [8, 8], 3, [3, 3], [1, 1], [1, 1], 1),
            // Kernels that mostly read padding (`tapwise`): a 5×5 kernel on a 3×3 map (36% of
            // its taps inside), a 3×3 one on a 2×2 map (44%; above, g(5, 2, [2, 2], ..) is one
            // too) with more channels than a block of rows, an asymmetric kernel and padding.
            g(4, 3, [3, 3], 5, [5, 5], [1, 1], [2, 2], 1),
            g(3, 40, [2, 2], 36, [3, 3], [1, 1], [1, 1], 1),
            g(2, 3, [2, 3], 4, [3, 5], [1, 1], [1, 2], 1),
        ]
    }

    /// The geometries above exercise every way: the implicit path (stride 1, 16+ columns) for
    /// five of them, Winograd for three, tap by tap for four, im2col for the rest.
    #[test]
    fn the_geometries_cover_every_path() {
        let count = |applies: fn(&ConvGeometry) -> bool| geometries().iter().filter(|g| applies(g)).count();
        assert_eq!(count(super::super::implicit::applies), 5);
        assert_eq!(count(super::super::winograd::applies), 3);
        // Tap by tap where Winograd does not take it first (the 1×1 maps).
        let tapwise = |g: &ConvGeometry| super::super::tapwise::applies(g) && !super::super::winograd::applies(g);
        assert_eq!(geometries().iter().filter(|g| tapwise(g)).count(), 4);
    }

    /// The batch's ranges on two threads: up to four per thread, at least 16 images each where
    /// the batch has them.
    #[test]
    fn ranges_are_finer_than_one_per_thread_but_not_narrow() {
        let g = |batch| ConvGeometry { batch, ..geometries()[0] };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            assert_eq!(g(128).per_range(), 16, "ResNet-20: eight ranges");
            assert_eq!(g(512).per_range(), 64, "four per thread");
            assert_eq!(g(32).per_range(), 16, "ResNet-18: two");
            assert_eq!(g(16).per_range(), 8, "VGG-16: two");
            assert_eq!(g(1).per_range(), 1);
        });
    }

    #[test]
    fn forward_matches_the_direct_convolution() {
        for g in geometries() {
            let x = values(g.batch * g.channels_in * g.pixels_in(), 1);
            let w = values(g.channels_out * g.rows(), 2);
            let b = values(g.channels_out, 3);
            let ours = forward(&g, &x, &w, Some(&b));
            let reference = naive_forward(&g, &x, &w, Some(&b));
            assert_eq!(ours.len(), reference.len(), "{g:?}");
            for (a, r) in ours.iter().zip(&reference) {
                assert!((a - r).abs() < 1e-4, "{g:?}: {a} vs {r}");
            }
        }
    }

    /// The backward pass is the adjoint of the forward pass: for random `v`,
    /// `<forward(x + e_i), v>` changes by exactly the gradient; checked in its bilinear form
    /// `<conv(x, w), v> = <x, dX(v)> = <w, dW(v)>` and `sum(v) per channel = dB`.
    #[test]
    fn backward_is_the_adjoint_of_forward() {
        for g in geometries() {
            let x = values(g.batch * g.channels_in * g.pixels_in(), 4);
            let w = values(g.channels_out * g.rows(), 5);
            let y = naive_forward(&g, &x, &w, None);
            let v = values(y.len(), 6);
            let grads = backward(&g, &x, &w, &v, [true, true, true]);
            let target = dot(&y, &v);
            let via_input = dot(&x, grads.input.as_ref().unwrap());
            let via_weight = dot(&w, grads.weight.as_ref().unwrap());
            let tolerance = 1e-4 * (1.0 + target.abs());
            assert!(
                (via_input - target).abs() < tolerance,
                "{g:?}: dX {via_input} vs {target}"
            );
            assert!(
                (via_weight - target).abs() < tolerance,
                "{g:?}: dW {via_weight} vs {target}"
            );
            let pixels = g.pixels_out();
            let db = grads.bias.unwrap();
            for o in 0..g.channels_out {
                let expected: f32 = (0..g.batch)
                    .map(|n| v[(n * g.channels_out + o) * pixels..][..pixels].iter().sum::<f32>())
                    .sum();
                assert!((db[o] - expected).abs() < 1e-4, "{g:?}: dB[{o}]");
            }
        }
    }

    /// The passes that get an unfilled buffer write all of it: run on buffers full of NaN, they
    /// give what they give on zeros.
    #[test]
    fn every_pass_writes_its_whole_output() {
        for g in geometries() {
            let x = values(g.batch * g.channels_in * g.pixels_in(), 10);
            let w = values(g.channels_out * g.rows(), 11);
            let v = values(g.batch * g.channels_out * g.pixels_out(), 12);
            let mut out = vec![f32::NAN; v.len()];
            passes::forward(&g, &x, &w, None, &mut out);
            let mut zeroed = vec![0.0; v.len()];
            passes::forward(&g, &x, &w, None, &mut zeroed);
            assert_eq!(out, zeroed, "{g:?}: forward");
            if passes::input_gradient_overwrites(&g) {
                let mut dx = vec![f32::NAN; x.len()];
                passes::input_gradient(&g, &w, &v, &mut dx);
                let mut zeroed = vec![0.0; x.len()];
                passes::input_gradient(&g, &w, &v, &mut zeroed);
                assert_eq!(dx, zeroed, "{g:?}: input gradient");
            }
        }
        let overwrite = geometries()
            .iter()
            .filter(|g| passes::input_gradient_overwrites(g))
            .count();
        assert!(overwrite >= 8, "the geometries reach the overwriting input gradients");
    }

    #[test]
    fn chunks_of_images_give_the_same_gradients_as_one_chunk() {
        // A geometry large enough that the column budget splits the batch.
        let g = ConvGeometry {
            batch: 5,
            channels_in: 64,
            input: [64, 64],
            channels_out: 2,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        assert!(g.chunk() < g.batch, "the test needs several chunks");
        let x = values(g.batch * g.channels_in * g.pixels_in(), 7);
        let w = values(g.channels_out * g.rows(), 8);
        let v = values(g.batch * g.channels_out * g.pixels_out(), 9);
        let all = backward(&g, &x, &w, &v, [true, true, false]);
        for image in 0..g.batch {
            let one = ConvGeometry { batch: 1, ..g };
            let plane_in = g.channels_in * g.pixels_in();
            let plane_out = g.channels_out * g.pixels_out();
            let single = backward(
                &one,
                &x[image * plane_in..][..plane_in],
                &w,
                &v[image * plane_out..][..plane_out],
                [true, false, false],
            );
            assert_eq!(
                &all.input.as_ref().unwrap()[image * plane_in..][..plane_in],
                &single.input.unwrap()[..],
                "image {image}"
            );
        }
    }
}
