//! The one registry of model names: what the CLI, the trainer and the transfer code accept.
//!
//! Names follow torchvision (`alexnet`, `vgg11` … `vgg19_bn`, `resnet18` … `resnet152`,
//! `googlenet`), plus `lenet5`, the CIFAR ResNets (`resnet20/32/44/56/110`), the plain twins
//! (`plain18` … `plain152`, `plain20` … `plain110`), ResNet-9 (`resnet9`, `resnet9_w32`,
//! `resnet9_w16`, `resnet9_w7`) and `inception_module`.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::alexnet::{AlexNet, AlexNetConfig};
use crate::googlenet::{GoogLeNet, GoogLeNetConfig};
use crate::inception::{InceptionConfig, InceptionNet};
use crate::lenet::{LeNet5, LeNet5Config};
use crate::nin::Conv1x1Net;
use crate::resnet::{ResNet, ResNetConfig, ShortcutKind, imagenet_depth};
use crate::resnet9::{ResNet9, ResNet9Config};
use crate::summary::{Shape3, Summary};
use crate::vgg::{Vgg, VggConfig, VggDepth};
use crate::network::{Network, Stage};
use crate::error::{ModelError, nearest_name};
use crate::{ImageClassifier, TrainOutput};

/// What a model expects as input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputSpec {
    /// Number of input channels.
    pub channels: usize,
    /// Input height and width in pixels (square).
    pub size: usize,
}

impl InputSpec {
    /// As a `[C, H, W]` shape.
    pub fn shape(self) -> Shape3 {
        [self.channels, self.size, self.size]
    }
}

/// The families of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// LeNet-5 (tanh, as in the paper).
    LeNet,
    /// LeNet-5 with ReLU activations (the common modern variant).
    LeNetRelu,
    /// LeNet-5 with logistic sigmoid activations (the paper era's other choice).
    LeNetSigmoid,
    /// AlexNet in torchvision's layout.
    AlexNet,
    /// AlexNet in torchvision's layout with the paper's local response normalisation.
    AlexNetLrn,
    /// AlexNet as in the 2012 paper: 96-256-384-384-256 filters, LRN, two-GPU groups.
    AlexNetPaper,
    /// VGG with this depth and batch norm flag.
    Vgg(VggDepth, bool),
    /// ImageNet ResNet of this depth; `false` = plain twin.
    ResNet(usize, bool),
    /// CIFAR ResNet (6n+2, option A) of this depth; `false` = plain twin.
    CifarResNet(usize, bool),
    /// CIFAR ResNet (6n+2) of this depth with projection shortcuts (option B) where the shape
    /// changes.
    CifarResNetB(usize),
    /// ResNet-9 (Page 2018, the fast CIFAR-10 records) of this base width.
    ResNet9(usize),
    /// GoogLeNet.
    GoogLeNet,
    /// The standalone Inception module of the course (28×28×192 input).
    InceptionModule,
    /// The same module without its 1×1 reductions (the naive module).
    InceptionNaive,
    /// The course's 1×1 convolution example: 28×28×192 → 28×28×32.
    Conv1x1Example,
}

impl Family {
    /// Whether the family is a course example on feature maps (192 channels) rather than a
    /// network that takes images: it builds and summarises, but `cnn train` refuses it.
    pub fn takes_feature_maps(self) -> bool {
        matches!(self, Family::InceptionModule | Family::InceptionNaive | Family::Conv1x1Example)
    }
}

/// One entry of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The name users type.
    pub name: &'static str,
    /// Which family and variant.
    pub family: Family,
    /// The input the model is designed for.
    pub default_input: InputSpec,
}

impl ModelInfo {
    /// The classes the model is usually built with when no data set says: ImageNet's 1000 for
    /// the ImageNet-sized networks, 10 for LeNet-5, the CIFAR networks and the module examples.
    pub fn default_classes(&self) -> usize {
        if self.default_input.size >= 224 { 1000 } else { 10 }
    }

