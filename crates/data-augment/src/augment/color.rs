//! Colour transforms: per-channel shifts, brightness/contrast/saturation jitter and AlexNet's PCA
//! colour augmentation (Krizhevsky et al. 2012, §4.1).

use serde::{Deserialize, Serialize};

use crate::image::Image;

/// A per-value map of 8-bit values, built once per image: `f` is evaluated 256 times instead of
/// once per pixel, and the result is the same as applying `f` (rounded, clamped) to every value.
fn lut(f: impl Fn(f64) -> f64) -> [u8; 256] {
    std::array::from_fn(|v| f(v as f64).round().clamp(0.0, 255.0) as u8)
}

/// `x` rounded (halves up) and clamped to an 8-bit value. `f32::round` is a libm call on the
/// baseline x86-64 target (no SSE4.1), which cost a seventh of the `imagenet` preset; the
/// truncating conversion of `x + 0.5` after the clamp is one instruction and vectorises.
#[inline(always)]
fn to_u8(x: f32) -> u8 {
    (x.clamp(0.0, 255.0) + 0.5) as u8
}

/// The mean BT.601 luma of `img` after mapping every value through `map`: exact integer sums
/// per channel, weighted once at the end.
fn mean_luma(img: &Image, map: &[u8; 256]) -> f64 {
    let c = img.channels;
    let mut sums = [0u64; 3];
    if c == 3 {
        for p in img.data.chunks_exact(3) {
            sums[0] += u64::from(map[p[0] as usize]);
            sums[1] += u64::from(map[p[1] as usize]);
            sums[2] += u64::from(map[p[2] as usize]);
        }
    } else {
        sums[0] = img.data.iter().map(|&v| u64::from(map[v as usize])).sum();
    }
    let weights: &[f64] = if c == 3 { &[0.299, 0.587, 0.114] } else { &[1.0] };
    let sum: f64 = sums.iter().zip(weights).map(|(&s, w)| w * s as f64).sum();
    sum / (img.width * img.height) as f64
}

/// Adds `offsets[c]` to channel `c` of every pixel, clamping to 0–255.
pub fn shift_channels(img: &Image, offsets: &[f64]) -> Image {
    let c = img.channels;
    let tables: Vec<[u8; 256]> = (0..c).map(|ch| lut(|v| v + offsets[ch])).collect();
    let mut data = img.data.clone();
    for px in data.chunks_exact_mut(c) {
        for (v, t) in px.iter_mut().zip(&tables) {
            *v = t[*v as usize];
        }
    }
    Image { data, ..*img }
}

/// Multiplies every value by `factor` (brightness), clamping.
pub fn brightness(img: &Image, factor: f64) -> Image {
    let t = lut(|v| v * factor);
    Image {
        data: img.data.iter().map(|&v| t[v as usize]).collect(),
        ..*img
    }
}

/// Blends towards the image's mean gray level: `factor` 1 = unchanged, 0 = flat gray.
pub fn contrast(img: &Image, factor: f64) -> Image {
    let identity: [u8; 256] = std::array::from_fn(|v| v as u8);
    let mean = mean_luma(img, &identity);
    let t = lut(|v| mean + factor * (v - mean));
    Image {
        data: img.data.iter().map(|&v| t[v as usize]).collect(),
        ..*img
    }
}

/// Blends each pixel towards its own gray level: `factor` 1 = unchanged, 0 = grayscale.
pub fn saturation(img: &Image, factor: f64) -> Image {
    if img.channels == 1 {
        return img.clone();
    }
    let f = factor as f32;
    let mut data = img.data.clone();
    for p in data.chunks_exact_mut(3) {
        let g = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        for v in p.iter_mut() {
            *v = to_u8(g + f * (*v as f32 - g));
        }
    }
    Image { data, ..*img }
}

