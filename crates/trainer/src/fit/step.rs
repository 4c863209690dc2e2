//! How one training step turns a batch into gradients: the [`Step`] that the one training loop
//! ([`super::epochs`]) is given. One device ([`OneDevice`]) is here; several devices in this
//! process ([`crate::distributed::parallel`]), a group of processes
//! ([`crate::distributed::collective`]) and a classifier head on cached features
//! ([`crate::eval::cached`]) are steps too, chosen in [`super::strategy`].

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use cnn_models::ImageClassifier;

use super::loss::{Loss, Targets};
use crate::error::Result;
use crate::eval::count_correct;

/// What one step hands back to the loop.
pub struct StepResult {
    /// The batch's gradients, on the main device.
    pub grads: GradientsParams,
    /// The batch's mean loss.
    pub loss: f32,
    /// Top-1 correct predictions in the batch (against each image's own label).
    pub correct: usize,
    /// Top-5 correct predictions in the batch.
    pub top5: usize,
    /// Images the loss, counts and gradients are over (the whole batch: across processes,
    /// more than this process's slice).
    pub images: usize,
}

/// One way of turning a batch into gradients for `M`.
pub trait Step<M> {
    /// One batch as the step takes it, on the main device: images and targets, or feature rows
    /// and targets.
    type Input;

    /// Forward and backward over `input`, the loss scaled by `weight` (1, or a batch's share
    /// of the update when gradients are accumulated over several).
    fn step(&self, model: &M, input: Self::Input, weight: f32) -> Result<StepResult>;
}

/// Images and what they are trained to predict, on a device.
pub type ImageBatch = (Tensor<4>, Targets);

/// The end of every step: the batch's statistics from its logits, then the backward pass of
/// `loss` (a shard's already weighted by its share of the batch) times `weight` (a batch's share
/// of an accumulated update; the reported loss leaves it out).
pub(crate) fn finish_step<M: Module>(
    model: &M,
    (logits, targets): (Tensor<2>, Targets),
    weight: f32,
    loss: impl FnOnce(&Targets) -> Tensor<1>,
) -> StepResult {
    let images = logits.dims()[0];
    let (correct, top5) = count_correct(logits, targets.labels.clone());
    let loss = loss(&targets);
    let value = loss.clone().into_scalar::<f32>();
    // Times 1 is exact, but skipped: one operation less in every unaccumulated step.
    let loss = if weight == 1.0 { loss } else { loss.mul_scalar(weight) };
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
    loss: Loss,
}

impl OneDevice {
    /// The step on `device` with label smoothing `smoothing` (0: none).
    pub fn new(device: &Device, smoothing: f64) -> Self {
        Self {
            loss: Loss::new(smoothing, device),
        }
    }
}

impl<M: ImageClassifier> Step<M> for OneDevice {
    type Input = ImageBatch;

    fn step(&self, model: &M, (images, targets): ImageBatch, weight: f32) -> Result<StepResult> {
        let out = model.train_outputs(images);
        let logits = out.logits.clone();
        Ok(finish_step(model, (logits, targets), weight, |targets| {
            self.loss.of_outputs(out, targets)
        }))
    }
}
