//! The three passes — forward, input gradient, weight gradient — with the batch split into
//! contiguous ranges of images (one to four per thread), each worked through in chunks by single-threaded
//! GEMMs. Letting the `gemm` crate split each product over the cores instead measured 1.3–2.5×
//! slower on ResNet-18's shapes (e.g. 64 channels at 16×16, batch 32: 10.4 ms against 4.0 ms).
//!
//! A chunk of several images is one GEMM whose columns are all their pixels (so 2×2 maps still
//! make wide products), with dY regrouped to `[O, images·P]` and the output scattered back; a
//! chunk of one image needs neither copy. The weight gradient sums over images, so it instead
//! runs its chunks one after another with the products split over the cores (see
//! [`weight_gradient`]).

use rayon::prelude::*;

use super::columns::{col2im, columns, crop};
use super::crate_gemm::Lhs;
use super::geometry::ConvGeometry;
use super::scratch::{with_scratch, with_turned};
use super::matmul::{gemm_nt, gemm_rows, untranspose};
use super::{implicit, tapwise, winograd};

/// Images per range, and images per chunk within a range.
fn split(g: &ConvGeometry) -> (usize, usize) {
    let per_range = g.per_range();
    (per_range, g.chunk().min(per_range))
}

/// Scratch for one range: column matrix, regrouped product or gradient, padded input.
fn scratch_lens(g: &ConvGeometry, chunk: usize) -> [usize; 3] {
    let columns = if g.is_pointwise() && chunk == 1 {
        0
    } else {
        g.rows() * chunk * g.pixels_out()
    };
    let regrouped = if chunk == 1 {
        0
    } else {
        g.channels_out * chunk * g.pixels_out()
    };
    [columns, regrouped, chunk * g.padded_plane()]
}

/// Whether `g` runs without a column matrix ([`implicit`]; our own product only).
fn implicit(g: &ConvGeometry) -> bool {
    crate::Kernel::OwnGemm.enabled() && implicit::applies(g)
}

/// Whether `g` runs as Winograd F(2×2, 3×3) ([`winograd`]).
fn winograd(g: &ConvGeometry) -> bool {
    crate::Kernel::Winograd.enabled() && winograd::applies(g)
}

/// Fewest channels (the smaller of input and output) for which the weight gradient of a
/// Winograd shape runs as Winograd too. Thinner layers sum fewer products per transformed tile,
/// and the transforms cost more than the 2.25× fewer multiplications save: measured
/// (`examples/conv_passes`, two alternating rounds, AMD EPYC Zen 4, 2026-12-07) against the
/// column path, ResNet-9's 64→128 at 7×7 17.7/16.0 ms against 12.6/14.0, ResNet-20's 64→64 at
/// 8×8 6.2/6.1 against 4.6/4.8, ResNet-9's 128→128 at 3×3 even (8.2/7.8 against 7.5/8.1), while
/// ResNet-18's 128-channel and larger 8×8 and 4×4 layers stay faster as Winograd (its total
/// 61.7/66.7 ms against 65.6/79.9).
const WINOGRAD_WEIGHT_CHANNELS: usize = 128;

/// Whether `g`'s weight gradient runs as Winograd (its forward and input gradient run so
/// wherever [`winograd`] holds).
fn winograd_weight_gradient(g: &ConvGeometry) -> bool {
    winograd(g) && g.channels_in.min(g.channels_out) >= WINOGRAD_WEIGHT_CHANNELS
}

/// Whether `g`'s weight gradient is one product of dY and the image side (read in place or as
/// columns), neither Winograd nor tap by tap: the products the bf16 pass can take over.
pub(super) fn weight_gradient_is_a_product(g: &ConvGeometry) -> bool {
    !winograd_weight_gradient(g) && !tapwise(g)
}

/// Whether `g`'s weight gradient runs as Winograd on a map its 2×2 output tiles overhang (an odd
/// side): there it saves 1.72× the multiplications at 7×7 and 1.27× at 3×3 instead of 2.25×,
/// less than bf16 products gain on a column matrix.
pub(super) fn winograd_weight_gradient_overhangs(g: &ConvGeometry) -> bool {
    winograd_weight_gradient(g) && g.output().is_some_and(|[h, w]| h % 2 == 1 || w % 2 == 1)
}