/// Brightness, contrast and saturation factors (in that order, as [`brightness`], [`contrast`]
/// and [`saturation`] apply them), then a per-channel `offset` (e.g. [`PcaColor::channel_offsets`]),
/// in one pass over the pixels: the result equals those four transforms one after another, to
/// the bit (each stage rounds to 8 bits as they do), at a fraction of the memory traffic.
pub fn jitter_and_shift(
    img: &Image,
    brightness_factor: f64,
    contrast_factor: f64,
    saturation_factor: f64,
    offset: &[f64],
) -> Image {
    let c = img.channels;
    let bright = lut(|v| v * brightness_factor);
    // The contrast blends towards the mean gray level of the brightened image.
    let mean = mean_luma(img, &bright);
    let contrasted = lut(|v| mean + contrast_factor * (v - mean));
    let scale: [u8; 256] = std::array::from_fn(|v| contrasted[bright[v] as usize]);
    let shift: Vec<[u8; 256]> = (0..c).map(|ch| lut(|v| v + offset[ch])).collect();
    let mut data = vec![0u8; img.data.len()];
    if c == 3 {
        let f = saturation_factor as f32;
        let scale: [f32; 256] = std::array::from_fn(|v| f32::from(scale[v]));
        let [r, g, b] = [&shift[0], &shift[1], &shift[2]];
        for (out, p) in data.chunks_exact_mut(3).zip(img.data.chunks_exact(3)) {
            let q = [scale[p[0] as usize], scale[p[1] as usize], scale[p[2] as usize]];
            let gray = 0.299 * q[0] + 0.587 * q[1] + 0.114 * q[2];
            out[0] = r[to_u8(gray + f * (q[0] - gray)) as usize];
            out[1] = g[to_u8(gray + f * (q[1] - gray)) as usize];
            out[2] = b[to_u8(gray + f * (q[2] - gray)) as usize];
        }
    } else {
        // Saturation leaves gray images as they are.
        for (out, p) in data.chunks_exact_mut(c).zip(img.data.chunks_exact(c)) {
            for ch in 0..c {
                out[ch] = shift[ch][scale[p[ch] as usize] as usize];
            }
        }
    }
    Image { data, ..*img }
}

/// The principal components of a data set's RGB pixel values, for [`pca_shift`].
///
/// Values are on the 0–1 scale (pixel / 255). `eigenvectors[i]` is the i-th component, paired
/// with `eigenvalues[i]`, largest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PcaColor {
    /// Eigenvalues of the 3×3 RGB covariance, largest first.
    pub eigenvalues: [f64; 3],
    /// Unit eigenvectors, one per row, in the order of `eigenvalues`.
    pub eigenvectors: [[f64; 3]; 3],
}

impl PcaColor {
    /// The ImageNet RGB eigenpairs widely used with AlexNet-style PCA lighting (as published
    /// with fb.resnet.torch), on the 0–1 scale.
    pub fn imagenet() -> Self {
        Self {
            eigenvalues: [0.2175, 0.0188, 0.0045],
            eigenvectors: [
                [-0.5675, -0.5808, -0.5836],
                [0.7192, -0.0045, -0.6948],
                [0.4009, -0.8140, 0.4203],
            ],
        }
    }

    /// [`Self::offset`] for an image of `channels` channels: the RGB offset, or for gray images
    /// its mean.
    pub fn channel_offsets(&self, alphas: [f64; 3], channels: usize) -> Vec<f64> {
        let offset = self.offset(alphas);
        if channels == 1 {
            vec![offset.iter().sum::<f64>() / 3.0]
        } else {
            offset.to_vec()
        }
    }

    /// The RGB offset (0–255 scale) `Σ_i p_i · α_i λ_i` for draws `alphas`.
    pub fn offset(&self, alphas: [f64; 3]) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (i, v) in self.eigenvectors.iter().enumerate() {
            for (ch, o) in out.iter_mut().enumerate() {
                *o += v[ch] * alphas[i] * self.eigenvalues[i] * 255.0;
            }
        }
        out
    }
}

/// Adds `[p1 p2 p3][α1λ1 α2λ2 α3λ3]ᵀ` to every pixel (RGB images; gray ones get the mean shift).
pub fn pca_shift(img: &Image, pca: &PcaColor, alphas: [f64; 3]) -> Image {
    shift_channels(img, &pca.channel_offsets(alphas, img.channels))
}

/// Streaming accumulation of RGB pixel statistics for [`PcaColor`] fitting: images are added one
/// at a time, nothing is kept but sums.
#[derive(Clone, Debug, Default)]
pub struct PcaFit {
    n: f64,
    sum: [f64; 3],
    sum_sq: [[f64; 3]; 3],
}

impl PcaFit {
    /// Adds every pixel of `img` (gray pixels count as R = G = B).
    pub fn add(&mut self, img: &Image) {
        let scale = 1.0 / 255.0;
        for p in img.data.chunks_exact(img.channels) {
            let rgb = if p.len() == 1 { [p[0]; 3] } else { [p[0], p[1], p[2]] };
            self.add_pixel(rgb.map(|v| v as f64 * scale));
        }
    }

    /// Adds one RGB value (0–1 scale).
    pub fn add_pixel(&mut self, rgb: [f64; 3]) {
        self.n += 1.0;
        for i in 0..3 {
            self.sum[i] += rgb[i];
            for j in 0..3 {
                self.sum_sq[i][j] += rgb[i] * rgb[j];
            }
        }
    }

    /// Pixels added so far.
    pub fn pixels(&self) -> u64 {
        self.n as u64
    }

