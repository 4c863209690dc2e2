//! The modern recipe's parts: gradient accumulation against a larger batch, label smoothing,
//! mixup, cutmix, accumulation, RandAugment and random erasing together on every family the
//! recipe is meant for, and the
//! learning-rate finder.

mod common;

use common::rng_lock;

use burn::tensor::Device;
use cnn_data_augment::{Preprocess, Source, embedded::mnist_5k};
use cnn_models::{ImageClassifier, LeNet5, LeNet5Config};
use cnn_trainer::run::checkpoint::parameter_values;
use cnn_trainer::run::lr_find::{LrSweep, lr_find, write_finding};
use cnn_trainer::{
    OptimizerKind, Progress, TestViews, TrainConfig, TrainData, fit, mirrored_logits, shift_images, train_run, view_logits,
};

#[test]
fn accumulating_k_batches_makes_the_update_of_one_k_times_larger_batch() {
    let _rng = rng_lock();
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let (train, _) = mnist_5k().unwrap();
    let small = std::sync::Arc::new(train.subset(&(0..64).collect::<Vec<_>>()).unwrap());
    let pre = Preprocess::mnist(32);
    // Plain SGD at a rate large enough to move the weights; LeNet-5 has no batch-norm.
    let base = TrainConfig::new("lenet5", "x")
        .with_epochs(1)
        .with_optimizer(OptimizerKind::Sgd)
        .with_momentum(0.0)
        .with_lr(0.5);
    let train_with = |batch_size: usize, accumulate: usize| {
        let cfg = base.clone().with_batch_size(batch_size).with_accumulate(accumulate);
        device.seed(11);
        let model = LeNet5::new(10, &autodiff);
        let data = TrainData {
            train: small.clone(),
            valid: &*small,
            pre: &pre,
        };
        let mut updates = 0;
        let (model, _) = fit(model, data, &cfg, &autodiff, &mut |p| {
            if let Progress::Batch { .. } = p {
                updates += 1;
            }
        })
        .unwrap();
        (parameter_values(&model), updates)
    };
    // Two updates of 32 images each way: one batch of 32, or four of 8 summed.
    let (large, batches_large) = train_with(32, 1);
    let (accumulated, batches_accumulated) = train_with(8, 4);
    assert_eq!((batches_large, batches_accumulated), (2, 8));
    device.seed(11);
    let start = parameter_values(&LeNet5::new(10, &autodiff));
    let mut moved = 0f32;
    for ((a, b), s) in large
        .iter()
        .flatten()
        .zip(accumulated.iter().flatten())
        .zip(start.iter().flatten())
    {
        assert!((a - b).abs() < 2e-5, "{a} vs {b}");
        moved = moved.max((a - s).abs());
    }
    assert!(moved > 1e-2, "the updates hardly moved the weights ({moved})");
}

