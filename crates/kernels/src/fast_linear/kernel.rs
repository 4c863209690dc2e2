//! The three products of a fully connected layer at small batches — `Y = X · W`, `dX = dY · Wᵀ`,
//! `dW = Xᵀ · dY` with `X` `[rows, inputs]` and `W` `[inputs, outputs]` row-major — on the
//! broadcast-form register tile of [`crate::fast_conv`] (8 rows of one operand broadcast against
//! 16 or 32 columns of the other, AVX-512).
//!
//! The weight dominates: VGG's first classifier layer holds 25088 × 4096 floats against 16 × 25088
//! of the batch. So no operand is packed: each pass reads the weight once, in place, in long
//! runs along its rows, and splits the work over the cores by blocks of the weight (output
//! columns for the forward pass, input rows for the gradients). The batch-sized operands are
//! transposed where a pass needs them so (under 7 MiB at [`MAX_BATCH`] rows). Every element sums
//! its products in one fixed order, so the results do not depend on the thread count.

use rayon::prelude::*;

use crate::fast_conv::microkernel::{RowsKernel, rows_kernel};

/// Most rows (images) of a batch the kernel takes; larger batches make products that the
/// `gemm` crate's packing pays for.
pub const MAX_BATCH: usize = 64;
/// Smallest weight (floats) the kernel takes: below it the product is too small to matter.
const MIN_WEIGHT: usize = 1 << 16;
/// Rows of the tile.
const MR: usize = 8;
/// Reduction steps per tile call.
const KC: usize = 256;
/// Rows of the weight per task of the forward pass.
const RANGE: usize = 2048;
/// Rows of the weight the forward pass reads side by side.
const STEPS: usize = 16;
/// Rows of the weight per block of the gradients (one block per task).
const ROWS: usize = 64;

/// Whether the kernel runs `[rows, inputs, outputs]` on this CPU: AVX-512, a small batch, an
/// output width that is a multiple of 16 and a weight worth the trouble.
pub fn applies([rows, inputs, outputs]: [usize; 3]) -> bool {
    rows_kernel().is_some() && (1..=MAX_BATCH).contains(&rows) && outputs % 16 == 0 && inputs * outputs >= MIN_WEIGHT
}

/// `(offset, wide)` of the tiles across `width` columns (a multiple of 16): 32 at a time, the
/// last 16 alone where they are left over.
fn strips(width: usize) -> impl Iterator<Item = (usize, bool)> {
    (0..width).step_by(32).map(move |c| (c, width - c >= 32))
}

/// `c[8 × 16 or 32] (+)= Σ_p a_r[p] · b[p·b_rs ..]` over `kc` steps.
///
/// # Safety
/// `kernel` came from [`rows_kernel`]; every `a[r]` holds `kc` floats, `b` `kc` rows of 16 (32
/// when `wide`) floats `b_rs` apart, `c` 8 rows of as many floats `c_rs` apart.
unsafe fn tile(
    kernel: &RowsKernel,
    wide: bool,
    kc: usize,
    a: [*const f32; MR],
    b: (*const f32, usize),
    c: (*mut f32, usize),
    add: bool,
) {
    let run = if wide { kernel.wide } else { kernel.narrow };
    // SAFETY: as the caller promises.
    unsafe { run(kc, a, b, c, add) }
}

