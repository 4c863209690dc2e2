//! Run folders: checkpoints, exact resume, divergence, curves.

mod common;

use common::rng_lock;

use std::path::Path;

use burn::tensor::Device;
use cnn_data_augment::Source;
use cnn_models::precision::Precision;
use cnn_trainer::run::checkpoint::{self, parameter_values};
use cnn_trainer::{OptimizerKind, Progress, RunFolder, TrainConfig, TrainError, train_run, train_run_on};

/// An image folder of real digits: 16 each of 0, 1 and 7 from the embedded MNIST-5k.
fn digit_folder(root: &Path) {
    let (train, _) = cnn_data_augment::embedded::mnist_5k().unwrap();
    for digit in [0usize, 1, 7] {
        let dir = root.join(format!("digit{digit}"));
        std::fs::create_dir_all(&dir).unwrap();
        let picks = (0..train.len()).filter(|&i| train.label(i) == digit).take(16);
        for (k, i) in picks.enumerate() {
            let (img, _) = Source::get(&train, i).unwrap();
            img.save_png(&dir.join(format!("{k:02}.png"))).unwrap();
        }
    }
}

fn config(model: &str, data: &Path, epochs: usize) -> TrainConfig {
    TrainConfig::new(model, data.to_str().unwrap())
        .with_valid_split(0.25)
        .with_epochs(epochs)
        .with_batch_size(8)
        .with_optimizer(OptimizerKind::Sgd)
        .with_lr(0.01)
        .with_workers(2)
}

/// TrivialAugmentWide, then random erasing with noise: the pipeline ops of the modern recipe.
fn automatic_augmentation() -> cnn_data_augment::Pipeline {
    let text = "[[ops]]\nop = \"trivial_augment_wide\"\n\n[[ops]]\nop = \"alternating_flip\"\n\n\
                [[ops]]\nop = \"random_erasing\"\nvalue = \"random\"\n";
    cnn_data_augment::Pipeline::from_toml(text).unwrap()
}

fn scratch(tag: &str) -> common::Scratch {
    common::scratch("run", tag)
}

fn weights(dir: &Path) -> Vec<Vec<f32>> {
    parameter_values(&RunFolder::open(dir).unwrap().load_model(&Device::flex()).unwrap())
}

