//! Our own single-precision matrix product for the convolution passes: an 8 × 32 register
//! tile, the reduction dimension in blocks of [`KC`], and operands read where they lie.
//!
//! Why not the `gemm` crate (what burn-flex uses): on the convolutions' shapes — 16 to 64 rows
//! (output channels), hundreds of reductions, thousands of columns, called once per chunk of
//! images — it spent as long packing and setting up as multiplying (a ResNet-20 training step:
//! 17% of the time in its packing and blocking code beside 22% in its micro-kernels). Here
//! the left operand is read in place in whole blocks of [`MR`] rows with any strides (the
//! micro-kernel broadcasts one value at a time), the right operand in whole panels of [`NR`]
//! columns wherever its rows are contiguous — given by a table of where each row starts, which
//! is how [`super::implicit`] multiplies straight out of a padded image with no column matrix —
//! and only edges are packed. Every tile sums its products in the same order whatever the
//! thread count, and the micro-kernel is chosen once per process from what the CPU has (see
//! [`super::microkernel`]).

use std::cell::RefCell;

use rayon::prelude::*;

use super::microkernel::{self, DOT, MR, NR, RowTable, Tile};

/// Reductions per block: an `A` block (8 KiB) and a `B` panel (32 KiB) stay in L1/L2 while a
/// row of tiles is computed.
const KC: usize = 256;