/// `Y = X · W`, `[rows, outputs]`. Each task takes [`RANGE`] rows of the weight and sums their
/// share of every output into a partial `Y`, reading [`STEPS`] rows of the weight side by side
/// from start to end; the partials are then added in order.
pub fn forward([rows, inputs, outputs]: [usize; 3], x: &[f32], w: &[f32]) -> Vec<f32> {
    let kernel = rows_kernel().expect("checked by applies");
    assert!(
        x.len() == rows * inputs && w.len() == inputs * outputs,
        "fast_linear: bad operands"
    );
    let padded = rows.next_multiple_of(MR);
    let starts: Vec<usize> = (0..inputs).step_by(RANGE).collect();
    let partials: Vec<Vec<f32>> = starts
        .into_par_iter()
        .map(|i0| {
            let end = (i0 + RANGE).min(inputs);
            let mut c = vec![0.0f32; padded * outputs];
            for k0 in (i0..end).step_by(STEPS) {
                let kc = STEPS.min(end - k0);
                for (s, wide) in strips(outputs) {
                    for r0 in (0..padded).step_by(MR) {
                        // Rows past the batch repeat its last; their results are dropped.
                        let a = std::array::from_fn(|r| x[(r0 + r).min(rows - 1) * inputs + k0..].as_ptr());
                        let b = (w[k0 * outputs + s..].as_ptr(), outputs);
                        let c = (c[r0 * outputs + s..].as_mut_ptr(), outputs);
                        // SAFETY: rows of x hold `inputs` floats, so kc from k0; w has `inputs`
                        // rows of `outputs` and s + 32 ≤ outputs (16 when narrow); c holds
                        // `padded` rows of `outputs`.
                        unsafe { tile(kernel, wide, kc, a, b, c, k0 > i0) };
                    }
                }
            }
            c
        })
        .collect();
    let mut y = partials[0][..rows * outputs].to_vec();
    for partial in &partials[1..] {
        y.iter_mut().zip(partial).for_each(|(y, p)| *y += p);
    }
    y
}

/// `dX = dY · Wᵀ`, `[rows, inputs]`, computed as `dXᵀ = W · dYᵀ`: the weight's rows are the
/// broadcast operand, read once from start to end.
pub fn input_gradient([rows, inputs, outputs]: [usize; 3], w: &[f32], dy: &[f32]) -> Vec<f32> {
    let kernel = rows_kernel().expect("checked by applies");
    assert!(
        w.len() == inputs * outputs && dy.len() == rows * outputs,
        "fast_linear: bad operands"
    );
    let width = rows.next_multiple_of(16);
    let dyt = transposed(dy, [rows, outputs], width);
    let padded = inputs.next_multiple_of(MR);
    let mut dxt = vec![0.0f32; padded * width];
    dxt.par_chunks_mut(ROWS * width).enumerate().for_each(|(block, c)| {
        for (i, c) in c.chunks_exact_mut(MR * width).enumerate() {
            let r0 = block * ROWS + i * MR;
            let rows_of_w: [usize; MR] = std::array::from_fn(|r| (r0 + r).min(inputs - 1) * outputs);
            for k0 in (0..outputs).step_by(KC) {
                let kc = KC.min(outputs - k0);
                let a = rows_of_w.map(|start| w[start + k0..].as_ptr());
                for (s, wide) in strips(width) {
                    // SAFETY: rows of w hold `outputs` floats, so kc from k0; dyt has `outputs`
                    // rows of `width`; c holds 8 rows of `width`.
                    unsafe {
                        tile(
                            kernel,
                            wide,
                            kc,
                            a,
                            (dyt[k0 * width + s..].as_ptr(), width),
                            (c[s..].as_mut_ptr(), width),
                            k0 > 0,
                        )
                    };
                }
            }
        }
    });
    let mut dx = vec![0.0f32; rows * inputs];
    for (i, src) in dxt.chunks_exact(width).take(inputs).enumerate() {
        for (r, &v) in src[..rows].iter().enumerate() {
            dx[r * inputs + i] = v;
        }
    }
    dx
}

/// `dW = Xᵀ · dY`, `[inputs, outputs]`: the batch (at most [`MAX_BATCH`]) is the whole
/// reduction, so each tile writes its block of `dW` once, row after row.
pub fn weight_gradient([rows, inputs, outputs]: [usize; 3], x: &[f32], dy: &[f32]) -> Vec<f32> {
    let kernel = rows_kernel().expect("checked by applies");
    assert!(
        x.len() == rows * inputs && dy.len() == rows * outputs,
        "fast_linear: bad operands"
    );
    let xt = transposed(x, [rows, inputs], rows);
    let padded = inputs.next_multiple_of(MR);
    let mut dw = vec![0.0f32; padded * outputs];
    dw.par_chunks_mut(ROWS * outputs).enumerate().for_each(|(block, c)| {
        for (i, c) in c.chunks_exact_mut(MR * outputs).enumerate() {
            let r0 = block * ROWS + i * MR;
            let a = std::array::from_fn(|r| xt[(r0 + r).min(inputs - 1) * rows..].as_ptr());
            for (s, wide) in strips(outputs) {
                // SAFETY: rows of xt hold `rows` floats; dy has `rows` rows of `outputs`; c
                // holds 8 rows of `outputs`.
                unsafe {
                    tile(
                        kernel,
                        wide,
                        rows,
                        a,
                        (dy[s..].as_ptr(), outputs),
                        (c[s..].as_mut_ptr(), outputs),
                        false,
                    )
                };
            }
        }
    });
    dw.truncate(inputs * outputs);
    dw
}

