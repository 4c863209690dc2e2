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

/// A window `(top, left, height, width)` of torchvision's rectangle search: up to 10 draws of an
/// area and an aspect ratio ([`area_and_aspect`]) that `sides` turns into `(height, width)`; the
/// first that `fits` is placed uniformly at random, `None` when none did.
pub fn random_window(
    (height, width): (usize, usize),
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut impl Rng,
    sides: impl Fn(f64, f64) -> (usize, usize),
    fits: impl Fn(usize, usize) -> bool,
) -> Option<(usize, usize, usize, usize)> {
    for _ in 0..10 {
        let (target, aspect) = area_and_aspect(rng, (height * width) as f64, scale, ratio);
        let (h, w) = sides(target, aspect);
        if fits(h, w) {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return Some((top, left, h, w));
        }
    }
    None
}
