//! Where labelled images come from: the [`Source`] trait every data set implements.

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};
use crate::image::Image;

/// Something that yields labelled images by index (in memory, or decoded from disk on demand).
pub trait Source: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// `true` when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sample `index`: the image and its class.
    fn get(&self, index: usize) -> Result<(Image, usize)>;
    /// The class of sample `index`. Sources that know it without decoding the image override
    /// this (it is used to split data sets by class).
    fn label(&self, index: usize) -> Result<usize> {
        Ok(self.get(index)?.1)
    }
}

impl Source for ImageDataset {
    fn len(&self) -> usize {
        ImageDataset::len(self)
    }

    fn get(&self, index: usize) -> Result<(Image, usize)> {
        if index >= ImageDataset::len(self) {
            return Err(DataError::Invalid(format!(
                "index {index} is out of range for {} images",
                ImageDataset::len(self)
            )));
        }
        let img = Image::new(self.width(), self.height(), self.channels(), self.image(index).to_vec())?;
        Ok((img, ImageDataset::label(self, index)))
    }

    fn label(&self, index: usize) -> Result<usize> {
        if index >= ImageDataset::len(self) {
            return Err(DataError::Invalid(format!(
                "index {index} is out of range for {} images",
                ImageDataset::len(self)
            )));
        }
        Ok(ImageDataset::label(self, index))
    }
}
