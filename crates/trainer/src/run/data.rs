//! Data sets by name, the input rule (which size and normalisation a model is fed at), and the
//! data a run trains and validates on ([`RunData`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cnn_data_augment::folder::ImageFolder;
use cnn_data_augment::seed::{derive, stream};
use cnn_data_augment::{ImageDataset, Preprocess, Source, Subset, stratified_split};
use cnn_models::registry;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::fit::Progress;

/// Data sets the trainer can name.
pub const DATASETS: &[&str] = &cnn_data_augment::datasets::NAMES;

/// A training and a test set, ready for the loader.
pub struct LoadedData {
    /// Training samples.
    pub train: Arc<dyn Source>,
    /// Held-out samples.
    pub test: Arc<dyn Source>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// `true` for photo folders: images differ in size and are resized to the model's input.
    pub photos: bool,
    /// Files of an image folder that were skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl LoadedData {
    /// Only the samples of `classes` (by label), relabelled 0, 1, … in that order, in both
    /// splits, with their names; `None` keeps everything.
    pub fn only_classes(self, classes: Option<&[usize]>) -> Result<Self> {
        let Some(classes) = classes else {
            return Ok(self);
        };
        let count = self.class_names.len();
        let pick = |source: Arc<dyn Source>| -> Result<Arc<dyn Source>> {
            let subset =
                cnn_data_augment::ClassSubset::new(source, classes, count).map_err(|e| TrainError::InvalidSetting {
                    setting: "classes",
                    reason: format!("cannot be used: {e}"),
                })?;
            Ok(Arc::new(subset))
        };
        Ok(Self {
            train: pick(self.train)?,
            test: pick(self.test)?,
            class_names: classes.iter().map(|&c| self.class_names[c].clone()).collect(),
            ..self
        })
    }
}

/// Loads `name` — a registered data set (from `data_dir` or the default folder) or the path of an
/// image folder (`root/<class>/…`, or `root/train/<class>/…` + `root/val/<class>/…`; otherwise a
/// seeded, stratified 80/20 split of `root`).
pub fn load_data(name: &str, data_dir: Option<&Path>, seed: u64) -> Result<LoadedData> {
    let path = Path::new(name);
    if path.is_dir() {
        let (train, test) = if path.join("train").is_dir() && path.join("val").is_dir() {
            ImageFolder::open_split(path)?
        } else {
            ImageFolder::open(path)?.stratified_split(0.2, seed)
        };
        if train.is_empty() || test.is_empty() {
            return Err(TrainError::Dataset {
                dataset: path.display().to_string(),
                reason: format!(
                    "gives {} training and {} test images: too few to train on",
                    train.len(),
                    test.len()
                ),
            });
        }
        let skipped = train.skipped.iter().chain(&test.skipped).cloned().collect();
        let class_names = train.classes.clone();
        return Ok(LoadedData {
            train: Arc::new(train),
            test: Arc::new(test),
            class_names,
            photos: true,
            skipped,
        });
    }
    let (train, test) = load_dataset(name, data_dir)?;
    Ok(LoadedData {
        class_names: train.class_names().to_vec(),
        train: Arc::new(train),
        test: Arc::new(test),
        photos: false,
        skipped: Vec::new(),
    })
}

/// Loads a registered data set by name as `(train, test)`, from `data_dir` or the default folder.
pub fn load_dataset(name: &str, data_dir: Option<&Path>) -> Result<(ImageDataset, ImageDataset)> {
    let dir = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(cnn_data_augment::datasets::default_data_dir);
    let names = cnn_data_augment::datasets::NAMES;
    if !names.contains(&name) {
        return Err(TrainError::UnknownDataset {
            name: name.to_string(),
            suggestion: cnn_models::error::nearest_name(name, names.iter().copied()).map(str::to_string),
            known: names.to_vec(),
        });
    }
    Ok(cnn_data_augment::datasets::load(name, &dir)?)
}

/// Input size trained at for models designed for ImageNet-sized (224 px) input: CPU-friendly.
pub const LARGE_MODEL_TRAIN_SIZE: usize = 64;

/// ImageNet's per-channel mean and standard deviation (torchvision's), used for photos.
pub use cnn_models::IMAGENET_MEAN_STD;

/// The input size a run trains at, and why (for the run's first lines):
/// - `cfg.input_size` when given;
/// - with `cfg.weights` from a run folder (`…/model.bpk` beside a `preprocess.json`), that
///   run's size; with torchvision's weights (`.pth`/`.safetensors`) of an ImageNet-sized
///   network, the size they were trained at, `input.size` (224);
/// - otherwise the model's own size when it is at most [`LARGE_MODEL_TRAIN_SIZE`] (LeNet-5: 32,
///   CIFAR ResNets: 32), and [`LARGE_MODEL_TRAIN_SIZE`] for ImageNet-sized networks.
pub fn input_size(cfg: &TrainConfig, input: registry::InputSpec) -> (usize, String) {
    if let Some(size) = cfg.task.input_size {
        return (size, "as asked (`input_size`)".into());
    }
    if let Some(weights) = &cfg.transfer.weights {
        let recorded = weights.parent().map(|dir| dir.join("preprocess.json"));
        let recorded = recorded
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| serde_json::from_str::<Preprocess>(&text).ok());
        let torchvision = !weights.extension().is_some_and(|e| e.eq_ignore_ascii_case("bpk"));
        match recorded {
            Some(pre) => {
                let why = format!(
                    "the size {} was trained at",
                    weights.parent().unwrap_or(weights).display()
                );
                return (pre.size, why);
            }
            None if torchvision && input.size > LARGE_MODEL_TRAIN_SIZE => {
                return (
                    input.size,
                    "the size torchvision's weights were trained at; `input_size` changes it".into(),
                );
            }
            None => {}
        }
    }
    if input.size <= LARGE_MODEL_TRAIN_SIZE {
        (input.size, "the model's own".into())
    } else {
        let why = format!(
            "the default for training an ImageNet-sized network from scratch on a CPU ({} px in the paper); `input_size` changes it",
            input.size
        );
        (LARGE_MODEL_TRAIN_SIZE, why)
    }
}

