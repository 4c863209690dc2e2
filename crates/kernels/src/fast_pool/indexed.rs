//! Max pooling with indices (training's forward pass), offset by offset: each offset `(ky, kx)`
//! of the window is offered to a run of outputs at once, with selects the compiler vectorises.
//! A window at a time is scalar and branchy: GoogLeNet's pools took 17–20% of its bf16 training
//! step so (`perf`, 96 px, batch 16).
//!
//! The offsets run in the window's row-major order, so every output sees its values in the order
//! of the window-at-a-time walk and keeps the same one: the first value, then any greater one or
//! a NaN (burn-flex's rule), and its index `y·W + x` within the plane.

use super::kernel::PoolGeometry;

/// How one call's planes are walked, worked out once per call.
pub(super) struct Walk {
    g: PoolGeometry,
    output: [usize; 2],
    route: Route,
}

enum Route {
    /// Stride 1 keeping the size (Inception's 3×3 pad-1 branches): a plane's outputs and their
    /// inputs are one flat run each, an offset apart, so each offset is offered to the whole plane
    /// at once (rows of 12, 6 or 3 outputs are too short to vectorise); `column[i]` is output
    /// `i`'s column, to mask the outputs whose window column falls off the image.
    SameSize { column: Vec<u32> },
    /// Anything else (strides of 2 and more: rows of 24, 12, 6 or 3 outputs), through a padded
    /// copy of the plane: `origin[i]` is where output `i`'s window starts in it, and `index`
    /// gives each padded position's index in the plane (−1 in the padding, never taken), so each
    /// offset is again offered to the whole plane at once.
    Padded {
        size: [usize; 2],
        origin: Vec<u32>,
        index: Vec<i64>,
    },
}

impl Walk {
    pub(super) fn new(g: &PoolGeometry) -> Self {
        let output = g.output().expect("pool geometry checked by the caller");
        let [h, w] = g.input;
        let route = if g.stride == [1, 1] && output == g.input {
            Route::SameSize {
                column: (0..h * w).map(|i| (i % w) as u32).collect(),
            }
        } else {
            let ([kh, kw], [sy, sx], [py, px]) = (g.kernel, g.stride, g.padding);
            let [oh, ow] = output;
            // Room for every window, ceil_mode's last ones included.
            let size = [
                (h + 2 * py).max((oh - 1) * sy + kh),
                (w + 2 * px).max((ow - 1) * sx + kw),
            ];
            let origin = (0..oh * ow)
                .map(|i| ((i / ow) * sy * size[1] + (i % ow) * sx) as u32)
                .collect();
            let index = (0..size[0] * size[1])
                .map(|p| {
                    let (y, x) = ((p / size[1]).wrapping_sub(py), (p % size[1]).wrapping_sub(px));
                    if y < h && x < w { (y * w + x) as i64 } else { -1 }
                })
                .collect();
            Route::Padded { size, origin, index }
        };
        Walk { g: *g, output, route }
    }

    /// Pools whole planes: `src` `[n, H, W]` into `values` and `indices` `[n, OH, OW]`, which
    /// come filled with −∞ and −1 (no value yet).
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
        let ([h, w], [oh, ow]) = (self.g.input, self.output);
        let mut padded = match &self.route {
            Route::Padded { size, .. } => vec![f32::NEG_INFINITY; size[0] * size[1]],
            Route::SameSize { .. } => Vec::new(),
        };
        let planes = src.chunks_exact(h * w).zip(values.chunks_exact_mut(oh * ow));
        for ((src, values), indices) in planes.zip(indices.chunks_exact_mut(oh * ow)) {
            match &self.route {
                Route::SameSize { column } => self.same_size(column, src, values, indices),
                Route::Padded { size, origin, index } => {
                    self.padded(*size, (origin, index), &mut padded, src, values, indices)
                }
            }
        }
    }

    #[inline(always)]
    fn same_size(&self, column: &[u32], src: &[f32], values: &mut [f32], indices: &mut [i64]) {
        let ([h, w], [kh, kw], [py, px]) = (self.g.input, self.g.kernel, self.g.padding);
        let (h, w) = (h as isize, w as isize);
        for ky in 0..kh {
            for kx in 0..kw {
                let (dy, dx) = (ky as isize - py as isize, kx as isize - px as isize);
                let offset = dy * w + dx;
                // The outputs whose window row is in the image and whose input stays in the plane.
                let first = ((-dy).max(0) * w).max(-offset) as usize;
                let end = ((h - dy).min(h) * w).min(h * w - offset).max(0) as usize;
                if first >= end {
                    continue;
                }
                let columns = (-dx).max(0) as u32..(w - dx).min(w) as u32;
                let inputs = &src[(first as isize + offset) as usize..][..end - first];
                let at = first as i64 + offset as i64;
                let outputs = values[first..end].iter_mut().zip(&mut indices[first..end]);
                for (i, ((&v, &c), (b, k))) in inputs.iter().zip(&column[first..end]).zip(outputs).enumerate() {
                    let take = (c >= columns.start) & (c < columns.end) & better(v, *b, *k);
                    *b = if take { v } else { *b };
                    *k = if take { at + i as i64 } else { *k };
                }
            }
        }
    }

    #[inline(always)]
    fn padded(
        &self,
        [_, pw]: [usize; 2],
        (origin, index): (&[u32], &[i64]),
        padded: &mut [f32],
        src: &[f32],
        values: &mut [f32],
        indices: &mut [i64],
    ) {
        let ([_, w], [kh, kw], [py, px]) = (self.g.input, self.g.kernel, self.g.padding);
        for (y, row) in src.chunks_exact(w).enumerate() {
            padded[(y + py) * pw + px..][..w].copy_from_slice(row);
        }
        for offset in (0..kh).flat_map(|ky| (0..kw).map(move |kx| ky * pw + kx)) {
            for ((&o, b), k) in origin.iter().zip(values.iter_mut()).zip(indices.iter_mut()) {
                let at = o as usize + offset;
                // SAFETY: `size` holds every window (`Walk::new`), and `padded` and `index` are `size` long.
                let (v, from) = unsafe { (*padded.get_unchecked(at), *index.get_unchecked(at)) };
                let take = (from >= 0) & better(v, *b, *k);
                *b = if take { v } else { *b };
                *k = if take { from } else { *k };
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
            let walk = Walk::new(&g);
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
