//! The kernel's tests (a child module of `kernel`, kept in its own file).

use super::*;

/// Direct seven-loop convolution, the reference for the kernels.
fn naive_forward(g: &ConvGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
    let [oh, ow] = g.output().unwrap();
    let [h, wd] = g.input;
    let mut out = vec![0.0f32; g.batch * g.channels_out * oh * ow];
    for n in 0..g.batch {
        for o in 0..g.channels_out {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b[o]) as f64;
                    for c in 0..g.channels_in {
                        for ky in 0..g.kernel[0] {
                            for kx in 0..g.kernel[1] {
                                let iy = (y * g.stride[0] + ky * g.dilation[0]) as isize - g.padding[0] as isize;
                                let ix = (xo * g.stride[1] + kx * g.dilation[1]) as isize - g.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((n * g.channels_in + c) * h + iy as usize) * wd + ix as usize;
                                let wi = ((o * g.channels_in + c) * g.kernel[0] + ky) * g.kernel[1] + kx;
                                acc += x[xi] as f64 * w[wi] as f64;
                            }
                        }
                    }
                    out[((n * g.channels_out + o) * oh + y) * ow + xo] = acc as f32;
                }
            }
        }
    }
    out
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum()
}

fn geometries() -> Vec<ConvGeometry> {
    let g = |batch, c, hw: [usize; 2], o, k: [usize; 2], s: [usize; 2], p: [usize; 2], d| ConvGeometry {
        batch,
        channels_in: c,
        input: hw,
        channels_out: o,
        kernel: k,
        stride: s,
        padding: p,
        dilation: [d, d],
    };
    vec![
        g(3, 4, [6, 5], 5, [3, 3], [1, 1], [1, 1], 1),
        g(2, 3, [9, 9], 4, [7, 7], [2, 2], [3, 3], 1),
        g(2, 6, [4, 4], 3, [1, 1], [2, 2], [0, 0], 1),
        g(5, 2, [2, 2], 3, [3, 3], [1, 1], [1, 1], 1),
        g(2, 3, [7, 6], 2, [3, 2], [2, 1], [0, 2], 2),
        g(1, 2, [5, 5], 2, [5, 5], [3, 3], [0, 0], 1),
        // One image per GEMM (256+ output pixels): padded, pointwise, and pointwise batch.
        g(2, 3, [16, 18], 4, [3, 3], [1, 1], [1, 1], 1),
        g(3, 5, [16, 16], 4, [1, 1], [1, 1], [0, 0], 1),
        g(3, 5, [4, 4], 4, [1, 1], [1, 1], [0, 0], 1),
        // Stride 1 at 16+ output columns: no column matrix (`implicit`), images grouped
        // side by side (with a shorter last group), other kernel sizes and paddings, an
        // asymmetric kernel; then a padded 1×1, which takes im2col (its padding is not smaller
        // than its kernel), as narrower maps do (the rows above).
        g(7, 5, [16, 16], 6, [3, 3], [1, 1], [1, 1], 1),
        g(3, 4, [18, 20], 9, [3, 3], [1, 1], [0, 0], 1),
        g(2, 3, [18, 20], 4, [5, 5], [1, 1], [2, 2], 1),
        g(4, 2, [16, 17], 3, [3, 2], [1, 1], [1, 0], 1),
        g(2, 3, [16, 16], 2, [1, 1], [1, 1], [1, 1], 1),
        // 3×3, stride 1, padding 1 on maps up to 8 wide with 128+ blocks of 2×2 outputs
        // (`winograd`): odd sizes (a cut-off last block), a batch that is no whole number of
        // lane blocks, 1×1 maps; then too few blocks, which takes im2col.
        g(9, 5, [7, 8], 6, [3, 3], [1, 1], [1, 1], 1),
        g(16, 4, [8, 5], 3, [3, 3], [1, 1], [1, 1], 1),
        g(130, 3, [1, 1], 2, [3, 3], [1, 1], [1, 1], 1),
        g(3, 4, [8, 8], 3, [3, 3], [1, 1], [1, 1], 1),
        // Kernels that mostly read padding (`tapwise`): a 5×5 kernel on a 3×3 map (36% of
        // its taps inside), a 3×3 one on a 2×2 map (44%; above, g(5, 2, [2, 2], ..) is one
        // too) with more channels than a block of rows, an asymmetric kernel and padding.
        g(4, 3, [3, 3], 5, [5, 5], [1, 1], [2, 2], 1),
        g(3, 40, [2, 2], 36, [3, 3], [1, 1], [1, 1], 1),
        g(2, 3, [2, 3], 4, [3, 5], [1, 1], [1, 2], 1),
    ]
}

