//! VGG-11/13/16/19 (Simonyan & Zisserman 2015), with or without batch normalisation: one layer
//! table and one builder, as torchvision's `cfgs` and `make_layers`.

use burn::config::Config;
use burn::nn::pool::AdaptiveAvgPool2dConfig;
use burn::nn::{DropoutConfig, LinearConfig, Relu};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::features_net::FeaturesNet;
use crate::layers::{Dense, Layer, batch_norm, conv, max_pool};

/// The depth of a VGG network (configurations A, B, D and E of the paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VggDepth {
    /// 11 weight layers (A).
    Vgg11,
    /// 13 weight layers (B).
    Vgg13,
    /// 16 weight layers (D).
    Vgg16,
    /// 19 weight layers (E).
    Vgg19,
}

/// One entry of a layer table: a 3×3 convolution with that many filters, or a 2×2 max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VggItem {
    /// 3×3 convolution (padding 1) with this many output channels, then (batch norm,) ReLU.
    Conv(usize),
    /// 2×2 max pool, stride 2.
    Pool,
}

impl VggDepth {
    /// The layer table of this depth (torchvision's `cfgs`).
    pub fn layers(self) -> Vec<VggItem> {
        use VggItem::{Conv as C, Pool as M};
        let stage = |width: usize, convs: usize| std::iter::repeat_n(C(width), convs).chain([M]);
        let convs_per_stage: [usize; 5] = match self {
            VggDepth::Vgg11 => [1, 1, 2, 2, 2],
            VggDepth::Vgg13 => [2, 2, 2, 2, 2],
            VggDepth::Vgg16 => [2, 2, 3, 3, 3],
            VggDepth::Vgg19 => [2, 2, 4, 4, 4],
        };
        [64, 128, 256, 512, 512]
            .into_iter()
            .zip(convs_per_stage)
            .flat_map(|(w, n)| stage(w, n))
            .collect()
    }
}

/// Configuration of [`Vgg`].
#[derive(Config, Debug)]
pub struct VggConfig {
    /// Which table of layers.
    pub depth: VggDepth,
    /// Batch normalisation after every convolution (the `_bn` variants).
    #[config(default = false)]
    pub batch_norm: bool,
    /// Number of output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Dropout probability in the classifier.
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// VGG: `features` (3×3 convolutions and max pools, indexed as torchvision's), `avgpool`
/// (adaptive, 7×7) and a three-layer `classifier` (`classifier.6` last): the [`FeaturesNet`] it
/// shares with AlexNet.
pub type Vgg = FeaturesNet;

impl VggConfig {
    /// Builds the network on `device` (torchvision's `make_layers`).
    pub fn init(&self, device: &Device) -> Vgg {
        let mut features = Vec::new();
        let mut channels = self.in_channels;
        for item in self.depth.layers() {
            match item {
                VggItem::Pool => features.push(Layer::MaxPool(max_pool(2, 2, 0, false))),
                VggItem::Conv(width) => {
                    features.push(Layer::Conv(conv(channels, width, 3, 1, 1, true, device)));
                    if self.batch_norm {
                        features.push(Layer::BatchNorm(batch_norm(width, 1e-5, device)));
                    }
                    features.push(Layer::Relu(Relu));
                    channels = width;
                }
            }
        }
        let dropout = || Dense::Dropout(DropoutConfig::new(self.dropout).init());
        let classifier = vec![
            Dense::Linear(LinearConfig::new(512 * 7 * 7, 4096).init(device)),
            Dense::Relu(Relu),
            dropout(),
            Dense::Linear(LinearConfig::new(4096, 4096).init(device)),
            Dense::Relu(Relu),
            dropout(),
            Dense::Linear(LinearConfig::new(4096, self.num_classes).init(device)),
        ];
        Vgg {
            features,
            avgpool: AdaptiveAvgPool2dConfig::new([7, 7]).init(),
            classifier,
        }
    }
}

impl Vgg {
    /// A VGG of `depth`, optionally with batch normalisation, for `num_classes` classes.
    pub fn new(depth: VggDepth, batch_norm: bool, num_classes: usize, device: &Device) -> Self {
        VggConfig::new(depth)
            .with_batch_norm(batch_norm)
            .with_num_classes(num_classes)
            .init(device)
    }

    /// VGG-16 without batch normalisation.
    pub fn vgg16(num_classes: usize, device: &Device) -> Self {
        Self::new(VggDepth::Vgg16, false, num_classes, device)
    }

    /// VGG-19 without batch normalisation.
    pub fn vgg19(num_classes: usize, device: &Device) -> Self {
        Self::new(VggDepth::Vgg19, false, num_classes, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_the_papers_weight_layer_counts() {
        for (depth, convs) in [
            (VggDepth::Vgg11, 8),
            (VggDepth::Vgg13, 10),
            (VggDepth::Vgg16, 13),
            (VggDepth::Vgg19, 16),
        ] {
            let n = depth.layers().iter().filter(|i| matches!(i, VggItem::Conv(_))).count();
            assert_eq!(n, convs, "{depth:?}");
            assert_eq!(depth.layers().iter().filter(|i| **i == VggItem::Pool).count(), 5);
        }
    }
}
