//! GoogLeNet (Szegedy et al. 2015) in torchvision's layout, with its two auxiliary classifiers.

use burn::config::Config;
use burn::module::Module;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::module::adaptive_avg_pool2d;

use crate::fast_pool::max_pool2d;
use burn::tensor::{Device, Tensor, activation::relu};

use crate::inception::{BasicConv2d, Inception, InceptionConfig};
use crate::layers::{Layer, max_pool};
use crate::summary::{OutShape, Shape3, Summary};
use crate::{ImageClassifier, TrainOutput};

/// Configuration of [`GoogLeNet`].
#[derive(Config, Debug)]
pub struct GoogLeNetConfig {
    /// Number of output classes.
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Build the two auxiliary classifiers (after `inception4a` and `inception4d`).
    #[config(default = true)]
    pub aux_logits: bool,
    /// Re-normalise ImageNet-normalised input to the (x − 0.5)/0.5 range the original weights
    /// were trained with (torchvision's `transform_input`; 3 channels only).
    #[config(default = false)]
    pub transform_input: bool,
    /// Dropout before the final classifier.
    #[config(default = 0.2)]
    pub dropout: f64,
    /// Dropout inside the auxiliary classifiers.
    #[config(default = 0.7)]
    pub aux_dropout: f64,
}

/// An auxiliary classifier: 4×4 average pool, 1×1 convolution (128), two linear layers.
#[derive(Module, Debug)]
pub struct InceptionAux {
    /// 1×1 convolution to 128 channels.
    pub conv: BasicConv2d,
    /// 2048 → 1024.
    pub fc1: Linear,
    /// 1024 → classes.
    pub fc2: Linear,
    /// Dropout between the linear layers.
    pub dropout: Dropout,
}