/// The geometries above exercise every way: the implicit path (stride 1, 16+ columns) for
/// five of them, Winograd for three, tap by tap for four, im2col for the rest.
#[test]
fn the_geometries_cover_every_path() {
    let count = |applies: fn(&ConvGeometry) -> bool| geometries().iter().filter(|g| applies(g)).count();
    assert_eq!(count(super::super::implicit::applies), 5);
    assert_eq!(count(super::super::winograd::applies), 3);
    // Tap by tap where Winograd does not take it first (the 1×1 maps).
    let tapwise = |g: &ConvGeometry| super::super::tapwise::applies(g) && !super::super::winograd::applies(g);
    assert_eq!(geometries().iter().filter(|g| tapwise(g)).count(), 4);
}

/// The batch's ranges on two threads: up to four per thread, at least 16 images each where
/// the batch has them.
#[test]
fn ranges_are_finer_than_one_per_thread_but_not_narrow() {
    let g = |batch| ConvGeometry { batch, ..geometries()[0] };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    pool.install(|| {
        assert_eq!(g(128).per_range(), 16, "ResNet-20: eight ranges");
        assert_eq!(g(512).per_range(), 64, "four per thread");
        assert_eq!(g(32).per_range(), 16, "ResNet-18: two");
        assert_eq!(g(16).per_range(), 8, "VGG-16: two");
        assert_eq!(g(1).per_range(), 1);
    });
}

#[test]
fn forward_matches_the_direct_convolution() {
    for g in geometries() {
        let x = values(g.batch * g.channels_in * g.pixels_in(), 1);
        let w = values(g.channels_out * g.rows(), 2);
        let b = values(g.channels_out, 3);
        let ours = forward(&g, &x, &w, Some(&b));
        let reference = naive_forward(&g, &x, &w, Some(&b));
        assert_eq!(ours.len(), reference.len(), "{g:?}");
        for (a, r) in ours.iter().zip(&reference) {
            assert!((a - r).abs() < 1e-4, "{g:?}: {a} vs {r}");
        }
    }
}

/// `v` with every value rounded to bf16.
fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| crate::bf16::round(x)).collect()
}

/// A bf16 pass's `ours` against the f32 pass on the rounded operands (`rounded`: equal to f32
/// rounding) and on the exact ones (`exact`: within 2⁻⁸), each value a sum of at most `terms`
/// products of values in [−1, 1]; and some rounding must show.
fn assert_bf16_result(g: &ConvGeometry, ours: &[f32], rounded: &[f32], exact: &[f32], terms: usize) {
    let size = terms as f32;
    for ((a, r), e) in ours.iter().zip(rounded).zip(exact) {
        assert!((a - r).abs() < 1e-5 * size, "{g:?}: {a} vs {r} (rounded operands)");
        assert!((a - e).abs() <= size / 256.0, "{g:?}: {a} vs {e} (f32)");
    }
    assert_ne!(ours, exact, "{g:?}: no rounding at all?");
}

/// The bf16 forward pass on every geometry (every path: in place for the stride-1 wide maps,
/// with an odd channel count among them, column matrices for the rest) equals the direct
/// convolution of the bf16-rounded input and weight to f32 rounding, and the f32 one to bf16's:
/// within 2⁻⁸ of the products' sizes.
#[test]
fn the_bf16_forward_is_the_convolution_of_the_rounded_operands() {
    for g in geometries() {
        let x = values(g.batch * g.channels_in * g.pixels_in(), 1);
        let w = values(g.channels_out * g.rows(), 2);
        let b = values(g.channels_out, 3);
        for bias in [Some(&b[..]), None] {
            let ours = forward_bf16(&g, &x, &w, bias);
            let of_rounded = naive_forward(&g, &rounded(&x), &rounded(&w), bias);
            let exact = naive_forward(&g, &x, &w, bias);
            assert_bf16_result(&g, &ours, &of_rounded, &exact, g.rows());
        }
    }
    let in_place: Vec<_> = geometries().into_iter().filter(|g| super::super::implicit::applies(g)).collect();
    assert_eq!(in_place.len(), 5);
    assert!(in_place.iter().any(|g| g.channels_in % 2 == 1));
}