/// `m` (`[rows, cols]`) transposed to `cols` rows of `width ≥ rows` floats, zeros past `rows`.
fn transposed(m: &[f32], [rows, cols]: [usize; 2], width: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; cols * width];
    for (r, row) in m.chunks_exact(cols).take(rows).enumerate() {
        for (dst, &v) in t[r..].iter_mut().step_by(width).zip(row) {
            *dst = v;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast_conv::testing::test_values as values;

    /// `a [m, k] · b [k, n]` in f64, both row-major.
    fn product(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for p in 0..k {
                let v = f64::from(a[i * k + p]);
                for j in 0..n {
                    out[i * n + j] += v * f64::from(b[p * n + j]);
                }
            }
        }
        out
    }

    fn transpose(m: &[f32], [rows, cols]: [usize; 2]) -> Vec<f32> {
        (0..cols * rows).map(|i| m[(i % rows) * cols + i / rows]).collect()
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1.0f64, |s, v| s.max(v.abs()));
        let gap = got
            .iter()
            .zip(want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max);
        assert!(gap <= 1e-5 * scale, "{what}: gap {gap} at scale {scale}");
    }

    /// Batches below, at and past a tile's 8 rows; reductions shorter than a tile call, not a
    /// multiple of the steps, and longer than one forward task (several partials); widths
    /// ending on a 16-column tile.
    const SHAPES: [[usize; 3]; 5] = [
        [1, 300, 256],
        [3, 1000, 80],
        [13, 37, 48],
        [16, 4100, 64],
        [64, 300, 272],
    ];

    #[test]
    fn the_three_products_equal_the_exact_ones() {
        if rows_kernel().is_none() {
            // No AVX-512 here: the layer must take burn's path.
            assert!(
                SHAPES.iter().all(|&s| !applies(s)),
                "the kernel claims a CPU without its tile"
            );
            return;
        }
        for [rows, inputs, outputs] in SHAPES {
            let (x, w, dy) = (
                values(rows * inputs, 1),
                values(inputs * outputs, 2),
                values(rows * outputs, 3),
            );
            let sizes = [rows, inputs, outputs];
            assert_close(&forward(sizes, &x, &w), &product(&x, &w, sizes), "forward");
            let wt = transpose(&w, [inputs, outputs]);
            assert_close(
                &input_gradient(sizes, &w, &dy),
                &product(&dy, &wt, [rows, outputs, inputs]),
                "dX",
            );
            let xt = transpose(&x, [rows, inputs]);
            assert_close(
                &weight_gradient(sizes, &x, &dy),
                &product(&xt, &dy, [inputs, rows, outputs]),
                "dW",
            );
        }
    }

    #[test]
    fn the_products_are_the_same_on_any_number_of_threads() {
        if rows_kernel().is_none() {
            return; // nothing of ours runs (see the_three_products_equal_the_exact_ones)
        }
        let sizes @ [rows, inputs, outputs] = [16, 4100, 272];
        let (x, w, dy) = (
            values(rows * inputs, 4),
            values(inputs * outputs, 5),
            values(rows * outputs, 6),
        );
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool");
            pool.install(|| {
                [
                    forward(sizes, &x, &w),
                    input_gradient(sizes, &w, &dy),
                    weight_gradient(sizes, &x, &dy),
                ]
            })
        };
        assert!(on(1) == on(3), "results differ between 1 and 3 threads");
    }

    #[test]
    fn the_kernel_takes_small_batches_of_wide_layers_only() {
        let has_tile = rows_kernel().is_some();
        assert_eq!(applies([16, 25088, 4096]), has_tile, "VGG's first classifier layer");
        assert!(!applies([128, 25088, 4096]), "a batch past MAX_BATCH");
        assert!(!applies([16, 4096, 10]), "10 outputs: not a multiple of 16");
        assert!(!applies([16, 128, 64]), "a weight too small to matter");
    }
}
