//! The background loader: same batches for any number of workers, bounded memory with a slow
//! consumer, errors surface as errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cnn_data_augment::{
    Batch, DataError, Image, Loader, LoaderConfig, Pipeline, Preprocess, Source, embedded::mnist_5k,
};

fn batches(workers: usize, pipeline: &str, epoch: u64) -> Vec<Batch> {
    shard(workers, pipeline, epoch, (0, 1))
}

/// Part `rank` of `ranks` of every batch of `epoch`.
fn shard(workers: usize, pipeline: &str, epoch: u64, (rank, ranks): (usize, usize)) -> Vec<Batch> {
    let (train, _) = mnist_5k().unwrap();
    let train = Arc::new(train.subset(&(0..300).collect::<Vec<_>>()).unwrap());
    let config = LoaderConfig {
        batch_size: 32,
        workers,
        prefetch: 4,
        shuffle: true,
        seed: 7,
    };
    let loader = Loader::new(
        train,
        Pipeline::preset(pipeline).unwrap(),
        Preprocess::mnist(32),
        config,
    )
    .unwrap();
    loader.shard_epoch(epoch, rank, ranks).collect::<Result<Vec<_>, _>>().unwrap()
}

#[test]
fn batches_are_identical_for_0_1_and_4_workers() {
    let inline = batches(0, "mnist", 2);
    assert_eq!(inline.len(), 10); // 300 images, batches of 32: 9 full + 1 of 12
    assert_eq!(inline[9].len(), 12);
    assert_eq!(batches(1, "mnist", 2), inline);
    assert_eq!(batches(4, "mnist", 2), inline);
    assert_ne!(
        batches(4, "mnist", 3),
        inline,
        "another epoch shuffles and augments differently"
    );
    let plain = batches(4, "none", 2);
    assert_eq!(
        plain.iter().map(|b| b.labels.clone()).collect::<Vec<_>>(),
        inline.iter().map(|b| b.labels.clone()).collect::<Vec<_>>()
    );
    assert_ne!(plain[0].images, inline[0].images);
}

/// The slices of every batch for 3 ranks, put back in rank order, are the whole batch: the same
/// images, augmented the same way (what keeps distributed training equal to one process).
#[test]
fn the_ranks_slices_put_together_are_the_whole_batches() {
    let whole = batches(2, "mnist", 2);
    let slices: Vec<Vec<Batch>> = (0..3).map(|rank| shard(1, "mnist", 2, (rank, 3))).collect();
    for (b, batch) in whole.iter().enumerate() {
        let parts: Vec<&Batch> = slices.iter().map(|s| &s[b]).collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), {
            let n = batch.len();
            vec![n / 3, 2 * n / 3 - n / 3, n - 2 * n / 3]
        });
        let labels: Vec<i64> = parts.iter().flat_map(|p| p.labels.clone()).collect();
        let images: Vec<f32> = parts.iter().flat_map(|p| p.images.clone()).collect();
        assert_eq!(labels, batch.labels, "batch {b}");
        assert_eq!(images, batch.images, "batch {b}");
    }
}

/// A source that counts how many samples have been read and never finishes fast.
struct Counting {
    reads: AtomicUsize,
}

impl Source for Counting {
    fn len(&self) -> usize {
        10_000
    }
    fn get(&self, _index: usize) -> cnn_data_augment::Result<(Image, usize)> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok((Image::filled(8, 8, 1, 1), 0))
    }
}

#[test]
fn a_slow_consumer_keeps_memory_bounded() {
    let source = Arc::new(Counting {
        reads: AtomicUsize::new(0),
    });
    let config = LoaderConfig {
        batch_size: 10,
        workers: 2,
        prefetch: 4,
        shuffle: false,
        seed: 0,
    };
    let loader = Loader::new(source.clone(), Pipeline::default(), Preprocess::mnist(8), config).unwrap();
    let mut epoch = loader.epoch(0);
    let first = epoch.next().unwrap().unwrap();
    assert_eq!(first.len(), 10);
    std::thread::sleep(Duration::from_millis(300));
    // Consumed 1 batch; each of 2 workers may hold 2 ready batches and be building 1 more.
    let read = source.reads.load(Ordering::SeqCst);
    assert!(
        read <= 10 * (1 + 2 * 2 + 2),
        "read {read} samples ahead of a consumer that took 10"
    );
    drop(epoch); // stops the workers
    let after = source.reads.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(source.reads.load(Ordering::SeqCst), after);
}

struct Broken;

impl Source for Broken {
    fn len(&self) -> usize {
        5
    }
    fn get(&self, index: usize) -> cnn_data_augment::Result<(Image, usize)> {
        Err(DataError::Invalid(format!("sample {index} is unreadable")))
    }
}

#[test]
fn read_errors_reach_the_consumer() {
    for workers in [0, 2] {
        let config = LoaderConfig {
            batch_size: 2,
            workers,
            prefetch: 2,
            shuffle: false,
            seed: 0,
        };
        let loader = Loader::new(Arc::new(Broken), Pipeline::default(), Preprocess::mnist(8), config).unwrap();
        let err = loader.epoch(0).next().unwrap().unwrap_err();
        assert!(err.to_string().contains("sample 0 is unreadable"), "{err}");
    }
}
