use super::super::{adjacent_pairs, pair_rows, round, to_bf16};
use super::*;

/// Values in [−1, 1] that are not all bf16 already (so the rounding is exercised).
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 20_011) as f32 / 10_005.5 - 1.0)
        .collect()
}

#[test]
fn rounding_is_to_nearest_even_as_the_instruction_rounds() {
    let bf = |bits: u32| to_bf16(f32::from_bits(bits));
    assert_eq!(to_bf16(1.0), 0x3F80);
    assert_eq!(to_bf16(-2.5), 0xC020);
    assert_eq!(bf(0x3F80_8000), 0x3F80, "a tie rounds to the even 0x3F80");
    assert_eq!(bf(0x3F81_8000), 0x3F82, "a tie rounds to the even 0x3F82");
    assert_eq!(bf(0x3F80_8001), 0x3F81, "past the tie rounds up");
    assert_eq!(bf(0x3F80_7FFF), 0x3F80, "short of the tie rounds down");
    assert_eq!(bf(0x3FFF_FFFF), 0x4000, "a carry into the exponent");
    assert_eq!(to_bf16(f32::MAX), 0x7F80, "past the largest bf16: infinity");
    assert_eq!(to_bf16(f32::NEG_INFINITY), 0xFF80);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    assert!(
        from_bf16(bf(0x7F80_0001)).is_nan(),
        "a NaN whose payload sits in the dropped bits"
    );
    assert_eq!(bf(0x8000_0001), 0x8000, "a subnormal becomes a zero of its sign");
    assert_eq!(round(0.1), 0.100_097_656, "0.1 in bf16 (8 bits of mantissa)");
}

/// The sum over `p` of `round(a(i, p)) · round(b(p, j))` in f64, and of the products' sizes.
fn reference(k: usize, a: impl Fn(usize) -> f32, b: impl Fn(usize) -> f32) -> (f64, f64) {
    (0..k).fold((0.0, 0.0), |(sum, size), p| {
        let product = f64::from(round(a(p))) * f64::from(round(b(p)));
        (sum + product, size + product.abs())
    })
}

/// Every edge of the tiling — shapes below, at and above MR, NR and the reduction block, odd
/// reductions, `A` in place or transposed, accumulating or not, serial and parallel — against the
/// sums of the rounded operands in f64: only the f32 sums' rounding may differ.
#[test]
fn products_are_the_sums_of_the_rounded_operands() {
    let shapes = [
        [1, 1, 1],
        [3, 5, 2],
        [8, 32, 7],
        [9, 33, 300],
        [17, 70, 513],
        [40, 9, 9],
        [16, 1, 9],
        [8, 64, 0],
    ];
    for [m, n, k] in shapes {
        for (transposed, accumulate, parallel) in [
            (false, false, false),
            (true, true, false),
            (false, true, true),
            (true, false, true),
        ] {
            let lhs = values(m * k, 1);
            let strides = if transposed { [1, m] } else { [k, 1] };
            let rhs_rs = n + 3;
            let rhs = values(k * rhs_rs, 2);
            let dst_rs = n + 2;
            let start = values(m * dst_rs, 3);
            let mut dst = start.clone();
            let a = PackedLhs::new(m, k, &lhs, strides);
            let b = PackedRhs::new(k, n, &rhs, rhs_rs);
            gemm(&a, &b, (&mut dst, dst_rs, accumulate), parallel);
            for i in 0..m {
                for j in 0..n {
                    let (sum, size) = reference(k, |p| lhs[i * strides[0] + p * strides[1]], |p| rhs[p * rhs_rs + j]);
                    let first = if accumulate {
                        f64::from(start[i * dst_rs + j])
                    } else {
                        0.0
                    };
                    let (want, got) = (first + sum, f64::from(dst[i * dst_rs + j]));
                    let tolerance = 1e-6 * (1.0 + first.abs() + size) * (k as f64 + 1.0).log2().max(1.0);
                    let case = format!("{m}×{n}×{k} t{transposed} a{accumulate} p{parallel} ({i},{j})");
                    assert!((got - want).abs() <= tolerance, "{case}: {got} vs {want}");
                }
                let gap = i * dst_rs + n..(i + 1) * dst_rs;
                if i + 1 < m {
                    assert_eq!(&dst[gap.clone()], &start[gap], "the gap between rows is left alone");
                }
            }
        }
    }
}