thread_local! {
    /// Packed edges of both operands and the packed edge's row table, reused from call to call
    /// on this thread.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>, Vec<usize>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Floats of `rows × k` packed in blocks of `block` rows.
fn packed_len(rows: usize, k: usize, block: usize) -> usize {
    rows.div_ceil(block) * block * k
}

/// Packs `src` (`rows × k`, element `(i, p)` at `i·rs + p·cs`) into `[⌈rows/BLOCK⌉][k][BLOCK]`,
/// zeros past the last row.
fn pack<const BLOCK: usize>(rows: usize, k: usize, src: &[f32], [rs, cs]: [usize; 2], dst: &mut [f32]) {
    for (block, dst) in dst.chunks_exact_mut(BLOCK * k).enumerate() {
        let first = block * BLOCK;
        let valid = BLOCK.min(rows - first);
        for (p, dst) in dst.chunks_exact_mut(BLOCK).enumerate() {
            let base = p * cs + first * rs;
            dst[..valid]
                .iter_mut()
                .enumerate()
                .for_each(|(i, d)| *d = src[base + i * rs]);
            dst[valid..].fill(0.0);
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`: `dst` row-major with rows `dst_rs` apart (read
/// first when accumulating), `lhs` element `(i, p)` at `i·strides[0] + p·strides[1]`, `rhs`
/// element `(p, j)` at `rows[p] + j` (rows contiguous, anywhere in the slice);
/// `parallel`: the rows of tiles are split over the cores (each tile's sums keep their order,
/// so the result does not depend on it).
pub(super) fn gemm(
    [m, n, k]: [usize; 3],
    (dst, dst_rs, accumulate): (&mut [f32], usize, bool),
    (lhs, [lhs_rs, lhs_cs]): (&[f32], [usize; 2]),
    (rhs, rhs_rows): (&[f32], &[usize]),
    parallel: bool,
) {
    let span = |rows: usize, cols: usize, [rs, cs]: [usize; 2]| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(dst.len() >= span(m, n, [dst_rs, 1]), "gemm: destination too short");
    assert!(
        lhs.len() >= span(m, k, [lhs_rs, lhs_cs]),
        "gemm: left operand too short"
    );
    assert!(rhs_rows.len() >= k, "gemm: row table too short");
    assert!(
        n == 0 || rhs_rows[..k].iter().all(|&r| r + n <= rhs.len()),
        "gemm: right operand too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let (a_buf, b_buf, table) = (&mut scratch.0, &mut scratch.1, &mut scratch.2);
    let a = LhsBlocks::new(m, k, lhs, [lhs_rs, lhs_cs], a_buf);
    let b = Panels::new([n, k], (rhs, &rhs_rows[..k]), b_buf, table);
    let shape = MatrixShape { m, n, k };
    let run = |first_block: usize, dst: &mut [f32]| multiply(shape, first_block, &a, &b, dst, dst_rs, accumulate);
    if parallel && m > MR && rayon::current_num_threads() > 1 {
        let rows = &mut dst[..(m - 1) * dst_rs + n];
        // Whole row blocks; the last may be shorter than MR rows.
        rows.par_chunks_mut(MR * dst_rs)
            .enumerate()
            .for_each(|(block, dst)| run(block, dst));
    } else {
        run(0, dst);
    }
    SCRATCH.with(|s| *s.borrow_mut() = scratch);
}

/// `dst[m, n] (+)= a[m, k] · b[n, k]ᵀ` with every row contiguous — row `i` of `a` at
/// `i·a_rs`, row `j` of `b` at `b_rows[j]` — the weight gradient's product: a tile of [`DOT`] ×
/// [`DOT`] dot products at a time along the rows, nothing packed. `parallel`: the rows of tiles
/// are split over the cores (each dot product's order is fixed, so the result does not depend
/// on it).
pub(super) fn gemm_nt(
    [m, n, k]: [usize; 3],
    (dst, dst_rs, accumulate): (&mut [f32], usize, bool),
    (a, a_rs): (&[f32], usize),
    (b, b_rows): (&[f32], &[usize]),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let kernel = microkernel::best_dot();
    let run = |block: usize, dst: &mut [f32]| {
        let first = block * DOT;
        let a_rows: [&[f32]; DOT] = std::array::from_fn(|i| &a[(first + i).min(m - 1) * a_rs..][..k]);
        let mut out = [0.0f32; DOT * DOT];
        for col0 in (0..n).step_by(DOT) {
            let b_rows: [&[f32]; DOT] = std::array::from_fn(|j| &b[b_rows[(col0 + j).min(n - 1)]..][..k]);
            kernel(k, a_rows, b_rows, &mut out);
            for i in 0..DOT.min(m - first) {
                let dst = &mut dst[i * dst_rs + col0..][..DOT.min(n - col0)];
                for (d, v) in dst.iter_mut().zip(&out[i * DOT..]) {
                    *d = if accumulate { *d + v } else { *v };
                }
            }
        }
    };
    assert!(dst.len() > (m - 1) * dst_rs + n - 1, "gemm_nt: destination too short");
    let rows = &mut dst[..(m - 1) * dst_rs + n];
    if parallel && m > DOT && rayon::current_num_threads() > 1 {
        rows.par_chunks_mut(DOT * dst_rs)
            .enumerate()
            .for_each(|(block, dst)| run(block, dst));
    } else {
        rows.chunks_mut(DOT * dst_rs)
            .enumerate()
            .for_each(|(block, dst)| run(block, dst));
    }
}

/// `dst[m, n] (+)= Σ_p a[a_rows[m] + p] · b[p·n_pad + n]` with `kernel` (see
/// [`microkernel::rows_kernel`]): the weight gradient in broadcast form, `dWᵀ = col · dYᵀ`, where row `j`
/// of `col` is a window of the padded image (`a_rows`, unit stride along the reduction) and
/// `b` is dY transposed, `k` rows of `n_pad` floats (`n` rounded up to 16, zeros past `n`).
/// `dst` holds `m` rounded up to 8 rows of `n_pad` floats; its padding rows and columns get
/// values that mean nothing. Each element sums its `k` products in order, in blocks of [`KC`],
/// whatever the thread count; `parallel`: blocks of 8 rows are split over the cores.
pub(super) fn gemm_rows(
    kernel: &microkernel::RowsKernel,
    [m, n_pad, k]: [usize; 3],
    (dst, accumulate): (&mut [f32], bool),
    (a, a_rows): (&[f32], &[usize]),
    b: &[f32],
    parallel: bool,
) {
    assert!(n_pad % 16 == 0 && a_rows.len() >= m, "gemm_rows: bad shape");
    assert!(dst.len() >= m.div_ceil(MR) * MR * n_pad, "gemm_rows: destination too short");
    assert!(b.len() >= k * n_pad, "gemm_rows: right operand too short");
    assert!(a_rows[..m].iter().all(|&r| r + k <= a.len()), "gemm_rows: left operand too short");
    if m == 0 || n_pad == 0 || k == 0 {
        return;
    }
    let width = if n_pad % 32 == 0 { 32 } else { 16 };
    let tile = if width == 32 { kernel.wide } else { kernel.narrow };
    let run = |first: usize, dst: &mut [f32]| {
        for n0 in (0..n_pad).step_by(width) {
            for k0 in (0..k).step_by(KC) {
                let kc = KC.min(k - k0);
                for (block, c) in dst.chunks_exact_mut(MR * n_pad).enumerate() {
                    let row0 = (first + block) * MR;
                    // Rows past `m` repeat the last one; their results are never read.
                    let rows: [*const f32; MR] = std::array::from_fn(|r| a[a_rows[(row0 + r).min(m - 1)] + k0..].as_ptr());
                    // SAFETY: rows_kernel() gave this kernel for this CPU; the asserts above bound `a` (k
                    // floats from every row start), `b` (k rows of n_pad) and `c` (8 rows).
                    unsafe {
                        tile(
                            kc,
                            rows,
                            (b[k0 * n_pad + n0..].as_ptr(), n_pad),
                            (c[n0..].as_mut_ptr(), n_pad),
                            accumulate || k0 > 0,
                        )
                    };
                }
            }
        }
    };
    let rows = &mut dst[..m.div_ceil(MR) * MR * n_pad];
    if parallel && m > MR && rayon::current_num_threads() > 1 {
        rows.par_chunks_mut(MR * n_pad)
            .enumerate()
            .for_each(|(block, dst)| run(block, dst));
    } else {
        run(0, rows);
    }
}

/// `dw[o, j] = dwt[j, o]` for the `rows` rows of `dwt` (`n_pad` floats apart) and its first
/// `out_ch` columns: the weight gradient out of [`gemm_rows`]' transposed product.
pub(super) fn untranspose(dwt: &[f32], n_pad: usize, [rows, out_ch]: [usize; 2], dw: &mut [f32]) {
    for (j, row) in dwt.chunks_exact(n_pad).take(rows).enumerate() {
        for (o, &v) in row[..out_ch].iter().enumerate() {
            dw[o * rows + j] = v;
        }
    }
}

/// Row `y` of every channel of one image's dY (`[out_ch, oh, ow]`) into `dst` as `[ow][n_pad]`,
/// zeros in the padding channels: in blocks of 16 channels × 16 columns through a local tile, so
/// each read is a run of 16 floats of one plane (column by column, each of 16 reads touched
/// another plane, 4 KiB apart at 32×32: ~23% of ResNet-20's 16-channel weight gradient).
pub(super) fn transpose_row(dy: &[f32], [out_ch, oh, ow]: [usize; 3], y: usize, dst: &mut [f32], n_pad: usize) {
    const B: usize = 16;
    for o0 in (0..n_pad).step_by(B) {
        for x0 in (0..ow).step_by(B) {
            let width = B.min(ow - x0);
            let mut tile = [[0.0f32; B]; B];
            for (o, row) in tile.iter_mut().enumerate().take(out_ch.saturating_sub(o0)) {
                row[..width].copy_from_slice(&dy[((o0 + o) * oh + y) * ow + x0..][..width]);
            }
            for x in 0..width {
                let d: &mut [f32; B] = (&mut dst[(x0 + x) * n_pad + o0..][..B]).try_into().expect("16 floats");
                *d = std::array::from_fn(|o| tile[o][x]);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct MatrixShape {
    m: usize,
    n: usize,
    k: usize,
}

/// `A` as blocks of [`MR`] rows: whole blocks read in place, the last partial one packed.
struct LhsBlocks<'a> {
    src: &'a [f32],
    strides: [usize; 2],
    whole: usize,
    packed: &'a [f32],
}

impl<'a> LhsBlocks<'a> {
    fn new(m: usize, k: usize, src: &'a [f32], strides: [usize; 2], buf: &'a mut Vec<f32>) -> Self {
        let whole = m / MR;
        let rest = m - whole * MR;
        let len = packed_len(rest, k, MR);
        buf.resize(buf.len().max(len), 0.0);
        if rest > 0 {
            pack::<MR>(rest, k, &src[whole * MR * strides[0]..], strides, &mut buf[..len]);
        }
        Self {
            src,
            strides,
            whole,
            packed: &buf[..len],
        }
    }

    /// Block `block` from reduction `k0` on, and its strides (between rows, between reductions).
    fn at(&self, block: usize, k0: usize, k: usize) -> (&[f32], [usize; 2]) {
        let [rs, cs] = self.strides;
        if block < self.whole {
            (&self.src[block * MR * rs + k0 * cs..], self.strides)
        } else {
            (&self.packed[(block - self.whole) * MR * k + k0 * MR..], [1, MR])
        }
    }
}

/// `B` as panels of [`NR`] columns: whole panels read in place through a table of where each
/// row starts, the last partial one packed.
struct Panels<'a> {
    src: &'a [f32],
    rows: RowTable<'a>,
    whole: usize,
    packed: &'a [f32],
    packed_rows: RowTable<'a>,
}

impl<'a> Panels<'a> {
    fn new(
        [n, k]: [usize; 2],
        (src, rows): (&'a [f32], &'a [usize]),
        buf: &'a mut Vec<f32>,
        table: &'a mut Vec<usize>,
    ) -> Self {
        let whole = n / NR;
        let len = packed_len(n - whole * NR, k, NR);
        buf.resize(buf.len().max(len), 0.0);
        let packed = &mut buf[..len];
        for (dst, p) in packed.chunks_exact_mut(NR).zip(0..k) {
            let valid = n - whole * NR;
            dst[..valid].copy_from_slice(&src[rows[p] + whole * NR..][..valid]);
            dst[valid..].fill(0.0);
        }
        table.clear();
        table.extend((0..k).map(|p| p * NR));
        Self {
            src,
            rows: RowTable::new(rows),
            whole,
            packed,
            packed_rows: RowTable::new(table),
        }
    }

    /// Panel `panel` from reduction `k0` on: the floats and where each of the `kc` rows starts.
    fn at(&self, panel: usize, k0: usize, kc: usize, k: usize) -> (&[f32], RowTable<'_>) {
        if panel < self.whole {
            (&self.src[panel * NR..], self.rows.window(k0, kc))
        } else {
            (
                &self.packed[(panel - self.whole) * NR * k..],
                self.packed_rows.window(k0, kc),
            )
        }
    }
}

/// The tiles of `dst` from row block `first_block` on (as many as `dst` holds rows for).
fn multiply(
    MatrixShape { m, n, k }: MatrixShape,
    first_block: usize,
    a: &LhsBlocks<'_>,
    b: &Panels<'_>,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
) {
    let kernel = microkernel::best();
    let rows_here = dst.len().div_ceil(dst_rs);
    let last_block = (first_block + rows_here.div_ceil(MR)).min(m.div_ceil(MR));
    let mut edge = [0.0f32; MR * NR];
    let blocks = first_block..last_block;
    let panels = 0..n.div_ceil(NR);
    // The larger operand is walked once per reduction block, the smaller one (a `B` panel or an
    // `A` block, then in L1/L2) once per tile: weights of 9 MiB against 64 columns read once,
    // not once per panel.
    let a_outer = m > n;
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let add = accumulate || k0 > 0;
        let (outer, inner) = if a_outer {
            (blocks.clone(), panels.clone())
        } else {
            (panels.clone(), blocks.clone())
        };
        for i in outer {
            for j in inner.clone() {
                let (block, panel) = if a_outer { (i, j) } else { (j, i) };
                let (b, b_rows) = b.at(panel, k0, kc, k);
                let (col0, cols) = (panel * NR, NR.min(n - panel * NR));
                let (a, a_strides) = a.at(block, k0, k);
                let row0 = (block - first_block) * MR;
                let rows = MR.min(m - block * MR);
                let whole = rows == MR && cols == NR && (row0 + MR - 1) * dst_rs + col0 + NR <= dst.len();
                if whole {
                    let c = &mut dst[row0 * dst_rs + col0..];
                    kernel(Tile {
                        kc,
                        a,
                        a_strides,
                        b,
                        b_rows,
                        c,
                        c_rs: dst_rs,
                        add,
                    });
                    continue;
                }
                // An edge tile goes through a whole tile's buffer.
                for r in 0..rows {
                    let src = &dst[(row0 + r) * dst_rs + col0..][..cols];
                    edge[r * NR..][..cols].copy_from_slice(src);
                }
                kernel(Tile {
                    kc,
                    a,
                    a_strides,
                    b,
                    b_rows,
                    c: &mut edge,
                    c_rs: NR,
                    add,
                });
                for r in 0..rows {
                    dst[(row0 + r) * dst_rs + col0..][..cols].copy_from_slice(&edge[r * NR..][..cols]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::testing::test_values as values;

    /// Every edge case of the tiling: shapes below, at and above MR, NR and KC (both loop
    /// orders), `A` in place or transposed, `B` rows scattered through their table, accumulating
    /// or not, serial and parallel; and the same products as dot products ([`gemm_nt`]).
    #[test]
    fn products_match_the_direct_sums() {
        let shapes = [
            [1, 1, 1],
            [3, 5, 2],
            [8, 32, 7],
            [9, 33, 300],
            [17, 70, 513],
            [40, 9, 9],
            [16, 1, 9],
        ];
        for [m, n, k] in shapes {
            for (transposed, accumulate, parallel) in [
                (false, false, false),
                (true, true, false),
                (false, true, true),
                (true, false, true),
            ] {
                let lhs = values(m * k, 1);
                let lhs_s = if transposed { [1, m] } else { [k, 1] };
                let a = |i: usize, p: usize| lhs[i * lhs_s[0] + p * lhs_s[1]] as f64;
                // `B`'s rows in reverse order with gaps between them, found through the table.
                let rows: Vec<usize> = (0..k).map(|p| (k - 1 - p) * (n + 2)).collect();
                let rhs = values(k * (n + 2), 2);
                let b = |p: usize, j: usize| rhs[rows[p] + j] as f64;
                let dst_rs = n + 3;
                let start = values(m * dst_rs, 3);
                let mut dst = start.clone();
                gemm(
                    [m, n, k],
                    (&mut dst, dst_rs, accumulate),
                    (&lhs, lhs_s),
                    (&rhs, &rows),
                    parallel,
                );
                // `gemm_nt` takes `A` row-major and `Bᵀ`'s rows.
                let a_rows: Vec<f32> = (0..m * k).map(|i| a(i / k, i % k) as f32).collect();
                let b_t: Vec<f32> = (0..n * k).map(|i| b(i % k, i / k) as f32).collect();
                let b_t_rows: Vec<usize> = (0..n).map(|j| j * k).collect();
                let mut nt = start.clone();
                gemm_nt(
                    [m, n, k],
                    (&mut nt, dst_rs, accumulate),
                    (&a_rows, k),
                    (&b_t, &b_t_rows),
                    parallel,
                );
                for i in 0..m {
                    for j in 0..n {
                        let start = if accumulate { start[i * dst_rs + j] as f64 } else { 0.0 };
                        let sum = start + (0..k).map(|p| a(i, p) * b(p, j)).sum::<f64>();
                        let tolerance = 1e-4 * (1.0 + sum.abs()) * (k as f64).sqrt();
                        let case = format!("{m}×{n}×{k} t{transposed} a{accumulate} p{parallel} ({i},{j})");
                        let got = dst[i * dst_rs + j] as f64;
                        assert!((got - sum).abs() < tolerance, "gemm {case}: {got} vs {sum}");
                        let got = nt[i * dst_rs + j] as f64;
                        assert!((got - sum).abs() < tolerance, "gemm_nt {case}: {got} vs {sum}");
                    }
                    // The padding between rows is left alone.
                    let gap = i * dst_rs + n..(i + 1) * dst_rs;
                    assert_eq!(&dst[gap.clone()], &start[gap.clone()]);
                    assert_eq!(&nt[gap.clone()], &start[gap]);
                }
            }
        }
    }
}
