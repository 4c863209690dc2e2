//! 1×1 convolutions and the Network-in-Network block (Lin, Chen & Yan 2013).
//!
//! A 1×1 convolution is a fully connected layer applied at every pixel across the channels: it
//! changes the number of channels (shrinking them is the "bottleneck" of Inception and of
//! ResNet's bottleneck block) and, followed by a ReLU, adds a non-linearity at no spatial cost.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};

use crate::fast_conv::conv2d;
use burn::tensor::{Device, Tensor, activation::relu};

use crate::ImageClassifier;
use crate::layers::{Layer, conv, summarize_conv};
use crate::summary::{Shape3, Summary};

/// Configuration of [`NinBlock`].
#[derive(Config, Debug)]
pub struct NinBlockConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels of every convolution in the block.
    pub channels: usize,
    /// Kernel of the first convolution.
    #[config(default = 3)]
    pub kernel: usize,
    /// Stride of the first convolution.
    #[config(default = 1)]
    pub stride: usize,
    /// Padding of the first convolution.
    #[config(default = 1)]
    pub padding: usize,
}

/// `k×k conv → ReLU → 1×1 conv → ReLU → 1×1 conv → ReLU`: an "mlpconv" layer.
#[derive(Module, Debug)]
pub struct NinBlock {
    /// The spatial convolution.
    pub conv: Conv2d,
    /// First 1×1 convolution (per-pixel fully connected layer).
    pub mlp1: Conv2d,
    /// Second 1×1 convolution.
    pub mlp2: Conv2d,
}

impl NinBlockConfig {
    /// Builds the block on `device`.
    pub fn init(&self, device: &Device) -> NinBlock {
        NinBlock {
            conv: conv(
                self.in_channels,
                self.channels,
                self.kernel,
                self.stride,
                self.padding,
                true,
                device,
            ),
            mlp1: conv(self.channels, self.channels, 1, 1, 0, true, device),
            mlp2: conv(self.channels, self.channels, 1, 1, 0, true, device),
        }
    }
}

impl NinBlock {
    /// Applies the block.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(conv2d(&self.conv, x));
        let x = relu(conv2d(&self.mlp1, x));
        relu(conv2d(&self.mlp2, x))
    }

    /// Adds the block's rows under `name`; returns its output shape.
    pub fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) -> Shape3 {
        [("conv", &self.conv), ("mlp1", &self.mlp1), ("mlp2", &self.mlp2)]
            .into_iter()
            .fold(input, |shape, (label, c)| {
                summarize_conv(format!("{name}.{label}"), c, shape, s)
            })
    }
}

/// The course's 1×1 convolution example as a network (`conv1x1_example`): a 28×28×192 input, one
/// 1×1 convolution to 32 channels (28·28·32·192 = 4,816,896 multiplications) and a ReLU, then
/// global average pooling and a linear classifier, so that it can be built and summarised like
/// the other models. It takes feature maps, not images.
#[derive(Module, Debug)]
pub struct Conv1x1Net {
    /// The 1×1 convolution.
    pub conv: Conv2d,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// The classifier.
    pub fc: Linear,
}

impl Conv1x1Net {
    /// `in_channels` → `out_channels` by a 1×1 convolution, then `num_classes` outputs.
    pub fn new(in_channels: usize, out_channels: usize, num_classes: usize, device: &Device) -> Self {
        Self {
            conv: conv(in_channels, out_channels, 1, 1, 0, true, device),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(out_channels, num_classes).init(device),
        }
    }

    /// The pooled features, `[B, out_channels]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.avgpool.forward(relu(conv2d(&self.conv, x))).flatten(1, 3)
    }

    /// Per-layer summary.
    pub fn summary(&self, input: Shape3) -> Summary {
        let mut s = Summary::new(input);
        let out = summarize_conv("conv", &self.conv, input, &mut s);
        Layer::AdaptiveAvgPool(self.avgpool.clone()).summarize("avgpool", out, &mut s);
        s.push_linear("fc", &self.fc);
        s
    }
}

impl ImageClassifier for Conv1x1Net {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.features(images))
    }
}

/// The course's 1×1 convolution example: features and head, no stages.
impl crate::network::Network for Conv1x1Net {
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.features(x))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        self.fc = crate::network::fresh_linear(&self.fc, num_classes, device);
        self
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn one_by_one_convolution_is_a_per_pixel_linear_map() {
        let device = Device::flex();
        let c = conv(3, 2, 1, 1, 0, false, &device);
        let x = Tensor::<4>::random([1, 3, 2, 2], Distribution::Default, &device);
        let y = c.forward(x.clone());
        // weight [2, 3, 1, 1] as a [2, 3] matrix times the [3, 4] pixels.
        let w: Tensor<2> = c.weight.val().reshape([2, 3]);
        let expected = w.matmul(x.reshape([3, 4])).reshape([1, 2, 2, 2]);
        let diff = (y - expected).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn nin_block_keeps_size_and_sets_channels() {
        let device = Device::flex();
        let block = NinBlockConfig::new(3, 8).init(&device);
        let y = block.forward(Tensor::zeros([2, 3, 10, 10], &device));
        assert_eq!(y.dims(), [2, 8, 10, 10]);
        let mut s = Summary::new([3, 10, 10]);
        assert_eq!(block.summarize("nin", [3, 10, 10], &mut s), [8, 10, 10]);
        assert_eq!(s.total_params(), crate::keys::param_count(&block));
        assert_eq!(s.total_mult_adds(), (3 * 9 * 8 + 8 * 8 + 8 * 8) as u64 * 100);
    }
}
