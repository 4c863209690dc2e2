//! How one training step turns a batch into gradients: the [`Step`] that the one training loop
//! ([`super::epochs`]) is given. One device ([`OneDevice`]) is here; several devices in this
//! process ([`crate::distributed::parallel`]), a group of processes
//! ([`crate::distributed::collective`]) and a classifier head on cached features
//! ([`crate::eval::cached`]) are steps too, chosen in [`super::strategy`].

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use cnn_models::{ImageClassifier, TrainOutput};

use crate::error::Result;
use crate::eval::count_correct;

/// Weight of each auxiliary classifier's loss (Szegedy et al. 2015).
pub const AUX_LOSS_WEIGHT: f32 = 0.3;

/// What one step hands back to the loop.
pub struct StepResult {
    /// The batch's gradients, on the main device.
    pub grads: GradientsParams,
    /// The batch's mean loss.
    pub loss: f32,
    /// Top-1 correct predictions in the batch.
    pub correct: usize,
    /// Top-5 correct predictions in the batch.
    pub top5: usize,
    /// Images the loss, counts and gradients are over (the whole batch: across processes,
    /// more than this process's slice).
    pub images: usize,
}

/// One way of turning a batch into gradients for `M`.
pub trait Step<M> {
    /// One batch as the step takes it, on the main device: images and labels, or feature rows
    /// and labels.
    type Input;

    /// Forward and backward over `input`.
    fn step(&self, model: &M, input: Self::Input) -> Result<StepResult>;
}

/// Images and their labels on a device.
pub type ImageBatch = (Tensor<4>, Tensor<1, Int>);

/// Cross-entropy of the logits, plus each auxiliary classifier's weighted by
/// [`AUX_LOSS_WEIGHT`] (GoogLeNet's, as in the paper).
pub(crate) fn training_loss(out: TrainOutput, labels: Tensor<1, Int>, loss_fn: &CrossEntropyLoss) -> Tensor<1> {
    let mut loss = loss_fn.forward(out.logits, labels.clone());
    for aux in out.aux {
        loss = loss + loss_fn.forward(aux, labels.clone()).mul_scalar(AUX_LOSS_WEIGHT);
    }
    loss
}

/// The end of every step: the batch's statistics from its logits, then the backward pass of
/// `loss` (already weighted, e.g. by a shard's share of the batch).
pub(crate) fn finish_step<M: Module>(
    model: &M,
    (logits, labels): (Tensor<2>, Tensor<1, Int>),
    loss: impl FnOnce(Tensor<1, Int>) -> Tensor<1>,
) -> StepResult {
    let images = logits.dims()[0];
    let (correct, top5) = count_correct(logits, labels.clone());
    let loss = loss(labels);
    let value = loss.clone().into_scalar::<f32>();
    StepResult {
        grads: GradientsParams::from_grads(loss.backward(), model),
        loss: value,
        correct,
        top5,
        images,
    }
}

/// Forward and backward of a whole batch on the model's device.
pub struct OneDevice {
    loss_fn: CrossEntropyLoss,
}

impl OneDevice {
    pub fn new(device: &Device) -> Self {
        Self {
            loss_fn: burn::nn::loss::CrossEntropyLossConfig::new().init(device),
        }
    }
}

impl<M: ImageClassifier> Step<M> for OneDevice {
    type Input = ImageBatch;

    fn step(&self, model: &M, (images, labels): ImageBatch) -> Result<StepResult> {
        let out = model.train_outputs(images);
        let logits = out.logits.clone();
        Ok(finish_step(model, (logits, labels), |labels| {
            training_loss(out, labels, &self.loss_fn)
        }))
    }
}
