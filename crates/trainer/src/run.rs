//! A complete run: resolve names, train, evaluate, and write the run folder.
//!
//! A run folder holds `config.json` (the [`TrainConfig`]), `metrics.csv` (one row per epoch),
//! `model.bpk` (the trained weights, burn's burnpack format) and `summary.json` (final test
//! figures).

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use cnn_data_augment::{ImageDataset, Preprocess};
use cnn_models::{BuildOptions, ImageClassifier, registry};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::fit::{EpochMetrics, Evaluation, Progress, evaluate, fit};

/// Data sets the trainer can name.
pub const DATASETS: &[&str] = &cnn_data_augment::datasets::NAMES;

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run folder.
    pub dir: PathBuf,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// The final model on the held-out test set.
    pub test: Evaluation,
}

/// Loads a data set by registered name as `(train, test)`, from `data_dir` or the default folder.
pub fn load_dataset(name: &str, data_dir: Option<&Path>) -> Result<(ImageDataset, ImageDataset)> {
    let dir = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(cnn_data_augment::datasets::default_data_dir);
    Ok(cnn_data_augment::datasets::load(name, &dir)?)
}

/// Trains `cfg.model` on `cfg.dataset` on `device` and writes the run into `dir`.
pub fn train_run(
    cfg: &TrainConfig,
    device: &Device,
    dir: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    cfg.validate()?;
    let info = registry::lookup(&cfg.model)?;
    let (train, test) = load_dataset(&cfg.dataset, cfg.data_dir.as_deref())?;
    create_run_dir(dir)?;
    write_file(
        &dir.join("config.json"),
        serde_json::to_string_pretty(cfg).expect("config serialises").as_bytes(),
    )?;

    let autodiff = device.clone().autodiff();
    let pre = preprocess_for(info.default_input, &train);
    device.seed(cfg.seed);
    let options = BuildOptions {
        num_classes: train.num_classes(),
        in_channels: Some(pre.channels),
    };
    let model = registry::build(info.name, options, &autodiff)?;
    finish(model, &train, &test, &pre, cfg, &autodiff, device, dir, progress)
}

/// Input size trained at for models designed for ImageNet-sized (224 px) input: CPU-friendly.
pub const LARGE_MODEL_TRAIN_SIZE: usize = 64;

/// The documented input rule: the model's own channel count (gray repeated to RGB, RGB to luma),
/// its default input size when that is at most 64 px (LeNet-5: 32, CIFAR ResNets: 32) and
/// [`LARGE_MODEL_TRAIN_SIZE`] for the ImageNet-sized ones; images are centred on (or cropped to)
/// that size and normalised with MNIST's mean and std on every channel.
pub fn preprocess_for(input: registry::InputSpec, _data: &ImageDataset) -> Preprocess {
    let size = if input.size <= LARGE_MODEL_TRAIN_SIZE {
        input.size
    } else {
        LARGE_MODEL_TRAIN_SIZE
    };
    let (mean, std) = cnn_data_augment::batch::MNIST_MEAN_STD;
    Preprocess {
        channels: input.channels,
        size,
        mean: vec![mean; input.channels],
        std: vec![std; input.channels],
    }
}

#[allow(clippy::too_many_arguments)]
fn finish<M: ImageClassifier>(
    model: M,
    train: &ImageDataset,
    test: &ImageDataset,
    pre: &Preprocess,
    cfg: &TrainConfig,
    autodiff: &Device,
    device: &Device,
    dir: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<RunReport> {
    let mut csv = String::from(
        "epoch,train_loss,train_accuracy,test_loss,test_accuracy,train_seconds,images_per_second,data_wait_share\n",
    );
    let metrics_path = dir.join("metrics.csv");
    let mut on_progress = |p: Progress<'_>| {
        if let Progress::Epoch(m) = &p {
            csv.push_str(&format!(
                "{},{:.6},{:.6},{:.6},{:.6},{:.3},{:.1},{:.4}\n",
                m.epoch,
                m.train_loss,
                m.train_accuracy,
                m.test_loss,
                m.test_accuracy,
                m.train_seconds,
                m.images_per_second,
                m.data_wait_share
            ));
            // Written after every epoch so an interrupted run still shows its curve.
            let _ = write_file(&metrics_path, csv.as_bytes());
        }
        progress(p);
    };
    let (model, history) = fit(
        model,
        std::sync::Arc::new(train.clone()),
        test,
        pre,
        cfg,
        autodiff,
        &mut on_progress,
    )?;
    let inference = model.valid();
    let test_eval = evaluate(&inference, test, pre, device)?;
    let weights = dir.join("model.bpk");
    inference.save_file(&weights).map_err(|e| TrainError::Write {
        path: weights.clone(),
        reason: e.to_string(),
    })?;
    let summary = serde_json::json!({
        "test_accuracy": test_eval.accuracy,
        "test_loss": test_eval.loss,
        "test_images": test_eval.images,
        "epochs": history.len(),
    });
    write_file(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).expect("json").as_bytes(),
    )?;
    Ok(RunReport {
        dir: dir.to_path_buf(),
        history,
        test: test_eval,
    })
}

fn create_run_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| TrainError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
