//! Data augmentation: every distortion of the case studies, each with its size and distribution
//! as a hyperparameter, composable into a [`Pipeline`] that is deterministic per sample.
//!
//! | op | what it does |
//! | --- | --- |
//! | `horizontal_flip`, `vertical_flip` | mirroring with a probability |
//! | `random_crop`, `center_crop` | crops (random crops optionally after zero/reflect/edge padding) |
//! | `random_resized_crop`, `resize` | torchvision's random-resized crop; bilinear resize |
//! | `rotate`, `shear`, `affine` | rotation, shear, and rotation + shear + scale + translation |
//! | `elastic` | local warping (Simard et al. 2003) |
//! | `color_shift`, `color_jitter` | per-channel offsets; brightness/contrast/saturation |
//! | `pca_color` | AlexNet's PCA colour augmentation; fit with [`PcaFit`] |
//! | `rand_augment`, `trivial_augment_wide` | torchvision's automatic policies ([`auto`]) |
//! | `random_erasing` | a random rectangle set to a value or noise ([`erase`]) |
//!
//! Mixup and CutMix blend whole batches ([`mix`], [`BatchMix`]), after the per-image pipeline.
//!
//! Normalisation to a float tensor is the batch's job ([`crate::Preprocess`]).

pub mod auto;
pub mod color;
pub mod draw;
pub mod elastic;
pub mod erase;
pub mod geometry;
pub mod mix;
pub mod ops;
pub mod pca_fit;
pub mod pipeline;
pub mod preview;
pub mod throughput;

pub use color::{PcaColor, PcaFit};
pub use erase::EraseValue;
pub use mix::{BatchMix, Mixed};
pub use ops::{Op, ShiftDistribution, Size};
pub use pca_fit::{FittedPca, fit_pca};
pub use pipeline::{PRESETS, Pipeline, alternating_flip, sample_rng};
pub use throughput::{Throughput, load_inputs, throughput};
