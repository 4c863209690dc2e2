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

use rayon::prelude::*;

use super::kernel::{ConvGeometry, with_scratch};
use super::matmul;

/// Narrowest output rows taken this way; narrower maps (8×8 and below) waste a fifth or more
/// of the columns, measured no faster than the column matrix there, and keep it.
const MIN_WIDTH: usize = 16;
/// Columns a product should have at least: images are grouped side by side until it does.
const TARGET_COLUMNS: usize = 512;
/// ... while a group's padded images stay within this many floats (1 MiB, a core's L2).
const GROUP_BUDGET: usize = 1 << 18;

/// Whether the three passes of `g` run here.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    let small_padding = g.padding[0] < g.kernel[0] && g.padding[1] < g.kernel[1];
    g.stride == [1, 1]
        && g.dilation == [1, 1]
        && !g.is_pointwise()
        && small_padding
        && g.output().is_some_and(|[_, ow]| ow >= MIN_WIDTH)
}

/// A group of `images` padded images side by side: `[C][Hp][images·Wp]`, then `KW − 1` zeros
/// that the last rows' discarded columns read.
#[derive(Clone, Copy)]
struct Layout {
    images: usize,
    /// Padded height and width of one image.
    hp: usize,
    wp: usize,
}

impl Layout {
    fn new(g: &ConvGeometry, images: usize) -> Self {
        let [h, w] = g.input;
        Self {
            images,
            hp: h + 2 * g.padding[0],
            wp: w + 2 * g.padding[1],
        }
    }

    /// Floats per row of the group.
    fn width(&self) -> usize {
        self.images * self.wp
    }

    fn plane(&self) -> usize {
        self.hp * self.width()
    }

    fn len(&self, g: &ConvGeometry) -> usize {
        g.channels_in * self.plane() + g.kernel[1] - 1
    }

    /// Columns of the products: every output row at the group's full width.
    fn columns(&self, g: &ConvGeometry) -> usize {
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
fn group_size(g: &ConvGeometry, per_range: usize) -> usize {
    let one = Layout::new(g, 1);
    let wanted = TARGET_COLUMNS.div_ceil(one.columns(g).max(1));
    let fits = GROUP_BUDGET / (g.channels_in * one.plane()).max(1);
    wanted.min(fits).clamp(1, per_range.max(1))
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
    let per_range = g.per_thread();
    let group = group_size(g, per_range);
    let full = Layout::new(g, group);
    let lens = [full.len(g), out_ch * full.columns(g), 0];
    let full_table = full.rows(g);
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
                matmul::gemm(
                    [out_ch, cols, rows],
                    (product, cols, false),
                    (weight, [rows, 1]),
                    (xp, &table),
                    false,
                );
                // `[O][OH][images·Wp]` → `[images, O, OH, OW]`, adding the bias on the way.
                for (index, dst) in out.chunks_exact_mut(oh * ow).enumerate() {
                    let (image, o) = (index / out_ch, index % out_ch);
                    let b = bias.map_or(0.0, |b| b[o]);
                    for (y, dst) in dst.chunks_exact_mut(ow).enumerate() {
                        let src = &product[o * cols + y * layout.width() + image * layout.wp..][..ow];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b);
                    }
                }
            }
        });
    });
}

/// dX (`[N, C, H, W]`, overwritten) from dY: the stride-1 convolution of dY, padded by
/// `K − 1 − pad`, with the kernel turned 180° and its channel axes swapped.
pub(super) fn input_gradient(g: &ConvGeometry, weight: &[f32], grad: &[f32], dx: &mut [f32]) {
    let (turned, turned_weight) = super::kernel::turned(g, weight);
    forward(&turned, grad, &turned_weight, None, dx);
}

/// `dW += Σ dY · colᵀ` (`acc`: add to `dw`, else overwrite) over the images of `x`, group by
/// group; `parallel`: each product split over the cores.
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) {
    let [oh, ow] = g.output().expect("checked by `applies`");
    let (rows, out_ch, plane_in) = (g.rows(), g.channels_out, g.channels_in * g.pixels_in());
    let plane_out = out_ch * oh * ow;
    let group = group_size(g, g.batch);
    let full = Layout::new(g, group);
    let lens = [full.len(g), out_ch * full.columns(g), 0];
    let full_table = full.rows(g);
    with_scratch(lens, |[xp, dy_wide, _]| {
        for (i, (xs, dy)) in x
            .chunks(group * plane_in)
            .zip(grad.chunks(group * plane_out))
            .enumerate()
        {
            let layout = Layout::new(g, xs.len() / plane_in);
            let (xp, cols) = (&mut xp[..layout.len(g)], layout.columns(g));
            pad_group(g, xs, layout, xp);
            // dY at the group's full width, zeros in the discarded columns.
            let dy_wide = &mut dy_wide[..out_ch * cols];
            for (o, dst) in dy_wide.chunks_exact_mut(cols).enumerate() {
                for (y, row) in dst.chunks_exact_mut(layout.width()).enumerate() {
                    for (image, dst) in row.chunks_exact_mut(layout.wp).enumerate() {
                        copy_floats(&mut dst[..ow], &dy[((image * out_ch + o) * oh + y) * ow..][..ow]);
                        dst[ow..].fill(0.0);
                    }
                }
            }
            let table = layout.row_table(g, group, &full_table);
            matmul::gemm_nt(
                [out_ch, rows, cols],
                (dw, rows, i > 0),
                (dy_wide, cols),
                (xp, &table),
                parallel,
            );
        }
    });
}
