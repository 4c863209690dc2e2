//! The Inception module (Szegedy et al. 2015): four branches — 1×1; 1×1 → 3×3; 1×1 → 5×5;
//! 3×3 max pool → 1×1 — concatenated along channels. The 1×1 "bottleneck" convolutions cut the
//! cost of the large kernels; [`InceptionConfig::naive`] removes them to show by how much.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::ImageClassifier;
use crate::layers::{Layer, batch_norm, conv, max_pool, summarize_conv};
use crate::summary::{Shape3, Summary};

/// Convolution (no bias), batch norm (ε = 0.001) and ReLU: torchvision's `BasicConv2d`.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm,
}

impl BasicConv2d {
    /// A square `kernel` convolution with the given stride and padding.
    pub fn new(in_c: usize, out_c: usize, kernel: usize, stride: usize, padding: usize, device: &Device) -> Self {
        Self {
            conv: conv(in_c, out_c, kernel, stride, padding, false, device),
            bn: batch_norm(out_c, 1e-3, device),
        }
    }

    /// `relu(bn(conv(x)))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::fused_bn::batch_norm(&self.bn, crate::fast_conv::conv2d(&self.conv, x), None, true)
    }

    /// Adds rows for the convolution and its batch norm; returns the output shape.
    pub fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) -> Shape3 {
        let out = summarize_conv(format!("{name}.conv"), &self.conv, input, s);
        s.push_batch_norm(format!("{name}.bn"), &self.bn, out);
        out
    }
}

/// One step of a multi-layer branch.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum BranchLayer {
    /// Convolution + BN + ReLU.
    Conv(BasicConv2d),
    /// Max pooling.
    Pool(MaxPool2d),
}

/// Configuration of [`Inception`]. Channel names follow torchvision's `Inception`.
#[derive(Config, Debug)]
pub struct InceptionConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Filters of the 1×1 branch.
    pub ch1x1: usize,
    /// 1×1 reduction before the 3×3 convolution.
    pub ch3x3red: usize,
    /// Filters of the 3×3 convolution.
    pub ch3x3: usize,
    /// 1×1 reduction before the "5×5" convolution.
    pub ch5x5red: usize,
    /// Filters of the "5×5" convolution.
    pub ch5x5: usize,
    /// 1×1 projection after the max pool.
    pub pool_proj: usize,
    /// Kernel of the third branch: 5 as in the paper; torchvision's GoogLeNet uses 3 (its weights
    /// need it).
    #[config(default = 5)]
    pub branch3_kernel: usize,
    /// The naive module: no 1×1 reductions before the 3×3/5×5 convolutions and no projection
    /// after the pool (the pool's channels pass straight through).
    #[config(default = false)]
    pub naive: bool,
}

/// An Inception module; its output has `ch1x1 + ch3x3 + ch5x5 + pool_proj` channels
/// (`… + in_channels` when naive).
#[derive(Module, Debug)]
pub struct Inception {
    /// 1×1 convolution.
    pub branch1: BasicConv2d,
    /// [1×1 reduction,] 3×3 convolution.
    pub branch2: Vec<BranchLayer>,
    /// [1×1 reduction,] 5×5 (or 3×3) convolution.
    pub branch3: Vec<BranchLayer>,
    /// 3×3 max pool (stride 1) [, 1×1 projection].
    pub branch4: Vec<BranchLayer>,
}

impl InceptionConfig {
    /// The course's example: a 28×28×192 input whose 5×5 branch has 32 filters after a 16-filter
    /// bottleneck (GoogLeNet's `inception3a`, with the paper's 5×5 kernel).
    pub fn course_example() -> Self {
        Self::new(192, 64, 96, 128, 16, 32, 32)
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.ch1x1 + self.ch3x3 + self.ch5x5 + if self.naive { self.in_channels } else { self.pool_proj }
    }