    /// A one-line description.
    pub fn description(&self) -> String {
        match self.family {
            Family::LeNet => "LeNet-5 (LeCun et al. 1998), tanh".into(),
            Family::LeNetRelu => "LeNet-5 with ReLU activations (the modern variant)".into(),
            Family::LeNetSigmoid => "LeNet-5 with sigmoid activations (the paper era's other choice)".into(),
            Family::AlexNet => "AlexNet (Krizhevsky et al. 2012), torchvision layout".into(),
            Family::AlexNetLrn => "AlexNet, torchvision layout, with local response normalisation".into(),
            Family::AlexNetPaper => "AlexNet as in the paper: 96-256-384-384-256, LRN, two-GPU groups".into(),
            Family::Vgg(d, bn) => format!(
                "{d:?}{} (Simonyan & Zisserman 2015)",
                if bn { " with batch norm" } else { "" }
            ),
            Family::ResNet(d, true) => format!("ResNet-{d} (He et al. 2016), torchvision layout"),
            Family::ResNet(d, false) => format!("plain twin of ResNet-{d} (no shortcuts)"),
            Family::CifarResNet(d, true) => format!("CIFAR ResNet-{d} (6n+2, option-A shortcuts)"),
            Family::CifarResNet(d, false) => format!("plain twin of CIFAR ResNet-{d} (no shortcuts)"),
            Family::CifarResNetB(d) => format!("CIFAR ResNet-{d} with projection shortcuts (option B)"),
            Family::ResNet9(w) => format!("ResNet-9 (Page 2018, fast CIFAR-10 training), width {w}"),
            Family::GoogLeNet => "GoogLeNet (Szegedy et al. 2015), torchvision layout, aux heads".into(),
            Family::InceptionModule => "one Inception module (28x28x192 in) + global pool + linear".into(),
            Family::InceptionNaive => "the naive Inception module (no 1x1 reductions; 28x28x192 in)".into(),
            Family::Conv1x1Example => "the course's 1x1 convolution, 28x28x192 -> 28x28x32, + pool + linear".into(),
        }
    }
}

const fn rgb(size: usize) -> InputSpec {
    InputSpec { channels: 3, size }
}

const fn entry(name: &'static str, family: Family, default_input: InputSpec) -> ModelInfo {
    ModelInfo {
        name,
        family,
        default_input,
    }
}

/// The zoo's one table: each line registers a name (with its family and default input) in
/// [`MODELS`] and gives it a torchvision-style constructor (`cnn_models::resnet20(10, &device)`).
macro_rules! zoo {
    ($($name:ident: $family:expr, $input:expr;)*) => {
        /// Every model this crate builds, by name.
        pub const MODELS: &[ModelInfo] = &[$(entry(stringify!($name), $family, $input)),*];

        /// One constructor per registered name (re-exported by the `constructors` module).
        pub mod constructors {
            use burn::tensor::Device;

            use super::{BuildOptions, Model, build};

            $(
                #[doc = concat!("`", stringify!($name), "` with `num_classes` outputs on `device`.")]
                pub fn $name(num_classes: usize, device: &Device) -> Model {
                    build(stringify!($name), BuildOptions::classes(num_classes), device)
                        .expect("every constructor's name is registered")
                }
            )*
        }
    };
}

