//! Stride-1 convolutions with no column matrix: the products read the zero-padded images
//! themselves.
//!
//! With stride 1, the values a kernel tap `(c, ky, kx)` meets along an output row are a
//! contiguous run of the padded input row. Computing the output at every column of the padded
//! width — `Wp` per row, of which the last `KW − 1` are discarded — makes the run contiguous
//! across rows too: row `p = (c, ky, kx)` of the would-be column matrix is the padded image
//! itself, starting `c·Hp·Wp + ky·Wp + kx` floats in. [`matmul::gemm`] takes such rows through a
//! table, so the 9× larger column matrix is never written, nor read back, nor
//! packed. Small maps put several images side by side (`[C][Hp][images·Wp]`) so that a product
//! still has hundreds of columns.
//!
//! The input gradient of a stride-1 convolution is itself a stride-1 convolution (of dY, padded
//! by `K − 1 − pad`, with the kernel turned 180° and its channel axes swapped), and the weight
//! gradient is a product along the same rows ([`matmul::gemm_nt`]) with dY laid out at the
//! padded width and zeros in the discarded columns — so all three passes run this way. The
//! wasted columns are `(KW − 1)/Wp` of the work: 6% at 32×32, 11% at 16×16, 20% at 8×8,
//! hence [`MIN_WIDTH`].
//!
//! On AVX-512, where the output channels are a multiple of 32, the forward product runs the
//! other way round ([`pixel_product`]): output channels along the vectors (the weights
//! transposed once per call) and input pixels broadcast straight from the padded rows — 24
//! multiply-adds per 10 loads where the channel-row tile did 16 per 11 (measured: ResNet-18's
//! 64-channel 16×16 forward 6.0 → 5.5 ms, its inference +7–11%).

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::scratch::{with_scratch, with_turned};
use super::microkernel::PixelsKernel;
use super::matmul;

/// Narrowest output rows taken this way; narrower maps (8×8 and below) waste a fifth or more
/// of the columns, measured no faster than the column matrix there, and keep it.
const MIN_WIDTH: usize = 16;
/// Columns a product should have at least: images are grouped side by side until it does.
const TARGET_COLUMNS: usize = 512;
/// ... while a group's padded images stay within this many floats (1 MiB, a core's L2).
const GROUP_BUDGET: usize = 1 << 18;
/// Fewest rows of `dW` (`C·KH·KW`) for the broadcast form of the weight gradient: below it
/// (the first layer's 27, from 3 channels) transposing dY costs more than the form saves
/// (measured 1.4–1.7× slower there).
pub(super) const MIN_ROWS: usize = 64;

/// Whether the three passes of `g` run here.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.is_turnable()
        && !g.is_pointwise()
        && g.output().is_some_and(|[_, ow]| ow >= MIN_WIDTH)
}

/// A group of `images` padded images side by side: `[C][Hp][images·Wp]`, then `KW − 1` zeros
/// that the last rows' discarded columns read.
#[derive(Clone, Copy)]
pub(super) struct Layout {
    pub(super) images: usize,
    /// Padded height and width of one image.
    pub(super) hp: usize,
    pub(super) wp: usize,
}

impl Layout {
    pub(super) fn new(g: &ConvGeometry, images: usize) -> Self {
        let [h, w] = g.input;
        Self {
            images,
            hp: h + 2 * g.padding[0],
            wp: w + 2 * g.padding[1],
        }
    }

    /// Floats per row of the group.
    pub(super) fn width(&self) -> usize {
        self.images * self.wp
    }

    pub(super) fn plane(&self) -> usize {
        self.hp * self.width()
    }

    /// Floats of the padded group, with the last rows' overrun.
    pub(super) fn len(&self, g: &ConvGeometry) -> usize {
        g.channels_in * self.plane() + g.kernel[1] - 1
    }

    /// Columns of the products: every output row at the group's full width.
    pub(super) fn columns(&self, g: &ConvGeometry) -> usize {
        g.output().map_or(0, |[oh, _]| oh * self.width())
    }

    /// The row table of this layout: `full` (built once per call for groups of `group` images)
    /// when it has that many images, else its own (the shorter last group).
    fn row_table<'a>(&self, g: &ConvGeometry, group: usize, full: &'a [usize]) -> std::borrow::Cow<'a, [usize]> {
        if self.images == group {
            std::borrow::Cow::Borrowed(full)
        } else {
            std::borrow::Cow::Owned(self.rows(g))
        }
    }

    /// Where row `(c, ky, kx)` of the implicit column matrix starts.
    fn rows(&self, g: &ConvGeometry) -> Vec<usize> {
        let [kh, kw] = g.kernel;
        let (width, plane) = (self.width(), self.plane());
        (0..g.channels_in)
            .flat_map(|c| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| c * plane + ky * width + kx)))
            .collect()
    }
}

