//! Every key of torchvision's state_dicts (from `manifest.json`), written with torchvision's
//! names and shapes into a `.safetensors` file, is consumed by our models with the right shape
//! through the import path — for the models with no weights fixture too (VGG, deeper ResNets).
//! Wrong shapes, missing and unexpected keys, and damaged files are clear errors.

mod common;



use common::{manifest_keys, write_safetensors};

use burn::tensor::Device;
use cnn_models::BuildOptions;
use cnn_transfer::{Partial, load_torchvision};


#[test]
fn every_manifest_key_is_consumed_with_its_shape() {
    let device = Device::flex();
    let dir = cnn_testkit::scratch("manifest", "keys");
    for name in [
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
    ] {
        let keys = manifest_keys(name);
        let file = dir.join(format!("{name}.safetensors"));
        write_safetensors(&file, &keys);
        let model = cnn_models::build(name, BuildOptions::classes(1000), &device).unwrap();
        let (_, report) = load_torchvision(model, &file, &Partial::None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = keys.keys().filter(|k| !k.ends_with("num_batches_tracked")).count();
        assert_eq!(report.applied.len(), expected, "{name}: {report}");
        assert!(
            report.missing.is_empty() && report.unused.is_empty(),
            "{name}: {report}"
        );
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn wrong_shapes_missing_and_unexpected_keys_and_damaged_files_are_clear_errors() {
    let device = Device::flex();
    let dir = cnn_testkit::scratch("manifest", "errors");
    let scratch = |name: &str| dir.join(name);
    let resnet18 = || cnn_models::build("resnet18", BuildOptions::classes(1000), &device).unwrap();
    let keys = manifest_keys("resnet18");

    // A 10-class head in the file, a 1000-class model: names the key and both shapes.
    let mut ten = keys.clone();
    ten.insert("fc.weight".into(), vec![10, 512]);
    ten.insert("fc.bias".into(), vec![10]);
    let file = scratch("ten.safetensors");
    write_safetensors(&file, &ten);
    let err = load_torchvision(resnet18(), &file, &Partial::None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'fc.") && err.contains("10") && err.contains("1000"),
        "{err}"
    );

    // A tensor missing: an error naming it, unless the load is partial for that prefix.
    let mut missing = keys.clone();
    missing.remove("layer3.1.conv2.weight");
    missing.remove("fc.weight");
    missing.remove("fc.bias");
    write_safetensors(&file, &missing);
    let err = load_torchvision(resnet18(), &file, &Partial::None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has no tensor") && err.contains("3 of the model's tensors are missing"),
        "{err}"
    );
    let err = load_torchvision(resnet18(), &file, &Partial::Prefixes(vec!["fc.".into()]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("'layer3.1.conv2.weight'"), "{err}");
    let (_, report) = load_torchvision(resnet18(), &file, &Partial::Any).unwrap();
    assert_eq!(report.missing.len(), 3, "{report}");

    // An unexpected tensor is reported, not fatal.
    let mut extra = keys.clone();
    extra.insert("fc2.weight".into(), vec![3, 3]);
    write_safetensors(&file, &extra);
    let (_, report) = load_torchvision(resnet18(), &file, &Partial::None).unwrap();
    assert_eq!(report.unused, vec!["fc2.weight".to_string()]);
    assert!(report.to_string().contains("unused: fc2.weight"), "{report}");

    // Truncated files, of both formats, and unknown extensions.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_torchvision(resnet18(), &file, &Partial::None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ten.safetensors") && err.contains("cannot read"), "{err}");
    let pth =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lenet5_legacy.pth")).unwrap();
    let cut = scratch("cut.pth");
    std::fs::write(&cut, &pth[..pth.len() / 3]).unwrap();
    let err = load_torchvision(resnet18(), &cut, &Partial::None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.pth") && err.contains("cannot read"), "{err}");
    let err = load_torchvision(resnet18(), &scratch("w.h5"), &Partial::None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no such file"), "{err}");
    std::fs::write(scratch("w.h5"), b"x").unwrap();
    let err = load_torchvision(resnet18(), &scratch("w.h5"), &Partial::None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown weights format"), "{err}");
}
