//! `--input-size`: any size the layers allow, recorded in the run folder and reused.

mod common;

use std::path::Path;

use burn::tensor::Device;
use cnn_data_augment::Source;
use cnn_trainer::{OptimizerKind, RunFolder, TrainConfig, train_run};

/// burn's random generator is global per backend: runs that seed it must not interleave.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scratch(tag: &str) -> common::Scratch {
    common::scratch("size", tag)
}

/// An image folder of real digits: 8 each of 0, 1 and 7 from the embedded MNIST-5k, as photos
/// of two sizes (so the folder needs fitting).
fn photo_folder(root: &Path) {
    let (train, _) = cnn_data_augment::embedded::mnist_5k().unwrap();
    for digit in [0usize, 1, 7] {
        let dir = root.join(format!("digit{digit}"));
        std::fs::create_dir_all(&dir).unwrap();
        let picks = (0..train.len()).filter(|&i| train.label(i) == digit).take(8);
        for (k, i) in picks.enumerate() {
            let (img, _) = Source::get(&train, i).unwrap();
            let (w, h) = if k % 2 == 0 { (40, 30) } else { (28, 36) };
            let img = cnn_data_augment::augment::geometry::resize(&img, h, w);
            img.save_png(&dir.join(format!("{k:02}.png"))).unwrap();
        }
    }
}

fn config(model: &str, data: &Path) -> TrainConfig {
    TrainConfig::new(model, data.to_str().unwrap())
        .with_valid_split(0.0)
        .with_epochs(1)
        .with_batch_size(8)
        .with_optimizer(OptimizerKind::Sgd)
        .with_lr(0.01)
        .with_workers(1)
}

fn train(cfg: &TrainConfig, dir: &Path, resume: bool) -> cnn_trainer::Result<Vec<String>> {
    let _rng = RNG.lock().unwrap_or_else(|p| p.into_inner());
    let mut notes = Vec::new();
    train_run(cfg, &Device::flex(), dir, resume, &mut |p| {
        if let cnn_trainer::Progress::Note(n) = p {
            notes.push(n);
        }
    })?;
    Ok(notes)
}

#[test]
fn a_chosen_size_is_trained_recorded_and_reused_by_eval_resume_and_later_runs() {
    let root = scratch("chosen");
    let data = root.join("photos");
    photo_folder(&data);
    let run = root.join("resnet18-96");
    let cfg = config("resnet18", &data).with_input_size(Some(96));
    let notes = train(&cfg, &run, false).unwrap();
    assert!(
        notes.iter().any(|n| n.starts_with("input 96×96 px: as asked")),
        "{notes:?}"
    );
    let folder = RunFolder::open(&run).unwrap();
    assert_eq!(folder.preprocess.size, 96);
    assert!(
        folder.preprocess.center_crop,
        "photos are fitted by their centre square"
    );
    assert_eq!(folder.config.task.input_size, Some(96));
    // Evaluation takes the size from the folder.
    let eval = folder.evaluate_on(None, None, &Device::flex()).unwrap();
    assert!(eval.summary.images > 0);
    // Resuming with the run's own settings continues at 96.
    let more = folder.config.clone().with_epochs(2);
    let notes = train(&more, &run, true).unwrap();
    assert!(notes.iter().any(|n| n.starts_with("input 96×96 px")), "{notes:?}");
    // A later run from this run's weights trains at its size without being told.
    let later = config("resnet18", &data).with_weights(Some(run.join("model.bpk")));
    let notes = train(&later, &root.join("from-run"), false).unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("input 96×96 px: the size") && n.contains("resnet18-96")),
        "{notes:?}"
    );
    assert_eq!(RunFolder::open(&root.join("from-run")).unwrap().preprocess.size, 96);
    // From scratch, an ImageNet-sized network keeps the CPU default, and says so.
    let notes = train(&config("alexnet", &data), &root.join("alexnet"), false).unwrap();
    assert!(
        notes.iter().any(|n| n.starts_with("input 64×64 px: the default")),
        "{notes:?}"
    );
}

#[test]
fn a_size_too_small_is_one_clear_error_naming_the_layer_and_the_smallest_size() {
    let root = scratch("small");
    let data = root.join("photos");
    photo_folder(&data);
    let cfg = config("alexnet", &data).with_input_size(Some(32));
    let err = train(&cfg, &root.join("run"), false).unwrap_err().to_string();
    assert!(
        err.contains("alexnet") && err.contains("does not fit layer features."),
        "{err}"
    );
    assert!(err.contains("smallest size from 32 px up that fits is 63 px"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    // Nothing was written.
    assert!(!root.join("run").join("config.json").exists());
    let zero = config("lenet5", &data).with_input_size(Some(0));
    assert!(zero.validate().unwrap_err().to_string().contains("`input_size`"));
}

#[test]
fn torchvision_weights_train_at_their_own_224_px_unless_told_otherwise() {
    let root = scratch("torchvision");
    let data = root.join("photos");
    photo_folder(&data);
    // A torchvision-layout ResNet-18 file (random weights, 1000 classes), written by our export.
    let weights = root.join("resnet18.pth");
    let model = cnn_models::build("resnet18", cnn_models::BuildOptions::classes(1000), &Device::flex()).unwrap();
    let (bytes, _) = cnn_transfer::export_bytes(&model, &weights).unwrap();
    std::fs::write(&weights, bytes).unwrap();
    let cfg = config("resnet18", &data)
        .with_batch_size(12)
        .with_weights(Some(weights))
        .with_freeze(cnn_transfer::FreezePolicy::All);
    let notes = train(&cfg, &root.join("r18-224"), false).unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("input 224×224 px: the size torchvision's weights were trained at")),
        "{notes:?}"
    );
    assert_eq!(RunFolder::open(&root.join("r18-224")).unwrap().preprocess.size, 224);
    let smaller = cfg.with_input_size(Some(96));
    train(&smaller, &root.join("r18-96"), false).unwrap();
    assert_eq!(RunFolder::open(&root.join("r18-96")).unwrap().preprocess.size, 96);
}

#[test]
fn the_course_examples_on_feature_maps_are_refused_in_one_line() {
    let root = scratch("feature-maps");
    for name in ["inception_module", "inception_naive", "conv1x1_example"] {
        let cfg = TrainConfig::new(name, "mnist-5k");
        let err = train(&cfg, &root.join(name), false).unwrap_err().to_string();
        assert!(
            err.contains("course example on 192×28×28 feature maps") && err.contains("train googlenet"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(!root.join(name).exists());
    }
}