/// Images per group for ranges of `per_range` images (see [`TARGET_COLUMNS`]).
pub(super) fn group_size(g: &ConvGeometry, per_range: usize) -> usize {
    let one = Layout::new(g, 1);
    let wanted = TARGET_COLUMNS.div_ceil(one.columns(g).max(1));
    let fits = GROUP_BUDGET / (g.channels_in * one.plane()).max(1);
    wanted.min(fits).clamp(1, per_range.max(1))
}

/// For each group of images of `x` (see [`group_size`]): pads it into `xp` and calls `f` with
/// the group's index, its layout, the padded images, its part of `grad` and its row table.
pub(super) fn each_padded_group(
    g: &ConvGeometry,
    (x, grad): (&[f32], &[f32]),
    xp: &mut [f32],
    mut f: impl FnMut(usize, Layout, &[f32], &[f32], &[usize]),
) {
    let plane_in = g.channels_in * g.pixels_in();
    let plane_out = g.channels_out * g.pixels_out();
    let group = group_size(g, g.batch);
    let full_table = Layout::new(g, group).rows(g);
    for (i, (xs, dy)) in x
        .chunks(group * plane_in)
        .zip(grad.chunks(group * plane_out))
        .enumerate()
    {
        let layout = Layout::new(g, xs.len() / plane_in);
        let xp = &mut xp[..layout.len(g)];
        pad_group(g, xs, layout, xp);
        let table = layout.row_table(g, group, &full_table);
        f(i, layout, xp, dy, &table);
    }
}

/// Copies `images` images (`[images, C, H, W]`) into the group layout, zeros around them.
fn pad_group(g: &ConvGeometry, xs: &[f32], layout: Layout, dst: &mut [f32]) {
    let ([h, w], [ph, pw]) = (g.input, g.padding);
    let (width, plane) = (layout.width(), layout.plane());
    let (body, slack) = dst.split_at_mut(g.channels_in * plane);
    slack.fill(0.0);
    for (c, dst) in body.chunks_exact_mut(plane).enumerate() {
        let (top, rest) = dst.split_at_mut(ph * width);
        let (rows, bottom) = rest.split_at_mut(h * width);
        top.fill(0.0);
        bottom.fill(0.0);
        for (y, row) in rows.chunks_exact_mut(width).enumerate() {
            for (image, padded) in row.chunks_exact_mut(layout.wp).enumerate() {
                let src = &xs[((image * g.channels_in + c) * h + y) * w..][..w];
                padded[..pw].fill(0.0);
                copy_floats(&mut padded[pw..pw + w], src);
                padded[pw + w..].fill(0.0);
            }
        }
    }
}

/// `dst.copy_from_slice(src)` in 16-float blocks the compiler turns into vector moves: rows here
/// are 16–64 floats, where a `memmove` call per row measured ~5% of a ResNet-20 step.
fn copy_floats(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_floats: lengths differ");
    let (mut d, mut s) = (dst.chunks_exact_mut(16), src.chunks_exact(16));
    for (d, s) in (&mut d).zip(&mut s) {
        let d: &mut [f32; 16] = d.try_into().expect("chunks of 16");
        *d = s.try_into().expect("chunks of 16");
    }
    d.into_remainder()
        .iter_mut()
        .zip(s.remainder())
        .for_each(|(d, s)| *d = *s);
}

/// `conv(x)` into `out` (`[N, O, OH, OW]`, overwritten), plus `bias`; `weight` `[O, C·KH·KW]`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let [oh, ow] = g.output().expect("checked by `applies`");
    let (rows, out_ch, plane_in) = (g.rows(), g.channels_out, g.channels_in * g.pixels_in());
    let plane_out = out_ch * oh * ow;
    let per_range = g.per_range();
    let group = group_size(g, per_range);
    let full = Layout::new(g, group);
    let lens = [full.len(g), out_ch * full.columns(g), 0];
    let full_table = full.rows(g);
    let pixels = super::microkernel::pixels_kernel(out_ch);
    // The weights as `[C·KH·KW][O]` for the pixel tile (output channels along the vectors), in
    // blocks of 16 rows over the cores (each reads whole cache lines of every filter).
    let mut weight_t = vec![0.0f32; if pixels.is_some() { rows * out_ch } else { 0 }];
    weight_t.par_chunks_mut(16 * out_ch).enumerate().for_each(|(block, dst)| {
        for (i, row) in dst.chunks_exact_mut(out_ch).enumerate() {
            let p = 16 * block + i;
            row.iter_mut().enumerate().for_each(|(o, d)| *d = weight[o * rows + p]);
        }
    });
    let ranges = out
        .par_chunks_mut(per_range * plane_out)
        .zip(x.par_chunks(per_range * plane_in));
    ranges.for_each(|(out, x)| {
        with_scratch(lens, |[xp, product, _]| {
            for (out, xs) in out.chunks_mut(group * plane_out).zip(x.chunks(group * plane_in)) {
                let layout = Layout::new(g, xs.len() / plane_in);
                let (xp, cols) = (&mut xp[..layout.len(g)], layout.columns(g));
                pad_group(g, xs, layout, xp);
                let product = &mut product[..out_ch * cols];
                let table = layout.row_table(g, group, &full_table);
                // Where the product keeps output channel `o`'s column 0, and its columns' stride.
                let strides = if let Some(kernel) = pixels {
                    pixel_product(kernel, [out_ch, cols, rows], product, &weight_t, (xp, &table));
                    [1, out_ch]
                } else {
                    let product = (&mut *product, cols, false);
                    matmul::gemm([out_ch, cols, rows], product, (weight, [rows, 1]), (xp, &table), false);
                    [cols, 1]
                };
                scatter(g, layout, (product, strides), bias, out);
            }
        });
    });
}

