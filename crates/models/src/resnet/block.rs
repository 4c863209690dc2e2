//! The residual block, in its two variants (Basic: two 3×3 convolutions; Bottleneck: 1×1, 3×3,
//! 1×1 with 4× expansion), with the shortcut as an option: projection (`downsample`),
//! parameter-free (option A: subsample and zero-pad channels), identity, or none (a plain net).

use crate::small_map::conv_forward;
use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused_bn;
use crate::layers::{Layer, batch_norm, conv, forward_seq, summarize_conv, summarize_seq};
use crate::summary::{Shape3, Summary};

/// Which block a ResNet stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34 and the CIFAR ResNets); expansion 1.
    Basic,
    /// 1×1 reduce, 3×3, 1×1 expand (ResNet-50/101/152); expansion 4.
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of stage width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// How a block's input reaches its output when the shapes differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShortcutKind {
    /// Option A of He et al. §4.2: subsample by the stride and pad the new channels with zeros
    /// (no parameters).
    ZeroPad,
    /// Option B: a 1×1 convolution and batch norm (torchvision's `downsample`).
    Projection,
}

/// One residual block. Field names follow torchvision (`conv1`, `bn1`, …, `downsample.0/1`).
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// First convolution (3×3 in Basic, 1×1 in Bottleneck).
    pub conv1: Conv2d,
    /// Its batch norm.
    pub bn1: BatchNorm,
    /// Second convolution (3×3, carries the stride: "ResNet v1.5").
    pub conv2: Conv2d,
    /// Its batch norm.
    pub bn2: BatchNorm,
    /// Third convolution (1×1 expand; Bottleneck only).
    pub conv3: Option<Conv2d>,
    /// Its batch norm (Bottleneck only).
    pub bn3: Option<BatchNorm>,
    /// Projection shortcut `[1×1 conv, BN]`, present when the shape changes under option B.
    pub downsample: Option<Vec<Layer>>,
    /// Add the shortcut at all? `false` makes the "plain" twin.
    #[module(skip)]
    pub residual: bool,
    /// Option-A shortcut: `(stride, channels to add)`; `None` when identity or projection.
    #[module(skip)]
    pub zero_pad: Option<(usize, usize)>,
}

impl ResidualBlock {
    /// The block with the γ of its last batch norm (`bn2` of a basic block, `bn3` of a
    /// bottleneck) set to zero, as torchvision's `zero_init_residual`: its residual branch then
    /// outputs β = 0, so at initialisation the block passes its shortcut through the final ReLU
    /// — the identity on the non-negative inputs a previous block's ReLU gives it.
    pub fn zero_init_residual(mut self) -> Self {
        let last = self.bn3.as_mut().unwrap_or(&mut self.bn2);
        last.gamma = last.gamma.clone().map(|g| g.zeros_like());
        self
    }

    /// A block from `in_c` to `width · expansion` channels with the given stride.
    pub fn new(
        kind: BlockKind,
        in_c: usize,
        width: usize,
        stride: usize,
        shortcut: ShortcutKind,
        residual: bool,
        device: &Device,
    ) -> Self {
        let out_c = width * kind.expansion();
        let reshape = stride != 1 || in_c != out_c;
        let (downsample, zero_pad) = match (residual && reshape, shortcut) {
            (false, _) => (None, None),
            (true, ShortcutKind::Projection) => (
                Some(vec![
                    Layer::Conv(conv(in_c, out_c, 1, stride, 0, false, device)),
                    Layer::BatchNorm(batch_norm(out_c, 1e-5, device)),
                ]),
                None,
            ),
            (true, ShortcutKind::ZeroPad) => (None, Some((stride, out_c - in_c))),
        };
        let bn = |c| batch_norm(c, 1e-5, device);
        match kind {
            BlockKind::Basic => Self {
                conv1: conv(in_c, width, 3, stride, 1, false, device),
                bn1: bn(width),
                conv2: conv(width, width, 3, 1, 1, false, device),
                bn2: bn(width),
                conv3: None,
                bn3: None,
                downsample,
                residual,
                zero_pad,
            },
            BlockKind::Bottleneck => Self {
                conv1: conv(in_c, width, 1, 1, 0, false, device),
                bn1: bn(width),
                conv2: conv(width, width, 3, stride, 1, false, device),
                bn2: bn(width),
                conv3: Some(conv(width, out_c, 1, 1, 0, false, device)),
                bn3: Some(bn(out_c)),
                downsample,
                residual,
                zero_pad,
            },
        }
    }

    /// `relu(F(x) + shortcut(x))`, or `relu(F(x))` for a plain block. The shortcut is added after
    /// the last batch norm and before the final ReLU.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = self.residual.then(|| match (&self.downsample, self.zero_pad) {
            (Some(ds), _) => forward_seq(ds, x.clone()),
            (None, Some((stride, extra))) => crate::portable::zero_pad_shortcut(x.clone(), stride, extra),
            (None, None) => x.clone(),
        });
        // Each batch norm runs fused with what follows it: the ReLU, or the add and the ReLU.
        let out = fused_bn::batch_norm(&self.bn1, conv_forward(&self.conv1, x), None, true);
        match (&self.conv3, &self.bn3) {
            (Some(conv3), Some(bn3)) => {
                let out = fused_bn::batch_norm(&self.bn2, conv_forward(&self.conv2, out), None, true);
                fused_bn::batch_norm(bn3, crate::fast_conv::conv2d(conv3, out), shortcut, true)
            }
            _ => fused_bn::batch_norm(&self.bn2, conv_forward(&self.conv2, out), shortcut, true),
        }
    }

    /// Adds the block's rows under `name` and returns its output shape.
    pub fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) -> Shape3 {
        let mut shape = input;
        let add_conv = |label: &str, c: &Conv2d, bn: &BatchNorm, shape: &mut Shape3, s: &mut Summary| {
            let out = summarize_conv(format!("{name}.{label}"), c, *shape, s);
            s.push_batch_norm(format!("{name}.{}", label.replace("conv", "bn")), bn, out);
            *shape = out;
        };
        add_conv("conv1", &self.conv1, &self.bn1, &mut shape, s);
        add_conv("conv2", &self.conv2, &self.bn2, &mut shape, s);
        if let (Some(c3), Some(b3)) = (&self.conv3, &self.bn3) {
            add_conv("conv3", c3, b3, &mut shape, s);
        }
        if let Some(ds) = &self.downsample {
            summarize_seq(&format!("{name}.downsample"), ds, input, s);
        }
        shape
    }
}

