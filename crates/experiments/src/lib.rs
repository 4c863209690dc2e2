//! # cnn-experiments
//!
//! The experiments of the papers and of the course, and the benchmark suite, each built only on
//! `cnn-trainer`'s public interface (as a library's examples are): what `cnn experiment` and
//! `cnn bench` run.
//!
//! - [`degradation`]: plain against residual networks of growing depth (He et al. 2016, Fig. 1);
//! - [`identity`]: a residual block appended to a trained network starts as the identity;
//! - [`ensemble`]: ensembles and ten-crop evaluation against single networks;
//! - [`transfer`]: pretrained against from scratch with few labels, five ways of fine-tuning
//!   ([`transfer::report`] writes its table and plot);
//! - [`reuse`]: how every experiment gets its runs (trained once, reused, resumed);
//! - [`bench`]: images/s of inference and training steps per model; [`bench_compare`]: against
//!   reference runs (PyTorch's variants, ONNX Runtime), per round and over alternating rounds;
//!   [`bench_loader`]: the data pipeline's throughput.

pub mod bench;
pub mod bench_compare;
pub mod bench_loader;
pub mod degradation;
pub mod ensemble;
pub mod identity;
pub mod reuse;
pub mod transfer;

pub use bench::{BenchCase, BenchPart, BenchPhase, BenchResult, family_suite, perf_suite, run_bench};
pub use bench_compare::{ReferenceFile, best_lines, compare_lines, merge_rounds, rounds_lines};
pub use bench_loader::{PipelineTiming, bench_pipeline};
