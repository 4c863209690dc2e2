//! The forward pass in bf16 products with f32 sums ([`crate::bf16`]), in two ways:
//!
//! - stride-1 shapes of wide maps (those [`implicit`] takes in f32) read the padded images in
//!   place, as f32 does: each group of images is padded once into **channel pairs** — one `u32`
//!   holds channels `2c` and `2c + 1` of a pixel, the pairing `VDPBF16PS` multiplies — and row
//!   `(c-pair, ky, kx)` of the would-be column matrix is that padded image from
//!   `pair·plane + ky·width + kx` on; the weight is packed once per call with its reductions in
//!   the same order. No column matrix is written: on VGG-16's 64-channel 64×64 layer the column
//!   path took 31.9 ms against f32's 25.8 (`examples/conv_passes`, AMD EPYC Zen 4), most of it
//!   writing, reading and packing the 9× larger column matrix;
//! - every other shape: the column path of [`super::passes`] (im2col per chunk of images), each
//!   chunk's column matrix packed (and so rounded) into bf16 panels for the product.
//!
//! Which shapes are worth it is [`super::kernel::bf16_pays`]'s decision; this pass runs bf16
//! on any shape it is given.

use std::cell::RefCell;

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::implicit::{self, Layout};
use super::passes::on_columns;
use crate::bf16::{self, NR, PackedLhs, PackedRhs, pair_rows};

thread_local! {
    /// The packed column panels of a chunk, reused from call to call on this thread.
    static PANELS: RefCell<PackedRhs> = RefCell::new(PackedRhs::default());
    /// A group's padded channel pairs and its product, likewise.
    static IN_PLACE: RefCell<(Vec<u32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `conv(x)` into `out` (`[N, O, OH, OW]`, every element written), plus `bias` (in f32).
pub(super) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    if crate::Kernel::OwnGemm.enabled() && implicit::applies(g) {
        return forward_in_place(g, x, weight, bias, out);
    }
    let rows = g.rows();
    let weight = PackedLhs::new(g.channels_out, rows, weight, [rows, 1]);
    on_columns(g, x, bias, out, &|cols, col, dst| {
        PANELS.with(|panels| {
            let mut panels = panels.borrow_mut();
            panels.pack(rows, cols, col, cols);
            bf16::gemm(&weight, &panels, dst, false);
        })
    });
}

/// The stride-1 way (see the module docs): per range of images, group by group as [`implicit`]
/// groups them, padded channel pairs, one product read in place, the output scattered back.
fn forward_in_place(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let [oh, ow] = g.output().expect("checked by `applies`");
    let (out_ch, plane_in, plane_out) = (g.channels_out, g.channels_in * g.pixels_in(), g.channels_out * oh * ow);
    let weight = pair_ordered_weight(g, weight);
    let per_range = g.per_range();
    let group = implicit::group_size(g, per_range);
    // The row table of a whole group, built once per call (only a shorter last group needs its own).
    let full_table = pair_rows_table(g, Layout::new(g, group));
    let ranges = out
        .par_chunks_mut(per_range * plane_out)
        .zip(x.par_chunks(per_range * plane_in));
    ranges.for_each(|(out, x)| {
        IN_PLACE.with(|bufs| {
            let (pairs, product) = &mut *bufs.borrow_mut();
            for (out, xs) in out.chunks_mut(group * plane_out).zip(x.chunks(group * plane_in)) {
                let layout = Layout::new(g, xs.len() / plane_in);
                let cols = layout.columns(g);
                pad_pairs(g, xs, layout, pairs);
                product.resize(out_ch * cols, 0.0);
                let product = &mut product[..out_ch * cols];
                let own;
                let table = if layout.images == group {
                    &full_table
                } else {
                    own = pair_rows_table(g, layout);
                    &own
                };
                bf16::gemm_in_place(&weight, (pairs, table), cols, (product, cols, false));
                implicit::scatter(g, layout, (product, [cols, 1]), bias, out);
            }
        })
    });
}

/// Channel pairs of the input channels (the last one half zeros when they are odd).
fn channel_pairs(g: &ConvGeometry) -> usize {
    g.channels_in.div_ceil(2)
}

/// The weight `[O, C, KH, KW]` packed with its reductions ordered `(channel pair, ky, kx, channel
/// in the pair)`, as the padded pairs are read.
fn pair_ordered_weight(g: &ConvGeometry, weight: &[f32]) -> PackedLhs {
    let (c_in, taps) = (g.channels_in, g.kernel[0] * g.kernel[1]);
    let k = 2 * channel_pairs(g) * taps;
    let mut ordered = vec![0.0f32; g.channels_out * k];
    for (o, row) in ordered.chunks_exact_mut(k).enumerate() {
        for c in 0..c_in {
            for t in 0..taps {
                row[2 * ((c / 2) * taps + t) + c % 2] = weight[(o * c_in + c) * taps + t];
            }
        }
    }
    PackedLhs::new(g.channels_out, k, &ordered, [k, 1])
}

/// Where row `(channel pair, ky, kx)` of the group's would-be column matrix starts.
fn pair_rows_table(g: &ConvGeometry, layout: Layout) -> Vec<usize> {
    let [kh, kw] = g.kernel;
    let (width, plane) = (layout.width(), layout.plane());
    (0..channel_pairs(g))
        .flat_map(|p| (0..kh).flat_map(move |ky| (0..kw).map(move |kx| p * plane + ky * width + kx)))
        .collect()
}

/// The group `[images, C, H, W]` as padded channel pairs `[C/2][Hp][images·Wp]`, then zeros for
/// what the last rows' dropped columns and the last panel read (`KW − 1 + NR` pairs).
fn pad_pairs(g: &ConvGeometry, xs: &[f32], layout: Layout, dst: &mut Vec<u32>) {
    let ([h, w], [ph, pw], c_in) = (g.input, g.padding, g.channels_in);
    let (width, plane) = (layout.width(), layout.plane());
    dst.clear();
    dst.resize(channel_pairs(g) * plane + g.kernel[1] - 1 + NR, 0);
    for (pair, dst) in dst.chunks_exact_mut(plane).take(channel_pairs(g)).enumerate() {
        for image in 0..layout.images {
            let channel = |c: usize| (c < c_in).then(|| &xs[(image * c_in + c) * h * w..][..h * w]);
            let (lo, hi) = (
                channel(2 * pair).expect("a pair's first channel"),
                channel(2 * pair + 1),
            );
            for y in 0..h {
                let row = &mut dst[(ph + y) * width + image * layout.wp + pw..][..w];
                pair_rows(&lo[y * w..][..w], hi.map(|hi| &hi[y * w..][..w]), row);
            }
        }
    }
}