/// The documented input rule at `size` pixels: the model's own channel count (gray repeated to
/// RGB, RGB to luma). Digit-style data sets are centred on (or cropped to) that size and
/// normalised with MNIST's mean and std on every channel; photos are fitted like torchvision's
/// evaluation (shorter side to `size · 8/7`, centre crop) and, for RGB models, normalised with
/// ImageNet's statistics.
pub fn preprocess_for(input: registry::InputSpec, photos: bool, size: usize) -> Preprocess {
    let (mean, std) = if photos && input.channels == 3 {
        (IMAGENET_MEAN_STD.0.to_vec(), IMAGENET_MEAN_STD.1.to_vec())
    } else {
        let (m, s) = cnn_data_augment::batch::MNIST_MEAN_STD;
        (vec![m; input.channels], vec![s; input.channels])
    };
    Preprocess {
        channels: input.channels,
        size,
        mean,
        std,
        resize: photos,
        center_crop: photos,
    }
}

/// A run's data: the loaded set (test split, class names), the model's preprocessing and the
/// training and validation images (after `--subset` and `--valid-split`).
pub struct RunData {
    /// The data set as loaded (its test split and class names).
    pub loaded: LoadedData,
    /// How images are fitted to the model.
    pub pre: Preprocess,
    /// The training images.
    pub train: Arc<dyn Source>,
    /// The validation images (the test split when `valid_split` is 0).
    pub valid: Arc<dyn Source>,
}

impl RunData {
    /// Loads `cfg`'s data set and splits it as the run will train on it.
    pub fn load(cfg: &TrainConfig, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Self> {
        let info = registry::lookup(&cfg.task.model)?;
        if info.family.takes_feature_maps() {
            let [c, h, w] = info.default_input.shape();
            return Err(TrainError::Unsupported {
                model: info.name.to_string(),
                reason: format!(
                    "a course example on {c}×{h}×{w} feature maps, not a network that takes images: \
                     `cnn summary --model {}` shows its costs; train googlenet (whose inception3a it is) instead",
                    info.name
                ),
            });
        }
        let loaded = load_data(&cfg.task.dataset, cfg.task.data_dir.as_deref(), cfg.task.seed)?
            .only_classes(cfg.task.classes.as_deref())?;
        if let Some((file, reason)) = loaded.skipped.first() {
            tracing::warn!(skipped = loaded.skipped.len(), dataset = %cfg.task.dataset, example = %file.display(), %reason, "unreadable image files skipped");
            progress(Progress::Warning(format!(
                "skipped {} unreadable image file(s) in {}, e.g. {}: {reason}",
                loaded.skipped.len(),
                cfg.task.dataset,
                file.display()
            )));
        }
        let (size, why) = input_size(cfg, info.default_input);
        progress(Progress::Note(format!("input {size}×{size} px: {why}")));
        let pre = preprocess_for(info.default_input, loaded.photos, size);
        let (train, valid) = labelled_split(cfg, loaded.train.clone())?;
        let train: Arc<dyn Source> = Arc::new(Subset::new(loaded.train.clone(), train)?);
        let valid: Arc<dyn Source> = match valid {
            Some(valid) => Arc::new(Subset::new(loaded.train.clone(), valid)?),
            None => loaded.test.clone(),
        };
        if valid.is_empty() {
            return Err(TrainError::InvalidSetting {
                setting: "valid_split",
                reason: format!("{} leaves no validation images", cfg.task.valid_split),
            });
        }
        Ok(Self {
            loaded,
            pre,
            train,
            valid,
        })
    }
}

/// Which images of `all_train` (the training split, after `--classes`) a run with `cfg` trains
/// on and which it validates on (`None`: the test split), as positions in `all_train`: a
/// stratified, seeded sample of `--subset` images, then a stratified, seeded `--valid-split`
/// share of it held out. The transfer experiment records them so that another framework can
/// train on the same images.
pub fn labelled_split(cfg: &TrainConfig, all_train: Arc<dyn Source>) -> Result<(Vec<usize>, Option<Vec<usize>>)> {
    let labelled: Vec<usize> = match cfg.task.subset {
        Some(n) if n < all_train.len() => {
            let share = n as f64 / all_train.len() as f64;
            let sample = stratified_split(all_train.clone(), share, derive(cfg.task.seed, &[stream::SUBSET]))?.1;
            sample.indices().to_vec()
        }
        _ => (0..all_train.len()).collect(),
    };
    if cfg.task.valid_split <= 0.0 {
        return Ok((labelled, None));
    }
    let sample: Arc<dyn Source> = Arc::new(Subset::new(all_train, labelled.clone())?);
    let (train, valid) = stratified_split(
        sample,
        cfg.task.valid_split,
        derive(cfg.task.seed, &[stream::VALID_SPLIT]),
    )?;
    let outer = |part: &Subset| part.indices().iter().map(|&i| labelled[i]).collect();
    Ok((outer(&train), Some(outer(&valid))))
}
