//! The x86-64 versions of the micro-kernels: AVX-512 and AVX2 + FMA, each compiled with its
//! target feature and called only where the CPU has it.

use std::arch::x86_64::*;

use super::{DOT, MR, Tile, check, check_dot, tail};

pub(super) fn avx512_dot(k: usize, a: [&[f32]; DOT], b: [&[f32]; DOT], out: &mut [f32; DOT * DOT]) {
    check_dot(k, &a, &b);
    // SAFETY: chosen only where `avx512f` was detected; `check_dot` bounds every read.
    unsafe { avx512_dot_tile(k, a.map(<[f32]>::as_ptr), b.map(<[f32]>::as_ptr), out) };
}

/// [`avx512_dot`]: 16 accumulators, 8 loads per 16 multiply-adds; the last `k % 16` values
/// through masked loads (a scalar tail cost ~2% of a ResNet-18 training step).
#[target_feature(enable = "avx512f")]
unsafe fn avx512_dot_tile(k: usize, a: [*const f32; DOT], b: [*const f32; DOT], out: &mut [f32; DOT * DOT]) {
    let mut c = [[_mm512_setzero_ps(); DOT]; DOT];
    let body = k - k % 16;
    for p in (0..body).step_by(16) {
        // SAFETY: every row holds at least `k` floats.
        let bv = b.map(|row| unsafe { _mm512_loadu_ps(row.add(p)) });
        for (row, a) in c.iter_mut().zip(a) {
            let av = unsafe { _mm512_loadu_ps(a.add(p)) };
            for (acc, bv) in row.iter_mut().zip(bv) {
                *acc = _mm512_fmadd_ps(av, bv, *acc);
            }
        }
    }
    if body < k {
        let mask: __mmask16 = (1u16 << (k - body)) - 1;
        // SAFETY: the mask reads only the `k − body` floats left in each row.
        let bv = b.map(|row| unsafe { _mm512_maskz_loadu_ps(mask, row.add(body)) });
        for (row, a) in c.iter_mut().zip(a) {
            let av = unsafe { _mm512_maskz_loadu_ps(mask, a.add(body)) };
            for (acc, bv) in row.iter_mut().zip(bv) {
                *acc = _mm512_fmadd_ps(av, bv, *acc);
            }
        }
    }
    for (i, row) in c.iter().enumerate() {
        for (j, acc) in row.iter().enumerate() {
            out[i * DOT + j] = _mm512_reduce_add_ps(*acc);
        }
    }
}

pub(super) fn avx2_dot(k: usize, a: [&[f32]; DOT], b: [&[f32]; DOT], out: &mut [f32; DOT * DOT]) {
    check_dot(k, &a, &b);
    for half in [0, 2] {
        let b = [b[half], b[half + 1]].map(<[f32]>::as_ptr);
        // SAFETY: chosen only where `avx2` and `fma` were detected; `check_dot` bounds reads.
        unsafe { avx2_dot_half(k, a.map(<[f32]>::as_ptr), b, out, half) };
    }
    let body = k - k % 8;
    for i in 0..DOT {
        for j in 0..DOT {
            out[i * DOT + j] += tail(k, body, a[i], b[j]);
        }
    }
}

/// Columns `half` and `half + 1` of the 8-lane part of [`avx2_dot`]: 8 accumulators.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_dot_half(k: usize, a: [*const f32; DOT], b: [*const f32; 2], out: &mut [f32; DOT * DOT], half: usize) {
    let mut c = [[_mm256_setzero_ps(); 2]; DOT];
    for p in (0..k - k % 8).step_by(8) {
        // SAFETY: every row holds at least `k` floats.
        let bv = b.map(|row| unsafe { _mm256_loadu_ps(row.add(p)) });
        for (row, a) in c.iter_mut().zip(a) {
            let av = unsafe { _mm256_loadu_ps(a.add(p)) };
            for (acc, bv) in row.iter_mut().zip(bv) {
                *acc = _mm256_fmadd_ps(av, bv, *acc);
            }
        }
    }
    for (i, row) in c.iter().enumerate() {
        for (j, acc) in row.iter().enumerate() {
            // Lanes summed in a fixed order: high half onto low, then pairs.
            let v = _mm_add_ps(_mm256_castps256_ps128(*acc), _mm256_extractf128_ps(*acc, 1));
            let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
            let v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
            out[i * DOT + half + j] = _mm_cvtss_f32(v);
        }
    }
}