    /// Builds the module on `device`.
    pub fn init(&self, device: &Device) -> Inception {
        let k = self.branch3_kernel;
        let reduced = |red: usize, out: usize, kernel: usize| {
            if self.naive {
                vec![BranchLayer::Conv(BasicConv2d::new(
                    self.in_channels,
                    out,
                    kernel,
                    1,
                    kernel / 2,
                    device,
                ))]
            } else {
                vec![
                    BranchLayer::Conv(BasicConv2d::new(self.in_channels, red, 1, 1, 0, device)),
                    BranchLayer::Conv(BasicConv2d::new(red, out, kernel, 1, kernel / 2, device)),
                ]
            }
        };
        let mut branch4 = vec![BranchLayer::Pool(max_pool(3, 1, 1, true))];
        if !self.naive {
            branch4.push(BranchLayer::Conv(BasicConv2d::new(
                self.in_channels,
                self.pool_proj,
                1,
                1,
                0,
                device,
            )));
        }
        Inception {
            branch1: BasicConv2d::new(self.in_channels, self.ch1x1, 1, 1, 0, device),
            branch2: reduced(self.ch3x3red, self.ch3x3, 3),
            branch3: reduced(self.ch5x5red, self.ch5x5, k),
            branch4,
        }
    }
}

fn forward_branch(layers: &[BranchLayer], x: Tensor<4>) -> Tensor<4> {
    layers.iter().fold(x, |x, l| match l {
        BranchLayer::Conv(c) => c.forward(x),
        BranchLayer::Pool(p) => crate::fast_pool::max_pool2d(p, x),
    })
}

fn summarize_branch(name: &str, layers: &[BranchLayer], input: Shape3, s: &mut Summary) -> Shape3 {
    layers.iter().enumerate().fold(input, |shape, (i, l)| match l {
        BranchLayer::Conv(c) => c.summarize(&format!("{name}.{i}"), shape, s),
        BranchLayer::Pool(p) => Layer::MaxPool(p.clone()).summarize(&format!("{name}.{i}"), shape, s),
    })
}

impl Inception {
    /// The four branches, concatenated along channels.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1.forward(x.clone());
        let b2 = forward_branch(&self.branch2, x.clone());
        let b3 = forward_branch(&self.branch3, x.clone());
        let b4 = forward_branch(&self.branch4, x);
        Tensor::cat(vec![b1, b2, b3, b4], 1)
    }

    /// Adds the branches' rows under `name`; returns the concatenated output shape.
    pub fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) -> Shape3 {
        let shapes = [
            self.branch1.summarize(&format!("{name}.branch1"), input, s),
            summarize_branch(&format!("{name}.branch2"), &self.branch2, input, s),
            summarize_branch(&format!("{name}.branch3"), &self.branch3, input, s),
            summarize_branch(&format!("{name}.branch4"), &self.branch4, input, s),
        ];
        [shapes.iter().map(|s| s[0]).sum(), shapes[0][1], shapes[0][2]]
    }
}

/// A standalone Inception module made into a classifier (module → global average pool → linear),
/// so that the registry can build, summarise and train it (`inception_module`).
#[derive(Module, Debug)]
pub struct InceptionNet {
    /// The module.
    pub inception: Inception,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// The classifier.
    pub fc: Linear,
}

impl InceptionNet {
    /// Wraps a module built from `config`.
    pub fn new(config: &InceptionConfig, num_classes: usize, device: &Device) -> Self {
        Self {
            inception: config.init(device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(config.out_channels(), num_classes).init(device),
        }
    }

    /// Class logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.fc
            .forward(crate::portable::adaptive_avg_pool2d(self.inception.forward(x), self.avgpool.output_size).flatten(1, 3))
    }

    /// Per-layer summary.
    pub fn summary(&self, input: Shape3) -> Summary {
        let mut s = Summary::new(input);
        let out = self.inception.summarize("inception", input, &mut s);
        let out = Layer::AdaptiveAvgPool(self.avgpool.clone()).summarize("avgpool", out, &mut s);
        let i = self.fc.weight.dims()[0];
        s.push_linear("fc", &self.fc);
        debug_assert_eq!(i, out[0]);
        s
    }
}

impl ImageClassifier for InceptionNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

/// The course's single module: no backbone/head split, no stages.
impl crate::network::Network for InceptionNet {
    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        self.fc = crate::network::fresh_linear(&self.fc, num_classes, device);
        self
    }
}
