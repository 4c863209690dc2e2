//! Convolutions of small maps as one product per kernel tap, over only the pixels where that tap
//! lands inside the image.
//!
//! On a 2×2 map a 3×3 kernel with padding 1 reads the padding at 20 of its 36 (tap, pixel) pairs:
//! a column matrix multiplies those zeros too (ResNet-18's three 512-channel 2×2 layers spent
//! 56% of their products on them, forward and both gradients). Here each tap is a 1×1
//! convolution of the input shifted by the tap, run only over the block of output pixels whose
//! shifted pixel is inside the image: `out[o, p] += Σ_c W[o, c, tap] · x[c, p + shift]`.
//! The weight is read in place, tap by tap (a strided matrix), so the input gradient needs no
//! turned copy of it either.
//!
//! The maps are held as `[channel][pixel][image]` (or `[pixel][image][channel]`) while the
//! products run, so that a tap's block of pixels is one contiguous run of columns for the whole
//! batch (a product of `pixels × N` columns); the products go through the `gemm` crate, the
//! output channels (input channels for the input gradient) split over the cores in fixed blocks,
//! each summing its taps in one order: results do not depend on the thread count.

use rayon::prelude::*;

use super::crate_gemm::crate_gemm;
use super::geometry::ConvGeometry;
use super::scratch::with_scratch;

/// The largest share of (tap, output pixel) pairs inside the image at which this path is taken:
/// ResNet-18's 2×2 maps have 44%, GoogLeNet's 5×5 kernels on 3×3 maps 36%; 3×3 kernels on 4×4
/// maps have 69% (not measured this way: ResNet-18's run as Winograd).
const MAX_INSIDE: f64 = 0.5;

/// Whether `g` runs tap by tap: stride 1 (a tap's pixels then adjoin in both maps), no dilation,
/// a kernel larger than 1×1, and at most [`MAX_INSIDE`] of its (tap, pixel) pairs inside.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    let plain = g.stride == [1, 1] && g.dilation == [1, 1] && g.kernel[0] * g.kernel[1] > 1;
    if !plain || g.output().is_none() {
        return false;
    }
    let inside: usize = runs(g).iter().map(|r| r.pixels).sum();
    (inside as f64) <= MAX_INSIDE * (g.kernel[0] * g.kernel[1] * g.pixels_out()) as f64
}

/// One product: a tap and a block of output pixels at which it lands inside the image, the same
/// block of input pixels shifted (`input`, `out`: first pixels, row-major in their maps).
#[derive(Debug, Clone, Copy)]
struct Run {
    tap: usize,
    out: usize,
    input: usize,
    pixels: usize,
}

/// The runs of `g` (stride 1, no dilation), tap by tap: one per output row, or one for a tap's
/// whole block of rows where the rows adjoin in both maps (full rows of maps of equal width).
fn runs(g: &ConvGeometry) -> Vec<Run> {
    let ([h, w], [oh, ow]) = (g.input, g.out());
    let ([kh, kw], [ph, pw]) = (g.kernel, g.padding);
    // Output positions `o` whose input `o + k − p` lies in `0..size`.
    let inside =
        |k: usize, p: usize, size: usize, out: usize| (p.saturating_sub(k), (size + p).saturating_sub(k).min(out));
    let mut runs = Vec::new();
    for ky in 0..kh {
        let (y0, y1) = inside(ky, ph, h, oh);
        for kx in 0..kw {
            let (x0, x1) = inside(kx, pw, w, ow);
            if y0 >= y1 || x0 >= x1 {
                continue;
            }
            let tap = ky * kw + kx;
            let input = |oy: usize| (oy + ky - ph) * w + x0 + kx - pw;
            if x0 == 0 && x1 == ow && ow == w {
                runs.push(Run {
                    tap,
                    out: y0 * ow,
                    input: input(y0),
                    pixels: (y1 - y0) * ow,
                });
            } else {
                runs.extend((y0..y1).map(|oy| Run {
                    tap,
                    out: oy * ow + x0,
                    input: input(oy),
                    pixels: x1 - x0,
                }));
            }
        }
    }
    runs
}

/// Output channels per task: a number fixed by the shape alone (the `gemm` crate's blocking
/// follows the product's size), so the sums are the same on any thread count; 8 tasks for
/// 512 channels.
const ROWS: usize = 64;

/// `src` `[N][C][P]` → `dst` `[C][P][N]`.
fn to_pixel_major(src: &[f32], dst: &mut [f32], [images, channels, pixels]: [usize; 3]) {
    dst.par_chunks_mut(pixels * images).enumerate().for_each(|(c, dst)| {
        for n in 0..images {
            let plane = &src[(n * channels + c) * pixels..][..pixels];
            for (p, v) in plane.iter().enumerate() {
                dst[p * images + n] = *v;
            }
        }
    });
}

