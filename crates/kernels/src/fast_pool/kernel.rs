//! The f32 max-pooling kernel behind [`super`]: window bounds worked out once per call instead
//! of once per output value; with indices (training), each window offset offered to a whole
//! plane at once (`fast_pool::indexed`); values alone (inference), the window's rows reduced first.
//!
//! The results equal burn-flex's `max_pool2d(_with_indices)` exactly: the same windows (padding
//! counts as −∞, so a window is clipped to the image), the same choice among equal values (the
//! first), NaN wins (the last NaN in the window), and the same indices (`y·W + x` within the
//! plane, as `i64`).

use rayon::prelude::*;

pub use super::geometry::PoolGeometry;
use super::indexed::Walk;

/// `(values, indices)`: `values` `[planes, OH, OW]`, and when `with_indices` where each came
/// from (`y·W + x` within its plane; −1 for a window entirely in the padding).
pub fn forward(g: &PoolGeometry, x: &[f32], with_indices: bool) -> (Vec<f32>, Option<Vec<i64>>) {
    crate::Kernel::FastPool.record(false);
    let [oh, ow] = g.output().expect("pool geometry checked by the caller");
    let [h, w] = g.input;
    assert_eq!(x.len(), g.planes * h * w, "max pool: input of another size");
    let mut values = vec![f32::NEG_INFINITY; g.planes * oh * ow];
    let mut indices = with_indices.then(|| vec![-1i64; values.len()]);
    // Planes in parallel, several per task so small planes don't cost a task each.
    let per_task = (4096 / (oh * ow).max(1)).max(1);
    let (inputs, outputs) = (
        x.par_chunks((h * w) * per_task),
        values.par_chunks_mut(oh * ow * per_task),
    );
    match indices.as_mut() {
        Some(indices) => {
            let walk = Walk::new(g, per_task.min(g.planes));
            let tasks = inputs.zip(outputs).zip(indices.par_chunks_mut(oh * ow * per_task));
            tasks.for_each(|((src, values), indices)| walk.planes(src, values, indices))
        }
        None => {
            let (rows, cols) = (g.windows(0, oh), g.windows(1, ow));
            inputs.zip(outputs).for_each(|(src, values)| {
                let mut column_max = vec![0.0f32; w];
                for (src, values) in src.chunks_exact(h * w).zip(values.chunks_exact_mut(oh * ow)) {
                    values_only(src, values, (&rows, &cols), w, &mut column_max);
                }
            })
        }
    }
    (values, indices)
}

/// Average pooling of unpadded windows that lie inside the image (no padding, no `ceil_mode`:
/// every window holds `KH·KW` values): each window summed in order, then divided — burn-flex's
/// arithmetic exactly.
pub fn average(g: &PoolGeometry, x: &[f32]) -> Vec<f32> {
    crate::Kernel::FastPool.record(false);
    let [oh, ow] = g.output().expect("pool geometry checked by the caller");
    let [h, w] = g.input;
    assert!(g.padding == [0, 0] && !g.ceil_mode, "average: unpadded windows only");
    let count = (g.kernel[0] * g.kernel[1]) as f32;
    let mut out = vec![0.0f32; g.planes * oh * ow];
    let per_task = (4096 / (oh * ow).max(1)).max(1);
    out.par_chunks_mut(oh * ow * per_task)
        .zip(x.par_chunks(h * w * per_task))
        .for_each(|(out, x)| {
            for (out, src) in out.chunks_exact_mut(oh * ow).zip(x.chunks_exact(h * w)) {
                for (i, o) in out.iter_mut().enumerate() {
                    let (y0, x0) = ((i / ow) * g.stride[0], (i % ow) * g.stride[1]);
                    let mut sum = 0.0f32;
                    for y in y0..y0 + g.kernel[0] {
                        src[y * w + x0..][..g.kernel[1]].iter().for_each(|v| sum += v);
                    }
                    *o = sum / count;
                }
            }
        });
    out
}

/// The input gradient of [`average`]: each output's gradient divided by the window's size
/// and added to the inputs it covered, in burn-flex's order.
pub fn average_backward(g: &PoolGeometry, grad: &[f32]) -> Vec<f32> {
    let [oh, ow] = g.output().expect("pool geometry checked by the caller");
    let [h, w] = g.input;
    let count = (g.kernel[0] * g.kernel[1]) as f32;
    let mut dx = vec![0.0f32; g.planes * h * w];
    let per_task = (4096 / (h * w).max(1)).max(1);
    dx.par_chunks_mut(h * w * per_task)
        .zip(grad.par_chunks(oh * ow * per_task))
        .for_each(|(dx, grad)| {
            for (dx, grad) in dx.chunks_exact_mut(h * w).zip(grad.chunks_exact(oh * ow)) {
                for (i, &gv) in grad.iter().enumerate() {
                    let (y0, x0) = ((i / ow) * g.stride[0], (i % ow) * g.stride[1]);
                    let share = gv / count;
                    for y in y0..y0 + g.kernel[0] {
                        dx[y * w + x0..][..g.kernel[1]].iter_mut().for_each(|d| *d += share);
                    }
                }
            }
        });
    dx
}

/// The larger of two values, NaN winning (burn's rule, for the value alone).
#[inline]
fn max_nan(best: f32, v: f32) -> f32 {
    if v > best || v.is_nan() { v } else { best }
}

