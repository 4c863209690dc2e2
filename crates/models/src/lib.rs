//! # cnn-models
//!
//! The classic convolutional networks of the CNN case studies, written once per family on
//! [burn](https://burn.dev) 0.22, each correct to its paper and to torchvision's layout:
//!
//! | family | module | names in the [registry] |
//! | --- | --- | --- |
//! | LeNet-5 | [`lenet`] | `lenet5` |
//! | AlexNet | [`alexnet`] | `alexnet` (options: LRN, two-GPU grouped convolutions) |
//! | VGG | [`vgg`] | `vgg11` … `vgg19_bn` |
//! | ResNet | [`resnet`] | `resnet18` … `resnet152`, CIFAR `resnet20` … `resnet110`, plain twins `plain18` …, `plain20` … |
//! | ResNet-9 (fast training) | [`resnet9`] | `resnet9`, `resnet9_w32`, `resnet9_w16`, `resnet9_w7` |
//! | 1×1 convolutions | [`nin`] | (building block) |
//! | Inception / GoogLeNet | [`inception`], [`googlenet`] | `inception_module`, `googlenet` |
//!
//! Every family answers the same questions through [`Network`] (backbone and head, a new head,
//! stages for freezing, the last convolutional maps, the summary), implemented in the family's
//! own file; [`Model`] holds any of them and delegates. AlexNet and VGG are one
//! [`FeaturesNet`] type, built by their own configurations.
//!
//! Model code has no backend type parameter: build a model on any
//! [`Device`](burn::tensor::Device) compiled into your build (`Device::flex()`,
//! `Device::ndarray()`, `Device::wgpu(..)`). Module fields are named after torchvision's
//! state_dict keys (see [`keys`]), and every model can print a per-layer [`Summary`] of output
//! shapes, parameters and multiply-adds.
//!
//! Another project builds a 5-class ResNet-50, runs a batch and prints the summary:
//!
//! ```
//! use burn::module::Module;
//! use burn::tensor::{Device, Tensor};
//! use cnn_models::ResNet;
//!
//! let device = Device::flex();
//! let model = ResNet::resnet50(5, &device);
//! let logits = model.forward(Tensor::<4>::zeros([2, 3, 64, 64], &device));
//! assert_eq!(logits.dims(), [2, 5]);
//!
//! let summary = model.summary([3, 224, 224]);
//! println!("{summary}");
//! assert_eq!(summary.total_params(), cnn_models::param_count(&model));
//! ```

pub mod alexnet;
pub mod constructors;
pub mod error;
pub mod features_net;
pub mod googlenet;
pub mod inception;
pub mod keys;
pub mod layers;
pub mod lenet;
pub mod network;
pub mod nin;
pub mod portable;
pub mod registry;
pub mod resnet;
pub mod resnet9;
pub mod small_map;
pub mod summary;
pub mod vgg;

pub use cnn_kernels::{Kernel, fast_conv, fast_linear, fast_pool, fast_tanh, fused_bn, fused_sgd, precision};

/// ImageNet's per-channel mean and standard deviation (torchvision's): what the published
/// ImageNet weights expect their input normalised with.
pub const IMAGENET_MEAN_STD: ([f32; 3], [f32; 3]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

pub use alexnet::{AlexNet, AlexNetConfig};
pub use constructors::*;
pub use features_net::FeaturesNet;
pub use googlenet::{GoogLeNet, GoogLeNetConfig};
pub use inception::{Inception, InceptionConfig, InceptionNet};
pub use keys::param_count;
pub use lenet::{Activation, LeNet5, LeNet5Config};
pub use network::{Network, Stage};
pub use nin::{Conv1x1Net, NinBlock, NinBlockConfig};
pub use error::ModelError;
pub use registry::{BuildOptions, InputSpec, Model, ModelInfo, build};
pub use resnet::{BlockKind, ResNet, ResNetConfig, ShortcutKind};
pub use resnet9::{ResNet9, ResNet9Config};
pub use summary::Summary;
pub use vgg::{Vgg, VggConfig, VggDepth};

use burn::module::Module;
use burn::tensor::Tensor;

/// What a model produces in training: the main logits and any auxiliary logits (GoogLeNet's
/// two auxiliary classifiers; empty for every other model).
#[derive(Debug, Clone)]
pub struct TrainOutput {
    /// Class logits `[B, classes]`.
    pub logits: Tensor<2>,
    /// Auxiliary class logits, each `[B, classes]`.
    pub aux: Vec<Tensor<2>>,
}

/// A network that maps a batch of images `[B, C, H, W]` to class logits `[B, classes]`.
///
/// The trainer and the CLI work with any model through this trait.
pub trait ImageClassifier: Module {
    /// Class logits (no softmax) for a batch of images; the inference path.
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;

    /// The training path: logits plus auxiliary logits where the model has them.
    fn train_outputs(&self, images: Tensor<4>) -> TrainOutput {
        TrainOutput {
            logits: self.logits(images),
            aux: Vec::new(),
        }
    }
}