/// The bf16 input gradient (the bf16 forward pass of the turned convolution) on every stride-1
/// geometry, and on one of ResNet-20's, where it pays: the f32 input gradient of the rounded
/// weight and dY to f32 rounding, the f32 one of the exact operands to bf16's; the weight and
/// bias gradients bit for bit f32's.
#[test]
fn the_bf16_input_gradient_is_that_of_the_rounded_operands() {
    let resnet20 = ConvGeometry::square(4, 16, 32, 16, 3, 1, 1);
    assert!(bf16_input_gradient_pays(&resnet20));
    let turnable: Vec<_> = geometries()
        .into_iter()
        .chain([resnet20])
        .filter(|g| g.is_turnable() && !g.is_pointwise())
        .collect();
    assert!(turnable.len() >= 10, "{} stride-1 geometries", turnable.len());
    for g in turnable {
        let x = values(g.batch * g.channels_in * g.pixels_in(), 20);
        let w = values(g.channels_out * g.rows(), 21);
        let v = values(g.batch * g.channels_out * g.pixels_out(), 22);
        let ours = backward_in(&g, (&x, &w, &v), [true, true, true], [true, false]);
        let of_rounded = backward(&g, &x, &rounded(&w), &rounded(&v), [true, false, false]);
        let exact = backward(&g, &x, &w, &v, [true, true, true]);
        let (dx, dx_of_rounded, dx_exact) = (ours.input.unwrap(), of_rounded.input.unwrap(), exact.input.unwrap());
        // An input gradient sums at most `O·KH·KW` products.
        assert_bf16_result(&g, &dx, &dx_of_rounded, &dx_exact, g.channels_out * g.kernel[0] * g.kernel[1]);
        assert_eq!((ours.weight, ours.bias), (exact.weight, exact.bias), "{g:?}");
    }
}

/// The bf16 weight gradient on every geometry, both ways (the images read in place, and column
/// matrices: strided, dilated, pointwise and narrow maps), and on VGG-16-like channel counts:
/// the f32 weight gradient of the rounded input and dY to f32 rounding, the f32 one of the exact
/// operands to bf16's; on one thread and on several the same bits.
#[test]
fn the_bf16_weight_gradient_is_that_of_the_rounded_operands() {
    let vgg = ConvGeometry::square(3, 64, 16, 64, 3, 1, 1);
    assert!(bf16_weight_gradient_pays(&vgg));
    let all: Vec<_> = geometries().into_iter().chain([vgg]).collect();
    let in_place = all.iter().filter(|g| super::super::implicit::applies(g)).count();
    assert_eq!((in_place, all.len() - in_place), (6, 16), "geometries taking each way");
    for g in all {
        let x = values(g.batch * g.channels_in * g.pixels_in(), 30);
        let w = values(g.channels_out * g.rows(), 31);
        let v = values(g.batch * g.channels_out * g.pixels_out(), 32);
        let ours = backward_in(&g, (&x, &w, &v), [true, true, true], [false, true]);
        let of_rounded = backward(&g, &rounded(&x), &w, &rounded(&v), [false, true, false]);
        let exact = backward(&g, &x, &w, &v, [true, true, true]);
        let dw = ours.weight.as_ref().unwrap();
        // A weight gradient sums `N·OH·OW` products.
        let (dw_of_rounded, dw_exact) = (of_rounded.weight.unwrap(), exact.weight.as_ref().unwrap());
        assert_bf16_result(&g, dw, &dw_of_rounded, dw_exact, g.batch * g.pixels_out());
        assert_eq!((&ours.input, &ours.bias), (&exact.input, &exact.bias), "{g:?}");
        let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let alone = one_thread.install(|| backward_in(&g, (&x, &w, &v), [false, true, false], [false, true]));
        assert_eq!(alone.weight.as_ref(), Some(dw), "{g:?}: threads changed the sums");
    }
}

