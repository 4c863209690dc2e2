//! The register tile of [`super::matmul`]: `tile[MR × NR] += A_block · B_panel` over `kc`
//! reductions, in three versions chosen once per process from what the CPU has — AVX-512
//! (16 accumulators of 16 floats), AVX2 + FMA (the tile in four 4 × 16 quarters of 8
//! accumulators each), and portable Rust for everything else. One binary runs on all of them.
//!
//! The versions differ in rounding (fused multiply-add or not), never in the order of the sums,
//! and a process always uses the same one, so results are repeatable on a machine.

use std::sync::OnceLock;

/// Rows of a tile (output channels in the forward pass).
pub(super) const MR: usize = 8;
/// Columns of a tile (output pixels in the forward pass).
pub(super) const NR: usize = 32;

/// The operands of one tile: `a` with element `(r, p)` at `r · a_strides[0] + p · a_strides[1]`;
/// `b` with row `p` (NR floats) at `b_rows[p]` (`kc` entries); `c` the tile's MR rows of NR
/// floats, `c_rs` apart, read first when `add`.
pub(super) struct Tile<'a> {
    pub kc: usize,
    pub a: &'a [f32],
    pub a_strides: [usize; 2],
    pub b: &'a [f32],
    pub b_rows: RowTable<'a>,
    pub c: &'a mut [f32],
    pub c_rs: usize,
    pub add: bool,
}

/// Where each row of `B` starts, with a bound on all of them computed once (so a tile checks
/// its reads in constant time).
#[derive(Clone, Copy)]
pub(super) struct RowTable<'a> {
    rows: &'a [usize],
    bound: usize,
}

impl<'a> RowTable<'a> {
    pub(super) fn new(rows: &'a [usize]) -> Self {
        Self {
            rows,
            bound: rows.iter().copied().max().unwrap_or(0),
        }
    }

    /// Rows `k0..k0 + kc` (the bound stays that of the whole table).
    pub(super) fn window(self, k0: usize, kc: usize) -> Self {
        Self {
            rows: &self.rows[k0..][..kc],
            bound: self.bound,
        }
    }

    pub(super) fn as_ptr(&self) -> *const usize {
        self.rows.as_ptr()
    }
}

/// `c (+)= A · B` for one tile.
pub(super) type Kernel = fn(Tile<'_>);

/// Rows and columns of a dot-product tile (see [`DotKernel`]).
pub(super) const DOT: usize = 4;

/// `out[i·DOT + j] = Σ_p a[i][p] · b[j][p]` over `k` values of each row: a tile of dot products
/// along rows that are contiguous in memory, for products whose reduction runs along both
/// operands' rows (the weight gradient), so nothing needs packing. Each row holds `k` floats.
pub(super) type DotKernel = fn(usize, [&[f32]; DOT], [&[f32]; DOT], &mut [f32; DOT * DOT]);

/// `c[8 × 16·NV] (+)= A · B` over `kc` reductions with `A`'s 8 rows given as pointers (each
/// contiguous along the reduction: windows of a padded image) and `B` dense (`kc` rows of
/// `16·NV` floats, `b_rs` apart): the weight gradient's product in broadcast form (see
/// [`super::matmul::gemm_rows`]). AVX-512 only; elsewhere the dot-product tile does this work.
pub(crate) struct RowsKernel {
    /// One 16-float vector of columns per tile.
    pub narrow: unsafe fn(usize, [*const f32; 8], (*const f32, usize), (*mut f32, usize), bool),
    /// Two vectors (32 columns) per tile.
    pub wide: unsafe fn(usize, [*const f32; 8], (*const f32, usize), (*mut f32, usize), bool),
}

/// The broadcast-form tile where the CPU has AVX-512 and `CNN_ROWS_KERNEL` does not decline it,
/// else `None`.
pub(crate) fn rows_kernel() -> Option<&'static RowsKernel> {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: RowsKernel = RowsKernel {
            narrow: x86::avx512_rows_tile::<1>,
            wide: x86::avx512_rows_tile::<2>,
        };
        static HAS_AVX512: OnceLock<bool> = OnceLock::new();
        if crate::Kernel::RowsKernel.enabled() && *HAS_AVX512.get_or_init(|| is_x86_feature_detected!("avx512f")) {
            return Some(&AVX512);
        }
    }
    None
}

