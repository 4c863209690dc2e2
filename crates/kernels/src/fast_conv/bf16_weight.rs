//! The weight gradient in bf16 products with f32 sums ([`crate::bf16`]): `dW = Σ dY · colᵀ`,
//! summed along the pixels, so both operands are packed in pairs of neighbouring pixels — dY as
//! the left operand, the image side transposed as the right one
//! ([`PackedRhs::pack_transposed`]: one store per pair of pixels and row of `dW`). Two ways, as
//! the f32 pass has:
//!
//! - stride-1 shapes of wide maps (those [`implicit`] takes in f32): the padded images read in
//!   place through the row table, dY laid out at the padded width;
//! - every other shape (strided convolutions, maps under 16 px): the column path of
//!   [`passes`], each chunk's column matrix packed as the image side.
//!
//! The batch is split as the f32 pass splits it ([`passes::over_the_batch`]). Which shapes are
//! worth it is `kernel::bf16_weight_gradient_pays`'s decision.

use std::cell::RefCell;

use super::geometry::ConvGeometry;
use super::implicit::{self, Layout};
use super::passes;
use super::scratch::with_scratch;
use crate::bf16::{self, PackedLhs, PackedRhs};

thread_local! {
    /// The packed operands, reused from call to call on this thread (the image side is
    /// megabytes: a fresh one per call would fault its pages in every step).
    static PANELS: RefCell<(PackedLhs, PackedRhs)> = RefCell::new((PackedLhs::default(), PackedRhs::default()));
}

/// `dW` (`[O, C, KH, KW]`, overwritten) of `g` in bf16 products, the batch split as the f32
/// pass splits it.
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32]) {
    let in_place = crate::Kernel::OwnGemm.enabled() && implicit::applies(g);
    passes::over_the_batch(g, (x, grad), dw, if in_place { in_place_range } else { columns_range });
}

/// Runs `f` with this thread's panels, taken out while in use (as `with_scratch` does), so a
/// nested call allocates instead of aliasing them.
fn with_panels(f: impl FnOnce(&mut PackedLhs, &mut PackedRhs)) {
    let (mut lhs, mut rhs) = PANELS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    f(&mut lhs, &mut rhs);
    PANELS.with(|p| *p.borrow_mut() = (lhs, rhs));
}

/// The stride-1 way over a range of images: per group of padded images, dY at the full width
/// as the left operand, the padded rows through the row table as the right one.
fn in_place_range(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) {
    let (rows, out_ch) = (g.rows(), g.channels_out);
    let full = Layout::new(g, implicit::group_size(g, g.batch));
    let lens = [full.len(g), out_ch * full.columns(g), 0];
    with_panels(|lhs, rhs| {
        with_scratch(lens, |[xp, dy_wide, _]| {
            implicit::each_padded_group(g, (x, grad), xp, |i, layout, xp, dy, table| {
                let cols = layout.columns(g);
                let dy_wide = &mut dy_wide[..out_ch * cols];
                implicit::grad_at_full_width(g, layout, dy, dy_wide);
                lhs.pack(out_ch, cols, dy_wide, [cols, 1]);
                rhs.pack_transposed(cols, xp, table);
                bf16::gemm(lhs, rhs, (dw, rows, i > 0), parallel);
            });
        });
    });
}

/// The column way over a range of images: per chunk, dY as `[O, images·P]` and the chunk's
/// column matrix `[rows, images·P]`, both packed along the pixels.
fn columns_range(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) {
    let (rows, out_ch) = (g.rows(), g.channels_out);
    with_panels(|lhs, rhs| {
        passes::each_column_chunk(g, (x, grad), |i, cols, dy, col| {
            let table: Vec<usize> = (0..rows).map(|r| r * cols).collect();
            lhs.pack(out_ch, cols, dy, [cols, 1]);
            rhs.pack_transposed(cols, col, &table);
            bf16::gemm(lhs, rhs, (dw, rows, i > 0), parallel);
        });
    });
}
