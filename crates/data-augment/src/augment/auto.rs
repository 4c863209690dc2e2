//! torchvision's automatic augmentation policies on 8-bit images: RandAugment (Cubuk et al. 2020)
//! and TrivialAugmentWide (Müller & Hutter 2021), with torchvision's list of 14 ops, its magnitude
//! tables (31 bins by default), its draws and its uint8 tensor arithmetic (blends truncate,
//! geometric ops sample the nearest pixel and fill uncovered pixels with `fill`).

use rand::Rng;

use super::geometry::{affine_nearest, linspace_f32 as linspace};
use crate::image::Image;

/// The ops both policies choose from, in torchvision's order (the order of its draws).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOp {
    /// Unchanged.
    Identity,
    /// Horizontal shear about the top-left corner: `x ← x + m·(y + ½)`.
    ShearX,
    /// Vertical shear about the top-left corner.
    ShearY,
    /// Horizontal shift by `m` whole pixels.
    TranslateX,
    /// Vertical shift by `m` whole pixels.
    TranslateY,
    /// Rotation by `m` degrees about the centre (counter-clockwise on screen).
    Rotate,
    /// Brightness factor `1 + m`.
    Brightness,
    /// Saturation factor `1 + m` (gray images are unchanged).
    Color,
    /// Contrast factor `1 + m` (blend with the mean gray level).
    Contrast,
    /// Sharpness factor `1 + m` (blend with a 3×3 smoothed copy).
    Sharpness,
    /// Keep the top `m` bits of each value.
    Posterize,
    /// Invert every value at or above the threshold `m`.
    Solarize,
    /// Stretch each channel to the full 0–255 range.
    AutoContrast,
    /// Histogram equalisation per channel.
    Equalize,
}

/// The 14 ops in torchvision's order.
pub const AUTO_OPS: [AutoOp; 14] = [
    AutoOp::Identity,
    AutoOp::ShearX,
    AutoOp::ShearY,
    AutoOp::TranslateX,
    AutoOp::TranslateY,
    AutoOp::Rotate,
    AutoOp::Brightness,
    AutoOp::Color,
    AutoOp::Contrast,
    AutoOp::Sharpness,
    AutoOp::Posterize,
    AutoOp::Solarize,
    AutoOp::AutoContrast,
    AutoOp::Equalize,
];

/// Which policy's magnitude table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// RandAugment: shear ≤ 0.3, translation ≤ 150/331 of the size, rotation ≤ 30°, colour ≤ 0.9.
    RandAugment,
    /// TrivialAugmentWide: shear ≤ 0.99, translation ≤ 32 px, rotation ≤ 135°, colour ≤ 0.99.
    TrivialAugmentWide,
}

