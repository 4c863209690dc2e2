//! The product of two packed operands, a register tile of [`MR`] × [`NR`] at a time, the
//! reductions in blocks of [`KC`] pairs.

use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::pack::{PackedLhs, PackedRhs, from_bf16};
use super::tile::{MR, NR, Rows, Tile, check};

/// Reduction pairs per block: a panel of `B` (16 KiB) stays in L1 while every block of `A`
/// passes over it.
const KC: usize = 128;

/// `dst[m, n] (+)= A · B` with bf16 products and f32 sums; `dst` row-major with rows `dst_rs`
/// apart (read first when `accumulate`). `parallel`: the blocks of rows are split over the
/// cores (each element sums in the same order either way, so the result does not depend on it).
///
/// # Panics
/// When the operands' reductions differ or `dst` is too short.
pub fn gemm(a: &PackedLhs, b: &PackedRhs, dst: (&mut [f32], usize, bool), parallel: bool) {
    assert_eq!(a.k, b.k, "bf16 gemm: the operands' reductions differ");
    let pairs = b.k.div_ceil(2);
    let packed: Vec<usize> = (0..KC.min(pairs)).map(|q| q * NR).collect();
    let panel = |panel: usize, q0: usize, kc: usize| {
        let b = &b.data[(panel * pairs + q0) * NR..][..kc * NR];
        (
            b,
            Rows {
                starts: &packed[..kc],
                bound: (kc - 1) * NR,
            },
        )
    };
    product(a, b.n, &panel, dst, parallel);
}

/// `dst[m, n] (+)= A · B` where row `q` of `B` (pairs of reductions `2q`, `2q + 1`) is `n`
/// contiguous pairs at `b[table[q]..]` — the padded image itself in a stride-1 convolution (see
/// `fast_conv::bf16_forward`). Each row must hold `n` rounded up to NR pairs (the tiles read
/// whole panels; the columns past `n` are computed and dropped).
///
/// # Panics
/// When the table does not match `a`'s reductions or a row runs past `b`.
pub fn gemm_in_place(a: &PackedLhs, (b, table): (&[u32], &[usize]), n: usize, dst: (&mut [f32], usize, bool)) {
    let pairs = a.k.div_ceil(2);
    assert!(
        table.len() == pairs,
        "bf16 gemm: {} rows for {pairs} pairs",
        table.len()
    );
    let bound = table.iter().copied().max().unwrap_or(0);
    assert!(
        n == 0 || bound + n.next_multiple_of(NR) <= b.len(),
        "bf16 gemm: right operand too short"
    );
    let panel = |panel: usize, q0: usize, kc: usize| {
        (
            &b[panel * NR..],
            Rows {
                starts: &table[q0..q0 + kc],
                bound,
            },
        )
    };
    product(a, n, &panel, dst, false);
}

/// A tile's right operand: panel `panel` (columns `panel·NR..`), pairs `q0..q0 + kc`.
type PanelOf<'a> = dyn Fn(usize, usize, usize) -> (&'a [u32], Rows<'a>) + Sync + 'a;

fn product<'a>(
    a: &PackedLhs,
    n: usize,
    b: &PanelOf<'a>,
    (dst, dst_rs, accumulate): (&mut [f32], usize, bool),
    parallel: bool,
) {
    let m = a.m;
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_rs >= n && dst.len() > (m - 1) * dst_rs + n - 1,
        "bf16 gemm: destination too short"
    );
    let dst = &mut dst[..(m - 1) * dst_rs + n];
    if a.k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let blocks = m.div_ceil(MR);
    if parallel && blocks > 1 && rayon::current_num_threads() > 1 {
        dst.par_chunks_mut(MR * dst_rs)
            .enumerate()
            .for_each(|(block, dst)| multiply(a, (n, b), block..block + 1, (dst, dst_rs, accumulate)));
    } else {
        multiply(a, (n, b), 0..blocks, (dst, dst_rs, accumulate));
    }
}

/// The tiles of row blocks `blocks` (`dst` starts at the first one's first row).
fn multiply<'a>(
    a: &PackedLhs,
    (n, b): (usize, &PanelOf<'a>),
    blocks: Range<usize>,
    (dst, dst_rs, accumulate): (&mut [f32], usize, bool),
) {
    let tile = best();
    let (m, pairs) = (a.m, a.k.div_ceil(2));
    let mut edge = [0.0f32; MR * NR];
    for q0 in (0..pairs).step_by(KC) {
        let kc = KC.min(pairs - q0);
        let add = accumulate || q0 > 0;
        for panel in 0..n.div_ceil(NR) {
            let b = b(panel, q0, kc);
            let (col0, cols) = (panel * NR, NR.min(n - panel * NR));
            for block in blocks.clone() {
                let a = &a.data[(block * pairs + q0) * MR..][..kc * MR];
                let row0 = (block - blocks.start) * MR;
                let rows = MR.min(m - block * MR);
                if rows == MR && cols == NR {
                    tile(kc, a, b, &mut dst[row0 * dst_rs + col0..], dst_rs, add);
                    continue;
                }
                // An edge tile goes through a whole tile's buffer.
                for r in 0..rows {
                    edge[r * NR..][..cols].copy_from_slice(&dst[(row0 + r) * dst_rs + col0..][..cols]);
                }
                tile(kc, a, b, &mut edge, NR, add);
                for r in 0..rows {
                    dst[(row0 + r) * dst_rs + col0..][..cols].copy_from_slice(&edge[r * NR..][..cols]);
                }
            }
        }
    }
}

/// The fastest tile this CPU has, chosen once per process.
fn best() -> Tile {
    static BEST: OnceLock<Tile> = OnceLock::new();
    *BEST.get_or_init(|| available().pop().expect("the portable tile").1)
}

/// Every tile this CPU can run, portable first, the fastest last.
pub(super) fn available() -> Vec<(&'static str, Tile)> {
    let mut tiles: Vec<(&'static str, Tile)> = vec![("portable", portable)];
    #[cfg(target_arch = "x86_64")]
    if super::tile::supported() {
        tiles.push(("avx512bf16", super::x86::tile));
    }
    tiles
}

/// The tile in plain Rust, summing as `VDPBF16PS` does: per pair the high product, then the low.
fn portable(kc: usize, a: &[u32], (b, rows): (&[u32], Rows<'_>), c: &mut [f32], c_rs: usize, add: bool) {
    check(kc, a, (b, rows), c, c_rs);
    let mut acc = [[0.0f32; NR]; MR];
    if add {
        for (r, row) in acc.iter_mut().enumerate() {
            row.copy_from_slice(&c[r * c_rs..][..NR]);
        }
    }
    let halves = |pair: u32| (from_bf16(pair as u16), from_bf16((pair >> 16) as u16));
    for (a, &start) in a.chunks_exact(MR).zip(rows.starts).take(kc) {
        let b: [(f32, f32); NR] = std::array::from_fn(|j| halves(b[start + j]));
        for (row, &a) in acc.iter_mut().zip(a) {
            let (a_lo, a_hi) = halves(a);
            for (sum, (b_lo, b_hi)) in row.iter_mut().zip(b) {
                // Each product of two bf16 values is exact in f32: one rounding per addition.
                *sum = (*sum + a_hi * b_hi) + a_lo * b_lo;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        c[r * c_rs..][..NR].copy_from_slice(row);
    }
}

#[cfg(test)]
#[path = "gemm_tests.rs"]
mod tests;