/// What bf16 costs against an f32 product of the same operands: at most about 2⁻⁸ of the sum of
/// the products' sizes (each operand off by at most 2⁻⁹ of itself).
#[test]
fn the_error_against_f32_stays_within_the_operands_rounding() {
    let [m, n, k] = [16, 64, 576];
    let (lhs, rhs) = (values(m * k, 4), values(k * n, 5));
    let mut dst = vec![0.0f32; m * n];
    gemm(
        &PackedLhs::new(m, k, &lhs, [k, 1]),
        &PackedRhs::new(k, n, &rhs, n),
        (&mut dst, n, false),
        false,
    );
    let mut worst = 0.0f64;
    for i in 0..m {
        for j in 0..n {
            let exact: f64 = (0..k)
                .map(|p| f64::from(lhs[i * k + p]) * f64::from(rhs[p * n + j]))
                .sum();
            let size: f64 = (0..k).map(|p| f64::from(lhs[i * k + p] * rhs[p * n + j]).abs()).sum();
            let error = (f64::from(dst[i * n + j]) - exact).abs() / size;
            assert!(error <= 2f64.powi(-8), "({i},{j}): {error}");
            worst = worst.max(error);
        }
    }
    // Not the f32 product either: the rounding shows.
    assert!(worst > 1e-5, "{worst}");
}

/// Every tile this CPU has (portable, AVX512-BF16) gives the same sums bit for bit: the
/// portable tile adds the two products of a pair in the instruction's order (high, then low,
/// each addition rounded once), so only denormals (flushed by the instruction) could differ.
#[test]
fn every_tile_version_computes_the_same_sums() {
    let kc = 300;
    let pairs = |v: Vec<f32>| -> Vec<u32> {
        v.chunks_exact(2)
            .map(|v| u32::from(to_bf16(v[0])) | u32::from(to_bf16(v[1])) << 16)
            .collect()
    };
    let (a, b) = (pairs(values(2 * kc * MR, 6)), pairs(values(2 * kc * NR, 7)));
    let c_rs = NR + 5;
    let start = values(MR * c_rs, 8);
    let tiles = available();
    let results: Vec<Vec<f32>> = tiles
        .iter()
        .map(|(_, tile)| {
            let mut c = start.clone();
            // `B`'s rows in reverse order through the table, as an in-place product reads them.
            let starts: Vec<usize> = (0..kc).map(|q| (kc - 1 - q) * NR).collect();
            let rows = Rows {
                starts: &starts,
                bound: (kc - 1) * NR,
            };
            tile(kc, &a, (&b, rows), &mut c, c_rs, true);
            c
        })
        .collect();
    for ((name, _), c) in tiles.iter().zip(&results) {
        for (i, (got, want)) in c.iter().zip(&results[0]).enumerate() {
            let want = if i % c_rs < NR { want } else { &start[i] };
            assert_eq!(got.to_bits(), want.to_bits(), "{name} at {i}: {got} vs {want}");
        }
    }
}

/// The in-place product (rows of pairs found through a table, as a padded image is read) gives
/// the packed product's sums bit for bit, for widths below, at and past a panel and reductions
/// past a block.
#[test]
fn the_in_place_product_equals_the_packed_one() {
    for [m, n, k] in [[3, 5, 4], [8, 32, 300], [17, 70, 514]] {
        let pairs = k / 2;
        let lhs = values(m * k, 9);
        let rhs = values(k * n, 10);
        let mut packed = vec![0.0f32; m * n];
        let a = PackedLhs::new(m, k, &lhs, [k, 1]);
        gemm(&a, &PackedRhs::new(k, n, &rhs, n), (&mut packed, n, false), false);
        // Pair row `q` at `table[q]`, in reverse order with gaps, each long enough for whole panels.
        let stride = n.next_multiple_of(NR) + 3;
        let table: Vec<usize> = (0..pairs).map(|q| (pairs - 1 - q) * stride).collect();
        let mut b = vec![0u32; pairs * stride];
        for q in 0..pairs {
            pair_rows(
                &rhs[2 * q * n..][..n],
                Some(&rhs[(2 * q + 1) * n..][..n]),
                &mut b[table[q]..][..n],
            );
        }
        let mut in_place = vec![0.0f32; m * n];
        gemm_in_place(&a, (&b, &table), n, (&mut in_place, n, false));
        assert_eq!(in_place, packed, "{m}×{n}×{k}");
    }
}