/// Whether `g` runs one product per kernel tap over the pixels it reaches ([`tapwise`]).
fn tapwise(g: &ConvGeometry) -> bool {
    crate::Kernel::Tapwise.enabled() && tapwise::applies(g)
}

/// Whether `g`'s forward pass multiplies less in f32 than bf16 products on its column matrix
/// would cost: Winograd (2.25× fewer multiplications) and tap by tap (no products on padding).
pub(super) fn fewer_products_in_f32(g: &ConvGeometry) -> bool {
    winograd(g) || tapwise(g)
}

/// Whether `g`'s input gradient runs as the forward pass of its turned convolution (a 1×1 one
/// is a plain product already).
fn turned_input_gradient(g: &ConvGeometry) -> bool {
    crate::Kernel::TurnedDx.enabled() && g.is_turnable() && !g.is_pointwise()
}

/// Whether [`input_gradient`] writes every element of `dx` whatever it held (else it adds into
/// zeros: col2im of an unpadded convolution).
pub(super) fn input_gradient_overwrites(g: &ConvGeometry) -> bool {
    winograd(g) || implicit(g) || tapwise(g) || turned_input_gradient(g)
}

/// `conv(x)` into `out` (`[N, O, OH, OW]`, every element written whatever it held), plus `bias`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    if winograd(g) {
        return winograd::forward(g, x, weight, bias, out);
    }
    if implicit(g) {
        return implicit::forward(g, x, weight, bias, out);
    }
    if tapwise(g) {
        return tapwise::forward(g, x, weight, bias, out);
    }
    let weight = Lhs {
        m: g.channels_out,
        k: g.rows(),
        src: weight,
        strides: [g.rows(), 1],
    };
    on_columns(g, x, bias, out, &|cols, col, dst| weight.times(cols, dst, col, [cols, 1], false));
}

/// `dst[O, n] (+)= weight · col[K, n]` for a chunk's `n` columns (`dst` as `(floats, row stride,
/// accumulate)`): the product of [`on_columns`].
pub(super) type ColumnProduct<'a> = dyn Fn(usize, &[f32], (&mut [f32], usize, bool)) + Sync + 'a;

/// The forward pass on column matrices: per range of images, chunk by chunk, im2col and
/// `product`, the output scattered back to `[N, O, P]` with the bias (every element written).
pub(super) fn on_columns(g: &ConvGeometry, x: &[f32], bias: Option<&[f32]>, out: &mut [f32], product: &ColumnProduct<'_>) {
    let (pixels, out_ch) = (g.pixels_out(), g.channels_out);
    let plane_in = g.channels_in * g.pixels_in();
    let (per_range, chunk) = split(g);
    let ranges = out
        .par_chunks_mut(per_range * out_ch * pixels)
        .zip(x.par_chunks(per_range * plane_in));
    ranges.for_each(|(out, x)| {
        with_scratch(scratch_lens(g, chunk), |[col_buf, product_buf, xpad]| {
            for (out, xs) in out.chunks_mut(chunk * out_ch * pixels).zip(x.chunks(chunk * plane_in)) {
                let images = xs.len() / plane_in;
                let cols = images * pixels;
                let col = columns(g, xs, images, col_buf, xpad);
                if images == 1 {
                    // `[O, P]` is the output's own layout: the bias goes in first and the
                    // product adds onto it.
                    if let Some(b) = bias {
                        out.chunks_exact_mut(pixels).zip(b).for_each(|(row, b)| row.fill(*b));
                    }
                    product(cols, col, (out, cols, bias.is_some()));
                    continue;
                }
                let regrouped = &mut product_buf[..out_ch * cols];
                product(cols, col, (regrouped, cols, false));
                // `[O, images·P]` → `[images, O, P]`, adding the bias on the way.
                for (index, dst) in out.chunks_exact_mut(pixels).enumerate() {
                    let (image, o) = (index / out_ch, index % out_ch);
                    let src = &regrouped[o * cols + image * pixels..][..pixels];
                    match bias {
                        Some(b) => dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + b[o]),
                        None => dst.copy_from_slice(src),
                    }
                }
            }
        });
    });
}

