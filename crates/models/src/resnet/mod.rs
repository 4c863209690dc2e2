//! ResNets (He et al. 2016): torchvision's ImageNet ResNet-18/34/50/101/152, the CIFAR-style
//! 6n+2 ResNets of §4.2 (ResNet-20/32/44/56/110), and the "plain" twin of each (same layers,
//! shortcuts switched off) for the depth-degradation experiment. One network type, one block
//! type, and a table of `(block, blocks per stage)` per depth.

mod block;

pub use block::{BlockKind, ResidualBlock, ShortcutKind};

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::ImageClassifier;
use crate::layers::{Layer, batch_norm, conv, max_pool, summarize_conv};
use crate::summary::{Shape3, Summary};

/// The stem of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stem {
    /// ImageNet: 7×7 convolution stride 2, batch norm, ReLU, 3×3 max pool stride 2.
    ImageNet,
    /// CIFAR (§4.2): 3×3 convolution stride 1, batch norm, ReLU; no pooling.
    Cifar,
}

/// Configuration of [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Block variant.
    pub block: BlockKind,
    /// Blocks per stage, e.g. `[3, 4, 6, 3]` for ResNet-50 or `[3, 3, 3]` for ResNet-20.
    pub blocks: Vec<usize>,
    /// Width of each stage (before the block's expansion): `[64, 128, 256, 512]` or `[16, 32, 64]`.
    pub widths: Vec<usize>,
    /// The stem.
    #[config(default = "Stem::ImageNet")]
    pub stem: Stem,
    /// Shortcut when a block changes shape.
    #[config(default = "ShortcutKind::Projection")]
    pub shortcut: ShortcutKind,
    /// `false` builds the plain twin: no shortcuts at all.
    #[config(default = true)]
    pub residual: bool,
    /// Number of output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Start every residual block's last batch-norm γ at zero, so each block starts as the
    /// identity (torchvision's `zero_init_residual`; see [`ResNet::zero_init_residual`]).
    #[config(default = false)]
    pub zero_init_residual: bool,
}

/// A residual (or plain) network. Stage `i` is `layer{i+1}`; CIFAR nets leave `layer4` empty.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem convolution.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm,
    /// Stem max pool (ImageNet stem only).
    pub maxpool: Option<MaxPool2d>,
    /// Stage 1.
    pub layer1: Vec<ResidualBlock>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<ResidualBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<ResidualBlock>,
    /// Stage 4 (stride 2; empty in CIFAR nets).
    pub layer4: Vec<ResidualBlock>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// The classifier.
    pub fc: Linear,
}

impl ResNet {
    /// Every residual block with its last batch-norm γ at zero (torchvision's
    /// `zero_init_residual`, Goyal et al. 2017): each block then starts as the identity on
    /// non-negative inputs, the course's argument for why adding blocks cannot hurt. Plain twins
    /// (no shortcut) are changed too, where a zero branch outputs zero instead.
    pub fn zero_init_residual(self) -> Self {
        let stage = |blocks: Vec<ResidualBlock>| blocks.into_iter().map(ResidualBlock::zero_init_residual).collect();
        Self {
            layer1: stage(self.layer1),
            layer2: stage(self.layer2),
            layer3: stage(self.layer3),
            layer4: stage(self.layer4),
            ..self
        }
    }
}

/// What [`ResNet::append_blocks`] appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendedBlock {
    /// Residual blocks with their last batch-norm γ at zero: each computes the identity, so the
    /// deeper network computes exactly what the shallower one did.
    Identity,
    /// Plain blocks (no shortcut) with the default initialisation.
    Plain,
}