/// `--precision bf16` runs bf16 where it pays: not on Winograd or tap-wise shapes, not on a few
/// output columns, yes on wide stride-1 maps and large strided ones.
#[test]
fn bf16_runs_where_it_pays() {
    let conv = ConvGeometry::square;
    assert!(bf16_pays(&conv(128, 16, 32, 16, 3, 1, 1)), "ResNet-20's first stage");
    assert!(bf16_pays(&conv(32, 3, 64, 64, 7, 2, 3)), "ResNet-18's stem");
    assert!(!bf16_pays(&conv(32, 512, 2, 512, 3, 1, 1)), "Winograd or tap by tap");
    assert!(!bf16_pays(&conv(32, 128, 8, 128, 3, 1, 1)), "Winograd");
    assert!(!bf16_pays(&conv(32, 256, 4, 512, 3, 2, 1)), "128 output columns");
    assert!(!bf16_pays(&conv(64, 1, 32, 6, 5, 1, 0)), "LeNet-5's 6 output channels");
    // The input gradient: stride 1 only, and where the turned convolution pays.
    assert!(bf16_input_gradient_pays(&conv(128, 16, 32, 16, 3, 1, 1)), "ResNet-20's first stage");
    assert!(bf16_input_gradient_pays(&conv(32, 64, 56, 64, 3, 1, 1)), "ResNet-18's first stage");
    assert!(!bf16_input_gradient_pays(&conv(32, 3, 64, 64, 7, 2, 3)), "stride 2");
    assert!(!bf16_input_gradient_pays(&conv(32, 64, 8, 64, 1, 1, 0)), "1×1: a plain product");
    assert!(!bf16_input_gradient_pays(&conv(32, 128, 8, 128, 3, 1, 1)), "Winograd");
    assert!(!bf16_input_gradient_pays(&conv(64, 6, 14, 16, 5, 1, 0)), "6 input channels");
    // The weight gradient: 64 or more output channels where it is one product, in place or on
    // column matrices.
    assert!(bf16_weight_gradient_pays(&conv(16, 64, 64, 64, 3, 1, 1)), "VGG-16's 64→64");
    assert!(bf16_weight_gradient_pays(&conv(32, 64, 16, 64, 3, 1, 1)), "ResNet-18's first stage");
    assert!(bf16_weight_gradient_pays(&conv(32, 64, 32, 128, 3, 2, 1)), "stride 2: columns");
    assert!(bf16_weight_gradient_pays(&conv(32, 3, 64, 64, 7, 2, 3)), "ResNet-18's stem: columns");
    assert!(bf16_weight_gradient_pays(&conv(256, 64, 14, 128, 3, 1, 1)), "14×14 maps: columns");
    assert!(bf16_weight_gradient_pays(&conv(128, 64, 8, 64, 3, 1, 1)), "Winograd, dW on columns");
    assert!(!bf16_weight_gradient_pays(&conv(128, 16, 32, 16, 3, 1, 1)), "ResNet-20's 16 channels");
    assert!(!bf16_weight_gradient_pays(&conv(256, 16, 28, 32, 3, 1, 1)), "32 output channels");
    assert!(!bf16_weight_gradient_pays(&conv(16, 512, 8, 512, 3, 1, 1)), "8×8 maps: Winograd");
    assert!(bf16_weight_gradient_pays(&conv(256, 128, 7, 256, 3, 1, 1)), "7×7: Winograd's tiles overhang");
    assert!(bf16_weight_gradient_pays(&conv(256, 256, 3, 256, 3, 1, 1)), "3×3 maps: likewise");
}

