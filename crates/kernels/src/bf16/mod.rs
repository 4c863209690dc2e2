//! bf16 products with f32 sums: the building block of bf16 mixed precision.
//!
//! A product `dst (+)= A · B` runs on operands rounded to bf16 while they are packed (round to
//! nearest even, as `VCVTNEPS2BF16`), and sums in f32: the product of two bf16 values is exact in
//! f32, so the only roundings are the operands' (relative error at most 2⁻⁹ each) and the f32
//! sums'. On CPUs with AVX512-BF16 the register tile is `VDPBF16PS` (two products per lane and
//! instruction, twice the multiply-adds of an f32 `VFMADD` per cycle at best); elsewhere a
//! portable tile adds the products in the instruction's order (per pair the high product, then
//! the low one, each addition rounded once), so both give the same sums bit for bit — denormals
//! aside, which the instruction flushes to zero.
//!
//! Layout: the left operand in blocks of [`MR`] rows, the right one in panels of [`NR`]
//! columns, each with reductions in pairs — one `u32` holds reductions `2q` (low half) and
//! `2q + 1` (high half) — the pairing `VDPBF16PS` multiplies. See [`PackedLhs`] and
//! [`PackedRhs`]; [`gemm`] multiplies them.

mod gemm;
mod pack;
mod tile;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use gemm::{gemm, gemm_in_place};
pub use pack::{PackedLhs, PackedRhs, adjacent_pairs, from_bf16, pair_rows, round, to_bf16};
pub use tile::{MR, NR, supported};
