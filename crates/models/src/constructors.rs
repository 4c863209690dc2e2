//! torchvision-style constructors, one per registered name: `resnet18(num_classes, &device)`
//! is `build("resnet18", BuildOptions::classes(num_classes), &device)` (the model's own input
//! channels; use [`build`] for other options).
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use cnn_models::ImageClassifier;
//!
//! let device = Device::flex();
//! let model = cnn_models::resnet20(10, &device);
//! let logits = model.logits(Tensor::zeros([2, 3, 32, 32], &device));
//! assert_eq!(logits.dims(), [2, 10]);
//! ```

pub use crate::registry::constructors::*;

#[cfg(test)]
mod tests {
    use crate::registry::MODELS;

    /// Every registered name builds through its constructor (the table generates both).
    #[test]
    fn every_registered_model_has_a_constructor() {
        let device = burn::tensor::Device::flex();
        assert_eq!(MODELS.len(), 47);
        let model = super::resnet20(3, &device);
        assert_eq!(crate::param_count(&model), crate::param_count(&crate::build("resnet20", crate::BuildOptions::classes(3), &device).unwrap()));
    }
}
