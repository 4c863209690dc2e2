//! im2col and col2im over zero-padded copies of a chunk of images.
//!
//! With the padding already in the source, every row of the column matrix is a strided copy
//! with no bounds logic, and for stride 1 a copy of `OW` contiguous floats. Those runs are short
//! (2–16 floats on ResNet's 64 px maps, ~300,000 of them per convolution of a 32-image batch),
//! so the common widths are copied as fixed-size arrays: a `memcpy` call per run measured a
//! quarter of a ResNet-18 inference step.

use rayon::prelude::*;

use super::geometry::{ConvGeometry, padded};

/// `$body!(W)` with `W` a constant for the common widths, else with `W` the runtime width.
macro_rules! by_width {
    ($cols:expr, $body:ident) => {
        match $cols {
            1 => $body!(1),
            2 => $body!(2),
            4 => $body!(4),
            7 => $body!(7),
            8 => $body!(8),
            14 => $body!(14),
            16 => $body!(16),
            28 => $body!(28),
            32 => $body!(32),
            56 => $body!(56),
            cols => $body!(cols),
        }
    };
}

/// Copies images `[images, C, H, W]` into `dst` (`[images, C, Hp, Wp]`) with zero borders.
pub(super) fn pad(g: &ConvGeometry, src: &[f32], dst: &mut [f32]) {
    let (hp, wp) = padded(g);
    let ([h, w], [ph, pw]) = (g.input, g.padding);
    dst.par_chunks_mut(hp * wp).enumerate().for_each(|(plane, dst)| {
        let src = &src[plane * h * w..][..h * w];
        dst[..ph * wp].fill(0.0);
        dst[(ph + h) * wp..].fill(0.0);
        macro_rules! rows {
            ($w:expr) => {
                for (y, src_row) in src.chunks_exact($w).enumerate() {
                    let row = &mut dst[(ph + y) * wp..][..wp];
                    row[..pw].fill(0.0);
                    row[pw + $w..].fill(0.0);
                    row[pw..pw + $w].copy_from_slice(src_row);
                }
            };
        }
        by_width!(w, rows);
    });
}

/// The interior of padded planes `[images, C, Hp, Wp]` into `dst` (`[images, C, H, W]`).
pub(super) fn crop(g: &ConvGeometry, src: &[f32], dst: &mut [f32]) {
    let (hp, wp) = padded(g);
    let ([h, w], [ph, pw]) = (g.input, g.padding);
    dst.par_chunks_mut(h * w).enumerate().for_each(|(plane, dst)| {
        let src = &src[plane * hp * wp..][..hp * wp];
        for (y, dst_row) in dst.chunks_exact_mut(w).enumerate() {
            dst_row.copy_from_slice(&src[(ph + y) * wp + pw..][..w]);
        }
    });
}

/// Fills `col` (`[K, images·P]`) from padded planes `xp` (`[images, C, Hp, Wp]`).
pub(super) fn im2col(g: &ConvGeometry, xp: &[f32], images: usize, col: &mut [f32]) {
    let (hp, wp) = padded(g);
    let taps = g.kernel[0] * g.kernel[1];
    let pixels = g.output().map_or(0, |[oh, ow]| oh * ow);
    col.par_chunks_mut(images * pixels).enumerate().for_each(|(row, dst)| {
        let (c, tap) = (row / taps, row % taps);
        let (start, block) = tap_window(g, tap);
        for (image, dst) in dst.chunks_exact_mut(pixels).enumerate() {
            let plane = &xp[(image * g.channels_in + c) * hp * wp..][..hp * wp];
            block.gather(dst, &plane[start..]);
        }
    });
}

/// Adds `col` (`[K, images·P]`) into padded planes `dxp` (`[images, C, Hp, Wp]`): the transpose
/// of [`im2col`].
pub(super) fn col2im(g: &ConvGeometry, col: &[f32], images: usize, dxp: &mut [f32]) {
    let (hp, wp) = padded(g);
    let taps = g.kernel[0] * g.kernel[1];
    let pixels = g.output().map_or(0, |[oh, ow]| oh * ow);
    dxp.par_chunks_mut(hp * wp).enumerate().for_each(|(index, plane)| {
        let (image, c) = (index / g.channels_in, index % g.channels_in);
        for tap in 0..taps {
            let (start, block) = tap_window(g, tap);
            let row = c * taps + tap;
            let src = &col[(row * images + image) * pixels..][..pixels];
            block.scatter_add(src, &mut plane[start..]);
        }
    });
}

/// Where kernel tap `tap` (row-major over the kernel) starts in a padded plane, and the block of
/// the plane it reads: one element per output pixel.
fn tap_window(g: &ConvGeometry, tap: usize) -> (usize, Block) {
    let [oh, ow] = g.output().expect("checked by the caller");
    let (_, wp) = padded(g);
    let kw = g.kernel[1];
    let start = (tap / kw) * g.dilation[0] * wp + (tap % kw) * g.dilation[1];
    (
        start,
        Block {
            rows: oh,
            cols: ow,
            stride: g.stride[0] * wp,
            step: g.stride[1],
        },
    )
}

/// A `rows × cols` block of a plane: rows `stride` apart, elements `step` apart.
struct Block {
    rows: usize,
    cols: usize,
    stride: usize,
    step: usize,
}

impl Block {
    /// `dst` (the block, row-major and contiguous) from `src` (the plane from the block's start).
    fn gather(&self, dst: &mut [f32], src: &[f32]) {
        let Block {
            rows,
            cols,
            stride,
            step,
        } = *self;
        // Each arm copies rows of a width the compiler knows, so runs become vector moves.
        macro_rules! copy {
            ($w:expr) => {
                for (y, dst) in dst.chunks_exact_mut($w).take(rows).enumerate() {
                    dst.copy_from_slice(&src[y * stride..][..$w]);
                }
            };
        }
        macro_rules! copy_every_second {
            ($w:expr) => {
                for (y, dst) in dst.chunks_exact_mut($w).take(rows).enumerate() {
                    let src = &src[y * stride..][..2 * $w - 1];
                    for (x, d) in dst.iter_mut().enumerate() {
                        *d = src[2 * x];
                    }
                }
            };
        }
        match step {
            1 => by_width!(cols, copy),
            2 => by_width!(cols, copy_every_second),
            _ => {
                for (y, dst) in dst.chunks_exact_mut(cols).take(rows).enumerate() {
                    for (x, d) in dst.iter_mut().enumerate() {
                        *d = src[y * stride + x * step];
                    }
                }
            }
        }
    }

    /// Adds `src` (the block, row-major and contiguous) into `dst` (the plane from its start).
    fn scatter_add(&self, src: &[f32], dst: &mut [f32]) {
        let Block {
            rows,
            cols,
            stride,
            step,
        } = *self;
        if step != 1 {
            for (y, src) in src.chunks_exact(cols).take(rows).enumerate() {
                for (x, s) in src.iter().enumerate() {
                    dst[y * stride + x * step] += s;
                }
            }
            return;
        }
        macro_rules! add {
            ($w:expr) => {
                for (y, src) in src.chunks_exact($w).take(rows).enumerate() {
                    let dst = &mut dst[y * stride..][..$w];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            };
        }
        by_width!(cols, add)
    }
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