/// Interleaving two rows into pairs gives [`to_bf16`]'s bits on every kind of value — ties,
/// carries into the exponent, the largest floats, infinities, NaN, subnormals, zeros — on the
/// vector path too (16 values at a time where the CPU has AVX512-BF16; this test's rows are
/// whole vectors plus a tail of 7, which the scalar path takes).
/// `len` floats: every kind of value — ties, carries into the exponent, the largest floats,
/// infinities, NaN, subnormals, zeros — then a fixed pseudo-random walk over all bit patterns.
fn every_kind_of_value(len: usize) -> Vec<f32> {
    let special = [
        0x3F80_8000,
        0x3F81_8000,
        0x3F80_8001,
        0x3F80_7FFF,
        0x7F7F_FFFF,
        0xFF7F_FFFF,
        0x7F80_0000,
        0xFF80_0000,
        0x7FC0_0001,
        0x7F80_0001,
        0x0000_0001,
        0x8040_0000,
        0x0080_0000,
        0,
        0x8000_0000,
    ];
    let mut state = 0x9E37_79B9u32;
    let walk = std::iter::repeat_with(|| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    });
    special.into_iter().chain(walk).take(len).map(f32::from_bits).collect()
}

/// Interleaving two rows into pairs gives [`to_bf16`]'s bits on every kind of value, on the
/// vector path too (16 values at a time where the CPU has AVX512-BF16; this test's rows are
/// whole vectors plus a tail of 7, which the scalar path takes).
#[test]
fn pairs_hold_the_scalar_rounding_of_both_rows() {
    let len = 64 * 16 + 7;
    let values = every_kind_of_value(2 * len);
    let (lo, hi) = values.split_at(len);
    for hi in [Some(hi), None] {
        let mut got = vec![0u32; len];
        pair_rows(lo, hi, &mut got);
        for (j, got) in got.iter().enumerate() {
            let want = u32::from(to_bf16(lo[j])) | u32::from(hi.map_or(0, |hi| to_bf16(hi[j]))) << 16;
            assert_eq!(
                *got,
                want,
                "{:#010x} {:?}",
                lo[j].to_bits(),
                hi.map(|hi| hi[j].to_bits())
            );
        }
    }
}

/// Pairing a row along itself gives [`to_bf16`]'s bits on every kind of value, on the vector
/// path (8 pairs at a time where the CPU has AVX512-BF16) and its scalar tail, for even and odd
/// lengths (the last pair's high half zero).
#[test]
fn adjacent_pairs_hold_the_scalar_rounding() {
    let values = every_kind_of_value(64 * 16 + 7);
    for len in [values.len(), values.len() - 1, 16, 15, 1] {
        let src = &values[..len];
        let mut got = vec![0u32; len.div_ceil(2)];
        adjacent_pairs(src, &mut got);
        for (q, got) in got.iter().enumerate() {
            let hi = src.get(2 * q + 1).map_or(0, |&x| to_bf16(x));
            let want = u32::from(to_bf16(src[2 * q])) | u32::from(hi) << 16;
            assert_eq!(*got, want, "length {len}, pair {q}: {:#010x}", src[2 * q].to_bits());
        }
    }
}

/// The right operand packed from runs read through a table and transposed gives the product of
/// the same matrix written out and packed plainly, bit for bit: odd and even reductions, runs
/// that overlap (as a padded image's rows do), widths below, at and past a panel.
#[test]
fn the_transposed_pack_equals_the_written_out_matrix() {
    for [m, n, k] in [[3, 5, 7], [16, 32, 300], [9, 70, 515]] {
        let src = values(k + 3 * n + 11, 12);
        // Column `j` starts at `3j` in reverse order: neighbours overlap.
        let table: Vec<usize> = (0..n).map(|j| 3 * (n - 1 - j)).collect();
        let written: Vec<f32> = (0..k * n).map(|i| src[table[i % n] + i / n]).collect();
        let a = PackedLhs::new(m, k, &values(m * k, 13), [k, 1]);
        let mut want = vec![0.0f32; m * n];
        gemm(&a, &PackedRhs::new(k, n, &written, n), (&mut want, n, false), false);
        let mut b = PackedRhs::default();
        b.pack_transposed(k, &src, &table);
        assert_eq!(b.shape(), [k, n]);
        let mut got = vec![0.0f32; m * n];
        gemm(&a, &b, (&mut got, n, false), false);
        assert_eq!(got, want, "{m}×{n}×{k}");
    }
}