/// The product of a group (output channel `o`, column `j` at `o·strides[0] + j·strides[1]`;
/// columns `[OH][images·Wp]`) into `out` (`[images, O, OH, OW]`), adding the bias on the way.
pub(super) fn scatter(g: &ConvGeometry, layout: Layout, (product, [o_stride, col_stride]): (&[f32], [usize; 2]), bias: Option<&[f32]>, out: &mut [f32]) {
    let [oh, ow] = g.output().expect("checked by `applies`");
    for (index, dst) in out.chunks_exact_mut(oh * ow).enumerate() {
        let (image, o) = (index / g.channels_out, index % g.channels_out);
        let b = bias.map_or(0.0, |b| b[o]);
        for (y, dst) in dst.chunks_exact_mut(ow).enumerate() {
            let first = o * o_stride + (y * layout.width() + image * layout.wp) * col_stride;
            if col_stride == 1 {
                // Contiguous: a loop the compiler vectorises.
                dst.iter_mut().zip(&product[first..][..ow]).for_each(|(d, s)| *d = s + b);
            } else {
                let src = product[first..].iter().step_by(col_stride);
                dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
            }
        }
    }
}

/// `product[cols][O] = Σ_p xp[table[p] + j] · weight_t[p][O]` (`O` a multiple of the tile's
/// channels) with the pixel tile, block of reductions by block; the last pixels that make no
/// whole tile in plain loops. Each value sums its reductions in order.
fn pixel_product(
    kernel: &PixelsKernel,
    [out_ch, cols, rows]: [usize; 3],
    product: &mut [f32],
    weight_t: &[f32],
    (xp, table): (&[f32], &[usize]),
) {
    let (width, pixels) = (16 * kernel.vectors, kernel.pixels);
    assert!(out_ch % width == 0, "pixel product: channels no multiple of the tile's");
    assert!(product.len() >= cols * out_ch && weight_t.len() >= rows * out_ch && table.len() >= rows);
    // Every tile reads `xp[table[p] + j]` for `j` below `cols`.
    assert!(table[..rows].iter().all(|&t| t + cols <= xp.len()), "pixel product: input too short");
    let whole = cols - cols % pixels;
    for k0 in (0..rows).step_by(kernel.reductions) {
        let kc = kernel.reductions.min(rows - k0);
        let (w, t) = (&weight_t[k0 * out_ch..], &table[k0..][..kc]);
        for o0 in (0..out_ch).step_by(width) {
            for j0 in (0..whole).step_by(pixels) {
                // SAFETY: pixels_kernel() gave this tile for this CPU; the asserts above bound
                // the weights (kc rows of O from k0, `width` from o0 ≤ O − width), the input
                // (every table entry plus `j0 + pixels ≤ cols`) and the product (`pixels` rows
                // of O from j0).
                unsafe {
                    (kernel.tile)(
                        kc,
                        (w[o0..].as_ptr(), out_ch),
                        (xp[j0..].as_ptr(), t.as_ptr()),
                        (product[j0 * out_ch + o0..].as_mut_ptr(), out_ch),
                        k0 > 0,
                    )
                };
            }
            for j in whole..cols {
                let dst = &mut product[j * out_ch + o0..][..width];
                if k0 == 0 {
                    dst.fill(0.0);
                }
                for (p, &row) in t.iter().enumerate() {
                    let v = xp[row + j];
                    let w = &w[p * out_ch + o0..][..width];
                    dst.iter_mut().zip(w).for_each(|(d, w)| *d += v * w);
                }
            }
        }
    }
}

