//! The augmentation operations and their hyperparameters, as they appear in pipeline files.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::auto;
use super::color::{self, PcaColor};
use super::draw::uniform;
use super::elastic::elastic;
use super::erase::{self, EraseValue};
use super::geometry::{self, PadMode};
use crate::image::Image;

/// A square size (`32`) or `[height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// Height = width.
    Square(usize),
    /// `[height, width]`.
    Rect([usize; 2]),
}

impl Size {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Size::Square(s) => (s, s),
            Size::Rect([h, w]) => (h, w),
        }
    }
}

/// Where colour-shift offsets come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftDistribution {
    /// Uniform in `[−scale, scale]`.
    #[default]
    Uniform,
    /// Normal with mean 0 and standard deviation `scale`.
    Normal,
}

fn half() -> f64 {
    0.5
}
fn one() -> f64 {
    1.0
}
fn rrc_scale() -> [f64; 2] {
    [0.08, 1.0]
}
fn rrc_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}
fn unit_scale() -> [f64; 2] {
    [1.0, 1.0]
}
fn two() -> usize {
    2
}
fn nine() -> usize {
    9
}
fn bins() -> usize {
    31
}
fn erase_scale() -> [f64; 2] {
    [0.02, 0.33]
}
fn erase_ratio() -> [f64; 2] {
    [0.3, 3.3]
}
fn pca_sigma() -> f64 {
    0.1
}
fn imagenet_values() -> [f64; 3] {
    PcaColor::imagenet().eigenvalues
}
fn imagenet_vectors() -> [[f64; 3]; 3] {
    PcaColor::imagenet().eigenvectors
}

