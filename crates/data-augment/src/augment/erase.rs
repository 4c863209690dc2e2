//! Random erasing (Zhong et al. 2020) with torchvision's `RandomErasing` draws: with probability
//! `p`, up to 10 tries at a rectangle of random area (fraction in `scale`) and log-uniform aspect
//! ratio (height / width in `ratio`) that fits, filled with a value or with noise.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::draw::{Aspect, random_window};
use crate::image::Image;

/// What an erased rectangle holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EraseValue {
    /// One 8-bit value for every channel. torchvision erases normalised tensors to 0 by default,
    /// which is the data set's mean: give the mean pixel value here for the same effect.
    Fill(u8),
    /// `"random"`: independent uniform values in 0–255 per pixel and channel (the paper's choice).
    Random(RandomWord),
}

/// The word `random` in pipeline files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomWord {
    /// Noise.
    Random,
}

impl Default for EraseValue {
    fn default() -> Self {
        EraseValue::Fill(0)
    }
}

/// The rectangle `(top, left, height, width)` torchvision's `RandomErasing.get_params` picks, or
/// `None` when 10 tries found none that fits (the image is then left as it is).
pub fn erase_window(
    height: usize,
    width: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut impl Rng,
) -> Option<(usize, usize, usize, usize)> {
    // As torchvision: the rectangle is smaller than the image.
    let draw = (scale, ratio, Aspect::HeightOverWidth);
    random_window((height, width), draw, rng, |h, w| h < height && w < width)
}

/// Random erasing of `img`: see the module docs.
pub fn random_erasing(
    img: Image,
    p: f64,
    scale: [f64; 2],
    ratio: [f64; 2],
    value: EraseValue,
    rng: &mut impl Rng,
) -> Image {
    if rng.random::<f64>() >= p {
        return img;
    }
    let Some((top, left, h, w)) = erase_window(img.height, img.width, scale, ratio, rng) else {
        return img;
    };
    let mut out = img;
    let c = out.channels;
    for y in top..top + h {
        let row = (y * out.width + left) * c;
        for v in &mut out.data[row..row + w * c] {
            *v = match value {
                EraseValue::Fill(fill) => fill,
                EraseValue::Random(_) => rng.random(),
            };
        }
    }
    out
}
