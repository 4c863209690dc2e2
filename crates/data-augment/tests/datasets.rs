//! Registered data sets read from real files: Fashion-MNIST from Debian's package
//! (`apt-get install dataset-fashion-mnist`; `.ci/run` installs it) and CIFAR-format files.

use std::path::Path;

use cnn_data_augment::datasets::{self, FASHION_CLASSES};

const DEBIAN_DATASETS: &str = "/usr/share/datasets";

#[test]
fn fashion_mnist_from_the_debian_package() {
    assert!(
        Path::new(DEBIAN_DATASETS)
            .join("fashion-mnist/train-images-idx3-ubyte.gz")
            .is_file(),
        "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
    );
    let (train, test) = datasets::load("fashion-mnist", Path::new(DEBIAN_DATASETS)).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!((train.height(), train.width(), train.channels()), (28, 28, 1));
    assert_eq!(train.class_counts(), vec![6_000; 10]);
    assert_eq!(test.class_counts(), vec![1_000; 10]);
    // The first training image of Fashion-MNIST is an ankle boot (label 9).
    assert_eq!(train.label(0), 9);
    assert_eq!(train.class_names()[9], FASHION_CLASSES[9]);
}

#[test]
fn cifar10_layout_is_read_from_the_data_dir() {
    let root = cnn_testkit::scratch("datasets", "cifar");
    let dir = root.join("cifar10/cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let record = |label: u8| [vec![label], vec![label * 10; 3072]].concat();
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), [record(i), record(0)].concat()).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), record(7)).unwrap();
    let (train, test) = datasets::load("cifar10", &root).unwrap();
    assert_eq!((train.len(), test.len()), (10, 1));
    assert_eq!((train.label(2), test.label(0)), (2, 7));
    assert_eq!(train.image(2)[0], 20);
    assert_eq!(train.class_names()[3], "cat");
    // A truncated batch names its file.
    std::fs::write(dir.join("data_batch_3.bin"), &record(3)[..100]).unwrap();
    let err = datasets::load("cifar10", &root).unwrap_err().to_string();
    assert!(err.contains("data_batch_3.bin"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn missing_files_and_unknown_names_are_clear() {
    let empty = cnn_testkit::scratch("datasets", "empty");
    let err = datasets::load("mnist", &empty).unwrap_err().to_string();
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("`data_dir`"),
        "{err}"
    );
    let err = datasets::load("imagenet", &empty).unwrap_err().to_string();
    assert!(err.contains("unknown dataset 'imagenet'"), "{err}");
}