zoo! {
    lenet5: Family::LeNet, InputSpec { channels: 1, size: 32 };
    lenet5_relu: Family::LeNetRelu, InputSpec { channels: 1, size: 32 };
    lenet5_sigmoid: Family::LeNetSigmoid, InputSpec { channels: 1, size: 32 };
    alexnet: Family::AlexNet, rgb(224);
    alexnet_lrn: Family::AlexNetLrn, rgb(224);
    alexnet_paper: Family::AlexNetPaper, rgb(224);
    vgg11: Family::Vgg(VggDepth::Vgg11, false), rgb(224);
    vgg11_bn: Family::Vgg(VggDepth::Vgg11, true), rgb(224);
    vgg13: Family::Vgg(VggDepth::Vgg13, false), rgb(224);
    vgg13_bn: Family::Vgg(VggDepth::Vgg13, true), rgb(224);
    vgg16: Family::Vgg(VggDepth::Vgg16, false), rgb(224);
    vgg16_bn: Family::Vgg(VggDepth::Vgg16, true), rgb(224);
    vgg19: Family::Vgg(VggDepth::Vgg19, false), rgb(224);
    vgg19_bn: Family::Vgg(VggDepth::Vgg19, true), rgb(224);
    resnet18: Family::ResNet(18, true), rgb(224);
    resnet34: Family::ResNet(34, true), rgb(224);
    resnet50: Family::ResNet(50, true), rgb(224);
    resnet101: Family::ResNet(101, true), rgb(224);
    resnet152: Family::ResNet(152, true), rgb(224);
    plain18: Family::ResNet(18, false), rgb(224);
    plain34: Family::ResNet(34, false), rgb(224);
    plain50: Family::ResNet(50, false), rgb(224);
    plain101: Family::ResNet(101, false), rgb(224);
    plain152: Family::ResNet(152, false), rgb(224);
    resnet20: Family::CifarResNet(20, true), rgb(32);
    resnet32: Family::CifarResNet(32, true), rgb(32);
    resnet44: Family::CifarResNet(44, true), rgb(32);
    resnet56: Family::CifarResNet(56, true), rgb(32);
    resnet110: Family::CifarResNet(110, true), rgb(32);
    plain20: Family::CifarResNet(20, false), rgb(32);
    plain32: Family::CifarResNet(32, false), rgb(32);
    plain44: Family::CifarResNet(44, false), rgb(32);
    plain56: Family::CifarResNet(56, false), rgb(32);
    plain110: Family::CifarResNet(110, false), rgb(32);
    resnet20b: Family::CifarResNetB(20), rgb(32);
    resnet32b: Family::CifarResNetB(32), rgb(32);
    resnet44b: Family::CifarResNetB(44), rgb(32);
    resnet56b: Family::CifarResNetB(56), rgb(32);
    resnet110b: Family::CifarResNetB(110), rgb(32);
    resnet9: Family::ResNet9(64), rgb(32);
    resnet9_w32: Family::ResNet9(32), rgb(32);
    resnet9_w16: Family::ResNet9(16), rgb(32);
    resnet9_w7: Family::ResNet9(7), rgb(32);
    googlenet: Family::GoogLeNet, rgb(224);
    inception_module: Family::InceptionModule, InputSpec { channels: 192, size: 28 };
    inception_naive: Family::InceptionNaive, InputSpec { channels: 192, size: 28 };
    conv1x1_example: Family::Conv1x1Example, InputSpec { channels: 192, size: 28 };
}

/// Looks a model up by name (case-insensitive).
pub fn lookup(name: &str) -> Result<&'static ModelInfo, ModelError> {
    MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| ModelError::UnknownModel {
            name: name.to_string(),
            suggestion: nearest_name(name, MODELS.iter().map(|m| m.name)),
            known: MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
        })
}

/// Options for [`build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Number of output classes.
    pub num_classes: usize,
    /// Input channels; `None` keeps the model's default.
    pub in_channels: Option<usize>,
}

impl BuildOptions {
    /// `num_classes` classes, default input channels.
    pub fn classes(num_classes: usize) -> Self {
        Self {
            num_classes,
            in_channels: None,
        }
    }
}

/// A model of any family, so that code can hold "the model the user named".
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Model {
    /// LeNet-5.
    LeNet5(LeNet5),
    /// AlexNet.
    AlexNet(AlexNet),
    /// VGG.
    Vgg(Vgg),
    /// ResNet (ImageNet or CIFAR, residual or plain).
    ResNet(ResNet),
    /// ResNet-9.
    ResNet9(ResNet9),
    /// GoogLeNet.
    GoogLeNet(GoogLeNet),
    /// The standalone Inception module classifier.
    Inception(InceptionNet),
    /// The course's 1×1 convolution example.
    Conv1x1(Conv1x1Net),
}

