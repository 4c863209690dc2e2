//! The tests of [`super`] (a child module of `implicit`, kept in its own file).

use super::*;

fn geometry(batch: usize, c: usize, hw: usize, o: usize) -> ConvGeometry {
    ConvGeometry {
        batch,
        channels_in: c,
        input: [hw, hw],
        channels_out: o,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    }
}

/// The pixel tile against the channel-row tile, forward and input gradient: 32 and 64 output
/// channels, groups of one and of several images, pixels that make no whole tile (odd widths),
/// a 5×5 kernel with more than one reduction block (3·25·… rows past 256).
#[test]
fn the_pixel_tile_matches_the_channel_rows() {
    let shapes = [(3, 5, 16, 32, 3, 1), (2, 12, 17, 64, 5, 2), (5, 40, 18, 32, 3, 0), (1, 32, 33, 32, 3, 1), (2, 64, 16, 64, 3, 1)];
    for (batch, c, hw, o, k, p) in shapes {
        let g = ConvGeometry {
            kernel: [k, k],
            padding: [p, p],
            ..geometry(batch, c, hw, o)
        };
        assert!(applies(&g), "{g:?}");
        let x = super::super::testing::test_values(batch * c * hw * hw, 1);
        let w = super::super::testing::test_values(o * g.rows(), 2);
        let b = super::super::testing::test_values(o, 3);
        let run = |pixels: bool| {
            let mut y = vec![f32::NAN; g.batch * o * g.pixels_out()];
            crate::Kernel::PixelsKernel.with(pixels, || forward(&g, &x, &w, Some(&b), &mut y));
            let mut dx = vec![f32::NAN; x.len()];
            crate::Kernel::PixelsKernel.with(pixels, || input_gradient(&g, &w, &y, &mut dx));
            (y, dx)
        };
        let (want, got) = (run(false), run(true));
        for (want, got) in [(&want.0, &got.0), (&want.1, &got.1)] {
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let gap = want.iter().zip(got).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(gap <= 1e-5 * scale, "{g:?}: gap {gap} of {scale}");
        }
    }
}

/// The broadcast form against the dot-product tile: 16, 24 (padded to 32 columns), 32 and
/// 40 output channels, input rows that are no whole number of tiles, groups of one and of
/// several images, on one core and split over the cores.
#[test]
fn the_broadcast_form_matches_the_dot_products() {
    for (g, parallel) in [
        (geometry(3, 16, 32, 16), false),
        (geometry(5, 8, 17, 24), true),
        (geometry(4, 7, 16, 32), false),
        (geometry(2, 16, 20, 40), true),
    ] {
        let [oh, ow] = g.output().unwrap();
        let x: Vec<f32> = (0..g.batch * g.channels_in * g.pixels_in())
            .map(|i| ((i * 7 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let dy: Vec<f32> = (0..g.batch * g.channels_out * oh * ow)
            .map(|i| ((i * 5 % 19) as f32 - 9.0) / 9.0)
            .collect();
        let mut want = vec![0.0; g.channels_out * g.rows()];
        weight_gradient_dots(&g, &x, &dy, &mut want, parallel);
        let mut got = vec![f32::NAN; want.len()];
        if weight_gradient_rows(&g, &x, &dy, &mut got, parallel).is_none() {
            // No AVX-512: nothing was done, and the dot products serve.
            assert!(got.iter().all(|v| v.is_nan()));
            continue;
        }
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let gap = want.iter().zip(&got).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(gap <= 1e-5 * scale, "{g:?}: gap {gap} of {scale}");
    }
}
