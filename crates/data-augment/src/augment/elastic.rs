//! Local warping: elastic distortion (Simard, Steinkraus & Platt 2003). A random displacement
//! field, uniform in [−1, 1] per pixel and axis, is smoothed by a Gaussian of width `sigma`,
//! scaled by `alpha`, and the image is resampled bilinearly at the displaced positions.

use rand::Rng;

use super::geometry::remap;
use crate::image::Image;

/// Elastic distortion with strength `alpha` (pixels) and smoothness `sigma` (pixels).
pub fn elastic(img: &Image, alpha: f64, sigma: f64, fill: u8, rng: &mut impl Rng) -> Image {
    let (w, h) = (img.width, img.height);
    // Draw both fields even when alpha is 0, so later ops see the same random stream.
    let mut dx: Vec<f64> = (0..w * h).map(|_| rng.random_range(-1.0..=1.0)).collect();
    let mut dy: Vec<f64> = (0..w * h).map(|_| rng.random_range(-1.0..=1.0)).collect();
    if alpha == 0.0 {
        return img.clone();
    }
    gaussian_blur(&mut dx, w, h, sigma);
    gaussian_blur(&mut dy, w, h, sigma);
    remap(img, fill, |x, y| {
        let i = y as usize * w + x as usize;
        (x + alpha * dx[i], y + alpha * dy[i])
    })
}

/// In-place separable Gaussian blur of a `w × h` field (edges clamped).
pub fn gaussian_blur(field: &mut [f64], w: usize, h: usize, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f64 = kernel.iter().sum();
    let kernel: Vec<f64> = kernel.iter().map(|k| k / norm).collect();
    let mut tmp = vec![0.0; field.len()];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, wt)| wt * field[y * w + (x as isize + k as isize - radius).clamp(0, w as isize - 1) as usize])
                .sum();
        }
    }
    for y in 0..h {
        for x in 0..w {
            field[y * w + x] = kernel
                .iter()
                .enumerate()
                .map(|(k, wt)| wt * tmp[(y as isize + k as isize - radius).clamp(0, h as isize - 1) as usize * w + x])
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn alpha_zero_is_the_identity() {
        let img = Image::new(9, 7, 3, (0..189).map(|i| (i * 3 % 256) as u8).collect()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        assert_eq!(elastic(&img, 0.0, 4.0, 0, &mut rng), img);
    }

    #[test]
    fn distortion_moves_pixels_but_keeps_size() {
        let img = Image::new(
            28,
            28,
            1,
            (0..784).map(|i| if (i / 28) % 4 < 2 { 255 } else { 0 }).collect(),
        )
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let out = elastic(&img, 34.0, 4.0, 0, &mut rng);
        assert_eq!((out.width, out.height), (28, 28));
        assert_ne!(out, img);
    }

    #[test]
    fn blur_preserves_constants() {
        let mut f = vec![2.5; 30];
        gaussian_blur(&mut f, 6, 5, 1.5);
        assert!(f.iter().all(|v| (v - 2.5).abs() < 1e-12));
    }
}
