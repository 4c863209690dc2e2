//! Building blocks shared by the families: a torchvision-style `Sequential` of feature-map
//! layers ([`Layer`]) and of dense layers ([`Dense`]), each able to describe itself in a
//! [`Summary`].
//!
//! A `Vec<Layer>` field stores layers at the same indices as torchvision's `nn.Sequential`
//! (activations and pools take an index but hold no weights), so a weight's key such as
//! `features.3.weight` or `classifier.6.bias` is the same in both.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, Linear, PaddingConfig2d, Relu};

use crate::portable::{Lrn, adaptive_avg_pool2d};
use burn::tensor::{Device, Tensor};

use crate::summary::{OutShape, Shape3, Summary, window_out};

/// A layer that maps a feature map `[B, C, H, W]` to another.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer {
    /// 2-D convolution.
    Conv(Conv2d),
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// ReLU.
    Relu(Relu),
    /// Max pooling.
    MaxPool(MaxPool2d),
    /// Average pooling.
    AvgPool(AvgPool2d),
    /// Adaptive average pooling to a fixed output size.
    AdaptiveAvgPool(AdaptiveAvgPool2d),
    /// Local response normalisation (AlexNet paper).
    Lrn(Lrn),
}

impl Layer {
    /// Applies the layer.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Conv(m) => crate::fast_conv::conv2d(m, x),
            Layer::BatchNorm(m) => crate::fused_bn::batch_norm(m, x, None, false),
            Layer::Relu(m) => m.forward(x),
            Layer::MaxPool(m) => crate::fast_pool::max_pool2d(m, x),
            Layer::AvgPool(m) => crate::fast_pool::avg_pool2d(m, x),
            Layer::AdaptiveAvgPool(m) => adaptive_avg_pool2d(x, m.output_size),
            Layer::Lrn(m) => m.forward(x),
        }
    }

    /// Adds this layer's row to `summary` and returns its output shape.
    pub fn summarize(&self, name: &str, input: Shape3, summary: &mut Summary) -> Shape3 {
        let params = crate::keys::param_count(self);
        let (kind, out, macs) = match self {
            Layer::Conv(c) => {
                let out = conv_out(c, input);
                ("Conv2d", out, conv_macs(c, out))
            }
            Layer::BatchNorm(_) => ("BatchNorm2d", input, 0),
            Layer::Relu(_) => ("ReLU", input, 0),
            Layer::MaxPool(p) => {
                let (ph, pw) = pad_totals(&p.padding, input, p.kernel_size, p.stride);
                let h = window_out(input[1], p.kernel_size[0], p.stride[0], ph, p.dilation[0], p.ceil_mode);
                let w = window_out(input[2], p.kernel_size[1], p.stride[1], pw, p.dilation[1], p.ceil_mode);
                ("MaxPool2d", [input[0], h, w], 0)
            }
            Layer::AvgPool(p) => {
                let (ph, pw) = pad_totals(&p.padding, input, p.kernel_size, p.stride);
                let h = window_out(input[1], p.kernel_size[0], p.stride[0], ph, 1, p.ceil_mode);
                let w = window_out(input[2], p.kernel_size[1], p.stride[1], pw, 1, p.ceil_mode);
                ("AvgPool2d", [input[0], h, w], 0)
            }
            Layer::AdaptiveAvgPool(p) => ("AdaptiveAvgPool2d", [input[0], p.output_size[0], p.output_size[1]], 0),
            Layer::Lrn(_) => ("LocalResponseNorm", input, 0),
        };
        summary.push(name, kind, OutShape::Map(out), params, macs);
        out
    }
}

/// A layer of the dense head (`[B, N]` → `[B, M]`).
#[derive(Module, Debug)]
pub enum Dense {
    /// Dropout (active only in training).
    Dropout(Dropout),
    /// Fully connected layer.
    Linear(Linear),
    /// ReLU.
    Relu(Relu),
}

impl Dense {
    /// Applies the layer.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Dense::Dropout(m) => m.forward(x),
            Dense::Linear(m) => crate::fast_linear::linear(m, x),
            Dense::Relu(m) => m.forward(x),
        }
    }

    /// Adds this layer's row to `summary` and returns its output width.
    pub fn summarize(&self, name: &str, input: usize, summary: &mut Summary) -> usize {
        let (kind, out, macs) = match self {
            Dense::Dropout(_) => ("Dropout", input, 0),
            Dense::Relu(_) => ("ReLU", input, 0),
            Dense::Linear(l) => {
                let [i, o] = l.weight.dims();
                ("Linear", o, (i * o) as u64)
            }
        };
        summary.push(name, kind, OutShape::Flat(out), crate::keys::param_count(self), macs);
        out
    }
}

/// Runs a feature-map sequence; a batch norm followed by a ReLU runs as one operation
/// ([`crate::fused_bn`]).
pub fn forward_seq(layers: &[Layer], mut x: Tensor<4>) -> Tensor<4> {
    let mut i = 0;
    while i < layers.len() {
        if let (Layer::BatchNorm(bn), Some(Layer::Relu(_))) = (&layers[i], layers.get(i + 1)) {
            x = crate::fused_bn::batch_norm(bn, x, None, true);
            i += 2;
        } else {
            x = layers[i].forward(x);
            i += 1;
        }
    }
    x
}

