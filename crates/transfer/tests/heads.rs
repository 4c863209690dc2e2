//! A model is built to fit its weights file: the file's number of classes, GoogLeNet's aux heads
//! when present, or a fresh head of another size.

mod common;

use burn::tensor::Device;
use cnn_models::Model;
use cnn_transfer::load_fitting;
use common::{fixtures, manifest_keys, write_safetensors};

fn googlenet_aux(model: &Model) -> bool {
    match model {
        Model::GoogLeNet(g) => g.aux1.is_some() && g.aux2.is_some(),
        _ => panic!("not a GoogLeNet"),
    }
}

#[test]
fn class_counts_and_aux_heads_come_from_the_fixture() {
    let Some(fx) = fixtures() else {
        return;
    };
    // The fixture has aux heads and 1000 classes.
    let (model, report, head) = load_fitting("googlenet", &fx.join("googlenet.pth"), None, &Device::flex()).unwrap();
    assert_eq!((head.num_classes, head.aux_heads), (Some(1000), true));
    assert!(googlenet_aux(&model) && report.missing.is_empty(), "{report}");
}

#[test]
fn class_counts_and_aux_heads_come_from_the_file() {
    let device = Device::flex();
    // A 4-class GoogLeNet saved without aux heads, and a 7-class ResNet-18: no flags needed.
    let dir = cnn_testkit::scratch("heads", "heads");
    std::fs::create_dir_all(&dir).unwrap();
    let mut keys = manifest_keys("googlenet");
    keys.retain(|k, _| !k.starts_with("aux"));
    keys.insert("fc.weight".into(), vec![4, 1024]);
    keys.insert("fc.bias".into(), vec![4]);
    let file = dir.join("googlenet4.safetensors");
    write_safetensors(&file, &keys);
    let (model, report, head) = load_fitting("googlenet", &file, None, &device).unwrap();
    assert_eq!((head.num_classes, head.aux_heads), (Some(4), false));
    assert!(
        !googlenet_aux(&model) && report.missing.is_empty() && report.unused.is_empty(),
        "{report}"
    );

    let mut keys = manifest_keys("resnet18");
    keys.insert("fc.weight".into(), vec![7, 512]);
    keys.insert("fc.bias".into(), vec![7]);
    let file = dir.join("resnet7.safetensors");
    write_safetensors(&file, &keys);
    let (model, report, _) = load_fitting("resnet18", &file, None, &device).unwrap();
    assert!(report.missing.is_empty(), "{report}");
    let Model::ResNet(r) = model else { panic!() };
    assert_eq!(r.fc.weight.val().dims(), [512, 7]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn another_class_count_gets_a_fresh_head_and_keeps_the_backbone() {
    let Some(fx) = fixtures() else {
        return;
    };
    let device = Device::flex();
    let path = fx.join("resnet18.pth");
    let (full, _, _) = load_fitting("resnet18", &path, None, &device).unwrap();
    let (five, report, head) = load_fitting("resnet18", &path, Some(5), &device).unwrap();
    assert_eq!(head.num_classes, Some(1000));
    assert_eq!(report.missing, vec!["fc.bias".to_string(), "fc.weight".to_string()]);
    assert!(report.unused.is_empty(), "{report}");
    let (Model::ResNet(full), Model::ResNet(five)) = (full, five) else {
        panic!()
    };
    assert_eq!(five.fc.weight.val().dims(), [512, 5]);
    assert_eq!(
        full.conv1.weight.val().into_data().try_to_vec::<f32>().unwrap(),
        five.conv1.weight.val().into_data().try_to_vec::<f32>().unwrap()
    );
}

#[test]
fn our_own_burnpack_files_load_with_the_same_or_a_fresh_head() {
    use burn::module::Module;
    let device = Device::flex();
    let dir = cnn_testkit::scratch("heads", "heads-bpk");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("lenet.bpk");
    let source = cnn_models::build("lenet5_relu", cnn_models::BuildOptions::classes(10), &device).unwrap();
    let bytes = source.clone().into_record().into_bytes().unwrap();
    std::fs::write(&file, &bytes[..]).unwrap();
    let Model::LeNet5(original) = source else { panic!() };

    let (same, report, _) = load_fitting("lenet5_relu", &file, Some(10), &device).unwrap();
    assert!(
        report.missing.is_empty() && report.unused.is_empty() && report.applied.len() == 10,
        "{report}"
    );
    let Model::LeNet5(same) = same else { panic!() };
    assert_eq!(
        same.fc3.weight.val().into_data().try_to_vec::<f32>().unwrap(),
        original.fc3.weight.val().into_data().try_to_vec::<f32>().unwrap()
    );
    let (three, report, _) = load_fitting("lenet5_relu", &file, Some(3), &device).unwrap();
    assert_eq!(
        report.missing,
        vec!["fc3.bias".to_string(), "fc3.weight".to_string()],
        "{report}"
    );
    assert!(report.unused.is_empty(), "{report}");
    let Model::LeNet5(three) = three else { panic!() };
    assert_eq!(three.fc3.weight.val().dims(), [84, 3]);
    assert_eq!(
        three.conv2.weight.val().into_data().try_to_vec::<f32>().unwrap(),
        original.conv2.weight.val().into_data().try_to_vec::<f32>().unwrap()
    );
    let err = load_fitting("lenet5_relu", &file, None, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`num_classes`"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_new_head_can_be_asked_for_with_the_same_class_count() {
    let Some(fx) = fixtures() else {
        return;
    };
    let device = Device::flex();
    let (_, report, _) = cnn_transfer::load_with_new_head("resnet18", &fx.join("resnet18.pth"), 1000, &device).unwrap();
    assert_eq!(
        report.missing,
        vec!["fc.bias".to_string(), "fc.weight".to_string()],
        "{report}"
    );
    assert!(report.unused.is_empty(), "{report}");
}

/// `tests/data/lenet5_legacy.pth` is a LeNet-5 state_dict in PyTorch's legacy (pre-1.6, non-zip)
/// `torch.save` format and `lenet5.safetensors` the same tensors, both written by
/// `scripts/make_legacy_pth.py`.
#[test]
fn the_legacy_pickle_format_loads_like_safetensors() {
    let device = Device::flex();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let load = |file: &str| {
        let (model, report, head) = load_fitting("lenet5", &data.join(file), None, &device).unwrap();
        assert_eq!(report.applied.len(), 10, "{file}: {report}");
        assert!(
            report.missing.is_empty() && report.unused.is_empty(),
            "{file}: {report}"
        );
        assert_eq!(head.num_classes, Some(10));
        let Model::LeNet5(m) = model else { panic!() };
        [m.conv1.weight.val(), m.conv2.weight.val()]
            .map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .into_iter()
            .chain([m.fc1.weight.val(), m.fc3.weight.val()].map(|t| t.into_data().try_to_vec::<f32>().unwrap()))
            .collect::<Vec<_>>()
    };
    let legacy = load("lenet5_legacy.pth");
    assert_eq!(legacy, load("lenet5.safetensors"));
    // The values are the file's (the script's first value), not an initialisation.
    assert!((legacy[0][0] - 0.031_030_81).abs() < 1e-6, "{}", legacy[0][0]);
}

#[test]
fn a_pretrained_file_is_fetched_into_the_cache_checked_and_loaded_with_a_new_head() {
    use cnn_data_augment::download::{Download, Origin};
    use cnn_transfer::zoo::{Pretrained, WEIGHTS_DIR};
    use sha2::{Digest, Sha256};
    // A stand-in for torchvision's file: ResNet-18's keys and shapes, named after its own digest
    // as torchvision names its files; "fetched" from a local copy, as `--from` does.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.safetensors");
    write_safetensors(&copy, &manifest_keys("resnet18"));
    let digest = format!("{:x}", Sha256::digest(std::fs::read(&copy).unwrap()));
    let file: &'static str = format!("resnet18-{}.safetensors", &digest[..8]).leak();
    let weights = Pretrained { model: "resnet18", file };
    let download = Download {
        origin: Origin::Local(copy),
        ..Download::new(dir.path())
    };
    let (model, report, head) = weights.load(Some(5), &download, &Device::flex()).unwrap();
    assert!(dir.path().join(WEIGHTS_DIR).join(file).is_file());
    assert_eq!(head.num_classes, Some(1000));
    assert_eq!(report.missing, vec!["fc.bias".to_string(), "fc.weight".to_string()]);
    let Model::ResNet(r) = model else { panic!("not a ResNet") };
    assert_eq!(r.fc.weight.val().dims(), [512, 5]);
}