/// `src` `[C][P][N]` → `dst` `[N][C][P]` (every element written), plus `bias[c]` when given.
fn to_image_major(src: &[f32], dst: &mut [f32], [images, channels, pixels]: [usize; 3], bias: Option<&[f32]>) {
    dst.par_chunks_mut(channels * pixels).enumerate().for_each(|(n, dst)| {
        for (c, plane) in dst.chunks_exact_mut(pixels).enumerate() {
            let b = bias.map_or(0.0, |b| b[c]);
            let src = &src[c * pixels * images..][..pixels * images];
            for (p, d) in plane.iter_mut().enumerate() {
                *d = src[p * images + n] + b;
            }
        }
    });
}

/// `conv(x)` into `out` (`[N, O, OH, OW]`, every element written), plus `bias`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32]) {
    let (n, c_in, out_ch, taps) = (g.batch, g.channels_in, g.channels_out, g.kernel[0] * g.kernel[1]);
    let (p_in, p_out) = (g.pixels_in(), g.pixels_out());
    let runs = runs(g);
    with_scratch([c_in * p_in * n, out_ch * p_out * n, 0], |[xt, yt, _]| {
        to_pixel_major(x, xt, [n, c_in, p_in]);
        yt.par_chunks_mut(ROWS * p_out * n).enumerate().for_each(|(index, yt)| {
            yt.fill(0.0);
            let (first, m) = (index * ROWS, yt.len() / (p_out * n));
            for run in &runs {
                crate_gemm(
                    [m, run.pixels * n, c_in],
                    (&mut yt[run.out * n..], [p_out * n, 1], true),
                    (&weight[first * c_in * taps + run.tap..], [c_in * taps, taps]),
                    (&xt[run.input * n..], [p_in * n, 1]),
                    false,
                );
            }
        });
        to_image_major(yt, out, [n, out_ch, p_out], bias);
    });
}

/// `src` `[N][C][P]` → `dst` `[P][N][C]`.
fn to_channels_last(src: &[f32], dst: &mut [f32], [images, channels, pixels]: [usize; 3]) {
    dst.par_chunks_mut(images * channels).enumerate().for_each(|(p, dst)| {
        for (n, dst) in dst.chunks_exact_mut(channels).enumerate() {
            for (c, d) in dst.iter_mut().enumerate() {
                *d = src[(n * channels + c) * pixels + p];
            }
        }
    });
}

/// `src` — `C` channels in blocks of [`ROWS`], each block `[P][N][its channels]` — into `dst`
/// `[N][C][P]` (every element written).
fn from_channel_blocks(src: &[f32], dst: &mut [f32], [images, channels, pixels]: [usize; 3]) {
    dst.par_chunks_mut(channels * pixels).enumerate().for_each(|(n, dst)| {
        for (c, plane) in dst.chunks_exact_mut(pixels).enumerate() {
            let (first, rows) = (c / ROWS * ROWS, ROWS.min(channels - c / ROWS * ROWS));
            let block = &src[first * pixels * images..][..rows * pixels * images];
            for (p, d) in plane.iter_mut().enumerate() {
                *d = block[(p * images + n) * rows + c - first];
            }
        }
    });
}

/// dX (`[N, C, H, W]`, every element written) from dY: per tap, the weight's transpose times
/// dY's block of pixels, added into the input pixels the tap read. The weight is read in place
/// as the product's packed operand, [`ROWS`] input channels (36 floats apart) per output
/// channel; dY and dX are held with channels innermost for that. (The forward pass of the turned
/// convolution, tap by tap, took 5.5–8.3 ms on ResNet-18's 512-channel 2×2 maps against 4.5–7.4
/// this way; reading the weight in place the other way round, 8–9 ms.)
pub(super) fn input_gradient(g: &ConvGeometry, weight: &[f32], grad: &[f32], dx: &mut [f32]) {
    let (n, c_in, out_ch, taps) = (g.batch, g.channels_in, g.channels_out, g.kernel[0] * g.kernel[1]);
    let (p_in, p_out) = (g.pixels_in(), g.pixels_out());
    let runs = runs(g);
    with_scratch([out_ch * p_out * n, c_in * p_in * n, 0], |[dyt, dxt, _]| {
        to_channels_last(grad, dyt, [n, out_ch, p_out]);
        dxt.par_chunks_mut(ROWS * p_in * n)
            .enumerate()
            .for_each(|(index, dxt)| {
                dxt.fill(0.0);
                let (first, m) = (index * ROWS, dxt.len() / (p_in * n));
                for run in &runs {
                    crate_gemm(
                        [m, run.pixels * n, out_ch],
                        (&mut dxt[run.input * n * m..], [1, m], true),
                        (&weight[first * taps + run.tap..], [taps, c_in * taps]),
                        (&dyt[run.out * n * out_ch..], [1, out_ch]),
                        false,
                    );
                }
            });
        from_channel_blocks(dxt, dx, [n, c_in, p_in]);
    });
}

