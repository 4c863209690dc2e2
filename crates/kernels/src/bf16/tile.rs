//! The register tile's shape and operands, and whether this CPU multiplies bf16 in hardware:
//! what the packing, the products and the CPU-specific tiles all build on.

/// Rows of a register tile (output channels in a convolution).
pub const MR: usize = 8;
/// Columns of a register tile (output pixels in a convolution).
pub const NR: usize = 32;

/// Whether this CPU multiplies bf16 in hardware (AVX512-BF16); elsewhere the products run the
/// portable tile, correct but several times slower than the f32 product.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Where the `kc` pair rows of a tile's right operand start in its slice (each row NR pairs),
/// with a bound on all of them, so a tile checks its reads in constant time.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    pub starts: &'a [usize],
    pub bound: usize,
}

/// `c[MR × NR] (+)= a · b` over `kc` pairs: `a` is `[kc][MR]` pairs, `b`'s row `q` (NR pairs)
/// starts at `rows.starts[q]`, `c` is MR rows of NR floats `c_rs` apart (read first when `add`).
pub(super) type Tile = fn(usize, &[u32], (&[u32], Rows<'_>), &mut [f32], usize, bool);

/// Panics unless the tile's operands hold what it reads and writes.
pub(super) fn check(kc: usize, a: &[u32], (b, rows): (&[u32], Rows<'_>), c: &[f32], c_rs: usize) {
    assert!(
        a.len() >= kc * MR && rows.starts.len() >= kc,
        "bf16 tile: operands too short"
    );
    assert!(rows.bound + NR <= b.len(), "bf16 tile: right operand too short");
    assert!(c_rs >= NR && c.len() >= (MR - 1) * c_rs + NR, "bf16 tile: destination too short");
    debug_assert!(rows.starts[..kc].iter().all(|&r| r <= rows.bound));
}