/// dY of a chunk as `[O, images·P]`: the gradient itself for one image, else regrouped into `buf`.
fn grad_columns<'a>(g: &ConvGeometry, dy: &'a [f32], buf: &'a mut [f32]) -> &'a [f32] {
    let (pixels, out_ch) = (g.pixels_out(), g.channels_out);
    let images = dy.len() / (out_ch * pixels);
    if images == 1 {
        return dy;
    }
    let cols = images * pixels;
    let dst = &mut buf[..out_ch * cols];
    for (o, dst) in dst.chunks_exact_mut(cols).enumerate() {
        for (image, dst) in dst.chunks_exact_mut(pixels).enumerate() {
            dst.copy_from_slice(&dy[(image * out_ch + o) * pixels..][..pixels]);
        }
    }
    dst
}

/// dX (`[N, C, H, W]`, zeros on entry) from dY: `Wᵀ · dY` per chunk, then col2im.
pub(super) fn input_gradient(g: &ConvGeometry, weight: &[f32], grad: &[f32], dx: &mut [f32]) {
    if winograd(g) {
        return winograd::input_gradient(g, weight, grad, dx);
    }
    if implicit(g) {
        return implicit::input_gradient(g, weight, grad, dx);
    }
    if tapwise(g) {
        return tapwise::input_gradient(g, weight, grad, dx);
    }
    if turned_input_gradient(g) {
        // Measured on ResNet-18's 512-channel 2×2 maps, batch 32: 7.1–8.6 ms with the turn of
        // the weight, against 11.1–14.8 ms for the transposed product and col2im (those maps
        // now run tap by tap, above: 4.7–5.9 ms).
        return with_turned(g, weight, |turned, turned_weight| forward(turned, grad, turned_weight, None, dx));
    }
    let (rows, pixels, out_ch) = (g.rows(), g.pixels_out(), g.channels_out);
    let plane_in = g.channels_in * g.pixels_in();
    let (per_range, chunk) = split(g);
    let weight_t = Lhs {
        m: rows,
        k: out_ch,
        src: weight,
        strides: [1, rows],
    };
    let ranges = dx
        .par_chunks_mut(per_range * plane_in)
        .zip(grad.par_chunks(per_range * out_ch * pixels));
    ranges.for_each(|(dx, grad)| {
        with_scratch(scratch_lens(g, chunk), |[col_buf, grad_buf, pad_buf]| {
            for (dxs, dy) in dx
                .chunks_mut(chunk * plane_in)
                .zip(grad.chunks(chunk * out_ch * pixels))
            {
                let images = dxs.len() / plane_in;
                let cols = images * pixels;
                let dy = grad_columns(g, dy, grad_buf);
                if g.is_pointwise() && images == 1 {
                    // A 1×1 convolution's dcol is dX itself.
                    weight_t.times(cols, (dxs, cols, false), dy, [cols, 1], false);
                    continue;
                }
                let dcol = &mut col_buf[..rows * cols];
                weight_t.times(cols, (dcol, cols, false), dy, [cols, 1], false);
                if g.is_padded() {
                    let dxp = &mut pad_buf[..images * g.padded_plane()];
                    dxp.fill(0.0);
                    col2im(g, dcol, images, dxp);
                    crop(g, dxp, dxs);
                } else {
                    col2im(g, dcol, images, dxs);
                }
            }
        });
    });
}

/// Columns from which the weight gradient's product runs as dot products along the rows of dY
/// and the column matrix ([`gemm_nt`], nothing packed); shorter rows go through the packed
/// product, where the dot products' final sums across lanes would cost more than they save.
const DOT_COLUMNS: usize = 256;

/// Partial weight gradients summed at the end when the batch is split (see
/// [`weight_gradient`]): a number fixed by the batch alone, so the sums are the same on any
/// machine and thread count.
const WEIGHT_PARTS: usize = 8;
/// The batch is split only while the partial gradients stay this small, in floats (16 MiB).
const WEIGHT_PARTS_BUDGET: usize = 1 << 22;

