//! Image folders: `root/<class>/*.{png,jpg,jpeg,bmp,webp}`, decoded lazily (only when a sample is
//! read), so a folder larger than memory streams from disk.
//!
//! - Classes are the sub-folders of `root`, sorted by name; labels are their indices.
//! - With `root/train/<class>/…` and `root/val/<class>/…`, those two folders are the split
//!   ([`ImageFolder::open_split`]); otherwise [`ImageFolder::stratified_split`] splits every
//!   class by a seeded shuffle.
//! - Every file's header is read when the folder is opened: a file that is not a readable image
//!   (empty, truncated header, text named `.png`, too many pixels) is skipped with its reason
//!   kept in [`ImageFolder::skipped`], and the CLI prints one warning with the count. A file
//!   whose body turns out to be corrupt when it is decoded later is an error naming the file.
//! - Channels: images are decoded by [`Image`]'s rule (gray stays gray, alpha dropped, 16-bit
//!   scaled to 8) and the batch converts to the model's channel count.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::image::{Image, has_image_extension, has_unsupported_image_extension, probe};
use crate::source::Source;

/// A folder of labelled image files.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    /// Class names (sub-folder names), indexed by label.
    pub classes: Vec<String>,
    /// Every readable file with its label.
    pub samples: Vec<(PathBuf, usize)>,
    /// Files that were skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

impl ImageFolder {
    /// Scans `root/<class>/…`.
    pub fn open(root: &Path) -> Result<Self> {
        let classes = class_dirs(root)?;
        if classes.is_empty() {
            return Err(DataError::Invalid(format!(
                "{} has no class folders (expected {}/<class>/<image>)",
                root.display(),
                root.display()
            )));
        }
        let mut samples = Vec::new();
        let mut skipped = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let dir = root.join(class);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|source| DataError::Io {
                    path: dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && (has_image_extension(p) || has_unsupported_image_extension(p)))
                .collect();
            files.sort();
            let before = samples.len();
            for file in files {
                if has_unsupported_image_extension(&file) {
                    let reason = format!(
                        "unsupported image format (supported: {})",
                        crate::image::IMAGE_EXTENSIONS.join(", ")
                    );
                    skipped.push((file, reason));
                    continue;
                }
                match probe(&file) {
                    Ok(()) => samples.push((file, label)),
                    Err(reason) => skipped.push((file, reason)),
                }
            }
            if samples.len() == before {
                // A class without images would still get an output unit that nothing trains.
                return Err(DataError::Invalid(format!(
                    "{}: the class folder '{}' holds no readable image (add images or remove the folder)",
                    root.display(),
                    class.to_string_lossy()
                )));
            }
        }
        Ok(Self {
            classes: classes.iter().map(|c| c.to_string_lossy().into_owned()).collect(),
            samples,
            skipped,
        })
    }

    /// `root/train` and `root/val` as a fixed split (their class folders must match).
    pub fn open_split(root: &Path) -> Result<(Self, Self)> {
        let (train, val) = (Self::open(&root.join("train"))?, Self::open(&root.join("val"))?);
        if train.classes != val.classes {
            return Err(DataError::Invalid(format!(
                "{}: train/ and val/ have different class folders",
                root.display()
            )));
        }
        Ok((train, val))
    }

    /// Splits every class by a seeded shuffle: `val_fraction` of each class goes to the second set.
    /// The list of skipped files stays with the first set.
    pub fn stratified_split(&self, val_fraction: f64, seed: u64) -> (Self, Self) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for label in 0..self.classes.len() {
            let mut mine: Vec<_> = self.samples.iter().filter(|(_, l)| *l == label).cloned().collect();
            mine.shuffle(&mut rng);
            let n_val = (mine.len() as f64 * val_fraction).round() as usize;
            val.extend(mine.drain(..n_val.min(mine.len())));
            train.extend(mine);
        }
        let part = |samples, skipped| Self {
            classes: self.classes.clone(),
            samples,
            skipped,
        };
        (part(train, self.skipped.clone()), part(val, Vec::new()))
    }
}

impl Source for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn get(&self, index: usize) -> Result<(Image, usize)> {
        let (path, label) = self.samples.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for {} images",
                self.samples.len()
            ))
        })?;
        Ok((Image::open(path)?, *label))
    }

    fn label(&self, index: usize) -> Result<usize> {
        self.samples.get(index).map(|(_, label)| *label).ok_or_else(|| {
            DataError::Invalid(format!(
                "index {index} is out of range for {} images",
                self.samples.len()
            ))
        })
    }
}

/// The sub-folders of `root`, sorted (names need not be UTF-8).
fn class_dirs(root: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .map_err(|source| DataError::Io {
            path: root.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name())
        .collect();
    dirs.sort();
    Ok(dirs)
}