impl ResNet {
    /// The network with `count` blocks of `kind` appended to its last stage: same width, stride
    /// 1, the block variant of the stage's last block. The course's argument for residual
    /// networks, as an operation: appended [`AppendedBlock::Identity`] blocks leave every output
    /// unchanged (`a[l+2] = g(a[l]) = a[l]`, the block's input being a ReLU's output), appended
    /// [`AppendedBlock::Plain`] blocks start as random functions of it.
    ///
    /// # Panics
    /// If the network has no residual blocks.
    pub fn append_blocks(mut self, count: usize, kind: AppendedBlock, device: &Device) -> Self {
        let stage = [&mut self.layer4, &mut self.layer3, &mut self.layer2, &mut self.layer1]
            .into_iter()
            .find(|stage| !stage.is_empty())
            .expect("append_blocks: the network has no residual blocks");
        let last = stage.last().expect("a non-empty stage");
        let block = if last.conv3.is_some() { BlockKind::Bottleneck } else { BlockKind::Basic };
        let width = last.conv2.weight.val().dims()[0];
        let channels = width * block.expansion();
        for _ in 0..count {
            let residual = kind == AppendedBlock::Identity;
            let new = ResidualBlock::new(block, channels, width, 1, ShortcutKind::ZeroPad, residual, device);
            stage.push(if residual { new.zero_init_residual() } else { new });
        }
        self
    }

    /// Residual blocks over all stages.
    pub fn block_count(&self) -> usize {
        self.stages().iter().map(|stage| stage.len()).sum()
    }
}

impl ResNetConfig {
    /// torchvision's ImageNet layout for `block` and blocks per stage.
    pub fn imagenet(block: BlockKind, blocks: [usize; 4]) -> Self {
        Self::new(block, blocks.to_vec(), vec![64, 128, 256, 512])
    }

    /// The CIFAR 6n+2 network (§4.2): three stages of `n` basic blocks, 16/32/64 filters.
    pub fn cifar(n: usize, shortcut: ShortcutKind) -> Self {
        Self::new(BlockKind::Basic, vec![n; 3], vec![16, 32, 64])
            .with_stem(Stem::Cifar)
            .with_shortcut(shortcut)
            .with_num_classes(10)
    }

    /// Builds the network on `device`.
    ///
    /// # Panics
    /// If `blocks` and `widths` differ in length or have more than four stages.
    pub fn init(&self, device: &Device) -> ResNet {
        assert!(
            self.blocks.len() == self.widths.len() && (1..=4).contains(&self.blocks.len()),
            "ResNet needs 1 to 4 stages with one width each"
        );
        let (conv1, maxpool) = match self.stem {
            Stem::ImageNet => (
                conv(self.in_channels, self.widths[0], 7, 2, 3, false, device),
                Some(max_pool(3, 2, 1, false)),
            ),
            Stem::Cifar => (conv(self.in_channels, self.widths[0], 3, 1, 1, false, device), None),
        };
        let mut channels = self.widths[0];
        let mut stages: Vec<Vec<ResidualBlock>> = Vec::new();
        for (i, (&n, &width)) in self.blocks.iter().zip(&self.widths).enumerate() {
            let stage = (0..n)
                .map(|b| {
                    let stride = if i > 0 && b == 0 { 2 } else { 1 };
                    let block = ResidualBlock::new(
                        self.block,
                        channels,
                        width,
                        stride,
                        self.shortcut,
                        self.residual,
                        device,
                    );
                    channels = width * self.block.expansion();
                    block
                })
                .collect();
            stages.push(stage);
        }
        stages.resize_with(4, Vec::new);
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        let net = ResNet {
            conv1,
            bn1: batch_norm(self.widths[0], 1e-5, device),
            maxpool,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(channels, self.num_classes).init(device),
        };
        if self.zero_init_residual { net.zero_init_residual() } else { net }
    }
}

/// The depths of torchvision's ImageNet ResNets: `(block, blocks per stage)`.
pub fn imagenet_depth(depth: usize) -> Option<(BlockKind, [usize; 4])> {
    Some(match depth {
        18 => (BlockKind::Basic, [2, 2, 2, 2]),
        34 => (BlockKind::Basic, [3, 4, 6, 3]),
        50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
        101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
        152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
        _ => return None,
    })
}

impl ResNet {
    fn imagenet(depth: usize, num_classes: usize, device: &Device) -> Self {
        let (block, blocks) = imagenet_depth(depth).expect("a depth from the table");
        ResNetConfig::imagenet(block, blocks)
            .with_num_classes(num_classes)
            .init(device)
    }