/// `c[pixels × 16·vectors] (+)= Σ_p x[table[p] + j] · w[p·w_rs ..]` over `kc` reductions: the
/// implicit forward's product with output channels along the vectors and input pixels
/// broadcast (see [`super::implicit`]). AVX-512 only.
pub(super) struct PixelsKernel {
    /// Output channels per tile, in 16-float vectors.
    pub vectors: usize,
    /// Pixels per tile.
    pub pixels: usize,
    /// Reductions per block: `reductions × 16·vectors` floats of weights (32 KiB) stay in L1.
    pub reductions: usize,
    /// The tile: `(kc, (w, w_rs), (x, table), (c, c_rs), add)`.
    pub tile: unsafe fn(usize, (*const f32, usize), (*const f32, *const usize), (*mut f32, usize), bool),
}

/// The pixel tile for `out_ch` output channels where the CPU has AVX-512 and
/// `CNN_PIXELS_KERNEL` does not decline it: 64 channels × 6 pixels (24 accumulators, 4 loads
/// and 6 broadcasts per 24 multiply-adds) when they are a multiple of 64, 32 × 12 when of 32;
/// else `None`.
pub(super) fn pixels_kernel(out_ch: usize) -> Option<&'static PixelsKernel> {
    #[cfg(target_arch = "x86_64")]
    {
        static WIDE: PixelsKernel = PixelsKernel {
            vectors: 4,
            pixels: 6,
            reductions: 128,
            tile: x86::avx512_pixels_tile::<4, 6>,
        };
        static NARROW: PixelsKernel = PixelsKernel {
            vectors: 2,
            pixels: 12,
            reductions: 256,
            tile: x86::avx512_pixels_tile::<2, 12>,
        };
        static HAS_AVX512: OnceLock<bool> = OnceLock::new();
        if crate::Kernel::PixelsKernel.enabled() && *HAS_AVX512.get_or_init(|| is_x86_feature_detected!("avx512f")) {
            if out_ch % 64 == 0 {
                return Some(&WIDE);
            }
            if out_ch % 32 == 0 {
                return Some(&NARROW);
            }
        }
    }
    let _ = out_ch;
    None
}

static BEST: OnceLock<Kernel> = OnceLock::new();
static BEST_DOT: OnceLock<DotKernel> = OnceLock::new();

/// The fastest version this CPU runs.
pub(super) fn best() -> Kernel {
    *BEST.get_or_init(|| available().last().map(|(_, k)| *k).unwrap_or(portable))
}

/// The fastest dot-product tile this CPU runs.
pub(super) fn best_dot() -> DotKernel {
    *BEST_DOT.get_or_init(|| available_dot().last().map(|(_, k)| *k).unwrap_or(portable_dot))
}

/// Every dot-product tile this CPU runs, by name, slowest first.
pub(super) fn available_dot() -> Vec<(&'static str, DotKernel)> {
    #[allow(unused_mut)]
    let mut kernels: Vec<(&'static str, DotKernel)> = vec![("portable", portable_dot)];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(("avx2+fma", x86::avx2_dot));
        }
        if is_x86_feature_detected!("avx512f") {
            kernels.push(("avx512f", x86::avx512_dot));
        }
    }
    kernels
}

/// Every version this CPU runs, by name, slowest first (the tests check each one).
pub(super) fn available() -> Vec<(&'static str, Kernel)> {
    #[allow(unused_mut)]
    let mut kernels: Vec<(&'static str, Kernel)> = vec![("portable", portable)];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            kernels.push(("avx2+fma", x86::avx2));
        }
        if is_x86_feature_detected!("avx512f") {
            kernels.push(("avx512f", x86::avx512));
        }
    }
    kernels
}

fn check(t: &Tile<'_>) {
    let span = |rows: usize, rs: usize| if rows == 0 { 0 } else { (rows - 1) * rs + NR };
    let [a_rs, a_cs] = t.a_strides;
    assert!(
        t.kc == 0 || t.a.len() > (MR - 1) * a_rs + (t.kc - 1) * a_cs,
        "micro-kernel: A too short"
    );
    assert!(t.b_rows.rows.len() >= t.kc, "micro-kernel: B's row table too short");
    assert!(t.b_rows.bound + NR <= t.b.len(), "micro-kernel: B too short");
    assert!(t.c.len() >= span(MR, t.c_rs), "micro-kernel: C too short");
}