/// One plane's values without indices (inference): the window's rows reduced first, column by
/// column — element-wise selects the compiler vectorises — then each window across the
/// reduced row. The same values as the one-window-at-a-time walk (ties are equal values).
fn values_only(
    src: &[f32],
    values: &mut [f32],
    (rows, cols): (&[(usize, usize)], &[(usize, usize)]),
    w: usize,
    column_max: &mut [f32],
) {
    for (out, &(y0, y1)) in values.chunks_exact_mut(cols.len()).zip(rows) {
        if y0 == y1 {
            out.fill(f32::NEG_INFINITY);
            continue;
        }
        column_max.copy_from_slice(&src[y0 * w..][..w]);
        for y in y0 + 1..y1 {
            column_max
                .iter_mut()
                .zip(&src[y * w..][..w])
                .for_each(|(m, &v)| *m = max_nan(*m, v));
        }
        for (out, &(x0, x1)) in out.iter_mut().zip(cols) {
            *out = column_max[x0..x1]
                .iter()
                .copied()
                .reduce(max_nan)
                .unwrap_or(f32::NEG_INFINITY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same pooling written out the long way, window by window.
    fn naive(g: &PoolGeometry, x: &[f32]) -> (Vec<f32>, Vec<i64>) {
        let [oh, ow] = g.output().unwrap();
        let [h, w] = g.input;
        let (mut values, mut indices) = (vec![], vec![]);
        for p in 0..g.planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut best = (f32::NEG_INFINITY, -1i64);
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let y = (oy * g.stride[0] + ky) as isize - g.padding[0] as isize;
                            let xx = (ox * g.stride[1] + kx) as isize - g.padding[1] as isize;
                            if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                                continue;
                            }
                            let v = x[p * h * w + y as usize * w + xx as usize];
                            if best.1 < 0 || v > best.0 || v.is_nan() {
                                best = (v, (y as usize * w + xx as usize) as i64);
                            }
                        }
                    }
                    values.push(best.0);
                    indices.push(best.1);
                }
            }
        }
        (values, indices)
    }

    #[test]
    fn pooling_matches_the_windows_written_out() {
        let g = |planes, input, kernel, stride, padding, ceil_mode| PoolGeometry {
            planes,
            input,
            kernel,
            stride,
            padding,
            ceil_mode,
        };
        let cases = [
            g(5, [9, 9], [3, 3], [2, 2], [1, 1], false),  // ResNet's stem
            g(3, [8, 8], [2, 2], [2, 2], [0, 0], false),  // VGG, LeNet-5
            g(2, [13, 13], [3, 3], [2, 2], [0, 0], true), // AlexNet, GoogLeNet (ceil)
            g(2, [14, 14], [3, 3], [2, 2], [0, 0], true),
            g(4, [7, 6], [3, 3], [1, 1], [1, 1], true),  // inception branch
            g(3, [8, 8], [1, 1], [2, 2], [0, 0], false), // ResNet-20's shortcut subsampling
            g(1, [5, 7], [2, 3], [3, 2], [1, 1], false),
            g(2, [12, 41], [3, 3], [1, 1], [1, 1], false), // rows longer than a vector
            g(3, [5, 4], [5, 3], [1, 1], [2, 1], false),   // same size, a tall window
            g(2, [9, 40], [3, 3], [2, 2], [1, 1], true),
            g(1, [6, 6], [5, 4], [1, 3], [2, 2], true), // a window wider than the stride
        ];
        for g in cases {
            let [h, w] = g.input;
            // Ties (values repeat every 7) and one NaN, to check the choice among equals.
            let mut x: Vec<f32> = (0..g.planes * h * w).map(|i| ((i * 5) % 7) as f32).collect();
            x[h * w / 2] = f32::NAN;
            // −∞ in the image is taken where it comes first: only padding is "no value".
            x[0] = f32::NEG_INFINITY;
            let last = x.len() - 1;
            x[last] = f32::NEG_INFINITY;
            let (values, indices) = forward(&g, &x, true);
            let (expected, expected_indices) = naive(&g, &x);
            assert_eq!(indices.unwrap(), expected_indices, "{g:?}");
            for (a, b) in values.iter().zip(&expected) {
                assert!(a == b || (a.is_nan() && b.is_nan()), "{g:?}: {a} vs {b}");
            }
            let (plain, none) = forward(&g, &x, false);
            assert!(none.is_none());
            assert_eq!(
                plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn output_sizes_follow_pytorch() {
        let size = |input, kernel, stride, padding, ceil_mode| {
            let g = PoolGeometry {
                planes: 1,
                input: [input, input],
                kernel: [kernel, kernel],
                stride: [stride, stride],
                padding: [padding, padding],
                ceil_mode,
            };
            g.output().map(|[h, _]| h)
        };
        // torch.nn.MaxPool2d(3, 2, ceil_mode=True) on 112 → 56; (3, 2, 1) on 64 → 32.
        assert_eq!(size(112, 3, 2, 0, true), Some(56));
        assert_eq!(size(64, 3, 2, 1, false), Some(32));
        assert_eq!(size(13, 3, 2, 0, false), Some(6));
        assert_eq!(size(14, 3, 2, 0, true), Some(7));
        assert_eq!(size(5, 2, 2, 1, true), Some(3));
        assert_eq!(size(2, 3, 1, 0, false), None);
    }
}
