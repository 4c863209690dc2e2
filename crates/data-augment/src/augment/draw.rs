//! The random draws several ops share.

use rand::Rng;

/// A uniform draw in `[lo, hi)`; `lo` when the range is empty.
pub fn uniform(rng: &mut impl Rng, [lo, hi]: [f64; 2]) -> f64 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// Which side of a drawn rectangle the aspect ratio stretches: torchvision's random-resized
/// crop reads its `ratio` as width / height, its random erasing as height / width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aspect {
    /// `ratio` is width / height.
    WidthOverHeight,
    /// `ratio` is height / width.
    HeightOverWidth,
}

/// A window `(top, left, height, width)` of torchvision's rectangle search (random-resized crop,
/// random erasing): up to 10 draws of a target area (a fraction in `scale` of the image) and an
/// aspect ratio (log-uniform in `ratio`, read as `aspect` says), in that order; the first
/// rectangle that `fits` is placed uniformly at random, `None` when none did.
pub fn random_window(
    (height, width): (usize, usize),
    (scale, ratio, aspect): ([f64; 2], [f64; 2], Aspect),
    rng: &mut impl Rng,
    fits: impl Fn(usize, usize) -> bool,
) -> Option<(usize, usize, usize, usize)> {
    let side = |s: f64| s.sqrt().round() as usize;
    for _ in 0..10 {
        let target = (height * width) as f64 * uniform(rng, scale);
        let stretch = uniform(rng, [ratio[0].ln(), ratio[1].ln()]).exp();
        let (h, w) = match aspect {
            Aspect::WidthOverHeight => (side(target / stretch), side(target * stretch)),
            Aspect::HeightOverWidth => (side(target * stretch), side(target / stretch)),
        };
        if fits(h, w) {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return Some((top, left, h, w));
        }
    }
    None
}
