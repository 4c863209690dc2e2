//! The registry of data set names: what `--dataset NAME` resolves to.
//!
//! | name | files, under `<data dir>/<name>/` |
//! | --- | --- |
//! | `mnist-5k` | none: embedded in the binary |
//! | `mnist`, `fashion-mnist` | `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…` |
//! | `cifar10` | `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin` (optionally inside `cifar-10-batches-bin/`) |
//! | `cifar100` | `train.bin`, `test.bin` (optionally inside `cifar-100-binary/`) |
//!
//! The data dir defaults to `~/.cache/cnn-casestudies`. Debian's `dataset-fashion-mnist` package
//! installs the files in `/usr/share/datasets/fashion-mnist/`, so `--data-dir /usr/share/datasets`
//! reads them where they are.

use std::path::{Path, PathBuf};

use crate::cifar::{CIFAR10_CLASSES, Cifar, read_cifar};
use crate::dataset::ImageDataset;
use crate::embedded;
use crate::error::{DataError, Result};
use crate::idx::read_idx_pair;

/// Every registered name.
pub const NAMES: [&str; 5] = ["mnist-5k", "mnist", "fashion-mnist", "cifar10", "cifar100"];

/// Fashion-MNIST's class names, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The default data folder: `cnn-casestudies` in the user's cache folder (`~/.cache` or
/// `$XDG_CACHE_HOME` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows), or in
/// the working folder where the system names none.
pub fn default_data_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cnn-casestudies")
}

/// Loads a registered data set as `(train, test)` from `data_dir`.
pub fn load(name: &str, data_dir: &Path) -> Result<(ImageDataset, ImageDataset)> {
    let lower = name.to_ascii_lowercase();
    let dir = data_dir.join(&lower);
    match lower.as_str() {
        "mnist-5k" => embedded::mnist_5k(),
        "mnist" | "fashion-mnist" => {
            let names: Vec<String> = if lower == "mnist" {
                embedded::digit_class_names()
            } else {
                FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
            };
            let pair = |prefix: &str| -> Result<ImageDataset> {
                let images = find(&dir, &format!("{prefix}-images-idx3-ubyte"), &lower)?;
                let labels = find(&dir, &format!("{prefix}-labels-idx1-ubyte"), &lower)?;
                read_idx_pair(&images, &labels, names.clone())
            };
            Ok((pair("train")?, pair("t10k")?))
        }
        "cifar10" => {
            let base = subdir(&dir, "cifar-10-batches-bin");
            let names: Vec<String> = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
            let train: Vec<PathBuf> = (1..=5).map(|i| base.join(format!("data_batch_{i}.bin"))).collect();
            let test = base.join("test_batch.bin");
            for f in train.iter().chain([&test]) {
                require(f, &lower)?;
            }
            let train_refs: Vec<&Path> = train.iter().map(PathBuf::as_path).collect();
            Ok((
                read_cifar(Cifar::Ten, &train_refs, names.clone())?,
                read_cifar(Cifar::Ten, &[&test], names)?,
            ))
        }
        "cifar100" => {
            let base = subdir(&dir, "cifar-100-binary");
            let names_file = base.join("fine_label_names.txt");
            let names = if names_file.is_file() {
                crate::cifar::read_class_names(&names_file)?
            } else {
                (0..100).map(|i| format!("class{i}")).collect()
            };
            let (train, test) = (base.join("train.bin"), base.join("test.bin"));
            require(&train, &lower)?;
            require(&test, &lower)?;
            Ok((
                read_cifar(Cifar::Hundred, &[&train], names.clone())?,
                read_cifar(Cifar::Hundred, &[&test], names)?,
            ))
        }
        other => Err(DataError::Invalid(format!(
            "unknown dataset '{other}'; known datasets: {}",
            NAMES.join(", ")
        ))),
    }
}

fn subdir(dir: &Path, inner: &str) -> PathBuf {
    let nested = dir.join(inner);
    if nested.is_dir() { nested } else { dir.to_path_buf() }
}

fn require(path: &Path, name: &str) -> Result<()> {
    if path.is_file() {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "{name}: {} is missing (put the data set's files there, or point `data_dir` at the folder holding '{name}/')",
            path.display()
        )))
    }
}

/// `dir/stem.gz` or `dir/stem`, whichever exists.
fn find(dir: &Path, stem: &str, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(stem);
    require(&raw, name).map_err(|_| {
        DataError::Invalid(format!(
            "{name}: neither {} nor {} exists (put the data set's files there, or point `data_dir` at the folder holding '{name}/')",
            gz.display(),
            raw.display()
        ))
    })?;
    Ok(raw)
}