    /// ResNet-18.
    pub fn resnet18(num_classes: usize, device: &Device) -> Self {
        Self::imagenet(18, num_classes, device)
    }
    /// ResNet-34.
    pub fn resnet34(num_classes: usize, device: &Device) -> Self {
        Self::imagenet(34, num_classes, device)
    }
    /// ResNet-50.
    pub fn resnet50(num_classes: usize, device: &Device) -> Self {
        Self::imagenet(50, num_classes, device)
    }
    /// ResNet-101.
    pub fn resnet101(num_classes: usize, device: &Device) -> Self {
        Self::imagenet(101, num_classes, device)
    }
    /// ResNet-152.
    pub fn resnet152(num_classes: usize, device: &Device) -> Self {
        Self::imagenet(152, num_classes, device)
    }

    /// CIFAR ResNet with `6n+2` layers and option-A shortcuts (`resnet_cifar(20, …)` = ResNet-20).
    ///
    /// # Panics
    /// If `depth` is not of the form 6n+2.
    pub fn resnet_cifar(depth: usize, num_classes: usize, device: &Device) -> Self {
        assert!(
            depth >= 8 && (depth - 2).is_multiple_of(6),
            "CIFAR ResNets have 6n+2 layers, not {depth}"
        );
        ResNetConfig::cifar((depth - 2) / 6, ShortcutKind::ZeroPad)
            .with_num_classes(num_classes)
            .init(device)
    }

    /// The stages in order.
    pub fn stages(&self) -> [&[ResidualBlock]; 4] {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
    }

    /// Features before global pooling: `[B, C, h, w]`.
    pub fn forward_features(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = crate::fused_bn::batch_norm(&self.bn1, crate::fast_conv::conv2d(&self.conv1, x), None, true);
        if let Some(pool) = &self.maxpool {
            x = crate::fast_pool::max_pool2d(pool, x);
        }
        self.stages().into_iter().flatten().fold(x, |x, block| block.forward(x))
    }

    /// Class logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.avgpool.forward(self.forward_features(x));
        self.fc.forward(x.flatten(1, 3))
    }

    /// Per-layer summary for one input of shape `input`.
    pub fn summary(&self, input: Shape3) -> Summary {
        let mut s = Summary::new(input);
        let out = summarize_conv("conv1", &self.conv1, input, &mut s);
        s.push_batch_norm("bn1", &self.bn1, out);
        let mut shape = out;
        if let Some(pool) = &self.maxpool {
            shape = Layer::MaxPool(pool.clone()).summarize("maxpool", shape, &mut s);
        }
        for (i, stage) in self.stages().into_iter().enumerate() {
            for (b, block) in stage.iter().enumerate() {
                shape = block.summarize(&format!("layer{}.{b}", i + 1), shape, &mut s);
            }
        }
        shape = Layer::AdaptiveAvgPool(self.avgpool.clone()).summarize("avgpool", shape, &mut s);
        let i = self.fc.weight.dims()[0];
        s.push_linear("fc", &self.fc);
        debug_assert_eq!(i, shape.iter().product::<usize>());
        s
    }
}

impl ImageClassifier for ResNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl crate::network::Network for ResNet {
    /// The globally pooled features, the input of `fc`.
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.avgpool.forward(self.forward_features(x)).flatten(1, 3))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        self.fc = crate::network::fresh_linear(&self.fc, num_classes, device);
        self
    }

    /// The stem (`conv1` with `bn1`), then each non-empty `layer1` … `layer4`.
    fn stages(&self) -> Vec<crate::network::Stage> {
        let stem = crate::network::Stage {
            name: "conv1".into(),
            prefixes: vec!["conv1.".into(), "bn1.".into()],
        };
        let layers = self.stages().into_iter().enumerate().filter(|(_, blocks)| !blocks.is_empty());
        std::iter::once(stem)
            .chain(layers.map(|(i, _)| crate::network::Stage::named(&format!("layer{}", i + 1))))
            .collect()
    }

    /// The last non-empty stage (`layer4`, or `layer3` for the CIFAR ResNets).
    fn last_maps_layer(&self) -> Option<String> {
        let last = self.stages().iter().rposition(|blocks| !blocks.is_empty())?;
        Some(format!("layer{}", last + 1))
    }

    fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        Some(self.forward_features(x))
    }

    fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.fc.forward(self.avgpool.forward(maps).flatten(1, 3)))
    }
}
