//! # cnn-trainer
//!
//! Training and evaluation of the `cnn-models` networks on `cnn-data-augment` data sets, with
//! run folders (config, per-epoch metrics, weights). Library crates pick no backend: pass any
//! [`Device`](burn::tensor::Device) compiled into your build; training runs on
//! `device.autodiff()`.
//!
//! The crate is folded by responsibility:
//!
//! - [`config`]: what a run is asked to do — [`TrainConfig`], [`TrainOverrides`] (settings on
//!   top of a preset, the defaults or a resumed run: the rules `cnn train`'s flags follow) and
//!   the named [`presets`](config::presets);
//! - [`fit`](mod@fit): the training loop itself, generic over any
//!   [`ImageClassifier`](cnn_models::ImageClassifier): [`fit()`], the one epoch loop, the ways of
//!   stepping, schedules and optimisers;
//! - [`distributed`]: data-parallel steps over several devices and several processes (MPI);
//! - [`eval`]: top-1/top-5, per-class accuracy and confusion matrices; predictions with
//!   ten-crop test-time augmentation; ensembles; heads on cached features; Grad-CAM;
//! - [`run`]: names → model and data → trained run folder ([`train_run`]), with a checkpoint
//!   after every epoch, exact resume, early stopping, one process per folder and Ctrl-C;
//! - [`report`]: `curves.png`, other plots and `metrics.csv`;
//! - [`atomic`]: the one way files are written.
//!
//! Experiments and benchmarks built on it live in the `cnn-experiments` crate.
//!
//! One epoch of LeNet-5 on 64 of the embedded MNIST digits, validated on the embedded test
//! digits:
//!
//! ```
//! use std::sync::Arc;
//!
//! use burn::tensor::Device;
//! use cnn_data_augment::{Preprocess, embedded::mnist_5k};
//! use cnn_trainer::{TrainConfig, TrainData, fit};
//!
//! let device = Device::flex().autodiff();
//! let (train, test) = mnist_5k()?;
//! let data = TrainData {
//!     train: Arc::new(train.subset(&(0..64).collect::<Vec<_>>())?),
//!     valid: &test,
//!     pre: &Preprocess::mnist(32),
//! };
//! let mut cfg = TrainConfig::new("lenet5", "mnist-5k");
//! (cfg.optim.epochs, cfg.optim.batch_size) = (1, 16);
//! let (_model, history) = fit(cnn_models::lenet5(10, &device), data, &cfg, &device, &mut |_| {})?;
//! assert_eq!(history.len(), 1);
//! assert!(history[0].valid_accuracy > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod atomic;
pub mod config;
pub mod distributed;
pub mod error;
pub mod eval;
pub mod fit;
pub mod report;
pub mod run;

pub use config::overrides::RunPlan;
pub use config::{
    AugmentSettings, LoaderSettings, OptimSettings, OptimizerKind, Schedule, TaskSettings, TrainConfig, TrainOverrides,
    TransferSettings,
};
pub use distributed::collective::Collective;
pub use error::{Result, TrainError};
pub use eval::ensemble::{EnsembleEvaluation, MemberEvaluation, Probabilities, evaluate_runs};
pub use eval::{
    DetailedEvaluation, Evaluation, TestViews, evaluate, evaluate_detailed, evaluate_views, mirrored_logits, predict,
    probabilities, shift_images, ten_crops, view_logits, views,
};
pub use fit::{EpochMetrics, Fitted, Hooks, Progress, Stop, TrainData, TrainState, fit, fit_from};
pub use run::lock::FolderLock;
pub use run::{DATASETS, LoadedData, RunFolder, RunReport, load_data, load_dataset, preprocess_for};
pub use run::{train_run, train_run_across, train_run_on};
