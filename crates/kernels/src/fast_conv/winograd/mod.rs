//! 3×3 stride-1 convolutions padded by 1 on small maps as Winograd F(2×2, 3×3): 16
//! multiplications per 2×2 block of outputs and pair of channels where the direct product takes
//! 36 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 4×4 window of the padded input (one per 2×2 output block, the tiles overlapping by 2)
//! becomes `V = Bᵀ·d·B` and each 3×3 filter `U = G·g·Gᵀ`; then for every one of the 16
//! positions `ξ` of the transformed tile, one product `M[ξ] = U[ξ] · V[ξ]` (output channels ×
//! input channels × tiles) does all the multiplying, and `Aᵀ·M·A` turns each 4×4 tile of `M`
//! back into its 2×2 outputs. The input gradient is the same convolution of dY with the kernel
//! turned 180°; the weight gradient is the forward's transposed algorithm,
//! `dW = Gᵀ·[Σ_tiles (A·dY·Aᵀ) ⊙ (Bᵀ·d·B)]·G`, again 16 products, summed over the tiles.
//!
//! The transforms only add and halve, so the results differ from the direct sums by rounding
//! (tested within 1e-4 of them, as the other paths are); every sum runs in a fixed order, so
//! they do not depend on thread timing. The products are `gemm` crate calls, one per `ξ`.
//!
//! Measured (`examples/conv_passes`, this path against the others in one binary,
//! `CNN_WINOGRAD=0`): ResNet-20's 64-channel 8×8 stage 1.6× faster forward and input gradient,
//! 1.3× weight gradient (a Xeon, before the column path's weight gradient got faster: on an AMD
//! EPYC Zen 4 that path now wins below 128 channels, so thinner layers' weight gradients run
//! there, `passes::WINOGRAD_WEIGHT_CHANNELS`); ResNet-18's 128-channel 8×8 stage 1.2–1.4×;
//! wider maps and 512-channel 2×2 maps were slower this way (see [`MAX_WIDTH`], [`MIN_TILES`]).
//! Lever 16 (issue #16): the filter transform without its per-row `memmove` calls and the
//! transforms' closures inlined, the 4×4 maps' forward over the whole batch ([`forward_batch`])
//! and the weight gradient's sums through the `gemm` crate — ResNet-18's 256-channel 4×4 layers 4.8–5.3 →
//! 3.2–3.4 ms forward, 5.4–6.1 → 3.9–4.2 input gradient; its 128-channel 8×8 weight gradient
//! 5.3–5.9 → 4.2–5.0; its convolutions 262–271 → 237–257 ms a step (three alternating runs).

use std::cell::RefCell;

use rayon::prelude::*;

use super::crate_gemm::Lhs;
use super::geometry::ConvGeometry;
use super::scratch::{with_scratch, with_turned};

mod tile;

use tile::{LANES, Lanes, TILE, filter_gradient, filter_tile, gradient_tile, input_tile, output_tile};

/// Widest output rows taken this way: wider maps run without a column matrix
/// ([`super::implicit`]), which measured faster there.
const MAX_WIDTH: usize = 8;
/// Fewest tiles (blocks of 2×2 outputs in the batch) taken this way: the transformed filters
/// are 16/9 the size of the filters and are written out on every pass, which 512 × 512 filters
/// (16 MiB, about 3 ms at memory speed) over 32 2×2 maps do not earn back.
const MIN_TILES: usize = 128;
/// Floats of transformed tiles per chunk of images in the weight gradient (4 MiB; one chunk is
/// transformed and multiplied before the next).
const CHUNK_BUDGET: usize = 1 << 20;

/// Whether the three passes of `g` run here.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.padding == [1, 1]
        && g.dilation == [1, 1]
        && g.input[1] <= MAX_WIDTH
        && g.input[0] > 0
        && g.input[1] > 0
        && g.batch * Tiles::new(g).per_image() >= MIN_TILES
}

/// How the output (the same size as the input) splits into 2×2 blocks.
#[derive(Clone, Copy)]
struct Tiles {
    /// Blocks down and across.
    rows: usize,
    cols: usize,
}

impl Tiles {
    fn new(g: &ConvGeometry) -> Self {
        Self {
            rows: g.input[0].div_ceil(2),
            cols: g.input[1].div_ceil(2),
        }
    }

