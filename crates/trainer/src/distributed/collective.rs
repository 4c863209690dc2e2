//! Training one model in several processes at once (data-parallel across processes and
//! machines): what the training loop needs from the processes' group ([`Collective`]), the step
//! that sums a batch's gradients over them ([`AcrossStep`]), and the pieces around it — the
//! evaluation sharded over the ranks, and batch norm's running statistics averaged before a
//! checkpoint.
//!
//! Every rank runs the same loop over the same global batches (same seed, same order); rank `r`
//! builds and trains on slice `r` of each ([`cnn_data_augment::Loader::shard_epoch`]), its loss
//! weighted by its share of the batch, so that the gradients summed over the ranks are those of
//! the whole batch. Every rank then applies the same update to the same weights, and all ranks
//! hold the same model at every step (up to the order of the float sums). The engine behind
//! [`Collective`] is MPI (`crate::distributed::mpi`, cargo feature `mpi`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use cnn_data_augment::{Image, Source};
use cnn_models::ImageClassifier;

use crate::error::Result;
use crate::eval::Evaluation;
use crate::fit::step::{ImageBatch, Step, StepResult};

/// The processes one run trains in, and the one collective operation it needs.
pub trait Collective {
    /// This process's rank, from 0; rank 0 alone writes the run folder.
    fn rank(&self) -> usize;
    /// Number of processes.
    fn size(&self) -> usize;
    /// Replaces `values` by their element-wise sums over all processes (every process calls it
    /// with the same length, in the same order of calls).
    fn sum(&self, values: &mut [f32]);
    /// [`Self::sum`] for counts and sums that need double precision.
    fn sum_f64(&self, values: &mut [f64]);
}

/// A training step across the processes of a [`Collective`]: forward and backward of this
/// rank's slice of the batch (on one device, or split again over this process's devices), then
/// the gradients, loss and counts weighted by the slice's share of the batch and summed over the
/// ranks.
pub(crate) struct AcrossStep<'a, S> {
    local: Box<S>,
    group: &'a dyn Collective,
}

impl<'a, S> AcrossStep<'a, S> {
    pub fn new(local: S, group: &'a dyn Collective) -> Self {
        Self {
            local: Box::new(local),
            group,
        }
    }
}

impl<M: ImageClassifier, S: Step<M, Input = ImageBatch>> Step<M> for AcrossStep<'_, S> {
    type Input = ImageBatch;

    fn step(&self, model: &M, (images, targets): ImageBatch, weight: f32) -> Result<StepResult> {
        let local = images.dims()[0];
        // An empty slice (a last batch smaller than the ranks) adds zeros.
        let result = if local == 0 {
            StepResult {
                grads: GradientsParams::new(),
                loss: 0.0,
                correct: 0,
                top5: 0,
                images: 0,
            }
        } else {
            self.local.step(model, (images, targets), weight)?
        };
        // One all-reduce a step: the slice's gradients and loss times its images (sums over
        // them), its counts and its images, in one buffer; then divided by the batch's images.
        let n = local as f32;
        let tail = [result.loss * n, result.correct as f32, result.top5 as f32, n];
        let (grads, [loss, correct, top5, images]) = sum_gradients(self.group, model, (&result.grads, n), tail);
        Ok(StepResult {
            grads,
            loss: loss / images.max(1.0),
            correct: correct as usize,
            top5: top5 as usize,
            images: images as usize,
        })
    }
}