/// The metrics that must agree between runs (not the timings).
fn learning_figures(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn resuming_after_an_epoch_ends_exactly_like_an_uninterrupted_run() {
    let _rng = rng_lock();
    let root = scratch("resume");
    let data = root.join("digits");
    digit_folder(&data);
    let device = Device::flex();
    // LeNet-5 (plain), AlexNet (dropout: the generator must be restored), ResNet-20
    // (BatchNorm statistics, SGD momentum), ResNet-20 again with a rate per stage
    // (`--backbone-lr-scale 0.3 --stage-lr-decay 0.5`), and with the modern recipe's parts
    // (Nesterov momentum with decay on weights only, label smoothing, mixup and cutmix drawn per
    // batch, accumulation, TrivialAugmentWide, the alternating flip and random erasing, test
    // shifts and flips), and in bf16 (the products in software where the CPU lacks AVX512-BF16,
    // the same bits).
    for (model, rates, recipe, precision) in [
        ("lenet5", None, false, Precision::F32),
        ("alexnet", None, false, Precision::F32),
        ("resnet20", None, false, Precision::F32),
        ("resnet20", Some((0.3, 0.5)), false, Precision::F32),
        ("resnet20", None, true, Precision::F32),
        ("resnet20", None, false, Precision::Bf16),
    ] {
        let (straight, split) = (
            root.join(format!("{model}-{rates:?}-{recipe}-{precision}-straight")),
            root.join(format!("{model}-{rates:?}-{recipe}-{precision}-split")),
        );
        let config = |epochs| {
            let (backbone_lr_scale, stage_lr_decay) = rates.unwrap_or((1.0, 1.0));
            let cfg = config(model, &data, epochs)
                .with_backbone_lr_scale(backbone_lr_scale)
                .with_stage_lr_decay(stage_lr_decay)
                .with_precision(precision);
            match recipe {
                true => cfg
                    .with_nesterov(true)
                    .with_weight_decay(5e-4)
                    .with_decay_weights_only(true)
                    .with_label_smoothing(0.1)
                    .with_mixup(Some(0.2))
                    .with_cutmix(Some(1.0))
                    .with_accumulate(2)
                    .with_ema(Some(0.9))
                    .with_ema_every(2)
                    .with_test_flip(true)
                    .with_test_shift(1)
                    .with_augment(automatic_augmentation()),
                false => cfg,
            }
        };
        train_run(&config(2), &device, &straight, false, &mut |_| {}).unwrap();
        train_run(&config(1), &device, &split, false, &mut |_| {}).unwrap();
        // A half-written next checkpoint (as after a kill mid-write) must be ignored.
        std::fs::create_dir_all(split.join("checkpoint-0002.tmp")).unwrap();
        std::fs::write(split.join("checkpoint-0002.tmp/model.bpk"), b"half a file").unwrap();
        std::fs::write(split.join(".checkpoint.json.tmp"), b"{\"epoch\": 2, \"fol").unwrap();
        let report = train_run(&config(2), &device, &split, true, &mut |_| {}).unwrap();
        assert_eq!(report.history.len(), 2);
        assert_eq!(learning_figures(&straight), learning_figures(&split), "{model}");
        assert_eq!(weights(&straight), weights(&split), "{model}: final weights differ");
        if recipe {
            let file = |dir: &Path, file: &str| {
                let model = RunFolder::open(dir).unwrap().load_model(&Device::flex()).unwrap();
                parameter_values(&checkpoint::load_weights(&dir.join(file), model).unwrap())
            };
            let (ema, raw) = (checkpoint::EMA_FILE, "model.bpk");
            assert_eq!(
                file(&straight, ema),
                file(&split, ema),
                "{model}: the averaged weights differ"
            );
            assert_eq!(
                file(&straight, raw),
                file(&split, raw),
                "{model}: the trained weights differ"
            );
            assert_ne!(
                file(&straight, ema),
                file(&straight, raw),
                "{model}: the average is the weights"
            );
        }
        if precision == Precision::Bf16 {
            let f32_run = root.join(format!("{model}-{rates:?}-{recipe}-f32-straight"));
            assert_ne!(learning_figures(&straight), learning_figures(&f32_run), "bf16 changed nothing");
            let config = RunFolder::open(&straight).unwrap().config;
            assert_eq!(config.task.precision, Precision::Bf16, "recorded in config.json");
        }
        assert_eq!(checkpoint::info(&split).unwrap().epoch, 2);
        assert!(!split.join("checkpoint-0001").exists(), "old checkpoint kept");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_run_folder_has_its_files_and_readable_curves() {
    let _rng = rng_lock();
    let root = scratch("files");
    let data = root.join("digits");
    digit_folder(&data);
    let dir = root.join("run");
    let mut epochs_seen = 0;
    let report = train_run(&config("lenet5", &data, 3), &Device::flex(), &dir, false, &mut |p| {
        if let Progress::Epoch(_) = p {
            epochs_seen += 1;
            // Written before the epoch is reported.
            assert!(dir.join("curves.png").is_file() && dir.join("checkpoint.json").is_file());
        }
    })
    .unwrap();
    assert_eq!(epochs_seen, 3);
    for f in [
        "config.json",
        "preprocess.json",
        "classes.json",
        "metrics.csv",
        "best.bpk",
        "model.bpk",
        "summary.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    let curves = image::open(dir.join("curves.png")).unwrap();
    assert_eq!((curves.width(), curves.height()), (1200, 480));
    assert!(report.test.top5 >= report.test.accuracy);
    // Starting a new run over an existing one is refused.
    let err = train_run(&config("lenet5", &data, 1), &Device::flex(), &dir, false, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("`resume`"), "{err}");
    // Resuming a run that already has its epochs asks for a larger total.
    let err = train_run(&config("lenet5", &data, 3), &Device::flex(), &dir, true, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("the 3 epochs"), "{err}");
    // A run killed after its last checkpoint but before its weights were written resumes to
    // write them, training nothing more.
    std::fs::remove_file(dir.join("model.bpk")).unwrap();
    std::fs::remove_file(dir.join("summary.json")).unwrap();
    let finished = train_run(&config("lenet5", &data, 3), &Device::flex(), &dir, true, &mut |_| {}).unwrap();
    assert_eq!(finished.history.len(), 3);
    assert!(dir.join("model.bpk").is_file() && dir.join("summary.json").is_file());
    assert_eq!(finished.test.accuracy, report.test.accuracy);
    // Resuming a folder that is not a run says so.
    let err = train_run(&config("lenet5", &data, 3), &Device::flex(), &data, true, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("checkpoint.json"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let _rng = rng_lock();
    let root = scratch("nan");
    let data = root.join("digits");
    digit_folder(&data);
    let dir = root.join("run");
    let device = Device::flex();
    train_run(&config("alexnet", &data, 1), &device, &dir, false, &mut |_| {}).unwrap();
    let saved = dir.join("checkpoint-0001/model.bpk");
    let before = std::fs::read(&saved).unwrap();
    // AlexNet's ReLUs do not saturate the way LeNet-5's tanh does: at the largest rate the
    // settings accept, the loss overflows.
    let absurd = config("alexnet", &data, 3).with_lr(10.0);
    let mut warnings = Vec::new();
    let err = train_run(&absurd, &device, &dir, true, &mut |p| {
        if let Progress::Warning(w) = p {
            warnings.push(w);
        }
    })
    .unwrap_err();
    assert!(matches!(err, TrainError::Diverged { epoch: 2, .. }), "{err}");
    assert!(err.to_string().contains("try a smaller `lr`"), "{err}");
    assert!(
        warnings.iter().any(|w| w.contains("last good checkpoint (epoch 1)")),
        "{warnings:?}"
    );
    assert_eq!(checkpoint::info(&dir).unwrap().epoch, 1);
    // The checkpoint is untouched, and the run resumes from it with a sane rate.
    assert_eq!(std::fs::read(&saved).unwrap(), before);
    train_run(&config("alexnet", &data, 2), &device, &dir, true, &mut |_| {}).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn frozen_stages_are_bit_identical_after_training_and_their_batchnorm_keeps_its_statistics() {
    use cnn_models::{BuildOptions, Model, registry};
    let _rng = rng_lock();
    let root = scratch("freeze");
    let data = root.join("digits");
    digit_folder(&data);
    let dir = root.join("run");
    let device = Device::flex();
    let mut cfg = config("resnet20", &data, 2);
    cfg.transfer.freeze = "upto:layer1".parse().unwrap();
    // Weight decay too: the optimiser must not decay frozen weights either.
    cfg.optim.weight_decay = 0.01;
    let mut notes = Vec::new();
    train_run(&cfg, &device, &dir, false, &mut |p| {
        if let Progress::Note(n) = p {
            notes.push(n);
        }
    })
    .unwrap();
    assert!(
        notes.iter().any(|n| n.contains("2 of 4 stages frozen (up to layer1)")),
        "{notes:?}"
    );
    // The same initial weights as the run: seed, then build on the autodiff device.
    device.seed(cfg.task.seed);
    let options = BuildOptions {
        num_classes: 3,
        in_channels: Some(3),
    };
    let Model::ResNet(before) = registry::build("resnet20", options, &device.clone().autodiff()).unwrap() else {
        panic!()
    };
    checkpoint::materialize(&before);
    let Model::ResNet(after) = RunFolder::open(&dir).unwrap().load_model(&device).unwrap() else {
        panic!()
    };
    // conv1, bn1 (weights and running statistics) and layer1: untouched.
    assert_eq!(parameter_values(&before.conv1), parameter_values(&after.conv1));
    assert_eq!(parameter_values(&before.bn1), parameter_values(&after.bn1));
    assert_eq!(
        parameter_values(&before.layer1.clone()),
        parameter_values(&after.layer1.clone())
    );
    // The rest trained: weights moved, and layer2's BatchNorm statistics were updated.
    assert_ne!(
        parameter_values(&before.layer2.clone()),
        parameter_values(&after.layer2.clone())
    );
    assert_ne!(parameter_values(&before.fc), parameter_values(&after.fc));
    let mean = |m: &cnn_models::ResNet| {
        m.layer2[0]
            .bn1
            .running_mean
            .value()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_ne!(mean(&before), mean(&after));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn head_training_from_cached_features_reuses_the_cache_and_notices_changes() {
    let _rng = rng_lock();
    let root = scratch("cache");
    let data = root.join("digits");
    digit_folder(&data);
    let cache_dir = root.join("features");
    let device = Device::flex();
    let cfg = config("lenet5", &data, 3)
        .with_optimizer(OptimizerKind::Adam)
        .with_lr(0.01)
        .with_freeze(cnn_transfer::FreezePolicy::All)
        .with_cache_features(true)
        .with_cache_dir(Some(cache_dir.clone()));
    let run = |cfg: &TrainConfig, name: &str| {
        let mut notes = Vec::new();
        let report = train_run(cfg, &device, &root.join(name), false, &mut |p| {
            if let Progress::Note(n) = p {
                notes.push(n);
            }
        })
        .unwrap();
        (report, notes)
    };
    let count = |notes: &[String], what: &str| notes.iter().filter(|n| n.contains(what)).count();
    let (first, notes) = run(&cfg, "a");
    assert_eq!(count(&notes, "computed into"), 3, "{notes:?}");
    assert!(
        notes.iter().any(|n| n.starts_with("train features (30 x 84)")),
        "{notes:?}"
    );
    // The same settings: every split is read back, and the run is the same.
    let (second, notes) = run(&cfg, "b");
    assert_eq!(count(&notes, "read from the cache"), 3, "{notes:?}");
    assert_eq!(learning_figures(&root.join("a")), learning_figures(&root.join("b")));
    assert_eq!(first.test, second.test);
    // Another backbone (seed) gives other keys; a changed image invalidates its split only.
    let (_, notes) = run(&cfg.clone().with_seed(7), "c");
    assert_eq!(count(&notes, "computed into"), 3, "{notes:?}");
    let victim = data.join("digit7/15.png");
    let mut img = cnn_data_augment::Image::open(&victim).unwrap();
    img.data[0] = img.data[0].wrapping_add(1);
    img.save_png(&victim).unwrap();
    let (_, notes) = run(&cfg, "d");
    assert_eq!(count(&notes, "computed into"), 1, "{notes:?}");
    assert_eq!(count(&notes, "read from the cache"), 2, "{notes:?}");
    // The run folder's model (frozen backbone + trained head) gives the test accuracy reported.
    let run = RunFolder::open(&root.join("a")).unwrap();
    let model = run.load_model(&device).unwrap();
    let test = cnn_trainer::load_data(data.to_str().unwrap(), None, cfg.task.seed)
        .unwrap()
        .test;
    let again = cnn_trainer::evaluate(&model, &*test, &run.preprocess, &device).unwrap();
    assert!(
        (again.accuracy - first.test.accuracy).abs() < 1e-9,
        "{again:?} vs {:?}",
        first.test
    );

    // Mis-uses are clear errors.
    let err = train_run(
        &cfg.clone().with_freeze(cnn_transfer::FreezePolicy::None),
        &device,
        &root.join("e"),
        false,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs `freeze` all"), "{err}");
    let augmented = cfg
        .clone()
        .with_augment(cnn_data_augment::Pipeline::preset("flip").unwrap());
    let err = train_run(&augmented, &device, &root.join("f"), false, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("augmentation cannot apply"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn early_stopping_ends_the_run_when_the_validation_loss_stops_improving() {
    let _rng = rng_lock();
    let root = scratch("early");
    let data = root.join("digits");
    digit_folder(&data);
    // A learning rate far below f32 resolution: the weights never change, so the validation loss
    // never improves on epoch 1 and patience 1 stops the run after epoch 2.
    let cfg = config("lenet5", &data, 5)
        .with_lr(1e-30)
        .with_momentum(0.0)
        .with_early_stop(Some(1));
    let report = train_run(&cfg, &Device::flex(), &root.join("run"), false, &mut |_| {}).unwrap();
    assert_eq!(report.history.len(), 2);
    assert_eq!(report.stop, cnn_trainer::Stop::EarlyStopped { best_epoch: 1 });
    let summary = std::fs::read_to_string(root.join("run/summary.json")).unwrap();
    assert!(
        summary.contains("early stop: no better valid loss since epoch 1"),
        "{summary}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Largest difference between two runs' weights, relative to the largest weight.
fn weight_gap(a: &Path, b: &Path) -> f32 {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.len(), b.len());
    let scale = a.iter().flatten().fold(0f32, |m, v| m.max(v.abs()));
    let gap = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0f32, f32::max);
    gap / scale
}

/// Data-parallel training over two replicas equals one device: the shards' weighted gradients
/// sum to the whole batch's (LeNet-5 has no BatchNorm, so this holds up to float rounding).
#[test]
fn data_parallel_training_matches_one_device() {
    let _rng = rng_lock();
    let root = scratch("parallel");
    let data = root.join("digits");
    digit_folder(&data);
    let cfg = config("lenet5", &data, 2);
    let (one, two) = (root.join("one"), root.join("two"));
    train_run(&cfg, &Device::flex(), &one, false, &mut |_| {}).unwrap();
    let report = train_run_on(&cfg, &[Device::flex(), Device::flex()], &two, false, &mut |_| {}).unwrap();
    assert_eq!(report.history.len(), 2);
    let gap = weight_gap(&one, &two);
    assert!(gap < 1e-4, "two replicas drift from one device by {gap}");
    assert!(gap > 0.0 || weights(&one) == weights(&two));
    // A model with BatchNorm trains too, and its running statistics move.
    let bn = root.join("bn");
    train_run_on(
        &config("resnet20", &data, 1),
        &[Device::flex(), Device::flex()],
        &bn,
        false,
        &mut |_| {},
    )
    .unwrap();
    let model = RunFolder::open(&bn).unwrap().load_model(&Device::flex()).unwrap();
    assert!(parameter_values(&model).iter().flatten().all(|v| v.is_finite()));
    std::fs::remove_dir_all(&root).unwrap();
}

/// The GPU backend as a second replica beside the CPU (software Vulkan in CI).
#[cfg(feature = "wgpu")]
#[test]
fn data_parallel_over_flex_and_wgpu_matches_one_device() {
    let _rng = rng_lock();
    let root = scratch("parallel-gpu");
    let data = root.join("digits");
    digit_folder(&data);
    let cfg = config("lenet5", &data, 1);
    let (one, two) = (root.join("one"), root.join("two"));
    train_run(&cfg, &Device::flex(), &one, false, &mut |_| {}).unwrap();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    train_run_on(&cfg, &[Device::flex(), gpu], &two, false, &mut |_| {}).unwrap();
    let gap = weight_gap(&one, &two);
    assert!(gap < 1e-3, "flex + wgpu drift from flex alone by {gap}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A run folder resumes only as the model that trained it.
#[test]
fn resuming_as_another_model_is_refused_by_name() {
    let _rng = rng_lock();
    let root = scratch("other-model");
    let data = root.join("digits");
    digit_folder(&data);
    let dir = root.join("run");
    train_run(&config("lenet5", &data, 1), &Device::flex(), &dir, false, &mut |_| {}).unwrap();
    let err = train_run(&config("resnet20", &data, 2), &Device::flex(), &dir, true, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("is a run of lenet5; it cannot be resumed as resnet20"),
        "{err}"
    );
    assert_eq!(checkpoint::info(&dir).unwrap().epoch, 1);
    std::fs::remove_dir_all(&root).unwrap();
}

/// `--zero-init-residual`: a ResNet-20 run starts with every block's last batch-norm γ at zero
/// and records the setting; a network without shortcuts refuses it with one clear error.
#[test]
fn zero_init_residual_starts_resnets_as_identities_and_refuses_other_networks() {
    let _lock = rng_lock();
    let (data, dir) = (scratch("zero-init-data"), scratch("zero-init"));
    digit_folder(&data);
    let cfg = config("resnet20", &data, 1).with_zero_init_residual(true).with_lr(1e-9);
    train_run(&cfg, &Device::flex(), &dir, false, &mut |_| {}).unwrap();
    let run = RunFolder::open(&dir).unwrap();
    assert!(run.config.task.zero_init_residual);
    let cnn_models::Model::ResNet(net) = run.load_model(&Device::flex()).unwrap() else {
        panic!("not a ResNet")
    };
    // One epoch at lr 1e-9 leaves each γ within rounding of its zero start.
    for block in net.layer1.iter().chain(&net.layer2).chain(&net.layer3) {
        assert!(block.bn2.gamma.val().abs().max().into_scalar::<f32>() < 1e-6);
        assert!(block.bn1.gamma.val().abs().min().into_scalar::<f32>() > 0.5);
    }
    for model in ["lenet5", "plain20"] {
        let err = train_run(
            &config(model, &data, 1).with_zero_init_residual(true),
            &Device::flex(),
            &scratch("zero-init-refused"),
            false,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("`zero_init_residual`"), "{model}: {err}");
    }
}