    fn per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// Tiles (columns of the products) of `images` images: the images go in blocks of
    /// [`LANES`] (the last padded with zeros), each block position by position, lane by lane —
    /// so a block's values of one position and `ξ` are one contiguous run.
    fn count(&self, images: usize) -> usize {
        images.div_ceil(LANES) * LANES * self.per_image()
    }

    /// Where lane block `block`'s tiles of block position `position` start.
    fn first_tile(&self, block: usize, position: usize) -> usize {
        (block * self.per_image() + position) * LANES
    }

    /// Images per chunk: as many as keep the larger of the transformed input and output within
    /// [`CHUNK_BUDGET`].
    fn chunk(&self, g: &ConvGeometry) -> usize {
        let per_image = TILE * g.channels_in.max(g.channels_out) * self.per_image();
        (CHUNK_BUDGET / per_image.max(1)).clamp(1, g.batch.max(1))
    }
}

/// The block positions of an image, row by row.
fn positions(tiles: Tiles) -> impl Iterator<Item = [usize; 2]> {
    (0..tiles.rows).flat_map(move |ty| (0..tiles.cols).map(move |tx| [ty, tx]))
}

/// Plane `channel` of up to [`LANES`] images from `first` (of `xs`, `[images, channels, H, W]`)
/// side by side in lanes, at `pad` from the top left of `plane` (`[rows][cols]`, zeros
/// around, and in the lanes past the batch).
fn gather_plane(
    (xs, images, channels): (&[f32], usize, usize),
    [h, w]: [usize; 2],
    (channel, first): (usize, usize),
    (plane, cols, pad): (&mut [Lanes], usize, usize),
) {
    plane.fill(Lanes([0.0; LANES]));
    for lane in 0..LANES.min(images - first) {
        let src = &xs[((first + lane) * channels + channel) * h * w..][..h * w];
        for (y, row) in src.chunks_exact(w).enumerate() {
            let dst = &mut plane[(y + pad) * cols + pad..][..w];
            dst.iter_mut().zip(row).for_each(|(d, s)| d.0[lane] = *s);
        }
    }
}

/// Stores `lanes` into `dst` from `at` (a fixed-size copy: a variable-length one is a
/// `memmove` call).
#[inline(always)]
fn store(dst: &mut [f32], at: usize, lanes: &Lanes) {
    *<&mut [f32; LANES]>::try_from(&mut dst[at..at + LANES]).expect("LANES floats") = lanes.0;
}

/// Transforms the `side × side` window of every block position (top left at `(2·ty, 2·tx)` of
/// a plane gathered with [`gather_plane`]) into rows `ξ` of `dst` (`[16][T]`) for lane block
/// `block` (see [`Tiles::count`]): a 4×4 window of the input (`N` = 16) with `Bᵀ·d·B`, a 2×2
/// block of dY (`N` = 4) with `A·dY·Aᵀ`. (The transform is picked by `N` here rather than passed
/// in: passed as a function, it was called out of line through a reference, its 512-byte
/// result copied back with `memmove` — a quarter of a weight gradient's time.)
fn transform_windows<const N: usize>(
    tiles: Tiles,
    (plane, cols): (&[Lanes], usize),
    (dst, block): (&mut [f32], usize),
) {
    let side = if N == TILE { 4 } else { 2 };
    let count = dst.len() / TILE;
    for (position, [ty, tx]) in positions(tiles).enumerate() {
        let mut window = [Lanes([0.0; LANES]); N];
        for (i, w) in window.iter_mut().enumerate() {
            *w = plane[(2 * ty + i / side) * cols + 2 * tx + i % side];
        }
        let transformed = match N {
            TILE => input_tile(window[..].try_into().expect("16 values")),
            _ => gradient_tile(window[..].try_into().expect("4 values")),
        };
        let at = tiles.first_tile(block, position);
        for (xi, lanes) in transformed.iter().flatten().enumerate() {
            store(&mut dst[xi * count..][..count], at, lanes);
        }
    }
}

/// `f(index, part, scratch)` for each `part_len` floats of `dst`, with a plane of lanes per
/// task as scratch: over the cores when `parallel`, else one after another.
fn each_part(
    dst: &mut [f32],
    part_len: usize,
    (scratch_len, parallel): (usize, bool),
    f: impl Fn(usize, &mut [f32], &mut [Lanes]) + Sync + Send,
) {
    let scratch = || vec![Lanes([0.0; LANES]); scratch_len];
    if parallel {
        let parts = dst.par_chunks_mut(part_len).enumerate();
        parts.for_each_init(scratch, |plane, (index, part)| f(index, part, plane));
    } else {
        let mut plane = scratch();
        for (index, part) in dst.chunks_mut(part_len).enumerate() {
            f(index, part, &mut plane);
        }
    }
}

