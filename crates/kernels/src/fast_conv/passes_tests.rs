//! The tests of [`super`] (a child module of `passes`, kept in its own file).

use super::*;

use super::super::testing::test_values as values;

fn geometry(batch: usize) -> ConvGeometry {
    ConvGeometry {
        batch,
        channels_in: 5,
        input: [9, 7],
        channels_out: 6,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    }
}

fn inputs(g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
    let x = values(g.batch * g.channels_in * g.pixels_in(), 1);
    (x, values(g.batch * g.channels_out * g.pixels_out(), 2))
}

/// The batch split into partial gradients gives the sums of one pass over all chunks.
#[test]
fn partial_weight_gradients_add_up_to_the_whole() {
    for batch in [2, 7, 8, 13] {
        let g = geometry(batch);
        let (x, dy) = inputs(&g);
        let mut split = vec![f32::NAN; g.channels_out * g.rows()];
        weight_gradient(&g, &x, &dy, &mut split);
        let mut whole = vec![f32::NAN; split.len()];
        weight_gradient_of(&g, &x, &dy, &mut whole, false);
        for (a, b) in split.iter().zip(&whole) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "batch {batch}: {a} vs {b}");
        }
    }
}

/// The input gradient through the turned convolution's forward pass equals the transposed
/// product and col2im, with input channels in several bands of the turn (37 = 2·16 + 5).
#[test]
fn the_turned_input_gradient_equals_col2im() {
    for (channels_in, hw, kernel, padding) in [(37, 2, 3, 1), (37, 3, 3, 0), (20, 4, 5, 2)] {
        let g = ConvGeometry {
            channels_in,
            input: [hw, hw],
            kernel: [kernel, kernel],
            padding: [padding, padding],
            ..geometry(3)
        };
        assert!(!implicit(&g) && !winograd(&g) && turned_input_gradient(&g), "{g:?}");
        let w = values(g.channels_out * g.rows(), 3);
        let (_, dy) = inputs(&g);
        let dx = |turned: bool| {
            let mut dx = vec![0.0f32; g.batch * g.channels_in * g.pixels_in()];
            crate::Kernel::TurnedDx.with(turned, || input_gradient(&g, &w, &dy, &mut dx));
            dx
        };
        let (turned, col2im) = (dx(true), dx(false));
        for (a, b) in turned.iter().zip(&col2im) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{g:?}: {a} vs {b}");
        }
    }
}

/// The column path's broadcast form against its dot-product tile: the first layer's 7×7
/// stride 2 (one image per product), stride-2 3×3 and 1×1 (several images per product),
/// output channels that are and are not a multiple of 16, on one core and over the cores.
#[test]
fn the_broadcast_weight_gradient_equals_the_dot_products() {
    let shapes = [(3, 40, 24, 7, 2, 3), (16, 20, 40, 3, 2, 1), (64, 16, 32, 1, 2, 0), (8, 10, 16, 3, 1, 0)];
    for (channels_in, hw, channels_out, k, s, p) in shapes {
        let g = ConvGeometry::square(5, channels_in, hw, channels_out, k, s, p);
        assert!(!implicit(&g) && !winograd(&g), "{g:?}");
        let (x, dy) = inputs(&g);
        for parallel in [false, true] {
            let mut want = vec![f32::NAN; g.channels_out * g.rows()];
            crate::Kernel::RowsKernel.with(false, || weight_gradient_of(&g, &x, &dy, &mut want, parallel));
            let mut got = vec![f32::NAN; want.len()];
            if weight_gradient_rows(&g, &x, &dy, &mut got, parallel).is_none() {
                // No AVX-512 (not a declined shape): nothing was done, the dot products serve.
                assert!(super::super::microkernel::rows_kernel().is_none(), "{g:?} declined");
                assert!(got.iter().all(|v| v.is_nan()));
                continue;
            }
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let gap = want.iter().zip(&got).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(gap <= 1e-5 * scale, "{g:?}: gap {gap} of {scale}");
        }
    }
}

/// Results must not depend on the machine's core count (bit-identical resume, same sums on
/// every machine): the partial gradients are fixed by the batch alone.
#[test]
fn the_weight_gradient_is_the_same_on_any_number_of_threads() {
    let g = geometry(13);
    let (x, dy) = inputs(&g);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut dw = vec![0.0f32; g.channels_out * g.rows()];
        pool.install(|| weight_gradient(&g, &x, &dy, &mut dw));
        dw
    };
    let one = on(1);
    assert_eq!(one, on(3));
    assert_eq!(one, on(8));
}

/// The weight gradient runs as Winograd only from [`WINOGRAD_WEIGHT_CHANNELS`] channels; the
/// thinner Winograd shapes take the column path (their forward stays Winograd).
#[test]
fn the_weight_gradient_takes_winograd_only_for_wide_layers() {
    let conv = ConvGeometry::square;
    for (g, wide) in [
        (conv(32, 128, 8, 128, 3, 1, 1), true),  // ResNet-18's second stage
        (conv(16, 512, 8, 512, 3, 1, 1), true),  // VGG-16's fourth block
        (conv(256, 128, 3, 128, 3, 1, 1), true), // ResNet-9's last stage
        (conv(256, 64, 7, 128, 3, 1, 1), false), // ResNet-9's 64→128 at 7×7
        (conv(128, 64, 8, 64, 3, 1, 1), false),  // ResNet-20's third stage
    ] {
        assert!(winograd(&g), "{g:?}");
        assert_eq!(winograd_weight_gradient(&g), wide, "{g:?}");
    }
}

/// Winograd's weight gradient and the column path's give the same sums (within rounding), so
/// the channel limit above changes the rounding of thin layers' gradients, nothing else.
#[test]
fn the_winograd_weight_gradient_equals_the_column_paths() {
    let g = geometry(13);
    assert!(winograd(&g) && !winograd_weight_gradient(&g), "{g:?}");
    let (x, dy) = inputs(&g);
    let mut column = vec![f32::NAN; g.channels_out * g.rows()];
    weight_gradient(&g, &x, &dy, &mut column);
    let mut tiles = vec![f32::NAN; column.len()];
    winograd::weight_gradient(&g, &x, &dy, &mut tiles);
    for (a, b) in tiles.iter().zip(&column) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
    }
}
