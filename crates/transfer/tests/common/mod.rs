//! Helpers shared by the integration tests: the torchvision fixtures and synthetic weight files.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use cnn_models::{BuildOptions, ImageClassifier, Model, build};

/// The torchvision fixtures, or `None` (the test then returns: it did not run, and says so).
pub fn fixtures() -> Option<PathBuf> {
    cnn_testkit::torchvision_fixtures()
}

/// `key → shape` of a manifest model.
pub fn manifest_keys(model: &str) -> BTreeMap<String, Vec<usize>> {
    let manifest: serde_json::Value = serde_json::from_str(cnn_testkit::MANIFEST_JSON).unwrap();
    let keys = manifest[model]["keys"]
        .as_object()
        .unwrap_or_else(|| panic!("{model} not in manifest"));
    keys.iter()
        .map(|(k, v)| {
            let shape = v
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), shape)
        })
        .collect()
}

/// Writes a safetensors file with these keys and shapes; every value of tensor i is i / 1000.
pub fn write_safetensors(path: &Path, keys: &BTreeMap<String, Vec<usize>>) {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = keys
        .iter()
        .enumerate()
        .map(|(i, (k, shape))| {
            let n: usize = shape.iter().product();
            let value = (i as f32 / 1000.0).to_le_bytes();
            (k.clone(), shape.clone(), value.repeat(n))
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(k, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes).unwrap();
            (k.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A model whose BatchNorm running statistics have moved away from 0 and 1: one training-mode
/// forward pass on the autodiff device, then back to inference.
pub fn trained_model(name: &str, classes: usize, size: usize) -> Model {
    let device = Device::flex().autodiff();
    device.seed(7);
    let model = build(name, BuildOptions::classes(classes), &device).unwrap();
    let channels = cnn_models::registry::lookup(name).unwrap().default_input.channels;
    let input = Tensor::<4>::random([2, channels, size, size], burn::tensor::Distribution::Default, &device);
    let _ = model.train_outputs(input);
    model.valid()
}
