//! Pipelines: ordered lists of ops, read from TOML or JSON, with named presets, validated when
//! built, and deterministic per sample.
//!
//! A sample's result depends only on `(seed, epoch, index)`: each sample gets its own random
//! generator seeded from that triple, so the number of worker threads and their timing never
//! change what comes out.
//!
//! ```toml
//! [[ops]]
//! op = "random_crop"
//! size = 32
//! padding = 4
//!
//! [[ops]]
//! op = "horizontal_flip"
//! p = 0.5
//! ```

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::geometry::PadMode;
use super::ops::{Op, Size};
use crate::error::{DataError, Result};
use crate::image::Image;

/// Names of the built-in pipelines.
pub const PRESETS: [&str; 9] = [
    "none",
    "flip",
    "mnist",
    "cifar",
    "fashion",
    "fashion-alternating",
    "imagenet",
    "randaugment",
    "trivialaugment",
];

/// The `fashion` presets' crop: pad 2, then 28×28 at a random position (Fashion-MNIST's size).
const FASHION_CROP: Op = Op::RandomCrop {
    size: Size::Square(28),
    padding: 2,
    padding_mode: PadMode::Zero,
};

/// An ordered list of augmentation ops.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// The ops, applied in order.
    #[serde(default)]
    pub ops: Vec<Op>,
}

/// Whether [`Op::AlternatingFlip`] mirrors sample `index` in `epoch`: the sample's own coin
/// (from the seed) in epoch 0, the other side in epoch 1, and so on.
pub fn alternating_flip(seed: u64, epoch: u64, index: u64) -> bool {
    (crate::seed::derive(seed, &[crate::seed::stream::FLIP, index]) ^ epoch) & 1 == 1
}

/// The random generator of one sample: a function of `(seed, epoch, index)` only.
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(crate::seed::derive(seed, &[epoch, index]))
}

impl Pipeline {
    /// A built-in pipeline by name: `none`; `flip` (horizontal mirroring, e.g. for clothes);
    /// `mnist` (small affine + elastic); `cifar` (pad-4 crop
    /// + flip); `fashion` (pad-2 crop of 28 + flip, for Fashion-MNIST at its own size);
    /// `fashion-alternating` (the same crop + [`Op::AlternatingFlip`]); `imagenet`
    /// (random-resized crop to 224 + flip + colour jitter + PCA colour);
    /// `randaugment` and `trivialaugment` (torchvision's RandAugment and TrivialAugmentWide with
    /// their defaults).
    pub fn preset(name: &str) -> Result<Self> {
        let ops = match name {
            "none" => vec![],
            "flip" => vec![Op::HorizontalFlip { p: 0.5 }],
            "mnist" => vec![
                Op::Affine {
                    degrees: [-10.0, 10.0],
                    translate: [0.1, 0.1],
                    scale: [0.9, 1.1],
                    shear: [-10.0, 10.0],
                    fill: 0,
                },
                Op::Elastic {
                    alpha: 34.0,
                    sigma: 4.0,
                    p: 0.5,
                    fill: 0,
                },
            ],
            "cifar" => vec![
                Op::RandomCrop {
                    size: Size::Square(32),
                    padding: 4,
                    padding_mode: PadMode::Zero,
                },
                Op::HorizontalFlip { p: 0.5 },
            ],
            "fashion" => vec![FASHION_CROP, Op::HorizontalFlip { p: 0.5 }],
            "fashion-alternating" => vec![FASHION_CROP, Op::AlternatingFlip],
            "imagenet" => vec![
                Op::RandomResizedCrop {
                    size: Size::Square(224),
                    scale: [0.08, 1.0],
                    ratio: [3.0 / 4.0, 4.0 / 3.0],
                },
                Op::HorizontalFlip { p: 0.5 },
                Op::ColorJitter {
                    brightness: 0.4,
                    contrast: 0.4,
                    saturation: 0.4,
                },
                Op::PcaColor {
                    sigma: 0.1,
                    eigenvalues: super::color::PcaColor::imagenet().eigenvalues,
                    eigenvectors: super::color::PcaColor::imagenet().eigenvectors,
                },
            ],
            "randaugment" => vec![Op::RandAugment {
                num_ops: 2,
                magnitude: 9,
                num_magnitude_bins: 31,
                fill: 0,
            }],
            "trivialaugment" => vec![Op::TrivialAugmentWide {
                num_magnitude_bins: 31,
                fill: 0,
            }],
            other => {
                return Err(DataError::Invalid(format!(
                    "unknown augmentation preset '{other}' (presets: {})",
                    PRESETS.join(", ")
                )));
            }
        };
        Ok(Self { ops })
    }

    /// A preset name, or a path to a `.toml` or `.json` pipeline file.
    pub fn from_arg(arg: &str) -> Result<Self> {
        if PRESETS.contains(&arg) {
            return Self::preset(arg);
        }
        let path = Path::new(arg);
        if !path.exists() {
            return Err(DataError::Invalid(format!(
                "'{arg}' is neither an augmentation preset ({}) nor a file",
                PRESETS.join(", ")
            )));
        }
        Self::from_file(path)
    }