/// The backward pass is the adjoint of the forward pass: for random `v`,
/// `<forward(x + e_i), v>` changes by exactly the gradient; checked in its bilinear form
/// `<conv(x, w), v> = <x, dX(v)> = <w, dW(v)>` and `sum(v) per channel = dB`.
#[test]
fn backward_is_the_adjoint_of_forward() {
    for g in geometries() {
        let x = values(g.batch * g.channels_in * g.pixels_in(), 4);
        let w = values(g.channels_out * g.rows(), 5);
        let y = naive_forward(&g, &x, &w, None);
        let v = values(y.len(), 6);
        let grads = backward(&g, &x, &w, &v, [true, true, true]);
        let target = dot(&y, &v);
        let via_input = dot(&x, grads.input.as_ref().unwrap());
        let via_weight = dot(&w, grads.weight.as_ref().unwrap());
        let tolerance = 1e-4 * (1.0 + target.abs());
        assert!(
            (via_input - target).abs() < tolerance,
            "{g:?}: dX {via_input} vs {target}"
        );
        assert!(
            (via_weight - target).abs() < tolerance,
            "{g:?}: dW {via_weight} vs {target}"
        );
        let pixels = g.pixels_out();
        let db = grads.bias.unwrap();
        for o in 0..g.channels_out {
            let expected: f32 = (0..g.batch)
                .map(|n| v[(n * g.channels_out + o) * pixels..][..pixels].iter().sum::<f32>())
                .sum();
            assert!((db[o] - expected).abs() < 1e-4, "{g:?}: dB[{o}]");
        }
    }
}

/// The passes that get an unfilled buffer write all of it: run on buffers full of NaN, they
/// give what they give on zeros.
#[test]
fn every_pass_writes_its_whole_output() {
    for g in geometries() {
        let x = values(g.batch * g.channels_in * g.pixels_in(), 10);
        let w = values(g.channels_out * g.rows(), 11);
        let v = values(g.batch * g.channels_out * g.pixels_out(), 12);
        let mut out = vec![f32::NAN; v.len()];
        passes::forward(&g, &x, &w, None, &mut out);
        let mut zeroed = vec![0.0; v.len()];
        passes::forward(&g, &x, &w, None, &mut zeroed);
        assert_eq!(out, zeroed, "{g:?}: forward");
        let mut out = vec![f32::NAN; v.len()];
        super::super::bf16_forward::forward(&g, &x, &w, None, &mut out);
        let mut zeroed = vec![0.0; v.len()];
        super::super::bf16_forward::forward(&g, &x, &w, None, &mut zeroed);
        assert_eq!(out, zeroed, "{g:?}: bf16 forward");
        if passes::input_gradient_overwrites(&g) {
            let mut dx = vec![f32::NAN; x.len()];
            passes::input_gradient(&g, &w, &v, &mut dx);
            let mut zeroed = vec![0.0; x.len()];
            passes::input_gradient(&g, &w, &v, &mut zeroed);
            assert_eq!(dx, zeroed, "{g:?}: input gradient");
        }
    }
    let overwrite = geometries()
        .iter()
        .filter(|g| passes::input_gradient_overwrites(g))
        .count();
    assert!(overwrite >= 8, "the geometries reach the overwriting input gradients");
}

#[test]
fn chunks_of_images_give_the_same_gradients_as_one_chunk() {
    // A geometry large enough that the column budget splits the batch.
    let g = ConvGeometry::square(5, 64, 64, 2, 3, 1, 1);
    assert!(g.chunk() < g.batch, "the test needs several chunks");
    let x = values(g.batch * g.channels_in * g.pixels_in(), 7);
    let w = values(g.channels_out * g.rows(), 8);
    let v = values(g.batch * g.channels_out * g.pixels_out(), 9);
    let all = backward(&g, &x, &w, &v, [true, true, false]);
    for image in 0..g.batch {
        let one = ConvGeometry { batch: 1, ..g };
        let plane_in = g.channels_in * g.pixels_in();
        let plane_out = g.channels_out * g.pixels_out();
        let single = backward(
            &one,
            &x[image * plane_in..][..plane_in],
            &w,
            &v[image * plane_out..][..plane_out],
            [true, false, false],
        );
        assert_eq!(
            &all.input.as_ref().unwrap()[image * plane_in..][..plane_in],
            &single.input.unwrap()[..],
            "image {image}"
        );
    }
}
