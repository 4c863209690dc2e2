//! # cnn-transfer
//!
//! Transfer learning for the `cnn-models` networks: importing torchvision weights through
//! `burn::store` (PyTorch `.pth` and `.safetensors`), replacing a model's head for a new number
//! of classes, freezing by depth, and caching backbone features on disk so that only a new head
//! trains.
//!
//! Status: this crate is a placeholder in the workspace so that the dependency graph
//! (cli → trainer → transfer → models) is in place; its features arrive with the transfer-learning
//! issue. It exposes nothing yet.
