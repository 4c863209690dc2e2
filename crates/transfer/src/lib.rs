//! # cnn-transfer
//!
//! Transfer learning for the `cnn-models` networks: importing torchvision weights through
//! `burn::store` (PyTorch `.pth` and `.safetensors`) with a report of applied, missing and unused
//! keys ([`import`]).
//!
//! Still to come (tracked in the transfer-learning issue): replacing a model's head for a new
//! number of classes, freezing by depth, and caching backbone features on disk.

pub mod error;
pub mod import;

pub use error::{Result, TransferError};
pub use import::{Format, LoadReport, Partial, load_torchvision, load_torchvision_remapped};