impl InceptionAux {
    fn new(in_c: usize, num_classes: usize, dropout: f64, device: &Device) -> Self {
        Self {
            conv: BasicConv2d::new(in_c, 128, 1, 1, 0, device),
            fc1: LinearConfig::new(2048, 1024).init(device),
            fc2: LinearConfig::new(1024, num_classes).init(device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Auxiliary logits from an intermediate feature map.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv.forward(adaptive_avg_pool2d(x, [4, 4]));
        let x = relu(crate::fast_linear::linear(&self.fc1, x.flatten(1, 3)));
        self.fc2.forward(self.dropout.forward(x))
    }

    fn summarize(&self, name: &str, input: Shape3, s: &mut Summary) {
        let pooled = [input[0], 4, 4];
        s.push(
            format!("{name}.avgpool"),
            "AdaptiveAvgPool2d",
            OutShape::Map(pooled),
            0,
            0,
        );
        let out = self.conv.summarize(&format!("{name}.conv"), pooled, s);
        for (label, fc) in [("fc1", &self.fc1), ("fc2", &self.fc2)] {
            s.push_linear(format!("{name}.{label}"), fc);
        }
        debug_assert_eq!(out.iter().product::<usize>(), 2048);
    }
}

/// GoogLeNet. Field names follow torchvision's state_dict keys.
#[derive(Module, Debug)]
pub struct GoogLeNet {
    /// 7×7/2 stem convolution.
    pub conv1: BasicConv2d,
    /// 3×3/2 max pool.
    pub maxpool1: MaxPool2d,
    /// 1×1 convolution.
    pub conv2: BasicConv2d,
    /// 3×3 convolution to 192 channels.
    pub conv3: BasicConv2d,
    /// 3×3/2 max pool.
    pub maxpool2: MaxPool2d,
    /// Inception 3a.
    pub inception3a: Inception,
    /// Inception 3b.
    pub inception3b: Inception,
    /// 3×3/2 max pool.
    pub maxpool3: MaxPool2d,
    /// Inception 4a.
    pub inception4a: Inception,
    /// Inception 4b.
    pub inception4b: Inception,
    /// Inception 4c.
    pub inception4c: Inception,
    /// Inception 4d.
    pub inception4d: Inception,
    /// Inception 4e.
    pub inception4e: Inception,
    /// 2×2/2 max pool.
    pub maxpool4: MaxPool2d,
    /// Inception 5a.
    pub inception5a: Inception,
    /// Inception 5b.
    pub inception5b: Inception,
    /// Auxiliary classifier after 4a.
    pub aux1: Option<InceptionAux>,
    /// Auxiliary classifier after 4d.
    pub aux2: Option<InceptionAux>,
    /// Global average pooling.
    pub avgpool: AdaptiveAvgPool2d,
    /// Dropout before `fc`.
    pub dropout: Dropout,
    /// The classifier (1024 → classes).
    pub fc: Linear,
    /// See [`GoogLeNetConfig::transform_input`].
    #[module(skip)]
    pub transform_input: bool,
}

/// torchvision's Inception channel table: (in, 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool proj).
const INCEPTIONS: [(usize, usize, usize, usize, usize, usize, usize); 9] = [
    (192, 64, 96, 128, 16, 32, 32),
    (256, 128, 128, 192, 32, 96, 64),
    (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128),
    (832, 256, 160, 320, 32, 128, 128),
    (832, 384, 192, 384, 48, 128, 128),
];

impl GoogLeNetConfig {
    /// Builds the network on `device`.
    pub fn init(&self, device: &Device) -> GoogLeNet {
        let mut inceptions = INCEPTIONS.iter().map(|&(i, a, b, c, d, e, f)| {
            // torchvision's third branch uses a 3×3 kernel (kept for its published weights).
            InceptionConfig::new(i, a, b, c, d, e, f)
                .with_branch3_kernel(3)
                .init(device)
        });
        let mut next = || inceptions.next().expect("nine inception modules");
        let aux = |in_c| {
            self.aux_logits
                .then(|| InceptionAux::new(in_c, self.num_classes, self.aux_dropout, device))
        };
        GoogLeNet {
            conv1: BasicConv2d::new(self.in_channels, 64, 7, 2, 3, device),
            maxpool1: max_pool(3, 2, 0, true),
            conv2: BasicConv2d::new(64, 64, 1, 1, 0, device),
            conv3: BasicConv2d::new(64, 192, 3, 1, 1, device),
            maxpool2: max_pool(3, 2, 0, true),
            inception3a: next(),
            inception3b: next(),
            maxpool3: max_pool(3, 2, 0, true),
            inception4a: next(),
            inception4b: next(),
            inception4c: next(),
            inception4d: next(),
            inception4e: next(),
            maxpool4: max_pool(2, 2, 0, true),
            inception5a: next(),
            inception5b: next(),
            aux1: aux(512),
            aux2: aux(528),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(1024, self.num_classes).init(device),
            transform_input: self.transform_input && self.in_channels == 3,
        }
    }
}

impl GoogLeNet {
    /// torchvision's `googlenet` with auxiliary classifiers, for `num_classes` classes.
    #[allow(clippy::self_named_constructors)] // named constructors per variant, like ResNet::resnet50
    pub fn googlenet(num_classes: usize, device: &Device) -> Self {
        GoogLeNetConfig::new().with_num_classes(num_classes).init(device)
    }

    /// The network without its auxiliary classifiers, which only training uses.
    pub fn without_aux(self) -> Self {
        Self {
            aux1: None,
            aux2: None,
            ..self
        }
    }

    /// What the network does to its input first: with `transform_input`, ImageNet-normalised
    /// input is re-normalised to `(x − 0.5) / 0.5` per channel (torchvision's `_transform_input`);
    /// otherwise the input is returned unchanged.
    pub fn transform(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.transform_input {
            return x;
        }
        // Undo ImageNet mean/std and apply (x - 0.5) / 0.5, channel by channel.
        // As per-channel constants broadcast over the batch (no channel slices, which would fix
        // the batch axis of an ONNX export).
        let (means, stds) = crate::IMAGENET_MEAN_STD;
        let device = x.device();
        let per_channel = |v: [f32; 3]| Tensor::<1>::from_floats(v, &device).reshape([1, 3, 1, 1]);
        let scale = per_channel(stds.map(|s| s / 0.5));
        let shift = per_channel([0, 1, 2].map(|c| (means[c] - 0.5) / 0.5));
        x * scale + shift
    }

    /// Everything before `fc`: the pooled 1024-d features (dropout applied in training).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.run_features(x, false).0
    }

    /// Runs the network; `with_aux` also computes the auxiliary classifiers' logits (training).
    fn run(&self, x: Tensor<4>, with_aux: bool) -> TrainOutput {
        let (x, aux) = self.run_features(x, with_aux);
        TrainOutput {
            logits: self.fc.forward(x),
            aux,
        }
    }

    fn run_features(&self, x: Tensor<4>, with_aux: bool) -> (Tensor<2>, Vec<Tensor<2>>) {
        let (maps, aux) = self.run_maps(x, with_aux);
        (self.pool_maps(maps), aux)
    }

    /// `inception5b`'s output, the last maps before global pooling: `[B, 1024, h, w]`.
    pub fn forward_maps(&self, x: Tensor<4>) -> Tensor<4> {
        self.run_maps(x, false).0
    }

    /// The logits from [`Self::forward_maps`]: global pooling, dropout and `fc`.
    pub fn forward_from_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.pool_maps(maps))
    }

    fn pool_maps(&self, maps: Tensor<4>) -> Tensor<2> {
        self.dropout.forward(crate::portable::adaptive_avg_pool2d(maps, self.avgpool.output_size).flatten(1, 3))
    }

    fn run_maps(&self, x: Tensor<4>, with_aux: bool) -> (Tensor<4>, Vec<Tensor<2>>) {
        let x = self.conv3.forward(
            self.conv2
                .forward(max_pool2d(&self.maxpool1, self.conv1.forward(self.transform(x)))),
        );
        let x = max_pool2d(
            &self.maxpool3,
            self.inception3b
                .forward(self.inception3a.forward(max_pool2d(&self.maxpool2, x))),
        );
        let x = self.inception4a.forward(x);
        let mut aux = Vec::new();
        if let (true, Some(a)) = (with_aux, &self.aux1) {
            aux.push(a.forward(x.clone()));
        }
        let x = self
            .inception4d
            .forward(self.inception4c.forward(self.inception4b.forward(x)));
        if let (true, Some(a)) = (with_aux, &self.aux2) {
            aux.push(a.forward(x.clone()));
        }
        let x = max_pool2d(&self.maxpool4, self.inception4e.forward(x));
        (self.inception5b.forward(self.inception5a.forward(x)), aux)
    }

    /// Inference: class logits only (the auxiliary classifiers are skipped).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, false).logits
    }

    /// Training: the main logits and, when present, the two auxiliary logits.
    pub fn forward_train(&self, x: Tensor<4>) -> TrainOutput {
        self.run(x, true)
    }

    /// Per-layer summary of the inference path (auxiliary heads listed, but only when
    /// `include_aux` is set, since inference skips them).
    pub fn summary_with(&self, input: Shape3, include_aux: bool) -> Summary {
        let mut s = Summary::new(input);
        let pool = |name: &str, p: &MaxPool2d, shape: Shape3, s: &mut Summary| {
            Layer::MaxPool(p.clone()).summarize(name, shape, s)
        };
        let mut x = self.conv1.summarize("conv1", input, &mut s);
        x = pool("maxpool1", &self.maxpool1, x, &mut s);
        x = self.conv2.summarize("conv2", x, &mut s);
        x = self.conv3.summarize("conv3", x, &mut s);
        x = pool("maxpool2", &self.maxpool2, x, &mut s);
        x = self.inception3a.summarize("inception3a", x, &mut s);
        x = self.inception3b.summarize("inception3b", x, &mut s);
        x = pool("maxpool3", &self.maxpool3, x, &mut s);
        x = self.inception4a.summarize("inception4a", x, &mut s);
        if let (true, Some(a)) = (include_aux, &self.aux1) {
            a.summarize("aux1", x, &mut s);
        }
        x = self.inception4b.summarize("inception4b", x, &mut s);
        x = self.inception4c.summarize("inception4c", x, &mut s);
        x = self.inception4d.summarize("inception4d", x, &mut s);
        if let (true, Some(a)) = (include_aux, &self.aux2) {
            a.summarize("aux2", x, &mut s);
        }
        x = self.inception4e.summarize("inception4e", x, &mut s);
        x = pool("maxpool4", &self.maxpool4, x, &mut s);
        x = self.inception5a.summarize("inception5a", x, &mut s);
        x = self.inception5b.summarize("inception5b", x, &mut s);
        x = Layer::AdaptiveAvgPool(self.avgpool.clone()).summarize("avgpool", x, &mut s);
        let i = self.fc.weight.dims()[0];
        s.push_linear("fc", &self.fc);
        debug_assert_eq!(i, x[0]);
        s
    }

    /// Per-layer summary of the inference path (auxiliary heads excluded).
    pub fn summary(&self, input: Shape3) -> Summary {
        self.summary_with(input, false)
    }
}

