//! # cnn-trainer
//!
//! Training and evaluation of the `cnn-models` networks on `cnn-data-augment` data sets, with
//! run folders (config, per-epoch metrics, weights). Library crates pick no backend: pass any
//! [`Device`](burn::tensor::Device) compiled into your build; training runs on
//! `device.autodiff()`.
//!
//! - [`TrainConfig`]: what to train, how long, with which optimiser and seed;
//!   [`TrainOverrides`]: settings on top of a preset, the defaults or a resumed run (the rules
//!   `cnn train`'s flags follow);
//! - [`fit()`]: the loop itself, generic over any [`ImageClassifier`](cnn_models::ImageClassifier);
//! - [`train_run`]: names → model and data → trained run folder, with a checkpoint after every
//!   epoch, exact resume, early stopping and `curves.png` ([`checkpoint`], [`plot`]);
//! - [`presets`]: the named recipes behind the README's results; [`experiment`]: the
//!   plain-vs-residual degradation experiment;
//! - [`schedule`]: constant, step and cosine learning rates with linear warm-up;
//! - [`eval`]: top-1/top-5, per-class accuracy and confusion matrices; predictions with
//!   ten-crop test-time augmentation;
//! - [`lock`]: one process per run folder; [`interrupt`]: stop after the current batch (Ctrl-C);
//! - [`run_bench`]: images/s of inference or of a training step, for benchmarks.
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
//! let cfg = TrainConfig { epochs: 1, batch_size: 16, ..TrainConfig::new("lenet5", "mnist-5k") };
//! let (_model, history) = fit(cnn_models::lenet5(10, &device), data, &cfg, &device, &mut |_| {})?;
//! assert_eq!(history.len(), 1);
//! assert!(history[0].valid_accuracy > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bench;
pub mod bench_loader;
pub mod cached;
pub mod checkpoint;
pub mod collective;
pub mod config;
pub mod device;
pub mod ensemble;
pub mod ensemble_experiment;
pub mod epochs;
pub mod error;
pub mod eval;
pub mod experiment;
pub mod explain;
pub mod fit;
pub mod identity_experiment;
pub mod interrupt;
pub mod lock;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod overrides;
pub mod parallel;
pub mod plot;
pub mod presets;
pub mod run;
pub mod schedule;
pub mod step;
pub mod train;
pub mod transfer_experiment;
pub mod transfer_report;

pub use bench::{
    BenchCase, BenchPart, BenchPhase, BenchResult, ReferenceFile, compare_lines, family_suite, perf_suite, run_bench,
};
pub use bench_loader::{PipelineTiming, bench_pipeline};
pub use config::{OptimizerKind, Schedule, TrainConfig};
pub use epochs::{Hooks, TrainState};
pub use error::{Result, TrainError};
pub use ensemble::{EnsembleEvaluation, MemberEvaluation, Probabilities, evaluate_runs};
pub use eval::{DetailedEvaluation, Evaluation, evaluate, evaluate_detailed, predict, probabilities, ten_crops, views};
pub use fit::{EpochMetrics, Fitted, Progress, Stop, TrainData, fit, fit_from};
pub use lock::FolderLock;
pub use overrides::{RunPlan, TrainOverrides};
pub use run::{DATASETS, LoadedData, RunFolder, RunReport, load_data, load_dataset, preprocess_for};
pub use collective::Collective;
pub use train::{train_run, train_run_across, train_run_on};
