//! Rounding to bf16 and the packed operands of [`super::gemm`].

use super::tile::{MR, NR, supported};

/// `x` rounded to bf16, as `VCVTNEPS2BF16` does: to nearest, ties to even; NaN stays a (quiet)
/// NaN, infinities stay, subnormal inputs become zero of their sign.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return (bits >> 16) as u16 | 0x0040;
    }
    if x.is_subnormal() {
        return ((bits >> 16) & 0x8000) as u16;
    }
    // Adding just under half of the dropped part, plus its last kept bit, rounds ties to even;
    // a carry into the exponent is the correct rounding up (to infinity past the largest).
    let bias = 0x7FFF + ((bits >> 16) & 1);
    ((bits + bias) >> 16) as u16
}

/// The f32 of the bf16 `h` (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to bf16 and back: the value a bf16 product sees.
pub fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// Two reductions of one row or column as `VDPBF16PS` reads them: `lo` in the low half.
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | u32::from(to_bf16(hi)) << 16
}

/// `dst[j]` = the pair of `lo[j]` (low half) and `hi[j]` (high half, zero when `hi` is absent),
/// each rounded by [`to_bf16`]: two rows of reductions interleaved as [`super::gemm`] reads them.
/// 16 at a time where the CPU has AVX512-BF16 (the same bits).
///
/// # Panics
/// When `lo` or `hi` is shorter than `dst`.
pub fn pair_rows(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    assert!(
        lo.len() >= dst.len() && hi.is_none_or(|hi| hi.len() >= dst.len()),
        "bf16 pair_rows: rows too short"
    );
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if supported() {
        // SAFETY: `supported()` said the CPU has AVX512-BF16; the lengths are checked above.
        done = unsafe { super::x86::pair_rows(lo, hi, dst) };
    }
    for (j, d) in dst.iter_mut().enumerate().skip(done) {
        *d = pair(lo[j], hi.map_or(0.0, |hi| hi[j]));
    }
}

/// `dst[q]` = the pair of `src[2q]` (low half) and `src[2q + 1]` (high half; zero past the end
/// of an odd-length `src`), each rounded by [`to_bf16`]: one row's reductions paired along the
/// row. 8 pairs at a time where the CPU has AVX512-BF16 (the same bits).
///
/// # Panics
/// When `dst` does not hold exactly `src`'s pairs.
pub fn adjacent_pairs(src: &[f32], dst: &mut [u32]) {
    assert_eq!(
        dst.len(),
        src.len().div_ceil(2),
        "bf16 adjacent_pairs: {} pairs for {} values",
        dst.len(),
        src.len()
    );
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if supported() {
        // SAFETY: `supported()` said the CPU has AVX512-BF16; the lengths are checked above.
        done = unsafe { super::x86::adjacent_pairs(src, dst) };
    }
    for (q, d) in dst.iter_mut().enumerate().skip(done) {
        *d = pair(src[2 * q], src.get(2 * q + 1).copied().unwrap_or(0.0));
    }
}

/// The left operand of [`super::gemm`]: `m × k` as `[⌈m/MR⌉][⌈k/2⌉][MR]` pairs, zeros past the
/// last row and (for odd `k`) in the last pair's high half. Repacking reuses the allocation.
#[derive(Clone, Debug, Default)]
pub struct PackedLhs {
    pub(super) m: usize,
    pub(super) k: usize,
    pub(super) data: Vec<u32>,
}

impl PackedLhs {
    /// `src` (element `(i, p)` at `i·strides[0] + p·strides[1]`) packed.
    pub fn new(m: usize, k: usize, src: &[f32], strides: [usize; 2]) -> Self {
        let mut packed = Self::default();
        packed.pack(m, k, src, strides);
        packed
    }