/// torchvision's `_get_inverse_affine_matrix` (angles in degrees, centre and translation in
/// pixels from the image centre), operation for operation so that the f32 grid matches.
fn inverse_affine_matrix(center: [f64; 2], angle: f64, translate: [f64; 2], shear: [f64; 2]) -> [f64; 6] {
    let (rot, sx, sy) = (angle.to_radians(), shear[0].to_radians(), shear[1].to_radians());
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

impl AutoOp {
    /// The magnitude of bin `bin` (of `bins`) for an image of `height × width`, and whether the
    /// policy flips its sign with probability ½; `None` for ops without a magnitude.
    pub fn magnitude(
        self,
        policy: Policy,
        bin: usize,
        bins: usize,
        height: usize,
        width: usize,
    ) -> Option<(f64, bool)> {
        let wide = policy == Policy::TrivialAugmentWide;
        let span = |narrow: f32, wide_end: f32| linspace(0.0, if wide { wide_end } else { narrow }, bins, bin);
        let (value, signed) = match self {
            AutoOp::Identity | AutoOp::AutoContrast | AutoOp::Equalize => return None,
            AutoOp::ShearX | AutoOp::ShearY => (span(0.3, 0.99), true),
            AutoOp::TranslateX => (span((150.0 / 331.0 * width as f64) as f32, 32.0), true),
            AutoOp::TranslateY => (span((150.0 / 331.0 * height as f64) as f32, 32.0), true),
            AutoOp::Rotate => (span(30.0, 135.0), true),
            AutoOp::Brightness | AutoOp::Color | AutoOp::Contrast | AutoOp::Sharpness => (span(0.9, 0.99), true),
            AutoOp::Posterize => {
                let levels = if wide { 6.0 } else { 4.0 };
                let drop = (bin as f32 / ((bins - 1) as f32 / levels)).round_ties_even();
                (8.0 - drop, false)
            }
            AutoOp::Solarize => (linspace(255.0, 0.0, bins, bin), false),
        };
        Some((f64::from(value), signed))
    }

    /// Applies the op with magnitude `m` (already signed), filling uncovered pixels with `fill`.
    pub fn apply(self, img: &Image, m: f64, fill: u8) -> Image {
        // torchvision's `center=[0, 0]` (the top-left corner) in centred coordinates.
        let corner = [-0.5 * img.width as f64, -0.5 * img.height as f64];
        let shear = |s: [f64; 2]| affine_nearest(img, inverse_affine_matrix(corner, 0.0, [0.0, 0.0], s), fill);
        let shift = |t: [f64; 2]| affine_nearest(img, inverse_affine_matrix([0.0, 0.0], 0.0, t, [0.0, 0.0]), fill);
        match self {
            AutoOp::Identity => img.clone(),
            AutoOp::ShearX => shear([m.atan().to_degrees(), 0.0]),
            AutoOp::ShearY => shear([0.0, m.atan().to_degrees()]),
            AutoOp::TranslateX => shift([m.trunc(), 0.0]),
            AutoOp::TranslateY => shift([0.0, m.trunc()]),
            // `F.rotate` passes the negated angle.
            AutoOp::Rotate => affine_nearest(img, inverse_affine_matrix([0.0, 0.0], -m, [0.0, 0.0], [0.0, 0.0]), fill),
            AutoOp::Brightness => blend(img, m + 1.0, |_, _| 0.0),
            AutoOp::Color => {
                if img.channels == 1 {
                    return img.clone();
                }
                let gray = grayscale(img);
                blend(img, m + 1.0, |pixel, _| gray[pixel])
            }
            AutoOp::Contrast => {
                let gray = grayscale(img);
                let mean = gray.iter().sum::<f32>() / gray.len() as f32;
                blend(img, m + 1.0, |_, _| mean)
            }
            AutoOp::Sharpness => {
                if img.width <= 2 || img.height <= 2 {
                    return img.clone();
                }
                let smooth = smoothed(img);
                blend(img, m + 1.0, |pixel, ch| {
                    f32::from(smooth.data[pixel * img.channels + ch])
                })
            }
            AutoOp::Posterize => {
                let mask = !((1u16 << (8 - (m as u32).min(8))) - 1) as u8;
                map_values(img, |v| v & mask)
            }
            AutoOp::Solarize => map_values(img, |v| if f64::from(v) >= m { 255 - v } else { v }),
            AutoOp::AutoContrast => per_channel(img, autocontrast_table),
            AutoOp::Equalize => per_channel(img, equalize_table),
        }
    }
}

/// torchvision's `_blend`: `ratio·img + (1 − ratio)·other`, clamped and truncated to 8 bits.
fn blend(img: &Image, ratio: f64, other: impl Fn(usize, usize) -> f32) -> Image {
    let (r, c) = (ratio as f32, img.channels);
    let data = img
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| (r * f32::from(v) + (1.0 - r) * other(i / c, i % c)).clamp(0.0, 255.0) as u8)
        .collect();
    Image { data, ..*img }
}

/// torchvision's `rgb_to_grayscale` of a uint8 image (truncated), one value per pixel.
fn grayscale(img: &Image) -> Vec<f32> {
    if img.channels == 1 {
        return img.data.iter().map(|&v| f32::from(v)).collect();
    }
    img.data
        .chunks_exact(3)
        .map(|p| (0.2989 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])) as u8 as f32)
        .collect()
}

