//! Training actually learns, and a run folder holds what it promises.

mod common;

use common::rng_lock;

use burn::module::Module;
use burn::tensor::Device;
use cnn_data_augment::{Preprocess, embedded::mnist_5k};
use cnn_models::LeNet5;
use cnn_trainer::{OptimSettings, OptimizerKind, Progress, TrainConfig, TrainData, evaluate, fit};

#[test]
fn short_run_on_200_digits_lowers_the_loss() {
    let _rng = rng_lock();
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let (train, _) = mnist_5k().unwrap();
    let small = train.subset(&(0..200).collect::<Vec<_>>()).unwrap();
    let pre = Preprocess::mnist(32);
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_seed(7)
        .with_epochs(4)
        .with_batch_size(20);

    device.seed(cfg.task.seed);
    let model = LeNet5::new(10, &autodiff);
    let before = evaluate(&model.valid(), &small, &pre, &device).unwrap();
    let mut batches = 0;
    let (model, history) = fit(
        model,
        TrainData {
            train: std::sync::Arc::new(small.clone()),
            valid: &small,
            pre: &pre,
        },
        &cfg,
        &autodiff,
        &mut |p| {
            if let Progress::Batch { .. } = p {
                batches += 1;
            }
        },
    )
    .unwrap();
    let after = evaluate(&model.valid(), &small, &pre, &device).unwrap();

    assert_eq!(batches, 4 * 10);
    assert_eq!(history.len(), 4);
    assert!(
        after.loss < 0.6 * before.loss,
        "loss {:.4} -> {:.4}",
        before.loss,
        after.loss
    );
    assert!(history[3].train_loss < history[0].train_loss);
    assert!(
        after.accuracy > before.accuracy + 0.3,
        "accuracy {:.3} -> {:.3}",
        before.accuracy,
        after.accuracy
    );
}

#[test]
fn same_seed_gives_the_same_run() {
    let _rng = rng_lock();
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let (train, _) = mnist_5k().unwrap();
    let small = train.subset(&(0..64).collect::<Vec<_>>()).unwrap();
    let pre = Preprocess::mnist(32);
    let cfg = TrainConfig::new("lenet5", "x")
        .with_epochs(2)
        .with_batch_size(16)
        .with_optimizer(OptimizerKind::Sgd)
        .with_lr(0.05);
    let run = || {
        device.seed(3);
        let model = LeNet5::new(10, &autodiff);
        fit(
            model,
            TrainData {
                train: std::sync::Arc::new(small.clone()),
                valid: &small,
                pre: &pre,
            },
            &cfg,
            &autodiff,
            &mut |_| {},
        )
        .unwrap()
        .1
    };
    let (a, b) = (run(), run());
    assert_eq!(a[1].train_loss, b[1].train_loss);
    assert_eq!(a[1].valid_loss, b[1].valid_loss);
}

#[test]
fn absurd_learning_rate_is_reported_as_divergence() {
    let _rng = rng_lock();
    let device = Device::flex();
    let autodiff = device.clone().autodiff();
    let (train, _) = mnist_5k().unwrap();
    let small = train.subset(&(0..128).collect::<Vec<_>>()).unwrap();
    // Whether the loss overflows or the ReLUs die first (and the loss comes back down) depends on
    // the draw: among a few seeds some runs must end as divergence, and each run that fails must
    // fail as one.
    let mut diverged = 0;
    for seed in 0..6 {
        let mut cfg = TrainConfig::new("lenet5", "x");
        cfg.optim = OptimSettings {
            epochs: 3,
            batch_size: 16,
            optimizer: OptimizerKind::Sgd,
            lr: 10.0, // the largest rate the settings accept
            ..cfg.optim
        };
        cfg.task.seed = seed;
        device.seed(seed);
        let model = cnn_models::LeNet5Config::new()
            .with_activation(cnn_models::Activation::Relu)
            .init(&autodiff);
        let data = TrainData {
            train: std::sync::Arc::new(small.clone()),
            valid: &small,
            pre: &Preprocess::mnist(32),
        };
        if let Err(err) = fit(model, data, &cfg, &autodiff, &mut |_| {}) {
            assert!(err.to_string().contains("diverged"), "seed {seed}: {err}");
            diverged += 1;
        }
    }
    assert!(diverged > 0, "no run with learning rate 10 diverged");
}

/// One SGD-with-momentum step on wgpu updates the weights as on flex (same weights, same batch;
/// training mode, so ResNet-20's BatchNorm uses batch statistics and updates its running ones).
#[cfg(feature = "wgpu")]
#[test]
fn a_training_step_on_wgpu_equals_flex() {
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{GradientsParams, SgdConfig, momentum::MomentumConfig};
    use burn::tensor::{DeviceKind, Distribution, Int, Tensor};
    use cnn_models::{BuildOptions, ImageClassifier, build};
    use cnn_trainer::run::checkpoint::parameter_values;

    let _rng = rng_lock();
    let cpu = Device::flex().autodiff();
    let gpu = Device::wgpu(DeviceKind::DefaultDevice).autodiff();
    cpu.seed(7);
    for name in ["lenet5", "resnet20"] {
        let model = build(name, BuildOptions::classes(10), &cpu).unwrap();
        let channels = if name == "lenet5" { 1 } else { 3 };
        let x = Tensor::<4>::random([2, channels, 32, 32], Distribution::Normal(0.0, 1.0), &cpu);
        let y = Tensor::<1, Int>::from_ints([3, 7], &cpu);
        let step = |model: cnn_models::Model, device: &Device| {
            let loss = CrossEntropyLossConfig::new()
                .init(device)
                .forward(model.logits(x.clone().to_device(device)), y.clone().to_device(device));
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let mut sgd = SgdConfig::new().with_momentum(Some(MomentumConfig::new())).init();
            parameter_values(&sgd.step(0.1, model, grads))
        };
        // Independent copies: clones would share BatchNorm's running-state buffers.
        let copy = |device: &Device| {
            build(name, BuildOptions::classes(10), device)
                .unwrap()
                .load_record(model.clone().into_record())
                .fork(device)
        };
        let before = parameter_values(&model);
        let on_cpu = step(copy(&cpu), &cpu);
        let on_gpu = step(copy(&gpu), &gpu);
        let (mut gap, mut moved) = (0f32, 0f32);
        for ((c, g), b) in on_cpu.iter().zip(&on_gpu).zip(&before) {
            for ((c, g), b) in c.iter().zip(g).zip(b) {
                gap = gap.max((c - g).abs());
                moved = moved.max((c - b).abs());
            }
        }
        assert!(moved > 1e-4, "{name}: the step changed nothing");
        // Float sums run in another order on the GPU; BatchNorm over a batch of 2 magnifies
        // that in the gradients, so the bound is relative to the step: within 1% of it.
        assert!(
            gap <= 0.01 * moved,
            "{name}: updated weights differ by {gap} (the step moved them by up to {moved})"
        );
        println!("{name}: wgpu vs flex after one step: max difference {gap:e}, largest move {moved:e}");
    }
}