/// dW (`[O, C, KH, KW]`, zeros on entry) from dY: per tap, dY's block of pixels times the input's
/// shifted block, summed over the pixels and images of the run.
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], grad: &[f32], dw: &mut [f32]) {
    let (n, c_in, out_ch, taps) = (g.batch, g.channels_in, g.channels_out, g.kernel[0] * g.kernel[1]);
    let (p_in, p_out) = (g.pixels_in(), g.pixels_out());
    let runs = runs(g);
    with_scratch([c_in * p_in * n, out_ch * p_out * n, 0], |[xt, dyt, _]| {
        to_pixel_major(x, xt, [n, c_in, p_in]);
        to_pixel_major(grad, dyt, [n, out_ch, p_out]);
        dw.par_chunks_mut(ROWS * c_in * taps)
            .enumerate()
            .for_each(|(index, dw)| {
                let (first, m) = (index * ROWS, dw.len() / (c_in * taps));
                for run in &runs {
                    crate_gemm(
                        [m, c_in, run.pixels * n],
                        (&mut dw[run.tap..], [c_in * taps, taps], true),
                        (&dyt[first * p_out * n + run.out * n..], [p_out * n, 1]),
                        (&xt[run.input * n..], [1, p_in * n]),
                        false,
                    );
                }
            });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(input: [usize; 2], kernel: [usize; 2], padding: [usize; 2]) -> ConvGeometry {
        ConvGeometry {
            batch: 3,
            channels_in: 2,
            input,
            channels_out: 2,
            kernel,
            stride: [1, 1],
            padding,
            dilation: [1, 1],
        }
    }

    /// Every (tap, output pixel) pair inside the image is in exactly one run, at the right input
    /// pixel, and no pair outside is.
    #[test]
    fn the_runs_cover_exactly_the_pairs_inside_the_image() {
        for g in [
            geometry([2, 2], [3, 3], [1, 1]),
            geometry([3, 3], [5, 5], [2, 2]),
            geometry([3, 5], [3, 2], [1, 0]),
            geometry([1, 1], [3, 3], [1, 1]),
        ] {
            let ([h, w], [oh, ow], [kh, kw]) = (g.input, g.out(), g.kernel);
            let mut seen = vec![None; kh * kw * oh * ow];
            for run in runs(&g) {
                for i in 0..run.pixels {
                    let slot = &mut seen[run.tap * oh * ow + run.out + i];
                    assert!(slot.is_none(), "{g:?}: pair in two runs");
                    *slot = Some(run.input + i);
                }
            }
            for (tap, (ky, kx)) in (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))).enumerate() {
                for (oy, ox) in (0..oh).flat_map(|oy| (0..ow).map(move |ox| (oy, ox))) {
                    let (iy, ix) = (
                        (oy + ky) as isize - g.padding[0] as isize,
                        (ox + kx) as isize - g.padding[1] as isize,
                    );
                    let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                    let expected = inside.then(|| iy as usize * w + ix as usize);
                    assert_eq!(
                        seen[tap * oh * ow + oy * ow + ox],
                        expected,
                        "{g:?}: tap {tap} at ({oy}, {ox})"
                    );
                }
            }
        }
    }

    /// All three passes, bit for bit, on 1 and 3 threads: 150 output and 70 input channels
    /// (blocks and a short one), a 5×5 kernel on a 3×3 map.
    #[test]
    fn the_passes_are_the_same_on_any_number_of_threads() {
        let g = ConvGeometry {
            channels_in: 70,
            channels_out: 150,
            ..geometry([3, 3], [5, 5], [2, 2])
        };
        assert!(applies(&g));
        super::super::testing::assert_same_on_any_number_of_threads(&g, (forward, input_gradient, weight_gradient));
    }

    #[test]
    fn the_path_is_taken_where_most_taps_read_padding() {
        assert!(applies(&geometry([2, 2], [3, 3], [1, 1])));
        assert!(applies(&geometry([3, 3], [5, 5], [2, 2])));
        assert!(!applies(&geometry([4, 4], [3, 3], [1, 1])), "69% inside");
        assert!(!applies(&geometry([8, 8], [3, 3], [0, 0])), "no padding");
        assert!(!applies(&ConvGeometry {
            stride: [2, 2],
            ..geometry([2, 2], [3, 3], [1, 1])
        }));
        assert!(!applies(&geometry([2, 2], [1, 1], [0, 0])));
    }
}
