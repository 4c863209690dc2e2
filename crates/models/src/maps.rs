//! Every network split at its last convolutional stage: the maps there and the rest of the
//! network from them. Grad-CAM (Selvaraju et al. 2017) weighs those maps by the gradient of a
//! class's logit to show where the evidence for the class lies in the image.

use burn::tensor::Tensor;

use crate::layers::{Layer, forward_dense, forward_seq};
use crate::registry::Model;

impl Model {
    /// The name of the layer whose output [`Model::last_maps`] returns: `conv2` (LeNet-5, after
    /// its activation), the last convolution's activated output `features.N` (AlexNet, VGG),
    /// the last stage `layerN` (ResNets), `inception5b` (GoogLeNet). `None` for the Inception
    /// and 1×1 examples.
    pub fn last_maps_layer(&self) -> Option<String> {
        Some(match self {
            Model::LeNet5(_) => "conv2".into(),
            Model::AlexNet(m) => format!("features.{}", features_cut(&m.features) - 1),
            Model::Vgg(m) => format!("features.{}", features_cut(&m.features) - 1),
            Model::ResNet(m) => {
                let last = m.stages().iter().rposition(|s| !s.is_empty()).unwrap_or(0);
                format!("layer{}", last + 1)
            }
            Model::GoogLeNet(_) => "inception5b".into(),
            Model::Inception(_) | Model::Conv1x1(_) => return None,
        })
    }

    /// The maps of the last convolutional stage, `[B, K, h, w]` (see
    /// [`Model::last_maps_layer`]).
    pub fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        Some(match self {
            Model::LeNet5(m) => m.forward_maps(x),
            Model::AlexNet(m) => forward_seq(&m.features[..features_cut(&m.features)], x),
            Model::Vgg(m) => forward_seq(&m.features[..features_cut(&m.features)], x),
            Model::ResNet(m) => m.forward_features(x),
            Model::GoogLeNet(m) => m.forward_maps(x),
            Model::Inception(_) | Model::Conv1x1(_) => return None,
        })
    }

    /// The logits from [`Model::last_maps`]'s output: `logits_from_maps(last_maps(x))` is the
    /// network's inference forward pass.
    pub fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        let features_head = |features: &[Layer], avgpool: &burn::nn::pool::AdaptiveAvgPool2d, classifier| {
            let x = forward_seq(&features[features_cut(features)..], maps.clone());
            forward_dense(classifier, avgpool.forward(x).flatten(1, 3))
        };
        Some(match self {
            Model::LeNet5(m) => m.forward_from_maps(maps),
            Model::AlexNet(m) => features_head(&m.features, &m.avgpool, &m.classifier),
            Model::Vgg(m) => features_head(&m.features, &m.avgpool, &m.classifier),
            Model::ResNet(m) => m.fc.forward(m.avgpool.forward(maps).flatten(1, 3)),
            Model::GoogLeNet(m) => m.forward_from_maps(maps),
            Model::Inception(_) | Model::Conv1x1(_) => return None,
        })
    }
}

/// Where AlexNet's and VGG's `features` end their last convolutional stage: after the last
/// convolution and the layers that follow it up to the next pooling layer.
fn features_cut(features: &[Layer]) -> usize {
    let last_conv = features.iter().rposition(|l| matches!(l, Layer::Conv(_))).unwrap_or(0);
    features[last_conv..]
        .iter()
        .position(|l| matches!(l, Layer::MaxPool(_) | Layer::AvgPool(_) | Layer::AdaptiveAvgPool(_)))
        .map_or(features.len(), |p| last_conv + p)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::{BuildOptions, ImageClassifier};

    /// The split forward pass is the network's own, for every family that has one.
    #[test]
    fn logits_from_the_last_maps_are_the_networks_logits() {
        let device = Device::flex();
        for (name, size, layer, maps) in [
            ("lenet5", 32, "conv2", [16, 10, 10]),
            ("alexnet", 63, "features.11", [256, 3, 3]),
            ("vgg11_bn", 32, "features.27", [512, 2, 2]),
            ("resnet20", 32, "layer3", [64, 8, 8]),
            ("resnet18", 64, "layer4", [512, 2, 2]),
            ("googlenet", 64, "inception5b", [1024, 2, 2]),
        ] {
            device.seed(3);
            let model = crate::build(name, BuildOptions::classes(5), &device).unwrap();
            let channels = if name == "lenet5" { 1 } else { 3 };
            let x = Tensor::<4>::random([2, channels, size, size], Distribution::Normal(0.0, 1.0), &device);
            assert_eq!(model.last_maps_layer().as_deref(), Some(layer), "{name}");
            let m = model.last_maps(x.clone()).unwrap();
            assert_eq!(m.dims()[1..], maps, "{name}");
            let split = model.logits_from_maps(m).unwrap();
            let whole = model.logits(x);
            split
                .into_data()
                .assert_approx_eq::<f32>(&whole.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        }
        let example = crate::build("conv1x1_example", BuildOptions::classes(5), &device).unwrap();
        assert!(example.last_maps_layer().is_none());
    }
}
