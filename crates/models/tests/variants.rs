//! The papers' variants by name: each builds, summarises, trains one step, and saves and
//! reloads; the paper AlexNet's parameter count and the course's multiplication counts are
//! pinned.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Distribution, Int, Tensor};
use cnn_models::{BuildOptions, ImageClassifier, build, param_count, registry};

const VARIANTS: [&str; 8] = [
    "lenet5_sigmoid",
    "alexnet_lrn",
    "alexnet_paper",
    "resnet20b",
    "resnet56b",
    "inception_naive",
    "conv1x1_example",
    "inception_module",
];

/// A small input every layer of `name` takes.
fn input_shape(name: &str) -> [usize; 4] {
    let info = registry::lookup(name).unwrap();
    let size = match info.default_input.size {
        224 => 64,
        s => s,
    };
    [2, info.default_input.channels, size, size]
}

#[test]
fn every_variant_trains_one_step_and_reloads_exactly() {
    let dir = cnn_testkit::scratch("variants", "variants");
    std::fs::create_dir_all(&dir).unwrap();
    for name in VARIANTS {
        let inference = Device::flex();
        inference.seed(5);
        let input = Tensor::<4>::random(input_shape(name), Distribution::Normal(0.0, 1.0), &inference);
        let device = inference.clone().autodiff();
        device.seed(3);
        let model = build(name, BuildOptions::classes(5), &device).unwrap();
        let summary = model.summary(registry::lookup(name).unwrap().default_input.shape());
        assert_eq!(summary.total_params(), param_count(&model), "{name}");
        let x = input.clone().to_device(&device);
        let labels = Tensor::<1, Int>::from_ints([1, 3], &device);
        let loss = CrossEntropyLossConfig::new().init(&device).forward(model.logits(x.clone()), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut sgd: ModuleOptimizer = SgdConfig::new().init();
        let trained = sgd.step(0.1, model, grads).valid();
        let before = trained.logits(input.clone()).into_data();
        let path = dir.join(format!("{name}.bpk"));
        trained.save_into(&mut BurnpackStore::from_file(&path)).unwrap();
        inference.seed(99);
        let mut fresh = build(name, BuildOptions::classes(5), &inference).unwrap();
        fresh.load_from(&mut BurnpackStore::from_file(&path)).unwrap();
        assert_eq!(fresh.logits(input).into_data(), before, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_paper_alexnet_has_60_965_224_parameters_and_lrn_adds_none() {
    let device = Device::flex();
    let count = |name: &str| param_count(&build(name, BuildOptions::classes(1000), &device).unwrap());
    assert_eq!(count("alexnet_paper"), 60_965_224);
    assert_eq!(count("alexnet_lrn"), 61_100_840);
    assert_eq!(count("alexnet"), 61_100_840);
    // Option B adds a 1×1 projection and its batch norm where the width doubles: 16→32, 32→64.
    let b_extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64);
    let cifar = |name: &str| param_count(&build(name, BuildOptions::classes(10), &device).unwrap());
    assert_eq!(cifar("resnet20b"), cifar("resnet20") + b_extra);
    assert_eq!(cifar("resnet20"), 269_722);
    assert_eq!(cifar("lenet5_sigmoid"), 61_706);
}

#[test]
fn the_naive_inception_module_and_the_1x1_example_show_the_course_s_costs() {
    let device = Device::flex();
    let rows_sum = |name: &str, prefix: &str| -> u64 {
        let model = build(name, BuildOptions::classes(10), &device).unwrap();
        let s = model.summary([192, 28, 28]);
        s.rows_under(prefix).map(|r| r.mult_adds).sum()
    };
    // The 5×5 branch: 32 filters on all 192 channels, or after a 16-filter 1×1 bottleneck.
    assert_eq!(rows_sum("inception_naive", "inception.branch3"), 120_422_400);
    assert_eq!(rows_sum("inception_module", "inception.branch3"), 12_443_648);
    assert_eq!(rows_sum("conv1x1_example", "conv"), 4_816_896);
    let out = build("conv1x1_example", BuildOptions::classes(10), &device).unwrap().summary([192, 28, 28]);
    assert_eq!(out.rows[0].output, cnn_models::summary::OutShape::Map([32, 28, 28]));
}
