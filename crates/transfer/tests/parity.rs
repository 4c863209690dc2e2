//! torchvision parity: the fixtures' seeded random-init state_dicts, loaded into our models,
//! give torchvision's eval-mode logits on the fixtures' inputs (max abs diff ≤ 1e-4, flex).

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use cnn_models::{BlockKind, BuildOptions, ImageClassifier, ResNetConfig};
use cnn_transfer::{Partial, load_torchvision, load_torchvision_remapped};
use common::fixtures;
use std::path::Path;

/// `(input, logits)` of a fixture's `.io.safetensors`.
fn io(fx: &Path, name: &str) -> (TensorData, TensorData) {
    let bytes = std::fs::read(fx.join(format!("{name}.io.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let get = |key: &str| {
        let t = st.tensor(key).unwrap();
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        TensorData::new(values, t.shape().to_vec())
    };
    (get("input"), get("logits"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn parity(fx: &Path, fixture: &str, built: cnn_models::Model) -> f32 {
    parity_on(fx, fixture, built, &Device::flex())
}

/// [`parity`] with the model (built on `device`) and its input on `device`.
fn parity_on(fx: &Path, fixture: &str, built: cnn_models::Model, device: &Device) -> f32 {
    let (loaded, report) = load_torchvision(built, &fx.join(format!("{fixture}.pth")), &Partial::None).unwrap();
    assert!(
        report.unused.is_empty() && report.missing.is_empty(),
        "{fixture}: {report}"
    );
    let (input, expected) = io(fx, fixture);
    let logits = loaded.logits(Tensor::<4>::from_data(input, device));
    compare(fixture, logits.into_data(), expected)
}

fn compare(fixture: &str, got: TensorData, expected: TensorData) -> f32 {
    assert_eq!(got.shape(), expected.shape(), "{fixture}");
    let got = got.convert::<f32>().try_into_vec::<f32>().unwrap();
    let want = expected.try_into_vec::<f32>().unwrap();
    let d = max_abs_diff(&got, &want);
    println!("{fixture}: max abs diff {d:e} over {} values", want.len());
    d
}

#[test]
fn resnet18_matches_torchvision() {
    let Some(fx) = fixtures() else {
        return;
    };
    let model = cnn_models::build("resnet18", BuildOptions::classes(1000), &Device::flex()).unwrap();
    let d = parity(&fx, "resnet18", model);
    assert!(d <= 1e-4, "max abs diff {d}");
}

/// The same fixture through the GPU backend (software Vulkan in CI).
#[cfg(feature = "wgpu")]
#[test]
fn resnet18_matches_torchvision_on_wgpu() {
    let Some(fx) = fixtures() else {
        return;
    };
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let model = cnn_models::build("resnet18", BuildOptions::classes(1000), &device).unwrap();
    let d = parity_on(&fx, "resnet18", model, &device);
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn resnet_bottleneck_1111_matches_torchvision() {
    let Some(fx) = fixtures() else {
        return;
    };
    // torchvision's ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10).
    let model = cnn_models::Model::ResNet(
        ResNetConfig::imagenet(BlockKind::Bottleneck, [1, 1, 1, 1])
            .with_num_classes(10)
            .init(&Device::flex()),
    );
    let d = parity(&fx, "resnet_bottleneck_1111", model);
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn googlenet_with_aux_heads_matches_torchvision_in_eval_mode() {
    let Some(fx) = fixtures() else {
        return;
    };
    let model = cnn_models::build("googlenet", BuildOptions::classes(1000), &Device::flex()).unwrap();
    let d = parity(&fx, "googlenet", model);
    assert!(d <= 1e-4, "max abs diff {d}");
}

#[test]
fn alexnet_features_match_torchvision() {
    let Some(fx) = fixtures() else {
        return;
    };
    let device = Device::flex();
    let model = cnn_models::build("alexnet", BuildOptions::classes(1000), &device).unwrap();
    // The fixture holds the convolutional part only: the classifier may be missing.
    let partial = Partial::Prefixes(vec!["classifier.".into()]);
    // It is `alexnet.features.state_dict()`: keys "0.weight", "3.weight", …
    let remap = [(r"^(\d+)\.", "features.$1.")];
    let (loaded, report) =
        load_torchvision_remapped(model, &fx.join("alexnet_features.pth"), &partial, &remap).unwrap();
    assert!(report.unused.is_empty(), "{report}");
    assert_eq!(report.missing.len(), 6, "{report}");
    let cnn_models::Model::AlexNet(alexnet) = loaded else {
        panic!("not an AlexNet")
    };
    let (input, expected) = io(&fx, "alexnet_features");
    let features = alexnet.forward_features(Tensor::<4>::from_data(input, &device));
    let d = compare("alexnet_features", features.into_data(), expected);
    assert!(d <= 1e-4, "max abs diff {d}");
}
