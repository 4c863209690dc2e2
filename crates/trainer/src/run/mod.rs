//! A training run as files: the data it names, its folder, checkpoints, the lock that keeps one
//! process per folder, the Ctrl-C stop, and [`train_run`] that ties them to the training loop.

pub mod checkpoint;
pub mod data;
pub mod faults;
mod features;
pub mod folder;
pub mod interrupt;
pub mod lock;
pub mod lr_find;
mod start;
pub mod train;

pub use data::{
    DATASETS, IMAGENET_MEAN_STD, LARGE_MODEL_TRAIN_SIZE, LoadedData, RunData, input_size, labelled_split, load_data,
    load_dataset, preprocess_for,
};
pub use folder::{RunFolder, RunReport};
pub use train::{train_run, train_run_across, train_run_on};