    /// Reads a pipeline from TOML (`.toml`) or JSON (any other extension) and validates it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let is_toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let parsed = if is_toml {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        };
        parsed.map_err(|e| DataError::format(path, e.to_string()))
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let p: Self = toml::from_str(text).map_err(|e| DataError::Invalid(format!("bad pipeline: {}", e.message())))?;
        p.validate()?;
        Ok(p)
    }

    /// Parses and validates JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let p: Self = serde_json::from_str(text).map_err(|e| DataError::Invalid(format!("bad pipeline: {e}")))?;
        p.validate()?;
        Ok(p)
    }

    /// The pipeline as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("pipelines serialise")
    }

    /// The pipeline as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("pipelines serialise")
    }

    /// Whether the pipeline cuts a window out of each image (random crop, random-resized crop).
    pub fn crops(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, Op::RandomCrop { .. } | Op::RandomResizedCrop { .. }))
    }

    /// Checks every parameter, naming the op and field of the first bad one.
    pub fn validate(&self) -> Result<()> {
        for (i, op) in self.ops.iter().enumerate() {
            let bad = |field: &str, reason: String| DataError::Augment {
                index: i + 1,
                op: op.name().into(),
                field: field.into(),
                reason,
            };
            let prob = |field: &str, p: f64| {
                if (0.0..=1.0).contains(&p) {
                    Ok(())
                } else {
                    Err(bad(field, format!("must be a probability in [0, 1], got {p}")))
                }
            };
            let range = |field: &str, r: [f64; 2]| {
                if r.iter().all(|v| v.is_finite()) && r[0] <= r[1] {
                    Ok(())
                } else {
                    Err(bad(
                        field,
                        format!("must be a range [low, high] with low <= high, got {r:?}"),
                    ))
                }
            };
            let size = |s: Size| {
                let (h, w) = s.hw();
                if h > 0 && w > 0 {
                    Ok(())
                } else {
                    Err(bad("size", "must be positive".into()))
                }
            };
            let bins = |n: usize| {
                if (2..=256).contains(&n) {
                    Ok(())
                } else {
                    Err(bad("num_magnitude_bins", format!("must be in 2..=256, got {n}")))
                }
            };
            match op {
                Op::HorizontalFlip { p } | Op::VerticalFlip { p } => prob("p", *p)?,
                Op::AlternatingFlip => {}
                Op::RandomCrop { size: s, .. } | Op::CenterCrop { size: s } | Op::Resize { size: s } => size(*s)?,
                Op::RandomResizedCrop { size: s, scale, ratio } => {
                    size(*s)?;
                    range("scale", *scale)?;
                    range("ratio", *ratio)?;
                    if !(scale[0] > 0.0 && scale[1] <= 1.0) {
                        return Err(bad("scale", format!("must lie in (0, 1], got {scale:?}")));
                    }
                    if ratio[0] <= 0.0 {
                        return Err(bad("ratio", format!("must be positive, got {ratio:?}")));
                    }
                }
                Op::Rotate { degrees, .. } => range("degrees", *degrees)?,
                Op::Shear { x, y, .. } => {
                    range("x", *x)?;
                    range("y", *y)?;
                    if x.iter().chain(y).any(|a| a.abs() >= 80.0) {
                        return Err(bad("x/y", "shear angles must be within ±80 degrees".into()));
                    }
                }
                Op::Affine {
                    degrees,
                    translate,
                    scale,
                    shear,
                    ..
                } => {
                    range("degrees", *degrees)?;
                    range("scale", *scale)?;
                    range("shear", *shear)?;
                    if scale[0] <= 0.0 {
                        return Err(bad("scale", format!("must be positive, got {scale:?}")));
                    }
                    if translate.iter().any(|t| !(0.0..=1.0).contains(t)) {
                        return Err(bad(
                            "translate",
                            format!("fractions must lie in [0, 1], got {translate:?}"),
                        ));
                    }
                    if shear.iter().any(|a| a.abs() >= 80.0) {
                        return Err(bad("shear", "angles must be within ±80 degrees".into()));
                    }
                }
                Op::Elastic { alpha, sigma, p, .. } => {
                    prob("p", *p)?;
                    if !(alpha.is_finite() && *alpha >= 0.0) {
                        return Err(bad("alpha", format!("must be >= 0, got {alpha}")));
                    }
                    if !(sigma.is_finite() && *sigma > 0.0 && *sigma <= 100.0) {
                        return Err(bad("sigma", format!("must be in (0, 100], got {sigma}")));
                    }
                }
                Op::ColorShift { scale, .. } => {
                    if scale.is_empty() || scale.len() > 3 || scale.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
                        return Err(bad("scale", format!("needs 1 to 3 non-negative values, got {scale:?}")));
                    }
                }
                Op::ColorJitter {
                    brightness,
                    contrast,
                    saturation,
                } => {
                    for (field, v) in [
                        ("brightness", brightness),
                        ("contrast", contrast),
                        ("saturation", saturation),
                    ] {
                        if !(v.is_finite() && *v >= 0.0) {
                            return Err(bad(field, format!("must be >= 0, got {v}")));
                        }
                    }
                }
                Op::RandAugment {
                    num_ops,
                    magnitude,
                    num_magnitude_bins,
                    ..
                } => {
                    bins(*num_magnitude_bins)?;
                    if magnitude >= num_magnitude_bins {
                        return Err(bad(
                            "magnitude",
                            format!("must be below num_magnitude_bins ({num_magnitude_bins}), got {magnitude}"),
                        ));
                    }
                    if *num_ops > 16 {
                        return Err(bad("num_ops", format!("must be at most 16, got {num_ops}")));
                    }
                }
                Op::TrivialAugmentWide { num_magnitude_bins, .. } => bins(*num_magnitude_bins)?,
                Op::RandomErasing { p, scale, ratio, .. } => {
                    prob("p", *p)?;
                    range("scale", *scale)?;
                    range("ratio", *ratio)?;
                    if !(scale[0] >= 0.0 && scale[1] <= 1.0) {
                        return Err(bad("scale", format!("must lie in [0, 1], got {scale:?}")));
                    }
                    if ratio[0] <= 0.0 {
                        return Err(bad("ratio", format!("must be positive, got {ratio:?}")));
                    }
                }
                Op::PcaColor { sigma, eigenvalues, .. } => {
                    if !(sigma.is_finite() && *sigma >= 0.0) {
                        return Err(bad("sigma", format!("must be >= 0, got {sigma}")));
                    }
                    if eigenvalues.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                        return Err(bad("eigenvalues", format!("must be non-negative, got {eigenvalues:?}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows the image size through the ops and fails (naming the op) where a crop would not
    /// fit an input of `height × width`. Returns the output size.
    pub fn check_input(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let (mut h, mut w) = (height, width);
        for (i, op) in self.ops.iter().enumerate() {
            let bad = |reason: String| DataError::Augment {
                index: i + 1,
                op: op.name().into(),
                field: "size".into(),
                reason,
            };
            match op {
                Op::RandomCrop { size, padding, .. } => {
                    let (ch, cw) = size.hw();
                    if ch > h + 2 * padding || cw > w + 2 * padding {
                        return Err(bad(format!(
                            "{ch}x{cw} is larger than the {h}x{w} image plus padding {padding}"
                        )));
                    }
                    (h, w) = (ch, cw);
                }
                Op::CenterCrop { size } => {
                    let (ch, cw) = size.hw();
                    if ch > h || cw > w {
                        return Err(bad(format!("{ch}x{cw} is larger than the {h}x{w} image")));
                    }
                    (h, w) = (ch, cw);
                }
                Op::RandomResizedCrop { size, .. } | Op::Resize { size } => (h, w) = size.hw(),
                _ => {}
            }
        }
        Ok((h, w))
    }

    /// Augments sample `index` of `epoch`. The result depends only on `(seed, epoch, index)`.
    pub fn apply(&self, img: &Image, seed: u64, epoch: u64, index: u64) -> Result<Image> {
        let mut rng = sample_rng(seed, epoch, index);
        // The caller's image is only read; the ops after the first own their input.
        let mut out: Option<Image> = None;
        let mut i = 0;
        while i < self.ops.len() {
            let op = &self.ops[i];
            if *op == Op::AlternatingFlip {
                // Decided by the sample and the epoch, not drawn: the generator is left as it is.
                let current = out.take().unwrap_or_else(|| img.clone());
                let flip = alternating_flip(seed, epoch, index);
                out = Some(if flip { super::geometry::flip_horizontal(&current) } else { current });
                i += 1;
                continue;
            }
            let fused = self
                .ops
                .get(i + 1)
                .and_then(|next| op.apply_fused(next, out.as_ref().unwrap_or(img), &mut rng));
            if let Some(fused) = fused {
                out = Some(fused);
                i += 2;
                continue;
            }
            let result = match out.take() {
                Some(owned) => op.apply_owned(owned, &mut rng),
                None => op.apply(img, &mut rng),
            };
            out = Some(result.map_err(|reason| DataError::Augment {
                index: i + 1,
                op: op.name().into(),
                field: "size".into(),
                reason,
            })?);
            i += 1;
        }
        Ok(out.unwrap_or_else(|| img.clone()))
    }

    /// Augments `images` (sample `i` has index `first_index + i`) on `workers` threads.
    pub fn apply_all(
        &self,
        images: &[Image],
        seed: u64,
        epoch: u64,
        first_index: u64,
        workers: usize,
    ) -> Result<Vec<Image>> {
        let workers = workers.max(1).min(images.len().max(1));
        let chunk = images.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| {
            let handles: Vec<_> = images
                .chunks(chunk)
                .enumerate()
                .map(|(c, part)| {
                    scope.spawn(move || {
                        part.iter()
                            .enumerate()
                            .map(|(i, img)| self.apply(img, seed, epoch, first_index + (c * chunk + i) as u64))
                            .collect::<Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(images.len());
            for h in handles {
                out.extend(h.join().expect("augmentation worker panicked")?);
            }
            Ok(out)
        })
    }
}
