//! The AVX512-BF16 tile and packing, compiled with their target features and called only where
//! `supported()` found them.

use std::arch::x86_64::*;

use super::tile::{MR, Rows, check};

/// The register tile (`Tile`) on AVX512-BF16.
pub(super) fn tile(kc: usize, a: &[u32], (b, rows): (&[u32], Rows<'_>), c: &mut [f32], c_rs: usize, add: bool) {
    check(kc, a, (b, rows), c, c_rs);
    // SAFETY: chosen only where `supported()` found AVX512-BF16; `check` bounds every access.
    unsafe {
        dp_tile(
            kc,
            a.as_ptr(),
            (b.as_ptr(), rows.starts.as_ptr()),
            c.as_mut_ptr(),
            c_rs,
            add,
        )
    }
}

/// 16 accumulators (8 rows × 2 vectors of 16 columns); per pair 2 loads of `B`, 8 broadcasts of
/// `A` and 16 `VDPBF16PS`, 512 multiply-adds.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dp_tile(
    kc: usize,
    a: *const u32,
    (b, rows): (*const u32, *const usize),
    c: *mut f32,
    c_rs: usize,
    add: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // SAFETY (all blocks): bounded by `check` (see `tile`).
    if add {
        for (r, row) in acc.iter_mut().enumerate() {
            *row = unsafe { [_mm512_loadu_ps(c.add(r * c_rs)), _mm512_loadu_ps(c.add(r * c_rs + 16))] };
        }
    }
    for q in 0..kc {
        let (b0, b1) = unsafe {
            let b = b.add(*rows.add(q));
            (
                pairs(_mm512_loadu_si512(b.cast())),
                pairs(_mm512_loadu_si512(b.add(16).cast())),
            )
        };
        for (r, row) in acc.iter_mut().enumerate() {
            let a = pairs(_mm512_set1_epi32(unsafe { *a.add(q * MR + r) } as i32));
            row[0] = _mm512_dpbf16_ps(row[0], a, b0);
            row[1] = _mm512_dpbf16_ps(row[1], a, b1);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        unsafe {
            _mm512_storeu_ps(c.add(r * c_rs), row[0]);
            _mm512_storeu_ps(c.add(r * c_rs + 16), row[1]);
        }
    }
}

/// 32 bf16 values (16 pairs) as the type `VDPBF16PS` takes.
#[target_feature(enable = "avx512f,avx512bf16")]
fn pairs(v: __m512i) -> __m512bh {
    // SAFETY: both are 512 plain bits.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// `dst[j] = bf16(lo[j]) | bf16(hi[j]) << 16` for the first `dst.len()` rounded down to 16
/// columns of two rows (`hi` absent: zeros); returns how many it wrote.
///
/// # Safety
/// The CPU has AVX512-BF16; `lo` and `hi` hold at least `dst.len()` elements (checked).
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pair_rows(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) -> usize {
    let n = dst.len() - dst.len() % 16;
    assert!(lo.len() >= n && hi.is_none_or(|hi| hi.len() >= n));
    for j in (0..n).step_by(16) {
        // SAFETY: bounded by the assert above.
        unsafe {
            let low = widen(lo[j..].as_ptr());
            let both = match hi {
                Some(hi) => _mm512_or_si512(low, _mm512_slli_epi32::<16>(widen(hi[j..].as_ptr()))),
                None => low,
            };
            _mm512_storeu_si512(dst[j..].as_mut_ptr().cast(), both);
        }
    }
    n
}

/// `dst[q] = bf16(src[2q]) | bf16(src[2q + 1]) << 16` for whole blocks of 8 pairs; returns how
/// many pairs it wrote.
///
/// # Safety
/// The CPU has AVX512-BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn adjacent_pairs(src: &[f32], dst: &mut [u32]) -> usize {
    let n = (src.len() / 16 * 8).min(dst.len() / 8 * 8);
    for q in (0..n).step_by(8) {
        // SAFETY: `2q + 16 <= src.len()` and `q + 8 <= dst.len()` by the choice of `n`; in memory
        // bf16 value `2i` is the low half of pair `i` (little-endian), as `pair` builds it.
        unsafe {
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src[2 * q..].as_ptr()));
            _mm256_storeu_si256(dst[q..].as_mut_ptr().cast(), std::mem::transmute::<__m256bh, __m256i>(h));
        }
    }
    n
}

/// 16 floats from `x` rounded to bf16, each in the low half of a 32-bit lane.
///
/// # Safety
/// The CPU has AVX512-BF16; `x` points at 16 floats.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn widen(x: *const f32) -> __m512i {
    // SAFETY: as the caller promises; `__m256bh` and `__m256i` are both 256 plain bits.
    unsafe {
        let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x));
        _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(h))
    }
}