pub(super) fn avx512(t: Tile<'_>) {
    check(&t);
    // SAFETY: chosen only where `avx512f` was detected; `check` bounds every access.
    unsafe {
        avx512_tile(
            t.kc,
            (t.a.as_ptr(), t.a_strides),
            (t.b.as_ptr(), t.b_rows.as_ptr()),
            t.c.as_mut_ptr(),
            t.c_rs,
            t.add,
        )
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn avx512_tile(
    kc: usize,
    (a, [a_rs, a_cs]): (*const f32, [usize; 2]),
    (b, b_rows): (*const f32, *const usize),
    t: *mut f32,
    c_rs: usize,
    add: bool,
) {
    let mut c = [[_mm512_setzero_ps(); 2]; MR];
    // SAFETY (all blocks): bounded by `check` (see `Tile`).
    if add {
        for (r, row) in c.iter_mut().enumerate() {
            *row = unsafe { [_mm512_loadu_ps(t.add(r * c_rs)), _mm512_loadu_ps(t.add(r * c_rs + 16))] };
        }
    }
    for p in 0..kc {
        let b = unsafe { b.add(*b_rows.add(p)) };
        let (b0, b1) = unsafe { (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16))) };
        for (r, row) in c.iter_mut().enumerate() {
            let a = _mm512_set1_ps(unsafe { *a.add(r * a_rs + p * a_cs) });
            row[0] = _mm512_fmadd_ps(a, b0, row[0]);
            row[1] = _mm512_fmadd_ps(a, b1, row[1]);
        }
    }
    for (r, row) in c.iter().enumerate() {
        unsafe {
            _mm512_storeu_ps(t.add(r * c_rs), row[0]);
            _mm512_storeu_ps(t.add(r * c_rs + 16), row[1]);
        }
    }
}

pub(super) fn avx2(t: Tile<'_>) {
    check(&t);
    let c0 = t.c.as_mut_ptr();
    for quarter in 0..4 {
        let (row0, col0) = ((quarter / 2) * 4, (quarter % 2) * 16);
        // SAFETY: chosen only where `avx2` and `fma` were detected; `check` bounds the
        // accesses, and each quarter lies inside the tile.
        unsafe {
            let (a, b) = (t.a.as_ptr().add(row0 * t.a_strides[0]), t.b.as_ptr().add(col0));
            let c = c0.add(row0 * t.c_rs + col0);
            avx2_quarter(t.kc, (a, t.a_strides), (b, t.b_rows.as_ptr()), c, t.c_rs, t.add)
        }
    }
}

/// Rows `row0..row0 + 4`, columns `col0..col0 + 16` of the tile (pointers offset to them).
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_quarter(
    kc: usize,
    (a, [a_rs, a_cs]): (*const f32, [usize; 2]),
    (b, b_rows): (*const f32, *const usize),
    t: *mut f32,
    c_rs: usize,
    add: bool,
) {
    let mut c = [[_mm256_setzero_ps(); 2]; 4];
    // SAFETY (all blocks): bounded by `check` (see `Tile`).
    if add {
        for (r, row) in c.iter_mut().enumerate() {
            *row = unsafe { [_mm256_loadu_ps(t.add(r * c_rs)), _mm256_loadu_ps(t.add(r * c_rs + 8))] };
        }
    }
    for p in 0..kc {
        let b = unsafe { b.add(*b_rows.add(p)) };
        let (b0, b1) = unsafe { (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8))) };
        for (r, row) in c.iter_mut().enumerate() {
            let a = _mm256_set1_ps(unsafe { *a.add(r * a_rs + p * a_cs) });
            row[0] = _mm256_fmadd_ps(a, b0, row[0]);
            row[1] = _mm256_fmadd_ps(a, b1, row[1]);
        }
    }
    for (r, row) in c.iter().enumerate() {
        unsafe {
            _mm256_storeu_ps(t.add(r * c_rs), row[0]);
            _mm256_storeu_ps(t.add(r * c_rs + 8), row[1]);
        }
    }
}

