//! Fitting AlexNet's PCA colour statistics to a whole data set (`cnn augment fit-pca`): the
//! embedded digits or a folder of photos, one image in memory at a time.

use std::path::{Path, PathBuf};

use super::color::{PcaColor, PcaFit};
use crate::{DataError, Image, Result, embedded, image::image_files};

/// What a fit over a data set found.
#[derive(Clone, Debug)]
pub struct FittedPca {
    /// The eigenvalues and eigenvectors of the RGB covariance (0–1 scale).
    pub pca: PcaColor,
    /// Images fitted.
    pub images: usize,
    /// Pixels fitted.
    pub pixels: u64,
    /// Files of a folder that could not be read, with the reason (skipped).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Fits [`PcaColor`] to `dataset`: `mnist-5k` (its training digits) or a folder of images
/// (png, jpg, jpeg, bmp, webp; unreadable files are skipped and listed).
pub fn fit_pca(dataset: &str) -> Result<FittedPca> {
    let mut fit = PcaFit::default();
    let mut images = 0usize;
    let mut skipped = Vec::new();
    if dataset.eq_ignore_ascii_case(embedded::NAME) {
        let (train, _) = embedded::mnist_5k()?;
        for i in 0..train.len() {
            fit.add(&Image::new(
                train.width(),
                train.height(),
                train.channels(),
                train.image(i).to_vec(),
            )?);
            images += 1;
        }
    } else {
        let dir = Path::new(dataset);
        if !dir.is_dir() {
            return Err(DataError::Invalid(format!(
                "'{dataset}' is neither a known data set ({}) nor a folder of images",
                embedded::NAME
            )));
        }
        let files = image_files(dir)?;
        if files.is_empty() {
            return Err(DataError::Invalid(format!(
                "no images (png, jpg, jpeg, bmp, webp) under {}",
                dir.display()
            )));
        }
        for file in files {
            // One image in memory at a time: the fit keeps only running sums.
            match Image::open(&file) {
                Ok(img) => {
                    fit.add(&img);
                    images += 1;
                }
                Err(e) => skipped.push((file, e.to_string())),
            }
        }
        if images == 0 {
            return Err(DataError::Invalid(format!(
                "none of the {} image files under {} could be read",
                skipped.len(),
                dir.display()
            )));
        }
    }
    tracing::info!(dataset, images, skipped = skipped.len(), "PCA colour statistics fitted");
    Ok(FittedPca {
        pca: fit.finish(),
        images,
        pixels: fit.pixels(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded digits are gray, so R, G and B move together: one eigenvalue carries all the
    /// variance, along (1, 1, 1)/√3; an unknown name is an error that says what is accepted.
    #[test]
    fn gray_digits_have_one_colour_axis_and_unknown_names_are_errors() {
        let fitted = fit_pca("mnist-5k").unwrap();
        assert_eq!(fitted.images, 4000);
        let values = fitted.pca.eigenvalues;
        let largest = values.iter().copied().fold(0.0, f64::max);
        assert!(
            values.iter().filter(|v| **v > 1e-9 * largest).count() == 1,
            "{values:?}"
        );
        let axis = fitted.pca.eigenvectors[values.iter().position(|v| *v == largest).unwrap()];
        assert!(
            axis.iter().all(|c| (c.abs() - 1.0 / 3f64.sqrt()).abs() < 1e-6),
            "{axis:?}"
        );
        let err = fit_pca("/nonexistent/photos").unwrap_err().to_string();
        assert!(err.contains("mnist-5k"), "{err}");
    }
}
