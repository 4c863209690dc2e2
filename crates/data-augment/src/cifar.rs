//! The CIFAR-10 and CIFAR-100 binary formats (`data_batch_*.bin`, `test_batch.bin`;
//! `train.bin`, `test.bin`).
//!
//! A CIFAR-10 record is 1 label byte and 3,072 pixel bytes (the 32×32 red plane, then green, then
//! blue); a CIFAR-100 record has 2 label bytes (coarse, fine) before the pixels — we use the fine
//! label. Images are converted to HWC.

use std::path::Path;

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};

/// Which CIFAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// 10 classes, one label byte.
    Ten,
    /// 100 fine classes, two label bytes (coarse, fine).
    Hundred,
}

const PIXELS: usize = 32 * 32 * 3;

/// CIFAR-10's class names, in label order (`batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

impl Cifar {
    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }

    fn classes(self) -> usize {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }
}

/// Parses the records in `bytes` (one `.bin` file), naming `origin` in errors.
pub fn parse_cifar(kind: Cifar, bytes: &[u8], origin: &Path, class_names: Vec<String>) -> Result<ImageDataset> {
    let record = kind.label_bytes() + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::format(
            origin,
            format!(
                "{} bytes is not a whole number of {record}-byte CIFAR records (truncated or not CIFAR)",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[kind.label_bytes() - 1] as usize;
        if label >= kind.classes() {
            return Err(DataError::format(
                origin,
                format!(
                    "record {i} has label {label}, out of range for {} classes",
                    kind.classes()
                ),
            ));
        }
        labels.push(label as u16);
        let planes = &rec[kind.label_bytes()..];
        for p in 0..1024 {
            pixels.extend_from_slice(&[planes[p], planes[1024 + p], planes[2048 + p]]);
        }
    }
    ImageDataset::new(32, 32, 3, pixels, labels, class_names)
}

/// Reads and concatenates CIFAR `.bin` files.
pub fn read_cifar(kind: Cifar, files: &[&Path], class_names: Vec<String>) -> Result<ImageDataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| DataError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let part = parse_cifar(kind, &bytes, file, class_names.clone())?;
        for i in 0..part.len() {
            pixels.extend_from_slice(part.image(i));
        }
        labels.extend_from_slice(part.labels());
    }
    ImageDataset::new(32, 32, 3, pixels, labels, class_names)
}

/// Class names from a CIFAR names file (`batches.meta.txt`, `fine_label_names.txt`): one per line.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: &[u8], r: u8, g: u8, b: u8) -> Vec<u8> {
        let mut out = label.to_vec();
        out.extend(
            std::iter::repeat_n(r, 1024)
                .chain(std::iter::repeat_n(g, 1024))
                .chain(std::iter::repeat_n(b, 1024)),
        );
        out
    }

    #[test]
    fn planes_become_hwc_pixels() {
        let names: Vec<String> = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
        let bytes = [record(&[3], 10, 20, 30), record(&[9], 1, 2, 3)].concat();
        let ds = parse_cifar(Cifar::Ten, &bytes, Path::new("x.bin"), names).unwrap();
        assert_eq!((ds.len(), ds.label(0), ds.label(1)), (2, 3, 9));
        assert_eq!(&ds.image(0)[..6], &[10, 20, 30, 10, 20, 30]);
    }

    #[test]
    fn cifar100_uses_the_fine_label_and_checks_range() {
        let names: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let ds = parse_cifar(
            Cifar::Hundred,
            &record(&[4, 77], 0, 0, 0),
            Path::new("t.bin"),
            names.clone(),
        )
        .unwrap();
        assert_eq!(ds.label(0), 77);
        let err = parse_cifar(Cifar::Hundred, &record(&[4, 177], 0, 0, 0), Path::new("t.bin"), names).unwrap_err();
        assert!(err.to_string().contains("label 177"), "{err}");
    }

    #[test]
    fn truncated_files_name_the_file() {
        let names: Vec<String> = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
        let mut bytes = record(&[1], 0, 0, 0);
        bytes.truncate(3000);
        let err = parse_cifar(Cifar::Ten, &bytes, Path::new("data_batch_1.bin"), names)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_batch_1.bin") && err.contains("truncated"), "{err}");
    }
}
