//! Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): augmentations of a whole batch that
//! blend each image with another one of the batch, and its target with that image's label.
//!
//! As in torchvision's `transforms.v2.MixUp`/`CutMix` (the reference recipe), the image blended
//! into image `i` is image `i − 1` (the batch rolled by one; the batch is already shuffled), and
//! one `λ ~ Beta(α, α)` serves the whole batch:
//! - mixup: every pixel `λ·x_i + (1 − λ)·x_{i−1}`;
//! - cutmix: a box of `√(1 − λ)` of the height and width, centred on a uniformly drawn pixel and
//!   clipped at the borders, copied from `x_{i−1}`; `λ` becomes the share of pixels kept.
//!
//! The target of image `i` is then `λ` of its own label and `1 − λ` of its neighbour's (see the
//! trainer's loss). Every draw comes from one seed per batch, so a batch mixes the same way in a
//! resumed run.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::batch::Batch;

/// The batch mixing of a run: mixup, cutmix or both (each batch then picks one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchMix {
    /// Mixup's `α` (`λ ~ Beta(α, α)`); `None`: no mixup.
    pub mixup: Option<f64>,
    /// CutMix's `α`; `None`: no cutmix.
    pub cutmix: Option<f64>,
    /// With both: the probability that a batch takes cutmix rather than mixup.
    pub switch: f64,
}

/// How one batch was mixed: the label blended into each image and the share `λ` of the image's
/// own label in its target.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixed {
    /// The neighbour's label of each image.
    pub partner: Vec<i64>,
    /// The weight of each image's own label.
    pub lambda: f32,
}

impl BatchMix {
    /// The mixing `mixup`/`cutmix` ask for, or `None` when neither is on.
    pub fn new(mixup: Option<f64>, cutmix: Option<f64>, switch: f64) -> Option<Self> {
        (mixup.is_some() || cutmix.is_some()).then_some(Self { mixup, cutmix, switch })
    }

    /// Mixes `batch` in place with the draws of `seed`; `None` for a batch of fewer than two
    /// images (nothing to blend with).
    pub fn apply(&self, batch: &mut Batch, seed: u64) -> Option<Mixed> {
        if batch.shape[0] < 2 {
            return None;
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let cut = match (self.mixup, self.cutmix) {
            (Some(_), Some(_)) => rng.random::<f64>() < self.switch,
            (None, Some(_)) => true,
            _ => false,
        };
        let alpha = if cut { self.cutmix } else { self.mixup }?;
        let lambda = beta(&mut rng, alpha);
        let lambda = if cut {
            let [_, _, h, w] = batch.shape;
            let area = cut_box(&mut rng, lambda, h, w);
            cutmix(batch, area)
        } else {
            mixup(batch, lambda as f32);
            lambda as f32
        };
        let partner = rolled(&batch.labels).to_vec();
        Some(Mixed { partner, lambda })
    }
}

/// `values` rolled by one: element `i` is `values[i − 1]` (the first is the last).
fn rolled<T: Clone>(values: &[T]) -> Vec<T> {
    let mut out = values.to_vec();
    out.rotate_right(1);
    out
}

/// A copy of each image's neighbour (`image` floats each): image `i − 1` for image `i`.
fn neighbours(batch: &Batch, image: usize) -> Vec<Vec<f32>> {
    rolled(
        &batch
            .images
            .chunks_exact(image)
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>(),
    )
}

/// Blends every image with its neighbour: `λ·x_i + (1 − λ)·x_{i−1}`.
pub fn mixup(batch: &mut Batch, lambda: f32) {
    let image = batch.images.len() / batch.shape[0];
    let neighbours = neighbours(batch, image);
    for (own, other) in batch.images.chunks_exact_mut(image).zip(&neighbours) {
        for (x, y) in own.iter_mut().zip(other) {
            *x = lambda * *x + (1.0 - lambda) * y;
        }
    }
}

/// Rows `top..bottom` and columns `left..right` of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutBox {
    /// First row.
    pub top: usize,
    /// One past the last row.
    pub bottom: usize,
    /// First column.
    pub left: usize,
    /// One past the last column.
    pub right: usize,
}

/// torchvision's box: `√(1 − λ)` of each side, centred on a uniform pixel, clipped.
fn cut_box(rng: &mut StdRng, lambda: f64, h: usize, w: usize) -> CutBox {
    let (cy, cx) = (rng.random_range(0..h), rng.random_range(0..w));
    let ratio = (1.0 - lambda).sqrt();
    let (half_h, half_w) = ((ratio * h as f64 / 2.0) as usize, (ratio * w as f64 / 2.0) as usize);
    CutBox {
        top: cy.saturating_sub(half_h),
        bottom: (cy + half_h).min(h),
        left: cx.saturating_sub(half_w),
        right: (cx + half_w).min(w),
    }
}

