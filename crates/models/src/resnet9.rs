//! ResNet-9: the network of the fast CIFAR-10 training records (Page, "How to train your ResNet",
//! 2018, DAWNBench; the ancestor of airbench), in widths `c` = 64 (the original), 32, 16 and 7:
//!
//! ```text
//! prep    conv 3×3 → c,   BN, ReLU
//! layer1  conv 3×3 → 2c,  BN, ReLU, max-pool 2, residual (2 × conv-BN-ReLU, added after)
//! layer2  conv 3×3 → 4c,  BN, ReLU, max-pool 2
//! layer3  conv 3×3 → 8c,  BN, ReLU, max-pool 2, residual
//! pool    global max → fc (8c → classes)
//! ```
//!
//! Few layers at full resolution and wide ones at low resolution make it cheap per image and
//! quick to train: `resnet9_w16` is the speedrun's network (`cargo xtask speedrun`), `resnet9_w7`
//! (79,747 parameters) the smallest, under Fashion-MNIST's 100K-parameter benchmark class.

use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, LinearConfig, conv::Conv2d};
use burn::tensor::{Device, Tensor};

use crate::ImageClassifier;
use crate::fast_conv::conv2d;
use crate::fast_pool::max_pool2d;
use crate::fused_bn;
use crate::layers::{Layer, batch_norm, conv, max_pool, summarize_conv};
use crate::network::{Network, Stage, fresh_linear};
use crate::summary::{OutShape, Shape3, Summary};

/// A 3×3 convolution (no bias) with its batch norm and a ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(in_c: usize, out_c: usize, device: &Device) -> Self {
        Self {
            conv: conv(in_c, out_c, 3, 1, 1, false, device),
            bn: batch_norm(out_c, 1e-5, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        fused_bn::batch_norm(&self.bn, conv2d(&self.conv, x), None, true)
    }

    fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) -> Shape3 {
        let out = summarize_conv(format!("{name}.conv"), &self.conv, input, s);
        s.push_batch_norm(format!("{name}.bn"), &self.bn, out);
        out
    }
}

/// `x + res2(res1(x))`: Page's residual, added after the second ReLU.
#[derive(Module, Debug)]
pub struct Residual9 {
    /// First convolution.
    pub res1: ConvBn,
    /// Second convolution.
    pub res2: ConvBn,
}

/// One layer: a convolution that widens, an optional 2×2 max pool, an optional residual.
#[derive(Module, Debug)]
pub struct Layer9 {
    /// The widening convolution.
    pub conv: ConvBn,
    /// The 2×2 max pool.
    pub pool: MaxPool2d,
    /// The residual after the pool (layers 1 and 3).
    pub residual: Option<Residual9>,
}

impl Layer9 {
    fn new(in_c: usize, out_c: usize, residual: bool, device: &Device) -> Self {
        Self {
            conv: ConvBn::new(in_c, out_c, device),
            pool: max_pool(2, 2, 0, false),
            residual: residual.then(|| Residual9 {
                res1: ConvBn::new(out_c, out_c, device),
                res2: ConvBn::new(out_c, out_c, device),
            }),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = max_pool2d(&self.pool, self.conv.forward(x));
        match &self.residual {
            Some(r) => x.clone() + r.res2.forward(r.res1.forward(x)),
            None => x,
        }
    }

    fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) -> Shape3 {
        let out = self.conv.summarize(&format!("{name}.conv"), input, s);
        let mut shape = Layer::MaxPool(self.pool.clone()).summarize(&format!("{name}.pool"), out, s);
        if let Some(r) = &self.residual {
            let inner = r.res1.summarize(&format!("{name}.residual.res1"), shape, s);
            shape = r.res2.summarize(&format!("{name}.residual.res2"), inner, s);
        }
        shape
    }
}

/// Configuration of [`ResNet9`].
#[derive(Config, Debug)]
pub struct ResNet9Config {
    /// The base width `c` (64 in the original).
    pub width: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Output classes.
    #[config(default = 10)]
    pub num_classes: usize,
}

impl ResNet9Config {
    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> ResNet9 {
        ResNet9::new(self.width, self.in_channels, self.num_classes, device)
    }
}

/// ResNet-9 (see the module docs).
#[derive(Module, Debug)]
pub struct ResNet9 {
    /// The first convolution, at full resolution.
    pub prep: ConvBn,
    /// Width 2c, half resolution, residual.
    pub layer1: Layer9,
    /// Width 4c, quarter resolution.
    pub layer2: Layer9,
    /// Width 8c, eighth resolution, residual.
    pub layer3: Layer9,
    /// The classifier on the globally max-pooled features.
    pub fc: Linear,
}