/// [`super::RowsKernel`] on AVX-512: `c[8 × 16·NV] (+)= Σ_p a[r][p] · b[p·b_rs ..]` — per
/// reduction step one or two vector loads of `b` and 8 broadcasts of `a`, `8·NV` multiply-adds.
///
/// # Safety
/// The CPU has `avx512f`; every `a[r]` holds `kc` floats, `b` holds `kc` rows of `16·NV` floats
/// `b_rs` apart, `c` 8 rows of `16·NV` floats `c_rs` apart.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_rows_tile<const NV: usize>(
    kc: usize,
    a: [*const f32; 8],
    (b, b_rs): (*const f32, usize),
    (c, c_rs): (*mut f32, usize),
    add: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; 8];
    // SAFETY (all blocks): bounded as the caller promises.
    if add {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, lane) in row.iter_mut().enumerate() {
                *lane = unsafe { _mm512_loadu_ps(c.add(r * c_rs + 16 * v)) };
            }
        }
    }
    for p in 0..kc {
        let bp = unsafe { b.add(p * b_rs) };
        let bv: [__m512; NV] = std::array::from_fn(|v| unsafe { _mm512_loadu_ps(bp.add(16 * v)) });
        for (row, a) in acc.iter_mut().zip(a) {
            let av = _mm512_set1_ps(unsafe { *a.add(p) });
            for (lane, bv) in row.iter_mut().zip(bv) {
                *lane = _mm512_fmadd_ps(av, bv, *lane);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, lane) in row.iter().enumerate() {
            unsafe { _mm512_storeu_ps(c.add(r * c_rs + 16 * v), *lane) };
        }
    }
}

/// [`super::PixelsKernel`] on AVX-512: `c[NP pixels × 16·NV channels] (+)= Σ_p x[table[p] + j] ·
/// w[p·w_rs ..]` — per reduction step `NV` vector loads of the weights and `NP` broadcasts of
/// input pixels, `NV·NP` multiply-adds.
///
/// # Safety
/// The CPU has `avx512f`; `w` holds `kc` rows of `16·NV` floats `w_rs` apart; `x[table[p] + j]`
/// is in bounds for `p < kc`, `j < NP`; `c` holds `NP` rows of `16·NV` floats `c_rs` apart.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_pixels_tile<const NV: usize, const NP: usize>(
    kc: usize,
    (w, w_rs): (*const f32, usize),
    (x, table): (*const f32, *const usize),
    (c, c_rs): (*mut f32, usize),
    add: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; NP];
    // SAFETY (all blocks): bounded as the caller promises.
    if add {
        for (j, row) in acc.iter_mut().enumerate() {
            for (v, lane) in row.iter_mut().enumerate() {
                *lane = unsafe { _mm512_loadu_ps(c.add(j * c_rs + 16 * v)) };
            }
        }
    }
    for p in 0..kc {
        let (wp, xp) = unsafe { (w.add(p * w_rs), x.add(*table.add(p))) };
        let wv: [__m512; NV] = std::array::from_fn(|v| unsafe { _mm512_loadu_ps(wp.add(16 * v)) });
        for (j, row) in acc.iter_mut().enumerate() {
            let a = _mm512_set1_ps(unsafe { *xp.add(j) });
            for (lane, wv) in row.iter_mut().zip(wv) {
                *lane = _mm512_fmadd_ps(a, wv, *lane);
            }
        }
    }
    for (j, row) in acc.iter().enumerate() {
        for (v, lane) in row.iter().enumerate() {
            unsafe { _mm512_storeu_ps(c.add(j * c_rs + 16 * v), *lane) };
        }
    }
}