/// dW (`[O, K]`) from dY: `Σ dY · colᵀ` over the chunks of images.
///
/// Two ways, chosen by shape: where `dW` is small next to the columns it sums over (ResNet-20's
/// 16×144 `dW` over 131,072 columns) the batch is split into [`WEIGHT_PARTS`] ranges whose
/// partial gradients are computed side by side and added up in a fixed order — 5× faster there
/// than splitting one thin product over the cores. Where `dW` is large (ResNet-18's last stage:
/// 512 × 4608, summed over only 128 columns) the chunks run one after another, each product
/// split over the cores by the `gemm` crate (it splits `dW`'s rows and columns, so the sums keep
/// their order).
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32]) {
    if winograd_weight_gradient(g) {
        return winograd::weight_gradient(g, x, grad, dw);
    }
    if tapwise(g) {
        return tapwise::weight_gradient(g, x, grad, dw);
    }
    over_the_batch(g, (x, grad), dw, weight_gradient_of);
}

/// A weight gradient over a range of images, one chunk after another (`parallel`: each product
/// split over the cores).
pub(super) type RangeGradient = fn(&ConvGeometry, &[f32], &[f32], &mut [f32], bool);

/// `of` over the whole batch: partial gradients of [`WEIGHT_PARTS`] ranges side by side, then
/// added up in order, or (a large `dW`) one range with its products split over the cores.
pub(super) fn over_the_batch(g: &ConvGeometry, (x, grad): (&[f32], &[f32]), dw: &mut [f32], of: RangeGradient) {
    let parts = WEIGHT_PARTS.min(g.batch);
    if parts < 2 || parts * dw.len() > WEIGHT_PARTS_BUDGET {
        return of(g, x, grad, dw, true);
    }
    let (plane_in, plane_out) = (g.channels_in * g.pixels_in(), g.channels_out * g.pixels_out());
    let per_part = g.batch.div_ceil(parts);
    let len = dw.len();
    let mut partials = vec![0.0f32; parts * len];
    let work = partials.par_chunks_mut(len).zip(x.par_chunks(per_part * plane_in));
    work.zip(grad.par_chunks(per_part * plane_out))
        .for_each(|((partial, xs), dy)| {
            let range = ConvGeometry {
                batch: xs.len() / plane_in,
                ..*g
            };
            of(&range, xs, dy, partial, false);
        });
    dw.par_chunks_mut(1 << 12).enumerate().for_each(|(index, dst)| {
        let offset = index << 12;
        dst.copy_from_slice(&partials[offset..][..dst.len()]);
        for partial in partials.chunks_exact(len).skip(1) {
            dst.iter_mut().zip(&partial[offset..]).for_each(|(d, p)| *d += p);
        }
    });
}

/// `dW = Σ dY · colᵀ` over the chunks of `x`, one after another; `parallel`: each product split
/// over the cores.
fn weight_gradient_of(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) {
    if implicit(g) {
        return implicit::weight_gradient(g, x, grad, dw, parallel);
    }
    if weight_gradient_rows(g, x, grad, dw, parallel).is_some() {
        return;
    }
    let (rows, out_ch) = (g.rows(), g.channels_out);
    each_column_chunk(g, (x, grad), |i, cols, dy, col| {
        let acc = i > 0;
        if crate::Kernel::OwnGemm.enabled() && cols >= DOT_COLUMNS {
            let col_rows: Vec<usize> = (0..rows).map(|r| r * cols).collect();
            gemm_nt(
                [out_ch, rows, cols],
                (dw, rows, acc),
                (dy, cols),
                (col, &col_rows),
                parallel,
            );
        } else {
            let dy = Lhs {
                m: out_ch,
                k: cols,
                src: dy,
                strides: [cols, 1],
            };
            dy.times(rows, (dw, rows, acc), col, [1, cols], parallel);
        }
    });
}