/// One augmentation with its hyperparameters. Angles are in degrees, probabilities in [0, 1],
/// ranges `[low, high]` are sampled uniformly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Mirror left–right with probability `p`.
    HorizontalFlip {
        /// Probability.
        #[serde(default = "half")]
        p: f64,
    },
    /// Mirror left–right every other epoch (the fast CIFAR-10 records' alternating flip): in its
    /// first epoch each image is mirrored or not by a coin of its own, in every later epoch the
    /// other way from the epoch before, so any two consecutive epochs show it both ways. On its
    /// own, outside an epoch (a preview), a fair coin.
    AlternatingFlip,
    /// Mirror top–bottom with probability `p`.
    VerticalFlip {
        /// Probability.
        #[serde(default = "half")]
        p: f64,
    },
    /// Pad by `padding` on every side, then crop `size` at a random position.
    RandomCrop {
        /// Output size.
        size: Size,
        /// Padding before cropping.
        #[serde(default)]
        padding: usize,
        /// How the padding is filled.
        #[serde(default)]
        padding_mode: PadMode,
    },
    /// Crop `size` from the centre.
    CenterCrop {
        /// Output size.
        size: Size,
    },
    /// torchvision's RandomResizedCrop: a crop of random area (fraction in `scale`) and aspect
    /// ratio (in `ratio`, sampled log-uniformly), resized to `size`.
    RandomResizedCrop {
        /// Output size.
        size: Size,
        /// Range of the crop's area as a fraction of the image.
        #[serde(default = "rrc_scale")]
        scale: [f64; 2],
        /// Range of the crop's aspect ratio (width / height).
        #[serde(default = "rrc_ratio")]
        ratio: [f64; 2],
    },
    /// Bilinear resize to `size`.
    Resize {
        /// Output size.
        size: Size,
    },
    /// Rotation by an angle drawn from `degrees`, bilinear, uncovered pixels set to `fill`.
    Rotate {
        /// Angle range.
        degrees: [f64; 2],
        /// Value for pixels that come from outside the image.
        #[serde(default)]
        fill: u8,
    },
    /// Shear along x and y by angles drawn from `x` and `y`.
    Shear {
        /// Horizontal shear angle range.
        #[serde(default)]
        x: [f64; 2],
        /// Vertical shear angle range.
        #[serde(default)]
        y: [f64; 2],
        /// Fill value.
        #[serde(default)]
        fill: u8,
    },
    /// Random affine map: rotation, translation (up to `translate` × width/height), scale and
    /// x-shear, about the centre.
    Affine {
        /// Rotation range.
        #[serde(default)]
        degrees: [f64; 2],
        /// Largest translation as a fraction of `[width, height]`.
        #[serde(default)]
        translate: [f64; 2],
        /// Scale range.
        #[serde(default = "unit_scale")]
        scale: [f64; 2],
        /// Horizontal shear range.
        #[serde(default)]
        shear: [f64; 2],
        /// Fill value.
        #[serde(default)]
        fill: u8,
    },
    /// Elastic distortion with probability `p` (Simard et al. 2003).
    Elastic {
        /// Strength in pixels.
        alpha: f64,
        /// Smoothness (Gaussian width) in pixels.
        sigma: f64,
        /// Probability.
        #[serde(default = "one")]
        p: f64,
        /// Fill value.
        #[serde(default)]
        fill: u8,
    },
    /// Adds an offset to each channel, drawn per image from `distribution` with per-channel
    /// `scale` (one value for all channels, or one per channel), on the 0–255 scale.
    ColorShift {
        /// Uniform or normal.
        #[serde(default)]
        distribution: ShiftDistribution,
        /// Spread per channel.
        scale: Vec<f64>,
    },
    /// Brightness, contrast and saturation factors drawn from `[max(0, 1−x), 1+x]`.
    ColorJitter {
        /// Brightness spread.
        #[serde(default)]
        brightness: f64,
        /// Contrast spread.
        #[serde(default)]
        contrast: f64,
        /// Saturation spread.
        #[serde(default)]
        saturation: f64,
    },
    /// AlexNet's PCA colour augmentation: `αi ~ N(0, sigma)` once per image.
    PcaColor {
        /// Standard deviation of the α draws.
        #[serde(default = "pca_sigma")]
        sigma: f64,
        /// Eigenvalues (from `cnn augment fit-pca`; default: ImageNet's).
        #[serde(default = "imagenet_values")]
        eigenvalues: [f64; 3],
        /// Eigenvectors, one per row.
        #[serde(default = "imagenet_vectors")]
        eigenvectors: [[f64; 3]; 3],
    },
    /// torchvision's RandAugment: `num_ops` ops drawn from its 14, each at bin `magnitude` of
    /// `num_magnitude_bins` (see [`super::auto`]).
    RandAugment {
        /// Ops per image.
        #[serde(default = "two")]
        num_ops: usize,
        /// The magnitude bin, below `num_magnitude_bins`.
        #[serde(default = "nine")]
        magnitude: usize,
        /// Bins of the magnitude tables.
        #[serde(default = "bins")]
        num_magnitude_bins: usize,
        /// Value of pixels that come from outside the image.
        #[serde(default)]
        fill: u8,
    },
    /// torchvision's TrivialAugmentWide: one op of the 14 at a random bin of its wide tables.
    TrivialAugmentWide {
        /// Bins of the magnitude tables.
        #[serde(default = "bins")]
        num_magnitude_bins: usize,
        /// Value of pixels that come from outside the image.
        #[serde(default)]
        fill: u8,
    },
    /// torchvision's RandomErasing: with probability `p`, a rectangle of area fraction in `scale`
    /// and height/width ratio in `ratio` set to `value` (a number, or `"random"` for noise).
    RandomErasing {
        /// Probability.
        #[serde(default = "half")]
        p: f64,
        /// Range of the rectangle's area as a fraction of the image.
        #[serde(default = "erase_scale")]
        scale: [f64; 2],
        /// Range of the rectangle's height / width.
        #[serde(default = "erase_ratio")]
        ratio: [f64; 2],
        /// The value written, or `"random"`.
        #[serde(default)]
        value: EraseValue,
    },
}

/// Standard normal draw (Box–Muller).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn jitter_factor(rng: &mut impl Rng, spread: f64) -> f64 {
    uniform(rng, [(1.0 - spread).max(0.0), 1.0 + spread])
}

