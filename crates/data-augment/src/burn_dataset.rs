//! burn's dataset API and ours, both ways: our data sets are burn
//! [`Dataset`](burn::data::dataset::Dataset)s of `(image, class)` samples, and any burn dataset
//! of images feeds our augmentations and [`Loader`](crate::Loader) through [`DatasetSource`].
//!
//! ```
//! use burn::data::dataset::{Dataset, InMemDataset};
//! use cnn_data_augment::{DatasetSource, Image, Source};
//!
//! let items = vec![(Image::new(2, 2, 1, vec![0, 64, 128, 255]).unwrap(), 1)];
//! let source = DatasetSource::new(InMemDataset::new(items));
//! assert_eq!(Source::len(&source), 1);
//! assert_eq!(source.label(0).unwrap(), 1);
//! ```

use std::marker::PhantomData;

use burn::data::dataset::{Dataset, DatasetError};

use crate::folder::ImageFolder;
use crate::{DataError, Image, ImageDataset, Result, Source, Subset};

/// One sample: an image and its class.
pub type Sample = (Image, usize);

macro_rules! burn_dataset {
    ($($kind:ty),*) => {$(
        /// burn's view of this data set: its samples in order (an error for a file that cannot
        /// be read).
        impl Dataset<Sample> for $kind {
            fn get(&self, index: usize) -> std::result::Result<Sample, DatasetError> {
                Source::get(self, index).map_err(DatasetError::new)
            }

            fn len(&self) -> usize {
                Source::len(self)
            }
        }
    )*};
}

burn_dataset!(ImageDataset, ImageFolder, Subset);

/// A burn [`Dataset`] as a [`Source`]: each item becomes a sample through `convert` (none is
/// needed for a dataset of samples: [`DatasetSource::new`]).
pub struct DatasetSource<D, I, F> {
    dataset: D,
    convert: F,
    item: PhantomData<fn() -> I>,
}

impl<D: Dataset<Sample>> DatasetSource<D, Sample, fn(Sample) -> Result<Sample>> {
    /// A dataset whose items are already `(image, class)` samples.
    pub fn new(dataset: D) -> Self {
        Self::with(dataset, Ok)
    }
}

impl<D, I, F> DatasetSource<D, I, F>
where
    D: Dataset<I>,
    F: Fn(I) -> Result<Sample> + Send + Sync,
{
    /// A dataset of other items (e.g. burn's `ImageDatasetItem`), turned into samples by
    /// `convert`.
    pub fn with(dataset: D, convert: F) -> Self {
        Self {
            dataset,
            convert,
            item: PhantomData,
        }
    }
}

impl<D, I, F> Source for DatasetSource<D, I, F>
where
    D: Dataset<I>,
    F: Fn(I) -> Result<Sample> + Send + Sync,
{
    fn len(&self) -> usize {
        self.dataset.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        // burn's datasets panic past their end; ours say so.
        if index >= self.dataset.len() {
            return Err(DataError::Invalid(format!(
                "index {index} is out of range for {} samples",
                self.dataset.len()
            )));
        }
        let item = self
            .dataset
            .get(index)
            .map_err(|e| DataError::Invalid(format!("sample {index} of the dataset: {e}")))?;
        (self.convert)(item)
    }
}

#[cfg(test)]
mod tests {
    use burn::data::dataset::InMemDataset;

    use super::*;
    use crate::{Batch, Loader, LoaderConfig, Pipeline, Preprocess};

    fn samples() -> Vec<Sample> {
        (0..10u8)
            .map(|i| (Image::new(4, 4, 1, vec![i * 20; 16]).unwrap(), usize::from(i % 3)))
            .collect()
    }

    /// A burn `InMemDataset` feeds the augmentations and the loader, which yields its samples'
    /// batches as from one of our own data sets.
    #[test]
    fn an_in_memory_burn_dataset_feeds_the_loader() {
        let source = DatasetSource::new(InMemDataset::new(samples()));
        assert_eq!(Source::len(&source), 10);
        assert_eq!(Source::get(&source, 4).unwrap(), samples()[4]);
        assert!(Source::get(&source, 10).is_err());
        let config = LoaderConfig {
            batch_size: 4,
            workers: 2,
            prefetch: 2,
            shuffle: false,
            seed: 1,
        };
        let pre = Preprocess::mnist(4);
        let loader = Loader::new(
            std::sync::Arc::new(source),
            Pipeline::preset("flip").unwrap(),
            pre,
            config,
        )
        .unwrap();
        let batches: Vec<Batch> = loader.epoch(1).map(|b| b.unwrap()).collect();
        assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), [4, 4, 2]);
        let labels: Vec<i64> = batches.iter().flat_map(|b| b.labels.iter().copied()).collect();
        assert_eq!(labels, samples().iter().map(|(_, c)| *c as i64).collect::<Vec<_>>());
    }

    /// Our data sets are burn datasets of the same samples; items of another kind convert.
    #[test]
    fn our_data_sets_are_burn_datasets_and_items_convert() {
        let pixels: Vec<u8> = samples().into_iter().flat_map(|(img, _)| img.data).collect();
        let labels: Vec<u16> = samples().into_iter().map(|(_, c)| c as u16).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        let ours = ImageDataset::new(4, 4, 1, pixels, labels, names).unwrap();
        assert_eq!(Dataset::len(&ours), 10);
        assert_eq!(Dataset::get(&ours, 7).unwrap(), samples()[7]);
        let pixels = InMemDataset::new(vec![(vec![7u8; 4], 2usize)]);
        let converted = DatasetSource::with(pixels, |(data, class): (Vec<u8>, usize)| {
            Ok((Image::new(2, 2, 1, data)?, class))
        });
        assert_eq!(converted.label(0).unwrap(), 2);
    }
}
