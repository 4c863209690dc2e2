//! What every family of the zoo answers, one implementation in each family's own file: its
//! backbone and head (transfer learning, cached features), a new head, its stages (freezing and
//! rates per stage), its last convolutional maps (Grad-CAM); each family's inherent `summary` gives its per-layer
//! summary.
//! [`Model`](crate::Model) answers the same by delegating to the family it holds.

use burn::tensor::{Device, Tensor};

use crate::ImageClassifier;

/// One stage of a backbone, in depth order: its name (`--freeze upto:<name>`) and the key
/// prefixes of its parameters (torchvision's names, ending in `.`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Name used by `upto:<stage>`.
    pub name: String,
    /// Parameter path prefixes (torchvision names, ending in `.`).
    pub prefixes: Vec<String>,
}

impl Stage {
    /// A stage whose parameters all sit under `name.`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            prefixes: vec![format!("{name}.")],
        }
    }
}

/// The questions every network of the zoo answers. Methods with a default are the ones some
/// networks cannot answer (the course's single Inception module has no backbone/head split).
pub trait Network: ImageClassifier + Sized {
    /// Everything before the final classifier, `[B, C, H, W]` → `[B, D]`; `None` without a
    /// backbone/head split.
    fn backbone(&self, _x: Tensor<4>) -> Option<Tensor<2>> {
        None
    }

    /// The final classifier alone, applied to [`Self::backbone`]'s output.
    fn head(&self, features: Tensor<2>) -> Tensor<2>;

    /// The same network with a fresh final classifier of `num_classes` outputs; everything
    /// else keeps its weights.
    fn with_num_classes(self, num_classes: usize, device: &Device) -> Self;

    /// The backbone's stages in depth order (empty: nothing to freeze stage by stage).
    fn stages(&self) -> Vec<Stage> {
        Vec::new()
    }

    /// The name of the layer whose output [`Self::last_maps`] returns.
    fn last_maps_layer(&self) -> Option<String> {
        None
    }

    /// The last convolutional stage's maps, where Grad-CAM looks.
    fn last_maps(&self, _x: Tensor<4>) -> Option<Tensor<4>> {
        None
    }

    /// The logits from [`Self::last_maps`]'s output: `logits_from_maps(last_maps(x))` is the
    /// network's forward pass.
    fn logits_from_maps(&self, _maps: Tensor<4>) -> Option<Tensor<2>> {
        None
    }

    /// The convolutional part alone, pooled and flattened (AlexNet's and VGG's `features` and
    /// `avgpool`, which the benchmarks time on their own); `None` where there is no such part.
    fn conv_features(&self, _x: Tensor<4>) -> Option<Tensor<2>> {
        None
    }
}

/// A fresh linear layer with `old`'s inputs and `num_classes` outputs.
pub(crate) fn fresh_linear(old: &burn::nn::Linear, num_classes: usize, device: &Device) -> burn::nn::Linear {
    let [inputs, _] = old.weight.dims();
    burn::nn::LinearConfig::new(inputs, num_classes).init(device)
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::{BuildOptions, ImageClassifier, Network};

    /// The split forward pass is the network's own, for every family that has one.
    #[test]
    fn logits_from_the_last_maps_are_the_networks_logits() {
        let device = Device::flex();
        for (name, size, layer, maps) in [
            ("lenet5", 32, "conv2", [16, 10, 10]),
            ("alexnet", 63, "features.11", [256, 3, 3]),
            ("vgg11_bn", 32, "features.27", [512, 2, 2]),
            ("resnet20", 32, "layer3", [64, 8, 8]),
            ("resnet18", 64, "layer4", [512, 2, 2]),
            ("googlenet", 64, "inception5b", [1024, 2, 2]),
        ] {
            device.seed(3);
            let model = crate::build(name, BuildOptions::classes(5), &device).unwrap();
            let channels = if name == "lenet5" { 1 } else { 3 };
            let x = Tensor::<4>::random([2, channels, size, size], Distribution::Normal(0.0, 1.0), &device);
            assert_eq!(model.last_maps_layer().as_deref(), Some(layer), "{name}");
            let m = model.last_maps(x.clone()).unwrap();
            assert_eq!(m.dims()[1..], maps, "{name}");
            let split = model.logits_from_maps(m).unwrap();
            let whole = model.logits(x);
            split
                .into_data()
                .assert_approx_eq::<f32>(&whole.into_data(), burn::tensor::Tolerance::absolute(1e-5));
        }
        let example = crate::build("conv1x1_example", BuildOptions::classes(5), &device).unwrap();
        assert!(example.last_maps_layer().is_none());
    }
}