impl Op {
    /// The op's name as written in pipeline files.
    pub fn name(&self) -> &'static str {
        match self {
            Op::HorizontalFlip { .. } => "horizontal_flip",
            Op::AlternatingFlip => "alternating_flip",
            Op::VerticalFlip { .. } => "vertical_flip",
            Op::RandomCrop { .. } => "random_crop",
            Op::CenterCrop { .. } => "center_crop",
            Op::RandomResizedCrop { .. } => "random_resized_crop",
            Op::Resize { .. } => "resize",
            Op::Rotate { .. } => "rotate",
            Op::Shear { .. } => "shear",
            Op::Affine { .. } => "affine",
            Op::Elastic { .. } => "elastic",
            Op::ColorShift { .. } => "color_shift",
            Op::ColorJitter { .. } => "color_jitter",
            Op::PcaColor { .. } => "pca_color",
            Op::RandAugment { .. } => "rand_augment",
            Op::TrivialAugmentWide { .. } => "trivial_augment_wide",
            Op::RandomErasing { .. } => "random_erasing",
        }
    }

    /// Applies the op, drawing its randomness from `rng`. The image must fit the op (a crop no
    /// larger than the padded image), which [`super::Pipeline::check_input`] verifies up front.
    pub fn apply(&self, img: &Image, rng: &mut impl Rng) -> Result<Image, String> {
        Ok(match *self {
            Op::AlternatingFlip => Op::HorizontalFlip { p: 0.5 }.apply(img, rng)?,
            Op::HorizontalFlip { p } => {
                if rng.random::<f64>() < p {
                    geometry::flip_horizontal(img)
                } else {
                    img.clone()
                }
            }
            Op::VerticalFlip { p } => {
                if rng.random::<f64>() < p {
                    geometry::flip_vertical(img)
                } else {
                    img.clone()
                }
            }
            Op::RandomCrop {
                size,
                padding,
                padding_mode,
            } => {
                let padded = geometry::pad(img, padding, padding_mode);
                let (h, w) = size.hw();
                if h > padded.height || w > padded.width {
                    return Err(format!(
                        "crop {h}x{w} is larger than the {}x{} (padded) image",
                        padded.height, padded.width
                    ));
                }
                let top = rng.random_range(0..=padded.height - h);
                let left = rng.random_range(0..=padded.width - w);
                geometry::crop(&padded, top, left, h, w)
            }
            Op::CenterCrop { size } => {
                let (h, w) = size.hw();
                if h > img.height || w > img.width {
                    return Err(format!(
                        "crop {h}x{w} is larger than the {}x{} image",
                        img.height, img.width
                    ));
                }
                geometry::crop(img, (img.height - h) / 2, (img.width - w) / 2, h, w)
            }
            Op::RandomResizedCrop { size, scale, ratio } => {
                let (top, left, h, w) = geometry::resized_crop_window(img.height, img.width, scale, ratio, rng);
                let (oh, ow) = size.hw();
                geometry::resize_window(img, [top, left, h, w], oh, ow)
            }
            Op::Resize { size } => {
                let (h, w) = size.hw();
                geometry::resize(img, h, w)
            }
            Op::Rotate { degrees, fill } => {
                let angle = uniform(rng, degrees);
                geometry::warp(
                    img,
                    &geometry::inverse_affine(img.width, img.height, angle, 0.0, 0.0, 1.0, 0.0, 0.0),
                    fill,
                )
            }
            Op::Shear { x, y, fill } => {
                let (sx, sy) = (uniform(rng, x), uniform(rng, y));
                geometry::warp(
                    img,
                    &geometry::inverse_affine(img.width, img.height, 0.0, sx, sy, 1.0, 0.0, 0.0),
                    fill,
                )
            }
            Op::Affine {
                degrees,
                translate,
                scale,
                shear,
                fill,
            } => {
                let angle = uniform(rng, degrees);
                let tx = uniform(rng, [-translate[0], translate[0]]) * img.width as f64;
                let ty = uniform(rng, [-translate[1], translate[1]]) * img.height as f64;
                let s = uniform(rng, scale);
                let sx = uniform(rng, shear);
                geometry::warp(
                    img,
                    &geometry::inverse_affine(img.width, img.height, angle, sx, 0.0, s, tx.round(), ty.round()),
                    fill,
                )
            }
            Op::Elastic { alpha, sigma, p, fill } => {
                if rng.random::<f64>() < p {
                    elastic(img, alpha, sigma, fill, rng)
                } else {
                    img.clone()
                }
            }
            Op::ColorShift {
                distribution,
                ref scale,
            } => {
                let offsets: Vec<f64> = (0..img.channels)
                    .map(|c| {
                        let s = scale[c.min(scale.len() - 1)];
                        match distribution {
                            ShiftDistribution::Uniform => uniform(rng, [-s, s]),
                            ShiftDistribution::Normal => s * standard_normal(rng),
                        }
                    })
                    .collect();
                color::shift_channels(img, &offsets)
            }
            Op::ColorJitter {
                brightness,
                contrast,
                saturation,
            } => {
                let [b, c, s] = [brightness, contrast, saturation].map(|spread| jitter_factor(rng, spread));
                color::jitter_and_shift(img, b, c, s, &vec![0.0; img.channels])
            }
            Op::PcaColor {
                sigma,
                eigenvalues,
                eigenvectors,
            } => {
                let alphas = [0; 3].map(|_| sigma * standard_normal(rng));
                color::pca_shift(
                    img,
                    &PcaColor {
                        eigenvalues,
                        eigenvectors,
                    },
                    alphas,
                )
            }
            Op::RandAugment {
                num_ops,
                magnitude,
                num_magnitude_bins,
                fill,
            } => auto::rand_augment(img, num_ops, magnitude, num_magnitude_bins, fill, rng),
            Op::TrivialAugmentWide {
                num_magnitude_bins,
                fill,
            } => auto::trivial_augment_wide(img, num_magnitude_bins, fill, rng),
            Op::RandomErasing { p, scale, ratio, value } => {
                erase::random_erasing(img.clone(), p, scale, ratio, value, rng)
            }
        })
    }

    /// [`Self::apply`] to an image the caller no longer needs: a flip that does not happen
    /// hands it back instead of copying it.
    pub fn apply_owned(&self, img: Image, rng: &mut impl Rng) -> Result<Image, String> {
        match *self {
            Op::HorizontalFlip { p } | Op::VerticalFlip { p } => {
                if rng.random::<f64>() >= p {
                    return Ok(img);
                }
                Ok(match self {
                    Op::HorizontalFlip { .. } => geometry::flip_horizontal(&img),
                    _ => geometry::flip_vertical(&img),
                })
            }
            Op::AlternatingFlip => Op::HorizontalFlip { p: 0.5 }.apply_owned(img, rng),
            Op::RandomErasing { p, scale, ratio, value } => Ok(erase::random_erasing(img, p, scale, ratio, value, rng)),
            _ => self.apply(&img, rng),
        }
    }

    /// `self` then `next` as one step where the two fuse — colour jitter followed by PCA colour
    /// (the `imagenet` preset) runs as one pass over the pixels, with the same draws in the same
    /// order and so the same result — else `None`.
    pub fn apply_fused(&self, next: &Op, img: &Image, rng: &mut impl Rng) -> Option<Image> {
        let (
            &Op::ColorJitter {
                brightness,
                contrast,
                saturation,
            },
            &Op::PcaColor {
                sigma,
                eigenvalues,
                eigenvectors,
            },
        ) = (self, next)
        else {
            return None;
        };
        let [b, c, s] = [brightness, contrast, saturation].map(|spread| jitter_factor(rng, spread));
        let alphas = [0; 3].map(|_| sigma * standard_normal(rng));
        let pca = PcaColor {
            eigenvalues,
            eigenvectors,
        };
        Some(color::jitter_and_shift(
            img,
            b,
            c,
            s,
            &pca.channel_offsets(alphas, img.channels),
        ))
    }
}
