//! AlexNet (Krizhevsky, Sutskever & Hinton 2012) in torchvision's layout.

use burn::config::Config;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::AdaptiveAvgPool2dConfig;
use burn::nn::{DropoutConfig, LinearConfig, PaddingConfig2d, Relu};
use burn::tensor::Device;

use crate::features_net::FeaturesNet;
use crate::layers::{Dense, Layer, max_pool};

/// Configuration of [`AlexNet`]. The default is torchvision's `alexnet` (61,100,840 parameters at
/// 1000 classes); the two options bring back details of the paper.
#[derive(Config, Debug)]
pub struct AlexNetConfig {
    /// Number of output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Dropout probability before the first two fully connected layers.
    #[config(default = 0.5)]
    pub dropout: f64,
    /// The paper's Local Response Normalisation (size 5, α 1e-4, β 0.75, k 2) after the first two
    /// ReLUs. Shifts the `features` indices away from torchvision's.
    #[config(default = false)]
    pub local_response_norm: bool,
    /// Filters of the five convolutions: torchvision's 64-192-384-256-256 (from the one-GPU
    /// variant of Krizhevsky 2014); the 2012 paper has 96-256-384-384-256.
    #[config(default = "[64, 192, 384, 256, 256]")]
    pub filters: [usize; 5],
    /// The paper's two-GPU split as grouped convolutions: conv2, conv4 and conv5 see only the half
    /// of the previous layer's maps "on their GPU" (groups = 2), which halves their weights.
    #[config(default = false)]
    pub two_gpu_groups: bool,
}

/// AlexNet: five convolutions (`features.0` … `features.12`), adaptive average pooling to 6×6
/// (`avgpool`, so any input of at least 63 px works) and three fully connected layers with
/// dropout (`classifier.1`, `classifier.4`, `classifier.6`): the [`FeaturesNet`] it shares with
/// VGG.
pub type AlexNet = FeaturesNet;

impl AlexNetConfig {
    /// The network of the 2012 paper: 96-256-384-384-256 filters, local response normalisation
    /// after the first two convolutions, and conv2, conv4 and conv5 split in two groups as on
    /// the two GPUs (60,965,224 parameters at 1000 classes).
    pub fn paper() -> Self {
        Self::new()
            .with_filters([96, 256, 384, 384, 256])
            .with_local_response_norm(true)
            .with_two_gpu_groups(true)
    }

    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> AlexNet {
        let groups = if self.two_gpu_groups { 2 } else { 1 };
        let conv = |i: usize, o: usize, k: usize, s: usize, p: usize, g: usize| {
            Layer::Conv(
                Conv2dConfig::new([i, o], [k, k])
                    .with_stride([s, s])
                    .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                    .with_groups(g)
                    .init(device),
            )
        };
        let lrn = || Layer::Lrn(crate::portable::Lrn::new(5).with_k(2.0));
        let [f1, f2, f3, f4, f5] = self.filters;
        let mut features = vec![conv(self.in_channels, f1, 11, 4, 2, 1), Layer::Relu(Relu)];
        if self.local_response_norm {
            features.push(lrn());
        }
        features.extend([
            Layer::MaxPool(max_pool(3, 2, 0, false)),
            conv(f1, f2, 5, 1, 2, groups),
            Layer::Relu(Relu),
        ]);
        if self.local_response_norm {
            features.push(lrn());
        }
        features.extend([
            Layer::MaxPool(max_pool(3, 2, 0, false)),
            conv(f2, f3, 3, 1, 1, 1),
            Layer::Relu(Relu),
            conv(f3, f4, 3, 1, 1, groups),
            Layer::Relu(Relu),
            conv(f4, f5, 3, 1, 1, groups),
            Layer::Relu(Relu),
            Layer::MaxPool(max_pool(3, 2, 0, false)),
        ]);
        let dropout = || Dense::Dropout(DropoutConfig::new(self.dropout).init());
        let classifier = vec![
            dropout(),
            Dense::Linear(LinearConfig::new(f5 * 6 * 6, 4096).init(device)),
            Dense::Relu(Relu),
            dropout(),
            Dense::Linear(LinearConfig::new(4096, 4096).init(device)),
            Dense::Relu(Relu),
            Dense::Linear(LinearConfig::new(4096, self.num_classes).init(device)),
        ];
        AlexNet {
            features,
            avgpool: AdaptiveAvgPool2dConfig::new([6, 6]).init(),
            classifier,
        }
    }
}

impl AlexNet {
    /// torchvision's `alexnet` for `num_classes` classes.
    #[allow(clippy::self_named_constructors)] // named constructors per variant, like ResNet::resnet50
    pub fn alexnet(num_classes: usize, device: &Device) -> Self {
        AlexNetConfig::new().with_num_classes(num_classes).init(device)
    }
}
