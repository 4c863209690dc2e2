//! The Winograd F(2×2, 3×3) transforms of one tile ([`super`]), on single values or on
//! [`Lanes`] of them: `Bᵀ·d·B`, `G·g·Gᵀ` and `Aᵀ·m·A` for the forward pass, `A·y·Aᵀ` and
//! `Gᵀ·h·G` for the weight gradient.

/// Positions of a transformed tile.
pub(super) const TILE: usize = 16;

/// Values of this many images (or channels) transformed side by side, one per lane.
pub(super) const LANES: usize = 8;

/// [`LANES`] values that add, subtract and scale together (the compiler vectorises the loops).
#[derive(Clone, Copy, Debug)]
pub(super) struct Lanes(pub(super) [f32; LANES]);

impl std::ops::Add for Lanes {
    type Output = Self;
    #[inline(always)]
    fn add(mut self, other: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
        self
    }
}

impl std::ops::Sub for Lanes {
    type Output = Self;
    #[inline(always)]
    fn sub(mut self, other: Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a -= b;
        }
        self
    }
}

impl std::ops::Mul<f32> for Lanes {
    type Output = Self;
    #[inline(always)]
    fn mul(mut self, factor: f32) -> Self {
        self.0.iter_mut().for_each(|a| *a *= factor);
        self
    }
}

impl std::ops::Neg for Lanes {
    type Output = Self;
    #[inline(always)]
    fn neg(mut self) -> Self {
        self.0.iter_mut().for_each(|a| *a = -*a);
        self
    }
}

/// What the transforms compute with: one `f32`, or [`Lanes`] of them.
pub(super) trait Value:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<f32, Output = Self>
    + std::ops::Neg<Output = Self>
{
}

impl<T> Value for T where
    T: Copy
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<f32, Output = T>
        + std::ops::Neg<Output = T>
{
}

/// `L·X·Lᵀ` for a matrix `L` (`R × C`) given as the map `l` of a column of `C` values to `R`
/// values; `x` row-major `C × C`, the result row-major `R × R`.
#[inline(always)]
fn sandwich<T: Value, const C: usize, const R: usize>(x: &[T], l: impl Fn([T; C]) -> [T; R]) -> [[T; R]; R] {
    // Plain loops over fixed sizes: `std::array::from_fn` here compiled to copies and calls.
    let mut columns = [[x[0]; R]; C];
    for (j, column) in columns.iter_mut().enumerate() {
        let mut values = [x[0]; C];
        for (i, value) in values.iter_mut().enumerate() {
            *value = x[i * C + j];
        }
        *column = l(values);
    }
    let mut out = [[x[0]; R]; R];
    for (i, row) in out.iter_mut().enumerate() {
        let mut values = [x[0]; C];
        for (j, value) in values.iter_mut().enumerate() {
            *value = columns[j][i];
        }
        *row = l(values);
    }
    out
}

/// `Bᵀ·d·B` of a 4×4 window `d` (row-major).
#[inline(always)]
pub(super) fn input_tile<T: Value>(d: &[T; TILE]) -> [[T; 4]; 4] {
    sandwich(
        d,
        #[inline(always)]
        |a: [T; 4]| [a[0] - a[2], a[1] + a[2], a[2] - a[1], a[1] - a[3]],
    )
}

/// `G·g·Gᵀ` of a 3×3 filter `g` (row-major).
#[inline(always)]
pub(super) fn filter_tile<T: Value>(g: &[T; 9]) -> [[T; 4]; 4] {
    sandwich(
        g,
        #[inline(always)]
        |a: [T; 3]| [a[0], (a[0] + a[1] + a[2]) * 0.5, (a[0] - a[1] + a[2]) * 0.5, a[2]],
    )
}

/// `Aᵀ·m·A`: the 2×2 outputs of a 4×4 product tile (row-major).
#[inline(always)]
pub(super) fn output_tile<T: Value>(m: &[T; TILE]) -> [[T; 2]; 2] {
    sandwich(
        m,
        #[inline(always)]
        |a: [T; 4]| [a[0] + a[1] + a[2], a[1] - a[2] - a[3]],
    )
}

/// `A·y·Aᵀ` of a 2×2 block of dY (row-major).
#[inline(always)]
pub(super) fn gradient_tile<T: Value>(y: &[T; 4]) -> [[T; 4]; 4] {
    sandwich(
        y,
        #[inline(always)]
        |b: [T; 2]| [b[0], b[0] + b[1], b[0] - b[1], -b[1]],
    )
}

/// `Gᵀ·h·G`: the 3×3 weight gradient of a summed 4×4 tile (row-major).
#[inline(always)]
pub(super) fn filter_gradient<T: Value>(h: &[T; TILE]) -> [[T; 3]; 3] {
    sandwich(
        h,
        #[inline(always)]
        |a: [T; 4]| {
            [
                a[0] + (a[1] + a[2]) * 0.5,
                (a[1] - a[2]) * 0.5,
                (a[1] + a[2]) * 0.5 + a[3],
            ]
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat<const N: usize, const M: usize>(x: [[f32; N]; M]) -> Vec<f32> {
        x.iter().flatten().copied().collect()
    }

    /// The transforms compute the 2×2 correlation outputs of a 4×4 window with a 3×3 filter,
    /// one value at a time and in lanes alike.
    #[test]
    fn one_tile_is_the_direct_correlation() {
        let d: [f32; TILE] = std::array::from_fn(|i| i as f32 * 0.37 - 2.0);
        let filter: [f32; 9] = std::array::from_fn(|i| (i as f32 * 0.71).sin());
        let (u, v) = (flat(filter_tile(&filter)), flat(input_tile(&d)));
        let m: [f32; TILE] = std::array::from_fn(|i| u[i] * v[i]);
        let y = output_tile(&m);
        let lanes = output_tile(&m.map(|v| Lanes([v; LANES])));
        for (oy, ox) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let direct: f32 = (0..9).map(|k| filter[k] * d[(oy + k / 3) * 4 + ox + k % 3]).sum();
            assert!(
                (y[oy][ox] - direct).abs() < 1e-5,
                "({oy}, {ox}): {} vs {direct}",
                y[oy][ox]
            );
            assert!(lanes[oy][ox].0.iter().all(|&l| l == y[oy][ox]));
        }
    }

    /// The weight-gradient transforms give the direct sums `Σ dY[oy][ox] · d[oy + ky][ox + kx]`
    /// (the adjoint of the forward's).
    #[test]
    fn one_tile_weight_gradient_is_the_direct_sum() {
        let d: [f32; TILE] = std::array::from_fn(|i| ((i / 4 * 5 + i % 4 * 3) % 7) as f32 - 3.0);
        let dy = [0.5, -1.25, 2.0, 0.75];
        let (z, v) = (flat(gradient_tile(&dy)), flat(input_tile(&d)));
        let dw = flat(filter_gradient(&std::array::from_fn(|i| z[i] * v[i])));
        for k in 0..9 {
            let direct: f32 = (0..4).map(|o| dy[o] * d[(o / 2 + k / 3) * 4 + o % 2 + k % 3]).sum();
            assert!((dw[k] - direct).abs() < 1e-4, "tap {k}: {} vs {direct}", dw[k]);
        }
    }
}
