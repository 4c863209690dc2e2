//! The "features → avgpool → classifier" network that AlexNet and VGG both are (torchvision's
//! layout for both): one struct, one forward pass, one summary and one set of answers to
//! [`Network`]'s questions. [`AlexNet`](crate::AlexNet) and [`Vgg`](crate::Vgg) are this type,
//! built by their own configurations.

use burn::module::Module;
use burn::nn::pool::AdaptiveAvgPool2d;
use burn::tensor::{Device, Tensor};

use crate::ImageClassifier;
use crate::layers::{Dense, Layer, forward_dense, forward_seq, summarize_dense, summarize_seq};
use crate::network::{Network, Stage, fresh_linear};
use crate::summary::{Shape3, Summary};

/// Convolutions (`features`), adaptive average pooling (`avgpool`) and fully connected layers
/// (`classifier`), with torchvision's indices as keys.
#[derive(Module, Debug)]
pub struct FeaturesNet {
    /// Convolution, normalisation, ReLU and pooling layers (`features.0` …).
    pub features: Vec<Layer>,
    /// Adaptive average pooling (6×6 for AlexNet, 7×7 for VGG), so any large enough input fits.
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout, linear and ReLU layers; the last is the final classifier (`classifier.6`).
    pub classifier: Vec<Dense>,
}

impl FeaturesNet {
    /// The convolutional part alone: `[B, C, H, W]` → `[B, C', h, w]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        forward_seq(&self.features, x)
    }

    /// Class logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        forward_dense(&self.classifier, self.pooled(self.forward_features(x)))
    }

    /// Per-layer summary for one input of shape `input`.
    pub fn summary(&self, input: Shape3) -> Summary {
        let mut s = Summary::new(input);
        let f = summarize_seq("features", &self.features, input, &mut s);
        let p = Layer::AdaptiveAvgPool(self.avgpool.clone()).summarize("avgpool", f, &mut s);
        summarize_dense("classifier", &self.classifier, p.iter().product(), &mut s);
        s
    }

    fn pooled(&self, maps: Tensor<4>) -> Tensor<2> {
        crate::portable::adaptive_avg_pool2d(maps, self.avgpool.output_size).flatten(1, 3)
    }

    /// Where the last convolutional stage ends: after the last convolution and the layers that
    /// follow it up to the next pooling layer.
    fn maps_cut(&self) -> usize {
        let last_conv = self
            .features
            .iter()
            .rposition(|l| matches!(l, Layer::Conv(_)))
            .unwrap_or(0);
        self.features[last_conv..]
            .iter()
            .position(|l| matches!(l, Layer::MaxPool(_) | Layer::AvgPool(_) | Layer::AdaptiveAvgPool(_)))
            .map_or(self.features.len(), |p| last_conv + p)
    }
}

impl ImageClassifier for FeaturesNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl Network for FeaturesNet {
    /// The 4096-d input of `classifier.6`.
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let n = self.classifier.len().saturating_sub(1);
        Some(forward_dense(
            &self.classifier[..n],
            self.pooled(self.forward_features(x)),
        ))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.classifier.last().map_or(features.clone(), |l| l.forward(features))
    }

    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        if let Some(Dense::Linear(l)) = self.classifier.last_mut() {
            *l = fresh_linear(l, num_classes, device);
        }
        self
    }

    /// One stage per convolution of `features`; a following batch norm joins its stage.
    fn stages(&self) -> Vec<Stage> {
        let mut out: Vec<Stage> = Vec::new();
        for (i, layer) in self.features.iter().enumerate() {
            match layer {
                Layer::Conv(_) => out.push(Stage::named(&format!("features.{i}"))),
                Layer::BatchNorm(_) => {
                    if let Some(last) = out.last_mut() {
                        last.prefixes.push(format!("features.{i}."));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn last_maps_layer(&self) -> Option<String> {
        Some(format!("features.{}", self.maps_cut() - 1))
    }

    fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        Some(forward_seq(&self.features[..self.maps_cut()], x))
    }

    fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        let rest = forward_seq(&self.features[self.maps_cut()..], maps);
        Some(forward_dense(&self.classifier, self.pooled(rest)))
    }

    fn conv_features(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.pooled(self.forward_features(x)))
    }
}
