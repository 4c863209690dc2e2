//! # cnn-data-augment
//!
//! Everything between a file on disk and a mini-batch tensor: data sets, the augmentations
//! of the CNN case studies, and the multi-threaded loader that prepares mini-batches while
//! training runs. It knows nothing of models.
//!
//! - [`ImageDataset`]: 8-bit HWC images with labels, in memory;
//! - [`idx`] and [`cifar`]: the IDX reader of MNIST and Fashion-MNIST (gzipped or raw) and the
//!   CIFAR-10/100 binary reader; [`datasets`]: the registry of data set names;
//! - [`folder::ImageFolder`]: `root/<class>/*.png|jpg…`, decoded lazily;
//! - [`embedded::mnist_5k`]: 5,000 real MNIST digits compiled into the binary (4,000 train /
//!   1,000 test, stratified);
//! - [`Batch`] and [`Preprocess`]: fitting images to a model's input and moving them to a device;
//! - [`augment`]: mirroring, crops, rotation, shear, elastic warping, colour shifts, PCA colour,
//!   composed into deterministic [`Pipeline`]s (TOML/JSON files or presets);
//! - [`Image`]: the 8-bit image the augmentations work on, decoded with the `image` crate;
//! - [`Loader`]: worker threads that read, augment and assemble mini-batches in the background
//!   from any [`Source`], in the same order for any number of workers, with bounded memory and a
//!   data-wait figure; [`Subset`] and [`stratified_split`] for parts of a source;
//! - [`download`] (feature `download`, on by default): checked downloads of the registered data
//!   sets, or imports of local copies, with atomic placement.
//!
//! ```
//! let (train, test) = cnn_data_augment::embedded::mnist_5k().unwrap();
//! assert_eq!((train.len(), test.len()), (4000, 1000));
//! assert_eq!(train.class_counts(), vec![400; 10]);
//! ```

pub mod augment;
pub mod batch;
pub mod burn_dataset;
pub mod cifar;
pub mod dataset;
pub mod datasets;
#[cfg(feature = "download")]
pub mod download;
pub mod embedded;
pub mod error;
pub mod folder;
pub mod idx;
pub mod image;
pub mod loader;
pub mod seed;
pub mod source;
pub mod subset;

pub use augment::{Op, Pipeline};
pub use batch::{Batch, Preprocess};
pub use burn_dataset::{DatasetSource, Sample};
pub use dataset::ImageDataset;
pub use error::{DataError, Result};
pub use image::Image;
pub use loader::{EpochIter, Loader, LoaderConfig};
pub use source::Source;
pub use subset::{ClassSubset, Subset, stratified_split};