/// The image with its interior smoothed by `[[1,1,1],[1,5,1],[1,1,1]]/13` (rounded), the border
/// kept: torchvision's `_blurred_degenerate_image`.
fn smoothed(img: &Image) -> Image {
    let (w, h, c) = (img.width, img.height, img.channels);
    let mut out = img.clone();
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for ch in 0..c {
                let mut sum = 0.0f32;
                for dy in 0..3 {
                    for dx in 0..3 {
                        let weight = if dx == 1 && dy == 1 { 5.0 } else { 1.0 };
                        sum += weight / 13.0 * f32::from(img.get(x + dx - 1, y + dy - 1, ch));
                    }
                }
                out.data[(y * w + x) * c + ch] = sum.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

fn map_values(img: &Image, f: impl Fn(u8) -> u8) -> Image {
    Image {
        data: img.data.iter().map(|&v| f(v)).collect(),
        ..*img
    }
}

/// Maps every channel through the table `table(values of that channel)` builds.
fn per_channel(img: &Image, table: fn(&[u8]) -> [u8; 256]) -> Image {
    let c = img.channels;
    let mut out = img.clone();
    for ch in 0..c {
        let values: Vec<u8> = img.data.iter().skip(ch).step_by(c).copied().collect();
        let t = table(&values);
        for v in out.data.iter_mut().skip(ch).step_by(c) {
            *v = t[*v as usize];
        }
    }
    out
}

/// torchvision's `autocontrast`: `(v − min)·255/(max − min)`, truncated; flat channels unchanged.
fn autocontrast_table(values: &[u8]) -> [u8; 256] {
    let (lo, hi) = values.iter().fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi == lo {
        return std::array::from_fn(|v| v as u8);
    }
    // PyTorch divides a number by a tensor as a reciprocal times the number.
    let scale = (1.0 / (f32::from(hi) - f32::from(lo))) * 255.0;
    std::array::from_fn(|v| ((v as f32 - f32::from(lo)) * scale).clamp(0.0, 255.0) as u8)
}

/// torchvision's `equalize` of one channel (PIL's rule): the cumulative histogram in steps of
/// (all but the last non-empty bin) / 255.
fn equalize_table(values: &[u8]) -> [u8; 256] {
    let mut hist = [0u64; 256];
    for &v in values {
        hist[v as usize] += 1;
    }
    let nonzero: Vec<u64> = hist.iter().copied().filter(|&n| n > 0).collect();
    let step = nonzero[..nonzero.len().saturating_sub(1)].iter().sum::<u64>() / 255;
    if step == 0 {
        return std::array::from_fn(|v| v as u8);
    }
    let mut table = [0u8; 256];
    let mut cumulative = 0u64;
    for (v, &n) in hist.iter().enumerate() {
        // torchvision shifts the table by one: value v maps to the count below it.
        table[v] = ((cumulative + step / 2) / step).min(255) as u8;
        cumulative += n;
    }
    table
}

/// Applies `op` with a magnitude from bin `bin` and a random sign where the op is signed.
fn apply_bin(img: &Image, op: AutoOp, policy: Policy, bin: usize, bins: usize, fill: u8, rng: &mut impl Rng) -> Image {
    let magnitude = match op.magnitude(policy, bin, bins, img.height, img.width) {
        Some((m, true)) if rng.random_range(0..2) == 1 => -m,
        Some((m, _)) => m,
        None => 0.0,
    };
    op.apply(img, magnitude, fill)
}

/// RandAugment: `num_ops` ops drawn uniformly (with replacement), each at bin `magnitude`.
pub fn rand_augment(img: &Image, num_ops: usize, magnitude: usize, bins: usize, fill: u8, rng: &mut impl Rng) -> Image {
    let mut out = img.clone();
    for _ in 0..num_ops {
        let op = AUTO_OPS[rng.random_range(0..AUTO_OPS.len())];
        out = apply_bin(&out, op, Policy::RandAugment, magnitude, bins, fill, rng);
    }
    out
}

/// TrivialAugmentWide: one op drawn uniformly, at a bin drawn uniformly.
pub fn trivial_augment_wide(img: &Image, bins: usize, fill: u8, rng: &mut impl Rng) -> Image {
    let op = AUTO_OPS[rng.random_range(0..AUTO_OPS.len())];
    let bin = rng.random_range(0..bins);
    apply_bin(img, op, Policy::TrivialAugmentWide, bin, bins, fill, rng)
}
