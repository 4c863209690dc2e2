//! Max pooling with indices (training's forward pass), offset by offset: each offset `(ky, kx)`
//! of the window is offered to all the outputs of a task's planes at once, with selects the
//! compiler vectorises. A window at a time is scalar and branchy, and GoogLeNet's planes (12×12
//! down to 3×3) are too small to vectorise one at a time: its pools took 17–20% of its bf16
//! training step so (`perf`, 96 px, batch 16).
//!
//! The offsets run in the window's row-major order, so every output sees its values in the order
//! of the window-at-a-time walk and keeps the same one: the first value, then any greater one or
//! a NaN (burn-flex's rule), and its index `y·W + x` within the plane.

use super::geometry::PoolGeometry;

/// Outputs taken through all the window's offsets before the next ones: their values, indices
/// and inputs stay in the L1 cache (a task's 4,096 outputs and their tables did not).
const BLOCK: usize = 512;

/// How one call's planes are walked, worked out once per call for `planes` planes at a time.
pub(super) struct Walk {
    g: PoolGeometry,
    route: Route,
}

enum Route {
    /// Stride 1 keeping the size (Inception's 3×3 pad-1 branches): the outputs of consecutive
    /// planes and their inputs are one flat run each, an offset apart. `row[i]`, `column[i]`:
    /// output `i`'s place in its plane, to mask the outputs whose window falls off the image.
    SameSize { row: Vec<u32>, column: Vec<u32> },
    /// Anything else (strides of 2 and more), through a padded copy of the planes (`size` each):
    /// `origin[i]` is where output `i`'s window starts in it, and `index` gives each padded
    /// position's index in its plane (−1 in the padding, never taken).
    Padded {
        size: [usize; 2],
        origin: Vec<u32>,
        index: Vec<i64>,
    },
}

impl Walk {
    /// The walk for calls of up to `planes` planes.
    pub(super) fn new(g: &PoolGeometry, planes: usize) -> Self {
        let output = g.output().expect("pool geometry checked by the caller");
        let ([h, w], [kh, kw], [sy, sx], [py, px]) = (g.input, g.kernel, g.stride, g.padding);
        let route = if g.stride == [1, 1] && output == g.input {
            let place = |i: usize| (i % (h * w)) as u32;
            Route::SameSize {
                row: (0..planes * h * w).map(|i| place(i) / w as u32).collect(),
                column: (0..planes * h * w).map(|i| place(i) % w as u32).collect(),
            }
        } else {
            let [oh, ow] = output;
            // Room for every window, ceil_mode's last ones included.
            let size = [
                (h + 2 * py).max((oh - 1) * sy + kh),
                (w + 2 * px).max((ow - 1) * sx + kw),
            ];
            let (plane, padded) = (oh * ow, size[0] * size[1]);
            let origin = (0..planes * plane)
                .map(|i| {
                    let (p, o) = (i / plane, i % plane);
                    (p * padded + (o / ow) * sy * size[1] + (o % ow) * sx) as u32
                })
                .collect();
            let index = (0..planes * padded)
                .map(|p| {
                    let (y, x) = ((p % padded) / size[1], p % size[1]);
                    let (y, x) = (y.wrapping_sub(py), x.wrapping_sub(px));
                    if y < h && x < w { (y * w + x) as i64 } else { -1 }
                })
                .collect();
            Route::Padded { size, origin, index }
        };
        Walk { g: *g, route }
    }

