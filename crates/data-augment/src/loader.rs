//! The background data pipeline: worker threads read, augment and assemble whole mini-batches
//! while the training thread computes; a bounded queue holds the ready ones.
//!
//! - Batch `k` of an epoch is built by worker `k mod N` and handed over in order, so the order of
//!   batches and their contents are the same for any number of workers (and for none).
//! - Each worker keeps at most `ceil(prefetch / N)` finished batches waiting, so at most about
//!   `prefetch` batches exist at once whatever the consumer's speed: memory stays bounded.
//! - The iterator measures how long the consumer waited for data, so a run can report its
//!   "starvation" share and a user can see whether more workers would help.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::augment::Pipeline;
use crate::batch::{Batch, Preprocess};
use crate::source::Source;
use crate::error::{DataError, Result};

/// How batches are made.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Images per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Worker threads; 0 builds batches on the consumer's thread.
    pub workers: usize,
    /// Ready batches held at most (over all workers).
    pub prefetch: usize,
    /// Shuffle the order every epoch (from `seed` and the epoch).
    pub shuffle: bool,
    /// Seed of shuffling and augmentation.
    pub seed: u64,
}

impl LoaderConfig {
    /// `batch_size` images per batch, default workers (cores − 1, at least 1), prefetch 4.
    pub fn new(batch_size: usize) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            batch_size,
            workers: cores.saturating_sub(1).max(1),
            prefetch: 4,
            shuffle: true,
            seed: 0,
        }
    }
}

/// Makes the batches of one epoch at a time from a [`Source`].
pub struct Loader<S: Source + ?Sized + 'static> {
    source: std::sync::Arc<S>,
    pipeline: std::sync::Arc<Pipeline>,
    pre: std::sync::Arc<Preprocess>,
    config: LoaderConfig,
}

impl<S: Source + ?Sized + 'static> Loader<S> {
    /// A loader over `source`, augmenting with `pipeline` and fitting images with `pre`.
    pub fn new(source: std::sync::Arc<S>, pipeline: Pipeline, pre: Preprocess, config: LoaderConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(DataError::Invalid("batch size must be at least 1".into()));
        }
        pipeline.validate()?;
        Ok(Self {
            source,
            pipeline: pipeline.into(),
            pre: pre.into(),
            config,
        })
    }

    /// Number of batches per epoch.
    pub fn batches(&self) -> usize {
        self.source.len().div_ceil(self.config.batch_size)
    }

    /// The sample order of `epoch` (shuffled from `(seed, epoch)` when shuffling).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if self.config.shuffle {
            crate::seed::epoch_order(self.source.len(), self.config.seed, epoch)
        } else {
            (0..self.source.len()).collect()
        }
    }

    /// The batches of `epoch`, built in the background.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.shard_epoch(epoch, 0, 1)
    }

    /// Part `rank` of `ranks` of every batch of `epoch`: the batch [`Self::epoch`] would give,
    /// cut into `ranks` consecutive slices as even as they come (`rank·n/ranks ..
    /// (rank+1)·n/ranks` of its `n` images), so that processes training one model together
    /// each build and augment their own slice only. A slice may be empty when a batch holds
    /// fewer images than there are ranks. Every image is augmented exactly as in the whole
    /// batch (augmentation is keyed by the sample, not by its place).
    pub fn shard_epoch(&self, epoch: u64, rank: usize, ranks: usize) -> EpochIter {
        let order = self.order(epoch);
        let ranks = ranks.max(1);
        let slice = |batch: &[usize]| {
            let n = batch.len();
            batch[rank * n / ranks..(rank + 1) * n / ranks].to_vec()
        };
        let chunks: Vec<Vec<usize>> = order.chunks(self.config.batch_size).map(slice).collect();
        let total = chunks.len();
        let build = {
            let (source, pipeline, pre, seed) = (
                self.source.clone(),
                self.pipeline.clone(),
                self.pre.clone(),
                self.config.seed,
            );
            move |indices: &[usize]| build_batch(&*source, &pipeline, &pre, indices, seed, epoch)
        };
        if self.config.workers == 0 {
            return EpochIter {
                inner: Inner::Inline {
                    chunks,
                    build: Box::new(build),
                    next: 0,
                },
                waited: Duration::ZERO,
                total,
            };
        }
        let workers = self.config.workers.min(total.max(1));
        let capacity = self.config.prefetch.div_ceil(workers).max(1);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx): (SyncSender<Result<Batch>>, Receiver<Result<Batch>>) = sync_channel(capacity);
            let mine: Vec<Vec<usize>> = chunks.iter().skip(w).step_by(workers).cloned().collect();
            let build = build.clone();
            handles.push(std::thread::spawn(move || {
                for indices in mine {
                    // A send fails only when the consumer dropped the epoch: stop quietly.
                    if tx.send(build(&indices)).is_err() {
                        return;
                    }
                }
            }));
            receivers.push(rx);
        }
        EpochIter {
            inner: Inner::Threads {
                receivers,
                handles,
                next: 0,
            },
            waited: Duration::ZERO,
            total,
        }
    }
}

/// Reads, augments and assembles the samples at `indices`.
fn build_batch<S: Source + ?Sized>(
    source: &S,
    pipeline: &Pipeline,
    pre: &Preprocess,
    indices: &[usize],
    seed: u64,
    epoch: u64,
) -> Result<Batch> {
    let mut samples = Vec::with_capacity(indices.len());
    for &i in indices {
        let (img, label) = source.get(i)?;
        samples.push((pipeline.apply(&img, seed, epoch, i as u64)?, label));
    }
    Batch::from_images(&samples, pre)
}

type BuildFn = Box<dyn Fn(&[usize]) -> Result<Batch> + Send>;

enum Inner {
    Inline {
        chunks: Vec<Vec<usize>>,
        build: BuildFn,
        next: usize,
    },
    Threads {
        receivers: Vec<Receiver<Result<Batch>>>,
        handles: Vec<JoinHandle<()>>,
        next: usize,
    },
}

/// The batches of one epoch, in order. Dropping it early stops the workers.
pub struct EpochIter {
    inner: Inner,
    waited: Duration,
    total: usize,
}

impl EpochIter {
    /// Time the consumer spent waiting for (or, without workers, building) batches so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Batches in this epoch.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        let started = Instant::now();
        let item = match &mut self.inner {
            Inner::Inline { chunks, build, next } => {
                let item = chunks.get(*next).map(|c| build(c));
                *next += 1;
                item
            }
            Inner::Threads { receivers, next, .. } => {
                if *next >= self.total {
                    None
                } else {
                    let rx = &receivers[*next % receivers.len()];
                    *next += 1;
                    Some(
                        rx.recv()
                            .unwrap_or_else(|_| Err(DataError::Invalid("a data worker stopped unexpectedly".into()))),
                    )
                }
            }
        };
        self.waited += started.elapsed();
        item
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Inner::Threads { receivers, handles, .. } = &mut self.inner {
            receivers.clear(); // workers blocked on a full queue see the disconnect and stop
            for h in handles.drain(..) {
                let _ = h.join();
            }
        }
    }
}