/// Every plane of `xs` (`[images, channels, H, W]`) transformed window by window into `dst`
/// (`[channels][16][T]`, see [`Tiles::count`]): the input's 4×4 windows of the image padded by
/// 1 (`N` = 16), or dY's 2×2 blocks, zeros past odd edges (`N` = 4; see [`transform_windows`]).
/// Channel by channel (`parallel`: over the cores).
fn transform_planes<const N: usize>(
    g: &ConvGeometry,
    tiles: Tiles,
    (xs, images, channels): (&[f32], usize, usize),
    dst: &mut [f32],
    parallel: bool,
) {
    let pad = usize::from(N == TILE);
    let cols = 2 * tiles.cols + 2 * pad;
    let scratch = ((2 * tiles.rows + 2 * pad) * cols, parallel);
    each_part(dst, TILE * tiles.count(images), scratch, |c, dst, plane| {
        for block in 0..images.div_ceil(LANES) {
            gather_plane((xs, images, channels), g.input, (c, block * LANES), (plane, cols, pad));
            transform_windows::<N>(tiles, (plane, cols), (dst, block));
        }
    });
}

/// The transformed filters `[O][16][C]` of `weight` (`[O, C, 3, 3]`) into `u`, [`LANES`] input
/// channels at a time.
fn transform_weight(g: &ConvGeometry, weight: &[f32], u: &mut [f32]) {
    let c_in = g.channels_in;
    u.par_chunks_mut(TILE * c_in)
        .zip(weight.par_chunks(9 * c_in))
        .for_each(|(u, filters)| {
            for (block, filters) in filters.chunks(9 * LANES).enumerate() {
                let mut taps = [Lanes([0.0; LANES]); 9];
                for (lane, filter) in filters.chunks_exact(9).enumerate() {
                    for (tap, value) in taps.iter_mut().zip(filter) {
                        tap.0[lane] = *value;
                    }
                }
                let valid = filters.len() / 9;
                for (xi, lanes) in filter_tile(&taps).iter().flatten().enumerate() {
                    let at = xi * c_in + block * LANES;
                    // Whole rows through `store`: a variable-length copy is a `memmove` call
                    // (which made this 2 ms for 256 × 256 filters, as long as their products).
                    if valid == LANES {
                        store(u, at, lanes);
                    } else {
                        u[at..][..valid].copy_from_slice(&lanes.0[..valid]);
                    }
                }
            }
        });
}

thread_local! {
    /// One task's transformed input and products, reused from call to call on this thread.
    static TASK: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `conv(x)` into `out` (`[N, O, H, W]`, overwritten), plus `bias`; `weight` `[O, C, 3, 3]`.
///
/// The filters are transformed once, over the cores; then each task takes one block of
/// [`LANES`] images through all three steps, so its transformed tiles stay in its core's cache.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let tiles = Tiles::new(g);
    let (c_in, out_ch) = (g.channels_in, g.channels_out);
    let [h, w] = g.input;
    if batch_wide(g) {
        return forward_batch(g, x, weight, bias, out);
    }
    let count = tiles.count(LANES);
    with_scratch([out_ch * TILE * c_in, 0, 0], |[u, _, _]| {
        transform_weight(g, weight, u);
        let u = &*u;
        let blocks = out
            .par_chunks_mut(LANES * out_ch * h * w)
            .zip(x.par_chunks(LANES * c_in * h * w));
        blocks.for_each(|(out, xs)| {
            let mut buffers = TASK.with(|t| t.take());
            let (v, m) = &mut buffers;
            v.resize(c_in * TILE * count, 0.0);
            m.resize(TILE * out_ch * count, 0.0);
            transform_planes::<TILE>(g, tiles, (xs, xs.len() / (c_in * h * w), c_in), v, false);
            for (xi, m) in m.chunks_mut(out_ch * count).enumerate() {
                tile_products(xi, [out_ch, c_in, count], (u, v), m);
            }
            transform_output(g, tiles, (m, count, 0), bias, out);
            TASK.with(|t| t.replace(buffers));
        });
    });
}