/// Builds the model registered as `name` on `device`.
pub fn build(name: &str, options: BuildOptions, device: &Device) -> Result<Model, ModelError> {
    let info = lookup(name)?;
    if options.num_classes == 0 {
        return Err(ModelError::BadOption {
            model: info.name,
            reason: "num_classes must be at least 1".into(),
        });
    }
    let in_c = options.in_channels.unwrap_or(info.default_input.channels);
    if in_c == 0 {
        return Err(ModelError::BadOption {
            model: info.name,
            reason: "input channels must be at least 1".into(),
        });
    }
    let n = options.num_classes;
    Ok(match info.family {
        Family::LeNet | Family::LeNetRelu | Family::LeNetSigmoid => Model::LeNet5(
            LeNet5Config::new()
                .with_num_classes(n)
                .with_in_channels(in_c)
                .with_activation(match info.family {
                    Family::LeNetRelu => crate::lenet::Activation::Relu,
                    Family::LeNetSigmoid => crate::lenet::Activation::Sigmoid,
                    _ => crate::lenet::Activation::Tanh,
                })
                .init(device),
        ),
        Family::AlexNet | Family::AlexNetLrn | Family::AlexNetPaper => Model::AlexNet(
            match info.family {
                Family::AlexNetPaper => AlexNetConfig::paper(),
                Family::AlexNetLrn => AlexNetConfig::new().with_local_response_norm(true),
                _ => AlexNetConfig::new(),
            }
            .with_num_classes(n)
            .with_in_channels(in_c)
            .init(device),
        ),
        Family::Vgg(depth, bn) => Model::Vgg(
            VggConfig::new(depth)
                .with_batch_norm(bn)
                .with_num_classes(n)
                .with_in_channels(in_c)
                .init(device),
        ),
        Family::ResNet(depth, residual) => {
            let (block, blocks) = imagenet_depth(depth).expect("registered depths are in the table");
            Model::ResNet(
                ResNetConfig::imagenet(block, blocks)
                    .with_residual(residual)
                    .with_num_classes(n)
                    .with_in_channels(in_c)
                    .init(device),
            )
        }
        Family::CifarResNet(depth, residual) => Model::ResNet(
            ResNetConfig::cifar((depth - 2) / 6, ShortcutKind::ZeroPad)
                .with_residual(residual)
                .with_num_classes(n)
                .with_in_channels(in_c)
                .init(device),
        ),
        Family::ResNet9(width) => Model::ResNet9(
            ResNet9Config::new(width)
                .with_num_classes(n)
                .with_in_channels(in_c)
                .init(device),
        ),
        Family::GoogLeNet => Model::GoogLeNet(
            GoogLeNetConfig::new()
                .with_num_classes(n)
                .with_in_channels(in_c)
                .init(device),
        ),
        Family::CifarResNetB(depth) => Model::ResNet(
            ResNetConfig::cifar((depth - 2) / 6, ShortcutKind::Projection)
                .with_num_classes(n)
                .with_in_channels(in_c)
                .init(device),
        ),
        Family::InceptionModule | Family::InceptionNaive => {
            let mut cfg = InceptionConfig::course_example();
            cfg.in_channels = in_c;
            cfg.naive = info.family == Family::InceptionNaive;
            Model::Inception(InceptionNet::new(&cfg, n, device))
        }
        Family::Conv1x1Example => Model::Conv1x1(Conv1x1Net::new(in_c, 32, n, device)),
    })
}

