//! # cnn-transfer
//!
//! Transfer learning for the `cnn-models` networks: importing torchvision weights through
//! `burn::store` (PyTorch `.pth` and `.safetensors`) with a report of applied, missing and unused
//! keys ([`import`]); reading a file's head (classes, GoogLeNet's aux heads) to build a model that
//! fits it, or a new head for another number of classes ([`inspect`]).
//!
//! Still to come (tracked in the transfer-learning issue): replacing a model's head for a new
//! number of classes, freezing by depth, and caching backbone features on disk.

pub mod error;
pub mod import;
pub mod inspect;

pub use error::{Result, TransferError};
pub use import::{Format, LoadReport, Partial, load_torchvision, load_torchvision_remapped};
pub use inspect::{HeadInfo, head_info, load_fitting, tensor_shapes};