/// Tiles per block of [`LANES`] images below which [`forward_batch`] runs (4×4 maps and
/// smaller: 32 tiles a block, where each product of a block reads all the transformed filters
/// for 32 columns) ...
const BATCH_BELOW: usize = 128;
/// ... while the whole batch's transformed input and products each stay within this many
/// floats (4 MiB).
const BATCH_BUDGET: usize = 1 << 20;

/// Whether [`forward`] runs as [`forward_batch`].
fn batch_wide(g: &ConvGeometry) -> bool {
    let tiles = Tiles::new(g);
    let widest = g.channels_in.max(g.channels_out);
    tiles.count(LANES) < BATCH_BELOW && TILE * widest * tiles.count(g.batch) <= BATCH_BUDGET
}

/// [`forward`] with each step over the whole batch: every filter transformed, then every image,
/// then one product per position `ξ` over all the tiles (the positions over the cores), then
/// the outputs. Each transformed filter is then read once, not once per block of images:
/// ResNet-18's 256-channel 4×4 forward 4.3–4.7 → 3.5–3.9 ms (its 8×8 maps, 128 tiles a
/// block, measured slower this way).
fn forward_batch(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let tiles = Tiles::new(g);
    let (c_in, out_ch) = (g.channels_in, g.channels_out);
    let [h, w] = g.input;
    let count = tiles.count(g.batch);
    let lens = [out_ch * TILE * c_in, c_in * TILE * count, out_ch * TILE * count];
    with_scratch(lens, |[u, v, m]| {
        transform_weight(g, weight, u);
        transform_planes::<TILE>(g, tiles, (x, g.batch, c_in), v, true);
        let (u, v) = (&*u, &*v);
        m.par_chunks_mut(out_ch * count)
            .enumerate()
            .for_each(|(xi, m)| tile_products(xi, [out_ch, c_in, count], (u, v), m));
        let (m, block) = (&*m, tiles.count(LANES));
        out.par_chunks_mut(LANES * out_ch * h * w)
            .enumerate()
            .for_each(|(b, out)| transform_output(g, tiles, (m, count, b * block), bias, out));
    });
}

/// `M[ξ] = U[ξ] · V[ξ]` (`[O][T]`) for position `ξ`: the forward's products.
fn tile_products(xi: usize, [out_ch, c_in, count]: [usize; 3], (u, v): (&[f32], &[f32]), m: &mut [f32]) {
    let u = Lhs {
        m: out_ch,
        k: c_in,
        src: &u[xi * c_in..],
        strides: [TILE * c_in, 1],
    };
    u.times(count, (m, count, false), &v[xi * count..], [TILE * count, 1], false);
}

/// `Aᵀ·M·A` of every tile of `m` (`[16][O][T]`, one block of [`LANES`] images) into `out`
/// (`[images, O, H, W]`), plus `bias`.
fn transform_output(
    g: &ConvGeometry,
    tiles: Tiles,
    (m, count, first): (&[f32], usize, usize),
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let [h, w] = g.input;
    let out_ch = g.channels_out;
    let (block, positions_per_image) = (tiles.count(LANES), tiles.per_image());
    let lanes = out.len() / (out_ch * h * w);
    let mut local = vec![Lanes([0.0; LANES]); TILE * positions_per_image];
    for o in 0..out_ch {
        // The 16 rows, each one contiguous run of `M` (read in turn, not interleaved: the rows
        // lie a multiple of 4 KiB apart).
        for (xi, local) in local.chunks_exact_mut(positions_per_image).enumerate() {
            let src = &m[(xi * out_ch + o) * count + first..][..block];
            for (l, s) in local.iter_mut().zip(src.chunks_exact(LANES)) {
                l.0 = s.try_into().expect("LANES floats");
            }
        }
        let b = bias.map_or(0.0, |b| b[o]);
        for (position, [ty, tx]) in positions(tiles).enumerate() {
            let tile: [Lanes; TILE] = std::array::from_fn(|xi| local[xi * positions_per_image + position]);
            let y = output_tile(&tile);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let (row, col) = (2 * ty + dy, 2 * tx + dx);
                if row < h && col < w {
                    for lane in 0..lanes {
                        out[((lane * out_ch + o) * h + row) * w + col] = y[dy][dx].0[lane] + b;
                    }
                }
            }
        }
    }
}

/// dX (`[N, C, H, W]`, overwritten) from dY: the convolution of dY with the kernel turned 180°
/// and its channel axes swapped (padding 1 again, as `3 − 1 − 1`).
pub(super) fn input_gradient(g: &ConvGeometry, weight: &[f32], grad: &[f32], dx: &mut [f32]) {
    with_turned(g, weight, |turned, turned_weight| {
        forward(turned, grad, turned_weight, None, dx)
    });
}

