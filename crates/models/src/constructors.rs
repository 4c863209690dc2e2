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

use burn::tensor::Device;

use crate::registry::{BuildOptions, Model, build};

macro_rules! constructors {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), "` with `num_classes` outputs on `device` (see the [module](self)).")]
            pub fn $name(num_classes: usize, device: &Device) -> Model {
                build(stringify!($name), BuildOptions::classes(num_classes), device)
                    .expect("every constructor's name is registered (tested)")
            }
        )*

        /// The names that have a constructor here.
        pub const CONSTRUCTED: &[&str] = &[$(stringify!($name)),*];
    };
}

constructors!(
    lenet5,
    lenet5_relu,
    lenet5_sigmoid,
    alexnet,
    alexnet_lrn,
    alexnet_paper,
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    plain18,
    plain34,
    plain50,
    plain101,
    plain152,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
    plain20,
    plain32,
    plain44,
    plain56,
    plain110,
    resnet20b,
    resnet32b,
    resnet44b,
    resnet56b,
    resnet110b,
    googlenet,
    inception_module,
    inception_naive,
    conv1x1_example,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::MODELS;

    /// One constructor per registered name, no more, no fewer.
    #[test]
    fn every_registered_model_has_a_constructor() {
        let registered: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
        assert_eq!(CONSTRUCTED, &registered[..]);
    }
}