/// Plain loops the compiler vectorises for the target's baseline (SSE2 on x86-64, NEON on
/// aarch64).
fn portable(t: Tile<'_>) {
    check(&t);
    let mut acc = [[0.0f32; NR]; MR];
    if t.add {
        for (r, row) in acc.iter_mut().enumerate() {
            row.copy_from_slice(&t.c[r * t.c_rs..][..NR]);
        }
    }
    for p in 0..t.kc {
        let b: &[f32; NR] = t.b[t.b_rows.rows[p]..][..NR].try_into().expect("NR floats");
        let [a_rs, a_cs] = t.a_strides;
        for (r, row) in acc.iter_mut().enumerate() {
            let a = t.a[r * a_rs + p * a_cs];
            row.iter_mut().zip(b).for_each(|(c, b)| *c += a * b);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        t.c[r * t.c_rs..][..NR].copy_from_slice(row);
    }
}

/// Lanes of the portable dot products' partial sums (the compiler vectorises across them).
const LANES: usize = 8;

fn portable_dot(k: usize, a: [&[f32]; DOT], b: [&[f32]; DOT], out: &mut [f32; DOT * DOT]) {
    let body = k - k % LANES;
    for (i, a) in a.iter().enumerate() {
        for (j, b) in b.iter().enumerate() {
            let mut lanes = [0.0f32; LANES];
            for (a, b) in a[..body].chunks_exact(LANES).zip(b[..body].chunks_exact(LANES)) {
                lanes
                    .iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(l, (a, b))| *l += a * b);
            }
            out[i * DOT + j] = lanes.iter().sum::<f32>() + tail(k, body, a, b);
        }
    }
}

fn check_dot(k: usize, a: &[&[f32]; DOT], b: &[&[f32]; DOT]) {
    assert!(
        a.iter().chain(b).all(|row| row.len() >= k),
        "dot kernel: rows too short"
    );
}

/// `Σ a[body..k] · b[body..k]`: the part of a dot product after the vector lanes.
fn tail(k: usize, body: usize, a: &[f32], b: &[f32]) -> f32 {
    a[body..k].iter().zip(&b[body..k]).map(|(a, b)| a * b).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests {
    use super::*;

    /// Each version this CPU runs gives the tile of the direct sums.
    #[test]
    fn every_version_computes_the_tile() {
        let kc = 37;
        // A read in place from a wider, transposed matrix: element (r, p) at r + p·(MR + 2).
        let a_strides = [1, MR + 2];
        let a: Vec<f32> = (0..kc * (MR + 2)).map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0).collect();
        // B read with a row stride wider than the tile, C inside a wider matrix.
        let (b_rs, c_rs) = (NR + 5, NR + 3);
        let b: Vec<f32> = (0..kc * b_rs).map(|i| ((i * 13) % 23) as f32 / 11.0 - 1.0).collect();
        let start: Vec<f32> = (0..MR * c_rs).map(|i| i as f32 / 100.0).collect();
        for (name, kernel) in available() {
            for add in [false, true] {
                let mut c = start.clone();
                let b_rows: Vec<usize> = (0..kc).map(|p| p * b_rs).collect();
                let b_rows = RowTable::new(&b_rows);
                kernel(Tile {
                    kc,
                    a: &a,
                    a_strides,
                    b: &b,
                    b_rows,
                    c: &mut c,
                    c_rs,
                    add,
                });
                for r in 0..MR {
                    for col in 0..c_rs {
                        let at = r * c_rs + col;
                        if col >= NR {
                            assert_eq!(c[at], start[at], "{name}: outside the tile");
                            continue;
                        }
                        let products: f64 = (0..kc)
                            .map(|p| a[r + p * (MR + 2)] as f64 * b[p * b_rs + col] as f64)
                            .sum();
                        let sum = products + if add { start[at] as f64 } else { 0.0 };
                        assert!(
                            (c[at] as f64 - sum).abs() < 1e-4,
                            "{name} add={add} ({r},{col}): {} vs {sum}",
                            c[at]
                        );
                    }
                }
            }
        }
        println!(
            "micro-kernels checked: {:?}",
            available().iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
    }

    /// Each dot-product tile this CPU runs gives the direct sums, tails included.
    #[test]
    fn every_dot_version_computes_the_tile() {
        for k in [0, 5, 16, 37, 100] {
            let rows: Vec<Vec<f32>> = (0..2 * DOT)
                .map(|r| (0..k + 3).map(|p| ((p * 31 + r * 7) % 17) as f32 / 8.0 - 1.0).collect())
                .collect();
            let a: [&[f32]; DOT] = std::array::from_fn(|i| &rows[i][..]);
            let b: [&[f32]; DOT] = std::array::from_fn(|j| &rows[DOT + j][..]);
            for (name, kernel) in available_dot() {
                let mut out = [f32::NAN; DOT * DOT];
                kernel(k, a, b, &mut out);
                for i in 0..DOT {
                    for j in 0..DOT {
                        let sum: f64 = (0..k).map(|p| a[i][p] as f64 * b[j][p] as f64).sum();
                        let got = out[i * DOT + j] as f64;
                        assert!((got - sum).abs() < 1e-4, "{name} k={k} ({i},{j}): {got} vs {sum}");
                    }
                }
            }
        }
    }
}
