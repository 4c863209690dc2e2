//! # cnn-trainer
//!
//! Training and evaluation of the `cnn-models` networks on `cnn-data-augment` data sets, with
//! run folders (config, per-epoch metrics, weights). Library crates pick no backend: pass any
//! [`Device`](burn::tensor::Device) compiled into your build; training runs on
//! `device.autodiff()`.
//!
//! - [`TrainConfig`]: what to train, how long, with which optimiser and seed;
//! - [`fit()`]: the loop itself, generic over any [`ImageClassifier`](cnn_models::ImageClassifier);
//! - [`train_run`]: names → model and data → trained run folder;
//! - [`run_bench`]: images/s of inference or of a training step, for benchmarks.

pub mod bench;
pub mod bench_loader;
pub mod config;
pub mod error;
pub mod fit;
pub mod run;

pub use bench::{BenchCase, BenchPhase, BenchResult, family_suite, run_bench};
pub use bench_loader::{PipelineTiming, bench_pipeline};
pub use config::{OptimizerKind, TrainConfig};
pub use error::{Result, TrainError};
pub use fit::{EpochMetrics, Evaluation, Progress, evaluate, fit};
pub use run::{DATASETS, LoadedData, RunReport, load_data, load_dataset, preprocess_for, train_run};
