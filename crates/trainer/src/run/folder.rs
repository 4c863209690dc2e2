//! The files of a run folder.
//!
//! A run folder holds `config.json` (the [`TrainConfig`]), `preprocess.json` (how images were
//! fitted to the model), `classes.json` (class names by label), `metrics.csv` (one row per
//! epoch), `curves.png`, the checkpoint files (see [`crate::run::checkpoint`]), `best.bpk`,
//! `model.bpk` (the final weights, burn's burnpack format) and `summary.json` (final test
//! figures).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use cnn_data_augment::Preprocess;
use cnn_models::{BuildOptions, registry};

use crate::atomic::write_file;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::eval::Evaluation;
use crate::fit::{EpochMetrics, Stop};
use crate::run::checkpoint;

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run folder.
    pub dir: PathBuf,
    /// Per-epoch metrics.
    pub history: Vec<EpochMetrics>,
    /// The final model on the held-out test set.
    pub test: Evaluation,
    /// Why training stopped.
    pub stop: Stop,
}

/// What a run folder says about its model: enough to rebuild it and feed it images.
#[derive(Clone, Debug)]
pub struct RunFolder {
    /// The run folder.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: TrainConfig,
    /// `preprocess.json`.
    pub preprocess: Preprocess,
    /// `classes.json`.
    pub class_names: Vec<String>,
}

impl RunFolder {
    /// Reads the run folder `dir`, naming the file that is missing or unreadable.
    pub fn open(dir: &Path) -> Result<Self> {
        fn read<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T> {
            let path = dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                TrainError::Checkpoint(format!(
                    "{}: {e} (is {} a run folder written by `cnn train`?)",
                    path.display(),
                    dir.display()
                ))
            })?;
            serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config: read(dir, "config.json")?,
            preprocess: read(dir, "preprocess.json")?,
            class_names: read(dir, "classes.json")?,
        })
    }

    /// Builds the run's model on `device` with its final weights (or the newest checkpoint's
    /// if the run did not finish).
    pub fn load_model(&self, device: &Device) -> Result<cnn_models::Model> {
        let options = BuildOptions {
            num_classes: self.class_names.len(),
            in_channels: Some(self.preprocess.channels),
        };
        let model = registry::build(&self.config.task.model, options, device)?;
        checkpoint::load_weights(&checkpoint::run_weights(&self.dir)?, model)
    }

    /// Writes the run's weights to `path` under torchvision's keys and layouts (`.safetensors`
    /// or `.pth`, by extension; see [`cnn_transfer::export`]); returns the number of tensors.
    pub fn export(&self, path: &Path) -> Result<usize> {
        let model = self.load_model(&Device::flex())?;
        let (bytes, tensors) = cnn_transfer::export_bytes(&model, path)?;
        write_file(path, &bytes)?;
        Ok(tensors)
    }

    /// Writes the run's inference graph to `path` as ONNX (opset [`cnn_transfer::OPSET`]) for
    /// inputs `[batch, channels, size, size]`, with what a server needs to feed it in the
    /// file's metadata ([`Self::onnx_metadata`]); returns the file's size in bytes.
    pub fn export_onnx(&self, path: &Path, batch: cnn_transfer::OnnxBatch) -> Result<usize> {
        let model = self.load_model(&Device::flex())?;
        let input = [self.preprocess.channels, self.preprocess.size, self.preprocess.size];
        let bytes = cnn_transfer::model_onnx(&model, input, batch, &self.onnx_metadata())?;
        write_file(path, &bytes)?;
        Ok(bytes.len())
    }

    /// The metadata of an ONNX export: the model's name, its input layout and preprocessing
    /// (pixels scaled to [0, 1], then `(x - mean) / std` per channel), the class names by
    /// label, the opset and the producer.
    pub fn onnx_metadata(&self) -> Vec<(String, String)> {
        let p = &self.preprocess;
        fn json<T: serde::Serialize>(value: &T) -> String {
            serde_json::to_string(value).unwrap_or_default()
        }
        let fitting = match (p.resize, p.center_crop) {
            (false, _) => format!("images of {0}x{0} px (other sizes centred: padded or cropped to it)", p.size),
            (true, false) => format!("images resized (bilinear) to {0}x{0} px", p.size),
            (true, true) => format!("shorter side resized to {} px, centre {1}x{1} px kept", p.size * 8 / 7, p.size),
        };
        [
            ("model", self.config.task.model.clone()),
            ("input_layout", format!("NCHW float32: [batch, {}, {}, {}]", p.channels, p.size, p.size)),
            ("input_size", p.size.to_string()),
            ("input_channels", p.channels.to_string()),
            ("mean", json(&p.mean)),
            ("std", json(&p.std)),
            ("preprocessing", format!("{fitting}; pixels / 255, then (x - mean) / std per channel")),
            ("class_names", json(&self.class_names)),
            ("output", "logits [batch, classes] (softmax gives probabilities)".to_string()),
            ("opset", cnn_transfer::OPSET.to_string()),
            ("producer", format!("cnn-casestudies {}", env!("CARGO_PKG_VERSION"))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Writes a reference for checking an export elsewhere (`scripts/check_export.py`,
    /// `scripts/check_onnx.py`): `images` seeded random images at the run's input size and the
    /// run's logits for them, as the `input` and `logits` tensors of a safetensors file.
    pub fn write_reference_io(&self, path: &Path, images: usize) -> Result<()> {
        use burn::tensor::{Distribution, Tensor};
        let device = Device::flex();
        let model = self.load_model(&device)?;
        let shape = [images, self.preprocess.channels, self.preprocess.size, self.preprocess.size];
        device.seed(self.config.task.seed);
        let input = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let logits = cnn_models::ImageClassifier::logits(&model, input.clone());
        let dims = logits.dims();
        let as_vec = |d: burn::tensor::TensorData| d.convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let (input, logits) = (as_vec(input.into_data()), as_vec(logits.into_data()));
        let bytes = cnn_transfer::export::io_bytes((&input, shape), (&logits, dims))?;
        write_file(path, &bytes)
    }
}

/// `value` as the indented JSON of the run folder's files (`config.json`, `summary.json`, …).
pub(crate) fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("run files serialise")
}