#[test]
fn every_part_of_the_recipe_trains_lenet5_resnet20_resnet18_and_googlenet() {
    let _rng = rng_lock();
    let root: common::Scratch = common::scratch("recipe", "families");
    for model in ["lenet5", "resnet20", "resnet18", "googlenet"] {
        let cfg = TrainConfig::new(model, "mnist-5k")
            .with_subset(Some(40))
            .with_valid_split(0.2)
            .with_input_size(Some(if model == "googlenet" { 64 } else { 32 }))
            .with_epochs(1)
            .with_batch_size(8)
            .with_optimizer(OptimizerKind::Sgd)
            .with_lr(0.01)
            .with_nesterov(true)
            .with_weight_decay(5e-4)
            .with_decay_weights_only(true)
            .with_label_smoothing(0.1)
            .with_mixup(Some(0.2))
            .with_cutmix(Some(1.0))
            .with_accumulate(2)
            .with_ema(Some(0.9))
            .with_augment(
                cnn_data_augment::Pipeline::from_toml(
                    "[[ops]]\nop = \"rand_augment\"\n\n[[ops]]\nop = \"random_erasing\"\np = 1.0\n",
                )
                .unwrap(),
            )
            .with_workers(1);
        let dir = root.join(model);
        let report = train_run(&cfg, &Device::flex(), &dir, false, &mut |_| {}).unwrap();
        let epoch = &report.history[0];
        assert!(
            epoch.train_loss.is_finite() && epoch.valid_loss.is_finite(),
            "{model}: {epoch:?}"
        );
        assert_eq!(cnn_trainer::RunFolder::open(&dir).unwrap().config, cfg, "{model}");
        let ema_accuracy = epoch.ema_valid_accuracy.expect("the average is validated");
        // The test used the average exactly when it validated better, and the run says which.
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        let chosen = if ema_accuracy > epoch.valid_accuracy {
            "model-ema.bpk"
        } else {
            "model.bpk"
        };
        assert_eq!(summary["final_weights"], chosen, "{model}");
        assert!(dir.join("model-ema.bpk").is_file() && dir.join("model.bpk").is_file());
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert!(
            csv.lines()
                .next()
                .unwrap()
                .ends_with(",ema_valid_loss,ema_valid_accuracy"),
            "{csv}"
        );
    }
}

#[test]
fn the_lr_finder_sweeps_until_the_loss_explodes_and_suggests_a_rate_where_it_falls() {
    let _rng = rng_lock();
    let root: common::Scratch = common::scratch("recipe", "lr-find");
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_subset(Some(2000))
        .with_optimizer(OptimizerKind::Sgd)
        .with_momentum(0.9)
        .with_workers(1);
    let sweep = LrSweep {
        steps: 120,
        start: 1e-4,
        end: 100.0,
    };
    let finding = lr_find(&cfg, &sweep, &Device::flex(), &mut |_| {}).unwrap();
    // Rates up to 100 blow SGD up well before the end of the sweep.
    assert!(
        finding.exploded && finding.points.len() < 120,
        "{} updates",
        finding.points.len()
    );
    let lr = finding.suggested.expect("the loss fell");
    assert!((1e-3..=3.0).contains(&lr), "{lr}");
    let at = finding.points.iter().find(|p| p.lr == lr).unwrap();
    assert!(at.smoothed < finding.points[0].smoothed, "{at:?}");
    write_finding(&root, &finding, "LeNet-5").unwrap();
    let csv = std::fs::read_to_string(root.join("lr-find.csv")).unwrap();
    assert_eq!(csv.lines().count(), finding.points.len() + 1);
    let png = image::open(root.join("lr-find.png")).unwrap();
    assert_eq!((png.width(), png.height()), (900, 560));
}

#[test]
fn test_flipping_averages_each_image_with_its_mirror_in_training_and_in_cnn_eval() {
    let _rng = rng_lock();
    let root: common::Scratch = common::scratch("recipe", "test-flip");
    let device = Device::flex();
    // mirrored_logits: softmax of the result is the mean of the two predictions' probabilities.
    let (model, images) = untrained_lenet_and_digits(6, &device);
    let averaged = probs(mirrored_logits(&model, images.clone(), true));
    let expected = (probs(model.logits(images.clone())) + probs(model.logits(images.clone().flip([3])))) / 2.0;
    let diff = (averaged - expected).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
    assert_eq!(
        mirrored_logits(&model, images.clone(), false).into_data(),
        model.logits(images).into_data()
    );
    // A run with --test-flip validates and tests that way, and `cnn eval` reports its figure.
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_subset(Some(300))
        .with_epochs(1)
        .with_optimizer(OptimizerKind::Sgd)
        .with_lr(0.05)
        .with_test_flip(true)
        .with_workers(1);
    let dir = root.join("run");
    let report = train_run(&cfg, &device, &dir, false, &mut |_| {}).unwrap();
    let run = cnn_trainer::RunFolder::open(&dir).unwrap();
    let eval = cnn_trainer::evaluate_runs(std::slice::from_ref(&run), None, None, false, &device).unwrap();
    assert_eq!(eval.single.summary.accuracy, report.test.accuracy);
    let model = run.load_model(&device).unwrap();
    let plain = cnn_trainer::evaluate(&model, &*test_set(), &run.preprocess, &device).unwrap();
    let flipped =
        cnn_trainer::evaluate_views(&model, &*test_set(), &run.preprocess, TestViews::mirror(), &device).unwrap();
    assert_eq!(flipped.accuracy, report.test.accuracy);
    assert_ne!(plain.loss, flipped.loss, "the mirrors changed nothing");
    // Cached features are of the unflipped images: the two do not mix.
    let cached = cfg.clone().with_cache_features(true).with_freeze(cnn_transfer::FreezePolicy::All);
    let err = cached.validate().unwrap_err().to_string();
    assert!(err.contains("test_flip"), "{err}");
}

