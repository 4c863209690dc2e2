//! # cnn-transfer
//!
//! Transfer learning for the `cnn-models` networks: importing torchvision weights through
//! `burn::store` (PyTorch `.pth` and `.safetensors`) with a report of applied, missing and unused
//! keys ([`import`]); reading a file's head (classes, GoogLeNet's aux heads) to build a model that
//! fits it, or a new head for another number of classes ([`inspect`]).
//!
//! [`export`]: the way back — a model's weights under torchvision's keys and layouts, as
//! `.safetensors` or a `torch.save` `.pth` that PyTorch loads with `strict=True`.
//!
//! [`onnx`]: a model's inference graph as an ONNX file (burn-onnx's exporter) with the run's
//! preprocessing in its metadata, for ONNX Runtime and other engines.
//!
//! [`freeze`]: freezing by depth (`none`, `all`, `upto:<stage>`, and `auto`, which picks from the
//! number of images per class), with BatchNorm in inference behaviour.
//!
//! [`rates`]: learning rates per stage (the backbone at a fraction of the head's rate,
//! optionally shrinking stage by stage towards the stem).
//!
//! [`cache`]: backbone features on disk, keyed by a hash of everything they depend on, so that
//! when only the head trains the images pass through the frozen backbone once.
//!
//! Freezing ResNet-18's stages up to `layer2` (its stem and first two stages) for fine-tuning:
//!
//! ```
//! use burn::tensor::Device;
//! use cnn_transfer::{FreezePolicy, freeze, resolve, stages};
//!
//! let model = cnn_models::resnet18(10, &Device::flex().autodiff());
//! let names: Vec<String> = stages(&model).into_iter().map(|s| s.name).collect();
//! assert!(names.contains(&"layer2".to_string()));
//! let plan = resolve(&model, &FreezePolicy::UpTo("layer2".into()), 100)?;
//! assert!(plan.frozen.iter().any(|s| s.name == "layer1"));
//! let _model = freeze(model, &plan.frozen)?;
//! # Ok::<(), cnn_transfer::TransferError>(())
//! ```

pub mod cache;
pub mod error;
pub mod export;
pub mod freeze;
pub mod import;
pub mod inspect;
pub mod onnx;
pub mod rates;
pub mod verify;
pub mod zoo;

pub use cache::{CacheKey, CacheWriter, FeatureCache};
pub use error::{Result, TransferError};
pub use export::{Exported, export_bytes, state_dict};
pub use freeze::{AUTO_RATES, AutoThresholds, FreezePlan, FreezePolicy, Stage, freeze, resolve, stage_group, stages};
pub use rates::LayerRates;
pub use import::{Format, LoadReport, Partial, load_torchvision, load_torchvision_remapped};
pub use onnx::{OPSET, OnnxBatch, model_onnx, onnx_bytes};
pub use inspect::{HeadInfo, head_info, load_fitting, load_with_new_head, tensor_shapes};
pub use verify::{Parity, verify};