/// Runs a dense sequence.
pub fn forward_dense(layers: &[Dense], x: Tensor<2>) -> Tensor<2> {
    layers.iter().fold(x, |x, l| l.forward(x))
}

/// Summarises a feature-map sequence stored under `prefix`.
pub fn summarize_seq(prefix: &str, layers: &[Layer], input: Shape3, summary: &mut Summary) -> Shape3 {
    layers
        .iter()
        .enumerate()
        .fold(input, |s, (i, l)| l.summarize(&format!("{prefix}.{i}"), s, summary))
}

/// Summarises a dense sequence stored under `prefix`.
pub fn summarize_dense(prefix: &str, layers: &[Dense], input: usize, summary: &mut Summary) -> usize {
    layers
        .iter()
        .enumerate()
        .fold(input, |s, (i, l)| l.summarize(&format!("{prefix}.{i}"), s, summary))
}

/// AlexNet's and VGG's input to their last classifier layer: features → avgpool → flatten →
/// every classifier layer but the last.
pub fn forward_until_last(
    features: &[Layer],
    avgpool: &AdaptiveAvgPool2d,
    classifier: &[Dense],
    x: Tensor<4>,
) -> Tensor<2> {
    let x = adaptive_avg_pool2d(forward_seq(features, x), avgpool.output_size);
    let n = classifier.len().saturating_sub(1);
    forward_dense(&classifier[..n], x.flatten(1, 3))
}

/// The torchvision "features → avgpool → flatten → classifier" forward of AlexNet and VGG.
pub fn forward_features_head(
    features: &[Layer],
    avgpool: &AdaptiveAvgPool2d,
    classifier: &[Dense],
    x: Tensor<4>,
) -> Tensor<2> {
    let x = adaptive_avg_pool2d(forward_seq(features, x), avgpool.output_size);
    forward_dense(classifier, x.flatten(1, 3))
}

/// The summary of a "features → avgpool → classifier" network.
pub fn summarize_features_head(
    features: &[Layer],
    avgpool: &AdaptiveAvgPool2d,
    classifier: &[Dense],
    input: Shape3,
) -> Summary {
    let mut s = Summary::new(input);
    let f = summarize_seq("features", features, input, &mut s);
    let p = Layer::AdaptiveAvgPool(avgpool.clone()).summarize("avgpool", f, &mut s);
    summarize_dense("classifier", classifier, p.iter().product(), &mut s);
    s
}

/// A square convolution with symmetric padding, PyTorch's default initialisation.
pub fn conv(
    in_c: usize,
    out_c: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_c, out_c], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(bias)
        .init(device)
}

/// A square max pool with symmetric padding.
pub fn max_pool(kernel: usize, stride: usize, padding: usize, ceil_mode: bool) -> MaxPool2d {
    MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_ceil_mode(ceil_mode)
        .init()
}

/// Batch normalisation with PyTorch's defaults (momentum 0.1) and the given epsilon.
pub fn batch_norm(channels: usize, epsilon: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).with_epsilon(epsilon).init(device)
}

/// Adds a convolution's row to `summary` and returns its output shape.
pub fn summarize_conv(name: impl Into<String>, c: &Conv2d, input: Shape3, summary: &mut Summary) -> Shape3 {
    let out = conv_out(c, input);
    summary.push(
        name,
        "Conv2d",
        OutShape::Map(out),
        crate::keys::param_count(c),
        conv_macs(c, out),
    );
    out
}

/// Output shape of a convolution for one input shape.
pub fn conv_out(c: &Conv2d, input: Shape3) -> Shape3 {
    let [out_c, _, kh, kw] = c.weight.dims();
    let (ph, pw) = pad_totals(&c.padding, input, c.kernel_size, c.stride);
    let h = window_out(input[1], kh, c.stride[0], ph, c.dilation[0], false);
    let w = window_out(input[2], kw, c.stride[1], pw, c.dilation[1], false);
    [out_c, h, w]
}

/// Multiply-adds of a convolution producing `out` (bias excluded).
pub fn conv_macs(c: &Conv2d, out: Shape3) -> u64 {
    let [out_c, in_per_group, kh, kw] = c.weight.dims();
    (in_per_group * kh * kw) as u64 * (out_c * out[1] * out[2]) as u64
}

/// Total padding (both sides) along height and width.
fn pad_totals(p: &PaddingConfig2d, input: Shape3, kernel: [usize; 2], stride: [usize; 2]) -> (usize, usize) {
    match p {
        PaddingConfig2d::Valid => (0, 0),
        PaddingConfig2d::Explicit(top, left, bottom, right) => (top + bottom, left + right),
        PaddingConfig2d::Same => {
            // Enough padding that the output is ceil(input / stride).
            let total = |n: usize, k: usize, s: usize| (n.div_ceil(s) - 1) * s + k - n.min((n.div_ceil(s) - 1) * s + k);
            (
                total(input[1], kernel[0], stride[0]),
                total(input[2], kernel[1], stride[1]),
            )
        }
    }
}