#[test]
fn test_shifts_average_the_shifted_and_mirrored_views_in_training_and_in_cnn_eval() {
    let _rng = rng_lock();
    let root: common::Scratch = common::scratch("recipe", "test-shift");
    let device = Device::flex();
    let (model, images) = untrained_lenet_and_digits(5, &device);
    let test = TestViews { mirror: true, shift: 2 };
    let averaged = probs(view_logits(&model, images.clone(), test));
    let mut expected = probs(model.logits(images.clone()));
    for view in [
        images.clone().flip([3]),
        shift_images(images.clone(), 2),
        shift_images(images.clone(), 2).flip([3]),
        shift_images(images.clone(), -2),
        shift_images(images.clone(), -2).flip([3]),
    ] {
        expected = expected + probs(model.logits(view));
    }
    let diff = (averaged - expected / 6.0).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
    // A run with --test-shift validates and tests on the shifted views, and `cnn eval` (image by
    // image) reports the same figure.
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_subset(Some(300))
        .with_epochs(1)
        .with_optimizer(OptimizerKind::Sgd)
        .with_lr(0.05)
        .with_test_shift(1)
        .with_workers(1);
    let dir = root.join("run");
    let report = train_run(&cfg, &device, &dir, false, &mut |_| {}).unwrap();
    let run = cnn_trainer::RunFolder::open(&dir).unwrap();
    let eval = cnn_trainer::evaluate_runs(std::slice::from_ref(&run), None, None, false, &device).unwrap();
    assert!((eval.single.summary.loss - report.test.loss).abs() < 1e-5, "{eval:?} {report:?}");
    assert_eq!(eval.single.summary.accuracy, report.test.accuracy);
    let model = run.load_model(&device).unwrap();
    let plain = cnn_trainer::evaluate(&model, &*test_set(), &run.preprocess, &device).unwrap();
    assert_ne!(plain.loss, report.test.loss, "the shifts changed nothing");
    // Shifts beyond 8 pixels are a typo.
    let err = cfg.with_test_shift(9).validate().unwrap_err().to_string();
    assert!(err.contains("test_shift") && err.contains("at most 8"), "{err}");
}

/// A freshly initialised LeNet-5 and the first `n` training digits as one batch.
fn untrained_lenet_and_digits(n: usize, device: &Device) -> (LeNet5, burn::tensor::Tensor<4>) {
    let (train, _) = mnist_5k().unwrap();
    let samples: Vec<_> = (0..n).map(|i| train.get(i).unwrap()).collect();
    let batch = cnn_data_augment::Batch::from_images(&samples, &Preprocess::mnist(32)).unwrap();
    (LeNet5Config::new().init(device), batch.to_device(device).0)
}

fn probs(logits: burn::tensor::Tensor<2>) -> burn::tensor::Tensor<2> {
    burn::tensor::activation::softmax(logits, 1)
}

fn test_set() -> Box<dyn cnn_data_augment::Source> {
    let (_, test) = mnist_5k().unwrap();
    Box::new(test)
}
