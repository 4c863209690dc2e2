//! The random draws several ops share.

use rand::Rng;

/// A uniform draw in `[lo, hi)`; `lo` when the range is empty.
pub fn uniform(rng: &mut impl Rng, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// torchvision's rectangle draw (random-resized crop, random erasing): a target area, a fraction
/// in `scale` of `area`, and an aspect ratio drawn log-uniformly from `ratio`, in that order.
pub fn area_and_aspect(rng: &mut impl Rng, area: f64, scale: [f64; 2], ratio: [f64; 2]) -> (f64, f64) {
    let target = area * uniform(rng, scale);
    let aspect = uniform(rng, [ratio[0].ln(), ratio[1].ln()]).exp();
    (target, aspect)
}
