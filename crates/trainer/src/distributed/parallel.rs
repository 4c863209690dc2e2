//! Data-parallel training steps over several devices, built on burn's own mechanism
//! (`Module::fork`, `GradientsParams::to_device`, `GradientsAccumulator`), the one that
//! `burn::train`'s multi-device strategy uses.
//!
//! Every batch is split into one shard per device. One long-lived worker thread per device forks
//! the current model onto its device, runs forward and backward on its shard and sends its
//! gradients back; they are moved to the first (main) device and summed there, and the optimiser
//! updates the model once. Each shard's loss is weighted by its share of the batch, so the summed
//! gradients equal those of the whole batch on one device (up to float rounding) for models
//! without BatchNorm. BatchNorm normalises each shard with its own statistics (as PyTorch's
//! `DataParallel` does without `SyncBatchNorm`); the running statistics are the average of the
//! workers' updates (burn's `RunningState` keeps one value per thread and averages them).
//!
//! This is single-process parallelism: the devices must be visible to this process (several
//! GPUs, or a GPU and the CPU). burn 0.22.1 has nothing for several processes or machines on
//! the CPU or wgpu: its `ddp` strategy runs threads in one process with collective operations
//! on CUDA only, and burn-collective (which spoke WebSockets between processes) stopped at 0.21.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use burn::optim::GradientsAccumulator;
use burn::tensor::{Device, Tensor};
use cnn_models::ImageClassifier;

use crate::error::{Result, TrainError};
use crate::fit::loss::{Loss, Targets};
use crate::fit::step::{ImageBatch, Step, StepResult, finish_step};

/// What a worker gets: the model to fork, its shard and the shard's share of the batch.
struct Job<M> {
    model: M,
    images: Tensor<4>,
    targets: Targets,
    /// The shard's share of the batch's images.
    share: f32,
    /// The batch's share of an accumulated update.
    weight: f32,
}

/// What a worker sends back: its shard's gradients (on its own device), its weighted loss and
/// its correct predictions.
struct Done {
    worker: usize,
    outcome: std::result::Result<StepResult, String>,
}

/// Worker threads, one per device; the first device is the main one.
pub(crate) struct DataParallel<M> {
    devices: Vec<Device>,
    senders: Vec<Sender<Job<M>>>,
    results: Receiver<Done>,
    handles: Vec<JoinHandle<()>>,
}

impl<M: ImageClassifier + Send + 'static> DataParallel<M> {
    /// Starts one worker per device (autodiff devices; the first is where the model lives).
    pub fn new(devices: &[Device], smoothing: f64) -> Result<Self> {
        let (done_tx, results) = channel::<Done>();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        // The replicas multiply in the precision of the thread that starts them (the run's).
        let precision = cnn_models::precision::current();
        for (worker, device) in devices.iter().enumerate() {
            let (tx, rx) = channel::<Job<M>>();
            let done = done_tx.clone();
            let device = device.clone();
            let handle = std::thread::Builder::new()
                .name(format!("cnn-replica-{worker}"))
                .spawn(move || {
                    cnn_models::precision::with(precision, || {
                        let loss = Loss::new(smoothing, &device);
                        while let Ok(job) = rx.recv() {
                            let step = std::panic::AssertUnwindSafe(|| shard_step(job, &device, &loss));
                            let outcome = std::panic::catch_unwind(step).map_err(|p| panic_text(p.as_ref()));
                            if done.send(Done { worker, outcome }).is_err() {
                                break;
                            }
                        }
                    })
                })
                .map_err(|e| TrainError::Distributed(format!("cannot start a thread for device {worker}: {e}")))?;
            senders.push(tx);
            handles.push(handle);
        }
        Ok(Self {
            devices: devices.to_vec(),
            senders,
            results,
            handles,
        })
    }
}

impl<M: ImageClassifier + Send + 'static> Step<M> for DataParallel<M> {
    type Input = ImageBatch;

    /// One step over `images`/`labels` (on the main device): shards, runs every worker and sums
    /// the gradients on the main device.
    fn step(&self, model: &M, (images, targets): ImageBatch, weight: f32) -> Result<StepResult> {
        let batch = images.dims()[0];
        let shards = shard_sizes(batch, self.devices.len());
        let mut start = 0;
        let mut sent = 0;
        for (sender, &size) in self.senders.iter().zip(&shards) {
            if size == 0 {
                continue;
            }
            let job = Job {
                model: model.clone(),
                images: images.clone().narrow(0, start, size),
                targets: targets.narrow(start, size),
                share: size as f32 / batch as f32,
                weight,
            };
            start += size;
            sender
                .send(job)
                .map_err(|_| TrainError::Distributed("a data-parallel worker has stopped".into()))?;
            sent += 1;
        }
        let main = &self.devices[0];
        let mut parts = Vec::with_capacity(sent);
        for _ in 0..sent {
            let done = self
                .results
                .recv()
                .map_err(|_| TrainError::Distributed("a data-parallel worker has stopped".into()))?;
            match done.outcome {
                Ok(part) => parts.push((done.worker, part)),
                Err(reason) => {
                    return Err(TrainError::Distributed(format!(
                        "the training step on device {} ({:?}) failed: {reason}",
                        done.worker, self.devices[done.worker]
                    )));
                }
            }
        }
        // Summed in device order so that the result does not depend on which worker finished first.
        parts.sort_by_key(|(worker, _)| *worker);
        let mut accumulator = GradientsAccumulator::new();
        let (mut loss, mut correct, mut top5, mut images) = (0f32, 0, 0, 0);
        for (_, part) in parts {
            accumulator.accumulate(model, part.grads.to_device(main, model));
            loss += part.loss;
            correct += part.correct;
            top5 += part.top5;
            images += part.images;
        }
        Ok(StepResult {
            grads: accumulator.grads(),
            loss,
            correct,
            top5,
            images,
        })
    }
}

impl<M> Drop for DataParallel<M> {
    fn drop(&mut self) {
        self.senders.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Forward and backward of one shard on `device`.
fn shard_step<M: ImageClassifier>(job: Job<M>, device: &Device, loss: &Loss) -> StepResult {
    let model = job.model.fork(device);
    let images = job.images.to_device(device);
    let targets = job.targets.to_device(device);
    let out = model.train_outputs(images);
    let logits = out.logits.clone();
    finish_step(&model, (logits, targets), job.weight, |targets| {
        loss.of_outputs(out, targets).mul_scalar(job.share)
    })
}

/// Splits `batch` images over `devices` as evenly as possible, larger shards first.
pub(crate) fn shard_sizes(batch: usize, devices: usize) -> Vec<usize> {
    let devices = devices.max(1);
    (0..devices)
        .map(|i| batch / devices + usize::from(i < batch % devices))
        .collect()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_evenly() {
        assert_eq!(shard_sizes(10, 3), vec![4, 3, 3]);
        assert_eq!(shard_sizes(1, 2), vec![1, 0]);
        assert_eq!(shard_sizes(8, 1), vec![8]);
        for (b, d) in [(7, 2), (32, 3), (5, 5)] {
            let s = shard_sizes(b, d);
            assert_eq!(s.iter().sum::<usize>(), b);
            assert!(s.iter().max().unwrap() - s.iter().min().unwrap() <= 1);
        }
    }
}