impl ImageClassifier for GoogLeNet {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.forward(images)
    }

    fn train_outputs(&self, images: Tensor<4>) -> TrainOutput {
        self.forward_train(images)
    }
}

impl crate::network::Network for GoogLeNet {
    /// The pooled 1024-d features, the input of `fc`.
    fn backbone(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.features(x))
    }

    fn head(&self, features: Tensor<2>) -> Tensor<2> {
        self.fc.forward(features)
    }

    /// A fresh `fc`, and fresh `fc2` layers of the auxiliary classifiers.
    fn with_num_classes(mut self, num_classes: usize, device: &Device) -> Self {
        self.fc = crate::network::fresh_linear(&self.fc, num_classes, device);
        for aux in [&mut self.aux1, &mut self.aux2].into_iter().flatten() {
            aux.fc2 = crate::network::fresh_linear(&aux.fc2, num_classes, device);
        }
        self
    }

    fn stages(&self) -> Vec<crate::network::Stage> {
        [
            "conv1",
            "conv2",
            "conv3",
            "inception3a",
            "inception3b",
            "inception4a",
            "inception4b",
            "inception4c",
            "inception4d",
            "inception4e",
            "inception5a",
            "inception5b",
        ]
        .map(crate::network::Stage::named)
        .to_vec()
    }

    fn last_maps_layer(&self) -> Option<String> {
        Some("inception5b".into())
    }

    fn last_maps(&self, x: Tensor<4>) -> Option<Tensor<4>> {
        Some(self.forward_maps(x))
    }

    fn logits_from_maps(&self, maps: Tensor<4>) -> Option<Tensor<2>> {
        Some(self.forward_from_maps(maps))
    }
}