/// `$e` for the network inside `$model`, bound as `$m`, whatever its family: the one place that
/// lists the families (`rewrap` puts the result back into the same variant).
macro_rules! each {
    ($model:expr, $m:ident => $e:expr) => {
        match $model {
            Model::LeNet5($m) => $e,
            Model::AlexNet($m) => $e,
            Model::Vgg($m) => $e,
            Model::ResNet($m) => $e,
            Model::ResNet9($m) => $e,
            Model::GoogLeNet($m) => $e,
            Model::Inception($m) => $e,
            Model::Conv1x1($m) => $e,
        }
    };
    (rewrap $model:expr, $m:ident => $e:expr) => {
        match $model {
            Model::LeNet5($m) => Model::LeNet5($e),
            Model::AlexNet($m) => Model::AlexNet($e),
            Model::Vgg($m) => Model::Vgg($e),
            Model::ResNet($m) => Model::ResNet($e),
            Model::ResNet9($m) => Model::ResNet9($e),
            Model::GoogLeNet($m) => Model::GoogLeNet($e),
            Model::Inception($m) => Model::Inception($e),
            Model::Conv1x1($m) => Model::Conv1x1($e),
        }
    };
}

/// Every question goes to the family's own answer.
impl Network for Model {
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        each!(self, m => Network::backbone(m, x))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        each!(self, m => Network::head(m, features))
    }

    fn with_num_classes(self, num_classes: usize, device: &Device) -> Model {
        each!(rewrap self, m => Network::with_num_classes(m, num_classes, device))
    }

    fn stages(&self) -> Vec<Stage> {
        each!(self, m => Network::stages(m))
    }

    fn last_maps_layer(&self) -> Option<String> {
        each!(self, m => Network::last_maps_layer(m))
    }

    fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        each!(self, m => Network::last_maps(m, x))
    }

    fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        each!(self, m => Network::logits_from_maps(m, maps))
    }

    fn conv_features(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        each!(self, m => Network::conv_features(m, x))
    }
}

impl Model {
    /// The model as inference runs it: what only training uses (GoogLeNet's auxiliary
    /// classifiers) removed.
    pub fn for_inference(self) -> Self {
        match self {
            Model::GoogLeNet(g) => Model::GoogLeNet(g.without_aux()),
            other => other,
        }
    }

    /// Per-layer summary for one input of shape `[C, H, W]` (inference path).
    pub fn summary(&self, input: Shape3) -> Summary {
        each!(self, m => m.summary(input))
    }

    /// Whether square `size`-pixel inputs of `channels` channels fit every layer: `Err` names
    /// the first layer that does not ([`Summary::first_misfit`]) and the nearest size at or
    /// above `size` that fits, if one does up to 4096 px.
    pub fn check_input_size(&self, channels: usize, size: usize) -> std::result::Result<(), String> {
        let Some(row) = self.summary([channels, size, size]).first_misfit().map(|r| r.name.clone()) else {
            return Ok(());
        };
        let fits = |s: usize| self.summary([channels, s, s]).first_misfit().is_none();
        let hint = match (size..=4096).find(|&s| fits(s)) {
            Some(s) => format!("the smallest size from {size} px up that fits is {s} px"),
            None => match (1..size).rev().find(|&s| fits(s)) {
                Some(s) => format!("the largest size below {size} px that fits is {s} px"),
                None => "no square size fits".into(),
            },
        };
        Err(format!("input {size} px does not fit layer {row}: {hint}"))
    }
}

impl ImageClassifier for Model {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        each!(self, m => m.logits(images))
    }

    fn train_outputs(&self, images: Tensor<4>) -> TrainOutput {
        each!(self, m => m.train_outputs(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup("LeNet5").unwrap().name, "lenet5");
        assert_eq!(lookup("VGG16_BN").unwrap().family, Family::Vgg(VggDepth::Vgg16, true));
    }

    #[test]
    fn unknown_name_suggests_nearest() {
        let msg = lookup("resnet51").unwrap_err().to_string();
        assert!(msg.contains("did you mean 'resnet50'"), "{msg}");
        assert!(matches!(
            lookup("transformer"),
            Err(ModelError::UnknownModel { suggestion: None, .. })
        ));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = MODELS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), MODELS.len());
    }
}