/// The gradients of every trainable parameter of `model` (zeros where this rank has none),
/// times `weight`, in the module's visiting order, followed by `tail`: summed over the ranks in
/// one buffer. Returns the summed gradients divided by the summed last value of `tail` (the
/// batch's images), and the summed `tail`.
fn sum_gradients<M: Module>(
    group: &dyn Collective,
    model: &M,
    (grads, weight): (&GradientsParams, f32),
    tail: [f32; 4],
) -> (GradientsParams, [f32; 4]) {
    struct Flatten<'g> {
        grads: &'g GradientsParams,
        weight: f32,
        flat: Vec<f32>,
    }
    impl ModuleVisitor for Flatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            match self.grads.get::<D>(param.id) {
                Some(g) => self.flat.extend(floats(g).into_iter().map(|v| v * self.weight)),
                None => self.flat.extend(std::iter::repeat_n(0.0, value.shape().num_elements())),
            }
        }
    }
    struct Unflatten<'f> {
        flat: &'f [f32],
        scale: f32,
        grads: GradientsParams,
    }
    impl ModuleVisitor for Unflatten<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let (here, rest) = self.flat.split_at(value.shape().num_elements());
            self.flat = rest;
            let device = value.device().without_autodiff();
            let data = TensorData::new(here.iter().map(|v| v * self.scale).collect(), value.dims());
            self.grads.register::<D>(param.id, Tensor::from_data(data, &device));
        }
    }
    let mut flatten = Flatten {
        grads,
        weight,
        flat: Vec::new(),
    };
    model.visit(&mut flatten);
    let mut flat = flatten.flat;
    flat.extend(tail);
    group.sum(&mut flat);
    let tail: [f32; 4] = flat.split_off(flat.len() - 4).try_into().expect("four values");
    let mut unflatten = Unflatten {
        flat: &flat,
        scale: 1.0 / tail[3].max(1.0),
        grads: GradientsParams::new(),
    };
    model.visit(&mut unflatten);
    (unflatten.grads, tail)
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32")
}

/// Replaces batch norm's running statistics (the float tensors that take no gradient) by their
/// mean over the ranks, so that the checkpoint and the final weights hold one value for all of
/// them. Each rank normalised its own slice of every batch (as PyTorch's
/// `DistributedDataParallel` without `SyncBatchNorm`), so their statistics drift apart.
pub(crate) fn average_running_statistics<M: Module>(group: &dyn Collective, model: &M) {
    // `valid` folds burn's per-thread running values into the one that the mapper reads.
    drop(model.valid());
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if !value.is_require_grad() {
                self.0.extend(floats(value));
            }
        }
    }
    struct Replace<'f> {
        flat: &'f [f32],
    }
    impl ModuleMapper for Replace<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let value = param.val();
            if value.is_require_grad() {
                return param;
            }
            let (here, rest) = self.flat.split_at(value.shape().num_elements());
            self.flat = rest;
            let data = TensorData::new(here.to_vec(), value.dims());
            let (id, _, mapper) = param.consume();
            Param::from_mapped_value(id, Tensor::from_data(data, &value.device()), mapper)
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    group.sum(&mut collect.0);
    let ranks = group.size() as f32;
    collect.0.iter_mut().for_each(|v| *v /= ranks);
    // Running states are shared between clones of a module: mapping a clone updates `model`.
    drop(model.clone().map(&mut Replace { flat: &collect.0 }));
}

/// The evaluation of a model on `data` sharded over the ranks: rank `r` evaluates samples
/// `r, r + size, …` with `evaluate`, and the sums are combined.
pub(crate) fn evaluate_sharded(
    group: &dyn Collective,
    data: &dyn Source,
    evaluate: impl FnOnce(&dyn Source) -> Result<Evaluation>,
) -> Result<Evaluation> {
    let shard = Strided {
        inner: data,
        rank: group.rank(),
        size: group.size(),
    };
    let local = if shard.is_empty() {
        Evaluation {
            loss: 0.0,
            accuracy: 0.0,
            top5: 0.0,
            images: 0,
        }
    } else {
        evaluate(&shard)?
    };
    let n = local.images as f64;
    let mut sums = [local.loss * n, local.accuracy * n, local.top5 * n, n];
    group.sum_f64(&mut sums);
    // Accuracies times images are counts of correct predictions: whole numbers.
    let images = sums[3].max(1.0);
    Ok(Evaluation {
        loss: sums[0] / images,
        accuracy: sums[1].round() / images,
        top5: sums[2].round() / images,
        images: sums[3] as usize,
    })
}

/// Every `size`-th sample of `inner`, from `rank`.
struct Strided<'a> {
    inner: &'a dyn Source,
    rank: usize,
    size: usize,
}

impl Source for Strided<'_> {
    fn len(&self) -> usize {
        self.inner.len().saturating_sub(self.rank).div_ceil(self.size)
    }

    fn get(&self, index: usize) -> cnn_data_augment::Result<(Image, usize)> {
        self.inner.get(self.rank + index * self.size)
    }

    fn label(&self, index: usize) -> cnn_data_augment::Result<usize> {
        self.inner.label(self.rank + index * self.size)
    }
}
