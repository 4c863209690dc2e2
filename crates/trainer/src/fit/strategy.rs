//! Which [`Step`] a run takes, from its devices and process group.

use burn::tensor::Device;
use cnn_models::ImageClassifier;

use super::step::{ImageBatch, OneDevice, Step, StepResult};
use crate::distributed::collective::{AcrossStep, Collective};
use crate::distributed::parallel::DataParallel;
use crate::error::Result;

/// What [`crate::fit_from`] runs: one device, the batch split over several, or each process's
/// slice of it in a group of processes.
#[allow(clippy::large_enum_variant)] // one value per run
pub(crate) enum ImageStep<'a, M> {
    One(OneDevice),
    Parallel(DataParallel<M>),
    Across(AcrossStep<'a, ImageStep<'a, M>>),
}

impl<'a, M: ImageClassifier + Send + 'static> ImageStep<'a, M> {
    /// One device for one, data-parallel over several (autodiff devices; the model lives on the
    /// first); with `group`, either of them on this process's slices of the batches.
    /// `smoothing` is the loss's label smoothing.
    pub fn new(devices: &[Device], group: Option<&'a dyn Collective>, smoothing: f64) -> Result<Self> {
        let local = match devices {
            [device] => Self::One(OneDevice::new(device, smoothing)),
            _ => Self::Parallel(DataParallel::new(devices, smoothing)?),
        };
        Ok(match group {
            Some(group) => Self::Across(AcrossStep::new(local, group)),
            None => local,
        })
    }
}

impl<M: ImageClassifier + Send + 'static> Step<M> for ImageStep<'_, M> {
    type Input = ImageBatch;

    fn step(&self, model: &M, input: ImageBatch, weight: f32) -> Result<StepResult> {
        match self {
            Self::One(one) => one.step(model, input, weight),
            Self::Parallel(parallel) => parallel.step(model, input, weight),
            Self::Across(across) => across.step(model, input, weight),
        }
    }
}