/// dX (`[N, C, H, W]`, overwritten) from dY: the stride-1 convolution of dY, padded by
/// `K − 1 − pad`, with the kernel turned 180° and its channel axes swapped.
pub(super) fn input_gradient(g: &ConvGeometry, weight: &[f32], grad: &[f32], dx: &mut [f32]) {
    with_turned(g, weight, |turned, turned_weight| forward(turned, grad, turned_weight, None, dx));
}

/// `dW += Σ dY · colᵀ` (`acc`: add to `dw`, else overwrite) over the images of `x`, group by
/// group; `parallel`: each product split over the cores.
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) {
    if weight_gradient_rows(g, x, grad, dw, parallel).is_none() {
        weight_gradient_dots(g, x, grad, dw, parallel);
    }
}

/// A group's dY (`[images, O, OH, OW]`) at the group's full width (`[O][OH][images·Wp]`), zeros
/// in the discarded columns: the rows the weight gradient's products read.
pub(super) fn grad_at_full_width(g: &ConvGeometry, layout: Layout, dy: &[f32], dst: &mut [f32]) {
    let [oh, ow] = g.output().expect("checked by `applies`");
    let (out_ch, cols) = (g.channels_out, layout.columns(g));
    for (o, dst) in dst.chunks_exact_mut(cols).enumerate() {
        for (y, row) in dst.chunks_exact_mut(layout.width()).enumerate() {
            for (image, dst) in row.chunks_exact_mut(layout.wp).enumerate() {
                copy_floats(&mut dst[..ow], &dy[((image * out_ch + o) * oh + y) * ow..][..ow]);
                dst[ow..].fill(0.0);
            }
        }
    }
}

/// [`weight_gradient`] with the dot-product tile ([`matmul::gemm_nt`]), on every CPU.
fn weight_gradient_dots(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) {
    let (rows, out_ch) = (g.rows(), g.channels_out);
    let full = Layout::new(g, group_size(g, g.batch));
    let lens = [full.len(g), out_ch * full.columns(g), 0];
    with_scratch(lens, |[xp, dy_wide, _]| {
        each_padded_group(g, (x, grad), xp, |i, layout, xp, dy, table| {
            let cols = layout.columns(g);
            let dy_wide = &mut dy_wide[..out_ch * cols];
            grad_at_full_width(g, layout, dy, dy_wide);
            matmul::gemm_nt(
                [out_ch, rows, cols],
                (dw, rows, i > 0),
                (dy_wide, cols),
                (xp, table),
                parallel,
            );
        });
    });
}

/// [`weight_gradient`] in broadcast form where the CPU has AVX-512 (`None`, having done nothing,
/// elsewhere): `dWᵀ = col · dYᵀ` through [`matmul::gemm_rows`] — each step broadcasts one value
/// of 8 image windows against dY's output channels, where the dot-product tile loaded two
/// vectors per 16 products, half of them from windows that straddle cache lines (measured
/// 1.3–1.5× faster per pass) — then `dW` is transposed out of it.
fn weight_gradient_rows(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) -> Option<()> {
    let kernel = super::microkernel::rows_kernel()?;
    if g.rows() < MIN_ROWS {
        return None;
    }
    let [oh, ow] = g.output()?;
    let (rows, out_ch) = (g.rows(), g.channels_out);
    let plane_out = out_ch * oh * ow;
    let n_pad = out_ch.next_multiple_of(16);
    let full = Layout::new(g, group_size(g, g.batch));
    let lens = [full.len(g), full.columns(g) * n_pad, rows.next_multiple_of(8) * n_pad];
    with_scratch(lens, |[xp, dyt, dwt]| {
        each_padded_group(g, (x, grad), xp, |i, layout, xp, dy, table| {
            let cols = layout.columns(g);
            // dY transposed to [column][channel] at the group's full width, zeros in the
            // discarded columns and the padding channels.
            let dyt = &mut dyt[..cols * n_pad];
            for (image, dy) in dy.chunks_exact(plane_out).enumerate() {
                for y in 0..oh {
                    let first = y * layout.width() + image * layout.wp;
                    let (row, discarded) = dyt[first * n_pad..][..layout.wp * n_pad].split_at_mut(ow * n_pad);
                    matmul::transpose_row(dy, [out_ch, oh, ow], y, row, n_pad);
                    discarded.fill(0.0);
                }
            }
            matmul::gemm_rows(kernel, [rows, n_pad, cols], (dwt, i > 0), (xp, table), dyt, parallel);
        });
        matmul::untranspose(dwt, n_pad, [rows, out_ch], dw);
        Some(())
    })
}

#[cfg(test)]
#[path = "implicit_tests.rs"]
mod tests;