    /// The 3×3 covariance of the pixels added.
    #[allow(clippy::needless_range_loop)] // index form mirrors the formula
    pub fn covariance(&self) -> [[f64; 3]; 3] {
        let n = self.n.max(1.0);
        let mut cov = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                cov[i][j] = self.sum_sq[i][j] / n - (self.sum[i] / n) * (self.sum[j] / n);
            }
        }
        cov
    }

    /// Eigen-decomposition of the covariance.
    pub fn finish(&self) -> PcaColor {
        let (values, vectors) = symmetric_eigen(self.covariance());
        PcaColor {
            eigenvalues: values,
            eigenvectors: vectors,
        }
    }
}

/// Eigenvalues (descending, clamped at 0) and unit eigenvectors (rows) of a symmetric 3×3 matrix,
/// by cyclic Jacobi rotations. The sign of each vector is fixed so its largest entry is positive.
#[allow(clippy::needless_range_loop)] // index form mirrors the Jacobi rotation formulas
pub fn symmetric_eigen(m: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut a = m;
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _ in 0..64 {
        let off = a[0][1].powi(2) + a[0][2].powi(2) + a[1][2].powi(2);
        if off < 1e-30 {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q].abs() < 1e-300 {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
            for k in 0..3 {
                let (akp, akq) = (a[k][p], a[k][q]);
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            for k in 0..3 {
                let (apk, aqk) = (a[p][k], a[q][k]);
                a[p][k] = c * apk - s * aqk;
                a[q][k] = s * apk + c * aqk;
            }
            for row in v.iter_mut() {
                let (vp, vq) = (row[p], row[q]);
                row[p] = c * vp - s * vq;
                row[q] = s * vp + c * vq;
            }
        }
    }
    let mut order = [0, 1, 2];
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let values = order.map(|i| a[i][i].max(0.0));
    let vectors = order.map(|i| {
        let col = [v[0][i], v[1][i], v[2][i]];
        let big = col
            .iter()
            .copied()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 { col.map(|x| -x) } else { col }
    });
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_shift_clamps() {
        let img = Image::new(2, 1, 3, vec![250, 10, 100, 5, 128, 0]).unwrap();
        let out = shift_channels(&img, &[10.0, -20.0, 0.4]);
        assert_eq!(out.data, vec![255, 0, 100, 15, 108, 0]);
    }

    #[test]
    fn one_pass_jitter_and_shift_equals_the_four_transforms_in_turn() {
        let rgb = Image {
            width: 7,
            height: 5,
            channels: 3,
            data: (0..105).map(|i| (i * 37 % 256) as u8).collect(),
        };
        let gray = Image {
            width: 6,
            height: 4,
            channels: 1,
            data: (0..24).map(|i| (i * 53 % 256) as u8).collect(),
        };
        for img in [rgb, gray] {
            for (b, c, s, o) in [(1.0, 1.0, 1.0, 0.0), (1.3, 0.7, 1.4, 12.5), (0.6, 1.35, 0.62, -20.0)] {
                let offset: Vec<f64> = (0..img.channels).map(|ch| o * (ch as f64 - 0.8)).collect();
                let sequential = shift_channels(&saturation(&contrast(&brightness(&img, b), c), s), &offset);
                assert_eq!(
                    jitter_and_shift(&img, b, c, s, &offset),
                    sequential,
                    "{} channels, {b} {c} {s} {o}",
                    img.channels
                );
            }
        }
    }

    #[test]
    fn jitter_factors_of_one_are_identities() {
        let img = Image::new(2, 2, 3, (0..12).map(|i| i * 20).collect()).unwrap();
        assert_eq!(brightness(&img, 1.0), img);
        assert_eq!(contrast(&img, 1.0), img);
        assert_eq!(saturation(&img, 1.0), img);
        let gray = saturation(&img, 0.0);
        assert!(gray.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn eigen_recovers_a_known_decomposition() {
        // A = Q diag(5, 2, 0.5) Qᵀ for an orthonormal Q.
        let q = [
            [2.0 / 3.0, 2.0 / 3.0, 1.0 / 3.0],
            [-2.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0],
            [1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0],
        ];
        let l = [5.0, 2.0, 0.5];
        let mut a = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] = (0..3).map(|k| q[k][i] * l[k] * q[k][j]).sum();
            }
        }
        let (values, vectors) = symmetric_eigen(a);
        for k in 0..3 {
            assert!((values[k] - l[k]).abs() < 1e-9, "{values:?}");
            let dot: f64 = (0..3).map(|i| vectors[k][i] * q[k][i]).sum();
            assert!((dot.abs() - 1.0).abs() < 1e-9, "vector {k}: {vectors:?}");
        }
    }
}
