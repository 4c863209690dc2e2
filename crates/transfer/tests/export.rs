//! Export back to PyTorch: torchvision's keys, shapes and layouts, and a lossless round trip.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use cnn_models::{BuildOptions, ImageClassifier, Model, build};
use cnn_transfer::export::Values;
use cnn_transfer::{Partial, export_bytes, load_torchvision, state_dict};

mod common;
use common::trained_model;

fn logits(model: &Model, size: usize, channels: usize) -> Vec<f32> {
    let device = Device::flex();
    let values: Vec<f32> = (0..2 * channels * size * size)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    let input = Tensor::<4>::from_data(TensorData::new(values, [2, channels, size, size]), &device);
    model
        .logits(input)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

fn values(model: &Model) -> BTreeMap<String, (Vec<usize>, Values)> {
    state_dict(model)
        .unwrap()
        .into_iter()
        .map(|t| (t.key, (t.shape, t.values)))
        .collect()
}

#[test]
fn resnet18_exports_exactly_torchvision_keys_and_shapes() {
    let manifest: serde_json::Value = serde_json::from_str(cnn_testkit::MANIFEST_JSON).unwrap();
    for name in ["resnet18", "alexnet", "googlenet", "vgg11_bn"] {
        let model = build(name, BuildOptions::classes(1000), &Device::flex()).unwrap();
        let ours: BTreeMap<String, Vec<usize>> = state_dict(&model)
            .unwrap()
            .into_iter()
            .map(|t| (t.key, t.shape))
            .collect();
        let theirs: BTreeMap<String, Vec<usize>> = manifest[name]["keys"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
            .collect();
        // googlenet's aux heads exist in torchvision's file; our inference build may leave them out.
        let theirs: BTreeMap<_, _> = theirs
            .into_iter()
            .filter(|(k, _)| ours.contains_key(k) || !k.starts_with("aux"))
            .collect();
        assert_eq!(ours, theirs, "{name}");
    }
}

#[test]
fn export_then_import_gives_identical_tensors_and_logits_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    for (name, classes, size) in [("resnet20", 10, 32), ("lenet5", 10, 32), ("resnet18", 5, 64)] {
        let model = trained_model(name, classes, size);
        let exported = values(&model);
        let running_mean = exported.iter().find(|(k, _)| k.ends_with("running_mean"));
        if let Some((key, (_, Values::F32(v)))) = running_mean {
            assert!(
                v.iter().any(|x| *x != 0.0),
                "{name}: {key} did not move; the round trip would not test it"
            );
        }
        let channels = cnn_models::registry::lookup(name).unwrap().default_input.channels;
        let expected = logits(&model, size, channels);
        for ext in ["safetensors", "pth"] {
            let path = dir.path().join(format!("{name}.{ext}"));
            let (bytes, count) = export_bytes(&model, &path).unwrap();
            assert_eq!(count, exported.len());
            std::fs::write(&path, bytes).unwrap();
            let device = Device::flex();
            device.seed(99); // another initialisation, replaced by the file
            let fresh = build(name, BuildOptions::classes(classes), &device).unwrap();
            let (loaded, report) = load_torchvision(fresh, &path, &Partial::None).unwrap();
            assert!(
                report.missing.is_empty() && report.unused.is_empty(),
                "{name}.{ext}: {report}"
            );
            assert_eq!(values(&loaded), exported, "{name}.{ext}");
            assert_eq!(logits(&loaded, size, channels), expected, "{name}.{ext}");
        }
    }
    let bpk = dir.path().join("x.bpk");
    let err = export_bytes(
        &build("lenet5", BuildOptions::classes(10), &Device::flex()).unwrap(),
        &bpk,
    )
    .unwrap_err();
    assert!(err.to_string().contains(".safetensors, .pth"), "{err}");
}
