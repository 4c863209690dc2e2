//! An in-memory set of 8-bit images with labels.

use crate::error::{DataError, Result};

/// Images of one size stored as 8-bit HWC pixels, with a class label each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDataset {
    height: usize,
    width: usize,
    channels: usize,
    pixels: Vec<u8>,
    labels: Vec<u16>,
    class_names: Vec<String>,
}

impl ImageDataset {
    /// Wraps `pixels` (`n · height · width · channels` bytes, HWC per image) and `n` labels.
    pub fn new(
        height: usize,
        width: usize,
        channels: usize,
        pixels: Vec<u8>,
        labels: Vec<u16>,
        class_names: Vec<String>,
    ) -> Result<Self> {
        let per_image = height * width * channels;
        if per_image == 0 {
            return Err(DataError::Invalid(format!(
                "image size {height}x{width}x{channels} is empty"
            )));
        }
        if pixels.len() != per_image * labels.len() {
            return Err(DataError::Invalid(format!(
                "{} pixel bytes do not hold {} images of {height}x{width}x{channels}",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= class_names.len()) {
            return Err(DataError::Invalid(format!(
                "label {l} is out of range for {} classes",
                class_names.len()
            )));
        }
        Ok(Self {
            height,
            width,
            channels,
            pixels,
            labels,
            class_names,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Image width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Channels per pixel (1 = grayscale, 3 = RGB).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The HWC pixels of image `index`. Panics if `index >= len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.height * self.width * self.channels;
        &self.pixels[index * n..(index + 1) * n]
    }

    /// The label of image `index`. Panics if `index >= len()`.
    pub fn label(&self, index: usize) -> usize {
        self.labels[index] as usize
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// A new data set holding the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Invalid(format!(
                "index {bad} is out of range for {} images",
                self.len()
            )));
        }
        let mut pixels = Vec::with_capacity(indices.len() * self.height * self.width * self.channels);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self::new(
            self.height,
            self.width,
            self.channels,
            pixels,
            labels,
            self.class_names.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_keeps_pixels_and_labels() {
        let names = vec!["a".to_string(), "b".to_string()];
        let ds = ImageDataset::new(1, 2, 1, vec![1, 2, 3, 4, 5, 6], vec![0, 1, 1], names).unwrap();
        let sub = ds.subset(&[2, 0]).unwrap();
        assert_eq!(sub.image(0), &[5, 6]);
        assert_eq!(sub.label(0), 1);
        assert_eq!(sub.image(1), &[1, 2]);
        assert_eq!(sub.class_counts(), vec![1, 1]);
        assert!(ds.subset(&[3]).is_err());
    }

    #[test]
    fn sizes_are_validated() {
        assert!(ImageDataset::new(2, 2, 1, vec![0; 3], vec![0], vec!["a".into()]).is_err());
        assert!(ImageDataset::new(1, 1, 1, vec![0], vec![1], vec!["a".into()]).is_err());
    }
}