    /// Packs `src` in place of what this held.
    pub fn pack(&mut self, m: usize, k: usize, src: &[f32], [rs, cs]: [usize; 2]) {
        assert!(
            m == 0 || k == 0 || src.len() > (m - 1) * rs + (k - 1) * cs,
            "bf16 pack: left operand too short"
        );
        let pairs = k.div_ceil(2);
        (self.m, self.k) = (m, k);
        self.data.clear();
        self.data.resize(m.div_ceil(MR) * pairs * MR, 0);
        let at = |i: usize, p: usize| if p < k { src[i * rs + p * cs] } else { 0.0 };
        // Rows stored contiguously are paired along the row, vectorised, then spread.
        let mut row_pairs = if cs == 1 { vec![0u32; pairs] } else { Vec::new() };
        for (block, dst) in self.data.chunks_exact_mut((pairs * MR).max(1)).enumerate() {
            for i in 0..MR.min(m - block * MR) {
                let row = block * MR + i;
                if cs == 1 {
                    adjacent_pairs(&src[row * rs..][..k], &mut row_pairs);
                    row_pairs.iter().enumerate().for_each(|(q, &v)| dst[q * MR + i] = v);
                    continue;
                }
                for q in 0..pairs {
                    dst[q * MR + i] = pair(at(row, 2 * q), at(row, 2 * q + 1));
                }
            }
        }
    }

    /// Rows and reductions.
    pub fn shape(&self) -> [usize; 2] {
        [self.m, self.k]
    }
}

/// The right operand of [`super::gemm`]: `k × n` as `[⌈n/NR⌉][⌈k/2⌉][NR]` pairs, zeros past the
/// last column and (for odd `k`) in the last pair's high half. Repacking reuses the allocation.
#[derive(Clone, Debug, Default)]
pub struct PackedRhs {
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) data: Vec<u32>,
}

impl PackedRhs {
    /// `src` (`k` rows of `n` floats, `rs` apart) packed.
    pub fn new(k: usize, n: usize, src: &[f32], rs: usize) -> Self {
        let mut packed = Self::default();
        packed.pack(k, n, src, rs);
        packed
    }

    /// Packs `src` in place of what this held: a panel's two rows at a time ([`pair_rows`]).
    pub fn pack(&mut self, k: usize, n: usize, src: &[f32], rs: usize) {
        assert!(
            k == 0 || n == 0 || src.len() >= (k - 1) * rs + n,
            "bf16 pack: right operand too short"
        );
        let pairs = k.div_ceil(2);
        (self.n, self.k) = (n, k);
        self.data.clear();
        self.data.resize(n.div_ceil(NR) * pairs * NR, 0);
        for (panel, dst) in self.data.chunks_exact_mut((pairs * NR).max(1)).enumerate() {
            let (j0, cols) = (panel * NR, NR.min(n - panel * NR));
            for (q, dst) in dst.chunks_exact_mut(NR).enumerate() {
                let lo = &src[2 * q * rs + j0..][..cols];
                let hi = (2 * q + 1 < k).then(|| &src[(2 * q + 1) * rs + j0..][..cols]);
                pair_rows(lo, hi, &mut dst[..cols]);
            }
        }
    }

    /// Packs, in place of what this held, `k × table.len()` whose column `j` is the run of `k`
    /// floats at `src[table[j]..]`: rows read through a table and transposed, each column's pairs
    /// of reductions two adjacent floats ([`adjacent_pairs`]). A stride-1 convolution's weight
    /// gradient reads its padded image rows so: the reduction runs along the pixels.
    ///
    /// # Panics
    /// When a run reaches past `src`.
    pub fn pack_transposed(&mut self, k: usize, src: &[f32], table: &[usize]) {
        let n = table.len();
        assert!(
            table.iter().all(|&start| start + k <= src.len()),
            "bf16 pack: a column runs past its source"
        );
        let pairs = k.div_ceil(2);
        (self.n, self.k) = (n, k);
        self.data.clear();
        self.data.resize(n.div_ceil(NR) * pairs * NR, 0);
        let mut column = vec![0u32; pairs];
        for (panel, dst) in self.data.chunks_exact_mut((pairs * NR).max(1)).enumerate() {
            for (lane, &start) in table[panel * NR..].iter().take(NR).enumerate() {
                adjacent_pairs(&src[start..][..k], &mut column);
                column.iter().enumerate().for_each(|(q, &v)| dst[q * NR + lane] = v);
            }
        }
    }

    /// Reductions and columns.
    pub fn shape(&self) -> [usize; 2] {
        [self.k, self.n]
    }
}