/// Copies `area` of each image's neighbour into it; returns the share of pixels each image
/// keeps (its label's weight).
pub fn cutmix(batch: &mut Batch, area: CutBox) -> f32 {
    let [n, c, h, w] = batch.shape;
    let image = c * h * w;
    let neighbours = neighbours(batch, image);
    for (own, other) in batch.images.chunks_exact_mut(image).zip(&neighbours).take(n) {
        for plane in 0..c {
            for row in area.top..area.bottom {
                let at = plane * h * w + row * w;
                own[at + area.left..at + area.right].copy_from_slice(&other[at + area.left..at + area.right]);
            }
        }
    }
    let cut = (area.bottom - area.top) * (area.right - area.left);
    1.0 - cut as f32 / (h * w) as f32
}

/// A draw of `Beta(α, α)`: `X / (X + Y)` with `X, Y ~ Gamma(α, 1)`.
pub fn beta(rng: &mut StdRng, alpha: f64) -> f64 {
    let (x, y) = (gamma(rng, alpha), gamma(rng, alpha));
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// A draw of `Gamma(shape, 1)` (Marsaglia and Tsang 2000; for `shape < 1`, boosted by
/// `U^(1/shape)`).
fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = rng.random();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 1-channel 2×2 images: all ones (label 3) and all zeros (label 7).
    fn two() -> Batch {
        Batch {
            images: vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
            shape: [2, 1, 2, 2],
            labels: vec![3, 7],
        }
    }

    #[test]
    fn mixup_blends_each_image_with_the_one_before() {
        let mut batch = two();
        mixup(&mut batch, 0.75);
        // Image 0 takes 0.25 of image 1 (zeros); image 1 takes 0.25 of image 0 (ones).
        assert_eq!(batch.images, [0.75, 0.75, 0.75, 0.75, 0.25, 0.25, 0.25, 0.25]);
    }

    #[test]
    fn cutmix_pastes_the_box_and_weighs_the_label_by_the_pixels_kept() {
        let mut batch = two();
        let lambda = cutmix(
            &mut batch,
            CutBox {
                top: 0,
                bottom: 1,
                left: 1,
                right: 2,
            },
        );
        assert_eq!(batch.images, [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(lambda, 0.75);
    }

    #[test]
    fn a_mixed_batch_names_each_images_partner_and_repeats_for_its_seed() {
        let mix = BatchMix::new(Some(0.4), Some(1.0), 0.5).unwrap();
        let (mut a, mut b) = (two(), two());
        let (ma, mb) = (mix.apply(&mut a, 9).unwrap(), mix.apply(&mut b, 9).unwrap());
        assert_eq!((ma.clone(), a.images.clone()), (mb, b.images));
        assert_eq!(ma.partner, [7, 3]);
        assert!((0.0..=1.0).contains(&ma.lambda));
        assert!(BatchMix::new(None, None, 0.5).is_none());
        let mut one = Batch {
            images: vec![1.0; 4],
            shape: [1, 1, 2, 2],
            labels: vec![0],
        };
        assert!(mix.apply(&mut one, 9).is_none());
    }

    #[test]
    fn beta_draws_have_the_mean_and_variance_of_beta() {
        for alpha in [0.2, 1.0, 2.0] {
            let mut rng = StdRng::seed_from_u64(1);
            let draws: Vec<f64> = (0..20_000).map(|_| beta(&mut rng, alpha)).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
            // Beta(α, α): mean 1/2, variance 1 / (4(2α + 1)).
            let want = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "α {alpha}: mean {mean}");
            assert!(
                (var - want).abs() < 0.05 * want,
                "α {alpha}: variance {var}, want {want}"
            );
            assert!(draws.iter().all(|d| (0.0..=1.0).contains(d)));
        }
    }

    #[test]
    fn the_cut_box_covers_one_minus_lambda_away_from_the_borders() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut inside = 0;
        for _ in 0..200 {
            let b = cut_box(&mut rng, 0.75, 32, 32);
            assert!(b.top <= b.bottom && b.bottom <= 32 && b.left <= b.right && b.right <= 32);
            // Half of each side (√0.25): 16 × 16 unless clipped.
            if (b.bottom - b.top, b.right - b.left) == (16, 16) {
                inside += 1;
            }
        }
        assert!(inside > 20, "{inside}");
    }
}
