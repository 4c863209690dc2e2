//! LeNet-5 (LeCun et al. 1998), in the form the CNN case studies describe it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation};
use serde::{Deserialize, Serialize};

use crate::ImageClassifier;
use crate::layers::{Layer, summarize_conv};
use crate::summary::{Shape3, Summary};

/// The non-linearity applied after every convolution and hidden fully connected layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Hyperbolic tangent, as in the 1998 paper.
    #[default]
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// Rectified linear unit.
    Relu,
}

impl Activation {
    /// Every activation, in the order the CLI lists them.
    pub const ALL: [Activation; 3] = [Activation::Tanh, Activation::Sigmoid, Activation::Relu];

    /// The lowercase name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
        }
    }

    /// Applies the activation element-wise.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Tanh => crate::fast_tanh::tanh(x),
            Activation::Sigmoid => activation::sigmoid(x),
            Activation::Relu => activation::relu(x),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown activation '{s}' (expected tanh, sigmoid or relu)"))
    }
}

/// Configuration of [`LeNet5`].
///
/// Input is `[B, in_channels, 32, 32]`: the 28×28 MNIST digits padded by 2 pixels on each side,
/// as in the paper.
#[derive(Config, Debug)]
pub struct LeNet5Config {
    /// Number of output classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Number of input channels (1 for grayscale digits).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Activation after each convolution and hidden linear layer.
    #[config(default = "Activation::Tanh")]
    pub activation: Activation,
}

/// LeNet-5: conv 5×5→6, avg-pool 2, conv 5×5→16, avg-pool 2, fully connected 400→120→84→classes.
///
/// With 10 classes and one input channel it has exactly 61,706 parameters.
#[derive(Module, Debug)]
pub struct LeNet5 {
    /// 5×5 convolution, `in_channels` → 6 feature maps (32×32 → 28×28).
    pub conv1: Conv2d,
    /// 2×2 average pooling, stride 2 (shared by both pooling stages; it has no parameters).
    pub pool: AvgPool2d,
    /// 5×5 convolution, 6 → 16 feature maps (14×14 → 10×10).
    pub conv2: Conv2d,
    /// Fully connected 16·5·5 = 400 → 120.
    pub fc1: Linear,
    /// Fully connected 120 → 84.
    pub fc2: Linear,
    /// Fully connected 84 → `num_classes` (the logits).
    pub fc3: Linear,
    /// The activation used between layers.
    #[module(skip)]
    pub activation: Activation,
}

impl LeNet5Config {
    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> LeNet5 {
        LeNet5 {
            conv1: Conv2dConfig::new([self.in_channels, 6], [5, 5]).init(device),
            pool: AvgPool2dConfig::new([2, 2]).init(),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            fc1: LinearConfig::new(16 * 5 * 5, 120).init(device),
            fc2: LinearConfig::new(120, 84).init(device),
            fc3: LinearConfig::new(84, self.num_classes).init(device),
            activation: self.activation,
        }
    }
}

impl LeNet5 {
    /// LeNet-5 with the paper's tanh activation for `num_classes` classes of grayscale images.
    pub fn new(num_classes: usize, device: &Device) -> Self {
        LeNet5Config::new().with_num_classes(num_classes).init(device)
    }

    /// Maps a `[B, C, 32, 32]` batch to `[B, num_classes]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_from_maps(self.forward_maps(x))
    }

    /// The last convolution's activated maps, `[B, 16, 10, 10]` for a 32-px input.
    pub fn forward_maps(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.activation;
        let x = crate::fast_pool::avg_pool2d(&self.pool, act.apply(crate::fast_conv::conv2d(&self.conv1, x)));
        act.apply(crate::fast_conv::conv2d(&self.conv2, x))
    }

    /// The rest of [`Self::forward`] from [`Self::forward_maps`]: pooling and the three
    /// fully connected layers.
    pub fn forward_from_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        let act = self.activation;
        let x: Tensor<2> = crate::fast_pool::avg_pool2d(&self.pool, maps).flatten(1, 3);
        let x = act.apply(self.fc1.forward(x));
        let x = act.apply(self.fc2.forward(x));
        self.fc3.forward(x)
    }

    /// Per-layer summary for one input of shape `input` (`[1, 32, 32]` for digits).
    pub fn summary(&self, input: Shape3) -> Summary {
        let mut s = Summary::new(input);
        let mut shape = input;
        for (name, conv, pool) in [("conv1", &self.conv1, "pool1"), ("conv2", &self.conv2, "pool2")] {
            let out = summarize_conv(name, conv, shape, &mut s);
            shape = Layer::AvgPool(self.pool.clone()).summarize(pool, out, &mut s);
        }
        for (name, fc) in [("fc1", &self.fc1), ("fc2", &self.fc2), ("fc3", &self.fc3)] {
            s.push_linear(name, fc);
        }
        s
    }
}

impl ImageClassifier for LeNet5 {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }
}

impl crate::network::Network for LeNet5 {
    /// The 84-d output of `fc2`, activated.
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let act = self.activation;
        let x: Tensor<2> = crate::fast_pool::avg_pool2d(&self.pool, self.forward_maps(x)).flatten(1, 3);
        Some(act.apply(self.fc2.forward(act.apply(self.fc1.forward(x)))))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc3.forward(features)
    }

    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        self.fc3 = crate::network::fresh_linear(&self.fc3, num_classes, device);
        self
    }

    fn stages(&self) -> Vec<crate::network::Stage> {
        ["conv1", "conv2", "fc1", "fc2"].map(crate::network::Stage::named).to_vec()
    }

    fn last_maps_layer(&self) -> Option<String> {
        Some("conv2".into())
    }

    fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        Some(self.forward_maps(x))
    }

    fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.forward_from_maps(maps))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>(), Ok(a));
        }
        assert!("gelu".parse::<Activation>().is_err());
    }
}