/// For each chunk of images of `x` ([`ConvGeometry::chunk`]), in order: `f(index, columns, dY,
/// col)` with dY as `[O, images·P]` and the chunk's column matrix `[rows, images·P]`.
pub(super) fn each_column_chunk(
    g: &ConvGeometry,
    (x, grad): (&[f32], &[f32]),
    mut f: impl FnMut(usize, usize, &[f32], &[f32]),
) {
    let (pixels, out_ch) = (g.pixels_out(), g.channels_out);
    let plane_in = g.channels_in * g.pixels_in();
    let chunk = g.chunk();
    with_scratch(scratch_lens(g, chunk), |[col_buf, grad_buf, pad_buf]| {
        let chunks = x.chunks(chunk * plane_in).zip(grad.chunks(chunk * out_ch * pixels));
        for (i, (xs, dy)) in chunks.enumerate() {
            let images = xs.len() / plane_in;
            let dy = grad_columns(g, dy, grad_buf);
            let col = columns(g, xs, images, col_buf, pad_buf);
            f(i, images * pixels, dy, col);
        }
    });
}

/// Largest `dW` (floats) for [`weight_gradient_rows`]: transposing a larger one (ResNet-18's
/// 512 × 4608, 9 MiB) out of its product costs what the form saves.
const ROWS_MAX_WEIGHT: usize = 1 << 20;

/// [`weight_gradient_of`] in broadcast form where the CPU has AVX-512 (`None`, having done
/// nothing, elsewhere), as [`implicit`]'s: `dWᵀ = col · dYᵀ` through [`gemm_rows`], then `dW`
/// transposed out of it. The dot-product tile streamed every row of the column matrix from L2
/// once per four output channels; this form keeps a block of dYᵀ in L1 and broadcasts.
/// Measured (`examples/conv_passes`, mean of 4 alternating runs, Xeon): ResNet-18's dW of the
/// 7×7 stride-2 first layer 8.3 → 7.6 ms, 64→128 stride 2 6.0 → 4.8 ms, 128→256 stride 2
/// 5.0 → 4.4 ms (about 2 ms of a 360 ms training step).
fn weight_gradient_rows(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32], parallel: bool) -> Option<()> {
    let kernel = super::microkernel::rows_kernel()?;
    let (rows, pixels, out_ch) = (g.rows(), g.pixels_out(), g.channels_out);
    if rows < implicit::MIN_ROWS || g.chunk() * pixels < DOT_COLUMNS || out_ch * rows > ROWS_MAX_WEIGHT {
        return None;
    }
    let plane_in = g.channels_in * g.pixels_in();
    let n_pad = out_ch.next_multiple_of(16);
    let chunk = g.chunk();
    let [col_len, _, pad_len] = scratch_lens(g, chunk);
    let dyt_len = chunk * pixels * n_pad;
    let lens = [col_len, dyt_len + rows.next_multiple_of(8) * n_pad, pad_len];
    with_scratch(lens, |[col_buf, t_buf, pad_buf]| {
        let (dyt_buf, dwt) = t_buf.split_at_mut(dyt_len);
        let chunks = x.chunks(chunk * plane_in).zip(grad.chunks(chunk * out_ch * pixels));
        for (i, (xs, dy)) in chunks.enumerate() {
            let images = xs.len() / plane_in;
            let cols = images * pixels;
            let col = columns(g, xs, images, col_buf, pad_buf);
            // dY transposed to [column][channel], zeros in the padding channels.
            let dyt = &mut dyt_buf[..cols * n_pad];
            for (image, dy) in dy.chunks_exact(out_ch * pixels).enumerate() {
                let dst = dyt[image * pixels * n_pad..][..pixels * n_pad].chunks_exact_mut(n_pad);
                for (p, dst) in dst.enumerate() {
                    for (o, d) in dst[..out_ch].iter_mut().enumerate() {
                        *d = dy[o * pixels + p];
                    }
                    dst[out_ch..].fill(0.0);
                }
            }
            let col_rows: Vec<usize> = (0..rows).map(|r| r * cols).collect();
            gemm_rows(kernel, [rows, n_pad, cols], (dwt, i > 0), (col, &col_rows), dyt, parallel);
        }
        untranspose(dwt, n_pad, [rows, out_ch], dw);
        Some(())
    })
}

#[cfg(test)]
#[path = "passes_tests.rs"]
mod tests;