/// dW (`[O, C, 3, 3]`, overwritten) from `x` and dY, summed over the batch.
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32]) {
    let tiles = Tiles::new(g);
    let (c_in, out_ch) = (g.channels_in, g.channels_out);
    let [h, w] = g.input;
    let chunk = tiles.chunk(g);
    let most = tiles.count(chunk);
    let lens = [TILE * out_ch * c_in, c_in * TILE * most, out_ch * TILE * most];
    with_scratch(lens, |[sums, v, z]| {
        // Σ over tiles of (A·dY·Aᵀ) ⊙ V, as `[16][O][C]`.
        let chunks = x.chunks(chunk * c_in * h * w).zip(grad.chunks(chunk * out_ch * h * w));
        for (i, (xs, dy)) in chunks.enumerate() {
            let images = xs.len() / (c_in * h * w);
            let count = tiles.count(images);
            let (v, z) = (&mut v[..c_in * TILE * count], &mut z[..out_ch * TILE * count]);
            transform_planes::<TILE>(g, tiles, (xs, images, c_in), v, true);
            transform_planes::<4>(g, tiles, (dy, images, out_ch), z, true);
            sums.par_chunks_mut(out_ch * c_in)
                .enumerate()
                .for_each(|(xi, sums)| tile_sums(xi, [out_ch, c_in, count], (z, v), (sums, i > 0)));
        }
        transform_weight_gradient(g, sums, dw);
    });
}

/// `sums (+)= Z[ξ] · V[ξ]ᵀ` (`[O][C]`) for position `ξ`: the weight gradient's products, summed
/// over `count` tiles, through the `gemm` crate. (Dot products along the tiles, as the column
/// path's weight gradient runs, measured 1.2–1.5× slower on ResNet-18's 128-channel 8×8 maps
/// and no faster on ResNet-20's 64-channel ones: each pair of rows streamed from L2 with no
/// blocking along the tiles.)
fn tile_sums(xi: usize, [out_ch, c_in, count]: [usize; 3], (z, v): (&[f32], &[f32]), (sums, acc): (&mut [f32], bool)) {
    let z = Lhs {
        m: out_ch,
        k: count,
        src: &z[xi * count..],
        strides: [TILE * count, 1],
    };
    z.times(c_in, (sums, c_in, acc), &v[xi * count..], [1, TILE * count], false);
}

/// `Gᵀ·h·G` of every summed tile of `sums` (`[16][O][C]`) into `dw` (`[O, C, 3, 3]`),
/// [`LANES`] input channels at a time.
fn transform_weight_gradient(g: &ConvGeometry, sums: &[f32], dw: &mut [f32]) {
    let (c_in, out_ch) = (g.channels_in, g.channels_out);
    dw.par_chunks_mut(9 * c_in).enumerate().for_each(|(o, filters)| {
        for first in (0..c_in).step_by(LANES) {
            let h: [Lanes; TILE] = std::array::from_fn(|xi| {
                let row = &sums[(xi * out_ch + o) * c_in..][..c_in];
                Lanes(std::array::from_fn(|lane| {
                    row.get(first + lane).copied().unwrap_or(0.0)
                }))
            });
            let taps = filter_gradient(&h);
            for lane in 0..LANES.min(c_in - first) {
                let filter = &mut filters[(first + lane) * 9..][..9];
                for (k, tap) in taps.iter().flatten().enumerate() {
                    filter[k] = tap.0[lane];
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All three passes give the same bits on any number of threads (bit-identical resume): 8×8
    /// maps with a batch that the weight gradient takes in two chunks, and 4×4 maps, whose
    /// forward and input gradient run over the whole batch at once.
    #[test]
    fn the_passes_are_the_same_on_any_number_of_threads() {
        let g = |batch, input| ConvGeometry {
            batch,
            channels_in: 64,
            input,
            channels_out: 8,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let (blocks, whole) = (g(70, [8, 8]), g(40, [4, 3]));
        assert!(applies(&blocks) && Tiles::new(&blocks).chunk(&blocks) < blocks.batch && !batch_wide(&blocks));
        assert!(applies(&whole) && batch_wide(&whole));
        for g in [blocks, whole] {
            super::super::testing::assert_same_on_any_number_of_threads(&g, (forward, input_gradient, weight_gradient));
        }
    }
}