impl ResNet9 {
    /// ResNet-9 of width `width` (`c` above) for `in_channels`-channel images.
    pub fn new(width: usize, in_channels: usize, num_classes: usize, device: &Device) -> Self {
        let c = width;
        Self {
            prep: ConvBn::new(in_channels, c, device),
            layer1: Layer9::new(c, 2 * c, true, device),
            layer2: Layer9::new(2 * c, 4 * c, false, device),
            layer3: Layer9::new(4 * c, 8 * c, true, device),
            fc: LinearConfig::new(8 * c, num_classes).init(device),
        }
    }

    /// The maps of `layer3`, `[B, 8c, h, w]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.prep.forward(x);
        self.layer3.forward(self.layer2.forward(self.layer1.forward(x)))
    }

    /// Per-layer summary for one input of shape `input`.
    pub fn summary(&self, input: Shape3) -> Summary {
        let mut s = Summary::new(input);
        let mut shape = self.prep.summarize("prep", input, &mut s);
        for (name, layer) in [("layer1", &self.layer1), ("layer2", &self.layer2), ("layer3", &self.layer3)] {
            shape = layer.summarize(name, shape, &mut s);
        }
        s.push("pool", "AdaptiveMaxPool2d", OutShape::Map([shape[0], 1, 1]), 0, 0);
        s.push_linear("fc", &self.fc);
        s
    }
}

impl ImageClassifier for ResNet9 {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(crate::portable::global_max(self.forward_features(images)))
    }
}

/// Stages `prep`, `layer1`, `layer2`, `layer3`; the head is `fc`.
impl Network for ResNet9 {
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        Some(crate::portable::global_max(self.forward_features(x)))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        self.fc = fresh_linear(&self.fc, num_classes, device);
        self
    }

    fn stages(&self) -> Vec<Stage> {
        ["prep", "layer1", "layer2", "layer3"].map(Stage::named).to_vec()
    }

    fn last_maps_layer(&self) -> Option<String> {
        Some("layer3".into())
    }

    fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        Some(self.forward_features(x))
    }

    fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.fc.forward(crate::portable::global_max(maps)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parameters_and_multiply_adds_follow_the_table() {
        let device = Device::flex();
        let net = ResNet9::new(16, 1, 10, &device);
        let logits = net.logits(Tensor::zeros([2, 1, 28, 28], &device));
        assert_eq!(logits.dims(), [2, 10]);
        let s = net.summary([1, 28, 28]);
        assert_eq!(s.total_params(), crate::keys::param_count(&net));
        // Weights: convolutions 9·(1·16 + 16·32 + 2·32·32 + 32·64 + 64·128 + 2·128·128), batch
        // norms 2·(16 + 3·32 + 64 + 3·128), fc 128·10 + 10.
        let convs = 9 * (16 + 16 * 32 + 2 * 32 * 32 + 32 * 64 + 64 * 128 + 2 * 128 * 128);
        assert_eq!(s.total_params(), convs + 2 * (16 + 3 * 32 + 64 + 3 * 128) + 1290);
        // 28 → 14 → 7 → 3: prep and layer1's conv at 28², its residual at 14², layer2's conv at
        // 14², layer3's conv at 7² and its residual at 3².
        let macs = 9 * (784 * 16 + 784 * 16 * 32 + 2 * 196 * 32 * 32 + 196 * 32 * 64 + 49 * 64 * 128 + 2 * 9 * 128 * 128)
            + 1280;
        assert_eq!(s.total_mult_adds(), macs as u64);
        // Every width: convolutions 9·(3c + 2c² + 8c² + 8c² + 32c² + 128c²), batch norms
        // 2·35c, fc 8c·10 + 10 (three input channels, as the zoo builds it).
        for c in [7, 16, 32, 64] {
            let params = 9 * (3 * c + 178 * c * c) + 70 * c + 80 * c + 10;
            let net = ResNet9::new(c, 3, 10, &device);
            assert_eq!(crate::keys::param_count(&net), params, "width {c}");
        }
        assert_eq!(9 * (3 * 7 + 178 * 49) + 70 * 7 + 80 * 7 + 10, 79_747);
    }

    #[test]
    fn the_residual_is_added_after_the_pool() {
        let device = Device::flex();
        let layer = Layer9::new(2, 4, true, &device);
        let x = Tensor::<4>::random([1, 2, 6, 6], burn::tensor::Distribution::Default, &device);
        let pooled = max_pool2d(&layer.pool, layer.conv.forward(x.clone()));
        let r = layer.residual.as_ref().unwrap();
        let expected = pooled.clone() + r.res2.forward(r.res1.forward(pooled));
        let diff = (layer.forward(x) - expected).abs().max().into_scalar::<f32>();
        assert_eq!(diff, 0.0);
    }
}