    /// Pools whole planes, at most the `planes` of [`Walk::new`]: `src` `[n, H, W]` into
    /// `values` and `indices` `[n, OH, OW]`, which come filled with −∞ and −1 (no value yet).
    pub(super) fn planes(&self, src: &[f32], values: &mut [f32], indices: &mut [i64]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked on the line above.
            return unsafe { self.planes_avx512(src, values, indices) };
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked on the line above.
            return unsafe { self.planes_avx2(src, values, indices) };
        }
        self.planes_portable(src, values, indices)
    }

    /// [`Self::planes_portable`] compiled for AVX-512: for the default x86-64 target (SSE2) the
    /// compiler emulates the selects on 64-bit indices lane by lane, slower than scalar code.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn planes_avx512(&self, src: &[f32], values: &mut [f32], indices: &mut [i64]) {
        self.planes_portable(src, values, indices)
    }

    /// [`Self::planes_portable`] compiled for AVX2 (CPUs without AVX-512).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn planes_avx2(&self, src: &[f32], values: &mut [f32], indices: &mut [i64]) {
        self.planes_portable(src, values, indices)
    }

    #[inline(always)]
    fn planes_portable(&self, src: &[f32], values: &mut [f32], indices: &mut [i64]) {
        match &self.route {
            Route::SameSize { row, column } => self.same_size((row, column), src, values, indices),
            Route::Padded { size, origin, index } => self.padded(*size, (origin, index), src, values, indices),
        }
    }

    #[inline(always)]
    fn same_size(&self, (row, column): (&[u32], &[u32]), src: &[f32], values: &mut [f32], indices: &mut [i64]) {
        let ([h, w], [kh, kw], [py, px]) = (self.g.input, self.g.kernel, self.g.padding);
        let n = src.len() as isize;
        for block in (0..values.len()).step_by(BLOCK) {
            let block = block as isize..(block + BLOCK).min(values.len()) as isize;
            for (ky, kx) in (0..kh).flat_map(|ky| (0..kw).map(move |kx| (ky, kx))) {
                let (dy, dx) = (ky as isize - py as isize, kx as isize - px as isize);
                let offset = dy * w as isize + dx;
                // The outputs whose window row and column are in the image (the rest of the
                // range, reading a neighbouring row or plane, masked out), inputs within `src`.
                let first = block.start.max(-offset) as usize;
                let end = block.end.min(n - offset).max(0) as usize;
                if first >= end {
                    continue;
                }
                let rows = (-dy).max(0) as u32..(h as isize - dy).min(h as isize) as u32;
                let columns = (-dx).max(0) as u32..(w as isize - dx).min(w as isize) as u32;
                let inputs = &src[(first as isize + offset) as usize..][..end - first];
                let places = row[first..end].iter().zip(&column[first..end]);
                let outputs = values[first..end].iter_mut().zip(&mut indices[first..end]);
                for ((&v, (&r, &c)), (b, k)) in inputs.iter().zip(places).zip(outputs) {
                    let inside = (r >= rows.start) & (r < rows.end) & (c >= columns.start) & (c < columns.end);
                    let take = inside & better(v, *b, *k);
                    *b = if take { v } else { *b };
                    *k = if take {
                        (r as isize * w as isize + c as isize + offset) as i64
                    } else {
                        *k
                    };
                }
            }
        }
    }

    #[inline(always)]
    fn padded(
        &self,
        [ph, pw]: [usize; 2],
        (origin, index): (&[u32], &[i64]),
        src: &[f32],
        values: &mut [f32],
        indices: &mut [i64],
    ) {
        let ([h, w], [kh, kw], [py, px]) = (self.g.input, self.g.kernel, self.g.padding);
        let mut padded = vec![f32::NEG_INFINITY; src.len() / (h * w) * ph * pw];
        for (plane, src) in padded.chunks_exact_mut(ph * pw).zip(src.chunks_exact(h * w)) {
            for (y, row) in src.chunks_exact(w).enumerate() {
                plane[(y + py) * pw + px..][..w].copy_from_slice(row);
            }
        }
        let blocks = origin[..values.len()]
            .chunks(BLOCK)
            .zip(values.chunks_mut(BLOCK))
            .zip(indices.chunks_mut(BLOCK));
        for ((origin, values), indices) in blocks {
            for offset in (0..kh).flat_map(|ky| (0..kw).map(move |kx| ky * pw + kx)) {
                for ((&o, b), k) in origin.iter().zip(values.iter_mut()).zip(indices.iter_mut()) {
                    let at = o as usize + offset;
                    // SAFETY: every window of a plane lies within its `size` (`Walk::new`),
                    // `padded` holds this call's planes, and `index` at least as many.
                    let (v, from) = unsafe { (*padded.get_unchecked(at), *index.get_unchecked(at)) };
                    let take = (from >= 0) & better(v, *b, *k);
                    *b = if take { v } else { *b };
                    *k = if take { from } else { *k };
                }
            }
        }
    }
}

/// burn-flex's rule for the value `v` offered to an output holding `best` from `index`: the
/// first value, then any greater one or a NaN — without branches (`|`, not `||`), which the data
/// would mispredict a third of the time and which keep the loops scalar.
#[inline(always)]
fn better(v: f32, best: f32, index: i64) -> bool {
    (index < 0) | (v > best) | v.is_nan()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every compiled form this CPU can run gives the same values and indices (the dispatch in
    /// [`Walk::planes`] picks one; `kernel`'s tests check that one against the windows written out).
    #[test]
    fn every_instruction_set_pools_alike() {
        let geometries = [
            ([12, 13], [3, 3], [1, 1], [1, 1], false), // same size
            ([13, 13], [3, 3], [2, 2], [0, 0], true),  // padded, ceil_mode
            ([9, 9], [3, 3], [2, 2], [1, 1], false),
        ];
        for (input, kernel, stride, padding, ceil_mode) in geometries {
            let g = PoolGeometry {
                planes: 3,
                input,
                kernel,
                stride,
                padding,
                ceil_mode,
            };
            let [oh, ow] = g.output().unwrap();
            let x: Vec<f32> = (0..3 * input[0] * input[1]).map(|i| ((i * 7) % 11) as f32).collect();
            let walk = Walk::new(&g, 3);
            let run = |f: &dyn Fn(&mut [f32], &mut [i64])| {
                let (mut values, mut indices) = (vec![f32::NEG_INFINITY; 3 * oh * ow], vec![-1i64; 3 * oh * ow]);
                f(&mut values, &mut indices);
                (values, indices)
            };
            let portable = run(&|v, i| walk.planes_portable(&x, v, i));
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: checked on the line above.
                    assert_eq!(run(&|v, i| unsafe { walk.planes_avx2(&x, v, i) }), portable, "{g:?}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked on the line above.
                    assert_eq!(run(&|v, i| unsafe { walk.planes_avx512(&x, v, i) }), portable, "{g:?}");
                }
            }
            assert!(portable.1.iter().all(|&i| i >= 0), "{g:?}: every window holds a value");
        }
    }
}
