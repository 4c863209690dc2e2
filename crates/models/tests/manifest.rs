//! Every torchvision model we mirror has torchvision's parameter count, and every state_dict key
//! and shape under the documented mapping (`cnn_models::keys`). The manifest is committed
//! (`cnn_testkit::MANIFEST_JSON`), so these run on any clone.

use std::collections::BTreeMap;

use burn::tensor::Device;
use cnn_models::{BuildOptions, build, keys::torchvision_shapes, param_count};

const MIRRORED: [&str; 14] = [
    "alexnet",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "googlenet",
];

fn manifest() -> serde_json::Value {
    serde_json::from_str(cnn_testkit::MANIFEST_JSON).unwrap()
}

#[test]
fn the_committed_manifest_equals_the_shared_fixtures() {
    let Some(dir) = cnn_testkit::torchvision_fixtures() else {
        return;
    };
    let shared: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert!(
        shared == manifest(),
        "crates/testkit/data/torchvision_manifest.json is out of date"
    );
}

#[test]
fn parameter_counts_equal_torchvision() {
    let manifest = manifest();
    let device = Device::flex();
    for name in MIRRORED {
        let model = build(name, BuildOptions::classes(1000), &device).unwrap();
        let expected = manifest[name]["num_params"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} not in manifest"));
        assert_eq!(param_count(&model) as u64, expected, "{name}");
    }
}

#[test]
fn keys_and_shapes_equal_torchvision_under_the_mapping() {
    let manifest = manifest();
    let device = Device::flex();
    for name in MIRRORED {
        let model = build(name, BuildOptions::classes(1000), &device).unwrap();
        let ours = torchvision_shapes(&model);
        let theirs: BTreeMap<String, Vec<usize>> = manifest[name]["keys"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                )
            })
            .collect();
        let missing: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
        let extra: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, extra {extra:?}"
        );
        for (key, shape) in &theirs {
            assert_eq!(&ours[key], shape, "{name}: {key}");
        }
    }
}
