//! Every registered model builds at a small input and maps a batch to `[B, classes]`; the ResNet
//! family's parameter counts match the papers; plain twins differ from residual nets only in the
//! forward.

use cnn_models::Network;
use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::keys::tensor_shapes;
use cnn_models::registry::{Family, MODELS};
use cnn_models::{BuildOptions, GoogLeNet, ImageClassifier, ResNet, ResNetConfig, ShortcutKind, build, param_count};

/// A small input that every layer of the family accepts.
fn small_input(family: Family, channels: usize) -> [usize; 3] {
    match family {
        Family::LeNet | Family::LeNetRelu | Family::LeNetSigmoid => [channels, 32, 32],
        Family::AlexNet | Family::AlexNetLrn | Family::AlexNetPaper => [channels, 64, 64],
        Family::GoogLeNet => [channels, 96, 96],
        Family::InceptionModule | Family::InceptionNaive | Family::Conv1x1Example => [channels, 28, 28],
        Family::Vgg(..)
        | Family::ResNet(..)
        | Family::CifarResNet(..)
        | Family::CifarResNetB(..)
        | Family::ResNet9(..) => {
            [channels, 32, 32]
        }
    }
}

#[test]
fn every_model_gives_batch_by_classes_at_a_small_input() {
    let device = Device::flex();
    for info in MODELS {
        let model = build(info.name, BuildOptions::classes(7), &device).unwrap().valid();
        let [c, h, w] = small_input(info.family, info.default_input.channels);
        let x = Tensor::<4>::random([2, c, h, w], Distribution::Default, &device);
        let logits = model.logits(x);
        assert_eq!(logits.dims(), [2, 7], "{}", info.name);
        let finite = logits.is_finite().all().into_scalar::<bool>();
        assert!(finite, "{} gave non-finite logits", info.name);
    }
}

/// The zoo's ResNet-9 names at their widths and parameter counts (the formula is checked in
/// `resnet9.rs`); `resnet9_w7` stays under Fashion-MNIST's 100K-parameter class.
#[test]
fn resnet9_names_have_their_widths_and_parameter_counts() {
    let device = Device::flex();
    for (name, width, params) in [
        ("resnet9", 64, 6_573_130),
        ("resnet9_w32", 32, 1_646_122),
        ("resnet9_w16", 16, 412_954),
        ("resnet9_w7", 7, 79_747),
    ] {
        let info = MODELS.iter().find(|m| m.name == name).unwrap();
        assert_eq!(info.family, Family::ResNet9(width), "{name}");
        let model = build(name, BuildOptions::classes(10), &device).unwrap();
        assert_eq!(param_count(&model), params, "{name}");
    }
}

#[test]
fn grayscale_input_channels_are_configurable() {
    let device = Device::flex();
    for name in ["alexnet", "vgg11", "resnet18", "resnet20", "googlenet"] {
        let info = cnn_models::registry::lookup(name).unwrap();
        let model = build(
            name,
            BuildOptions {
                num_classes: 4,
                in_channels: Some(1),
            },
            &device,
        )
        .unwrap()
        .valid();
        let [_, h, w] = small_input(info.family, 1);
        assert_eq!(
            model.logits(Tensor::zeros([1, 1, h, w], &device)).dims(),
            [1, 4],
            "{name}"
        );
    }
}

#[test]
fn googlenet_training_mode_adds_two_aux_outputs() {
    let device = Device::flex();
    let g = GoogLeNet::googlenet(5, &device);
    let out = g.forward_train(Tensor::zeros([2, 3, 96, 96], &device));
    assert_eq!(out.logits.dims(), [2, 5]);
    assert_eq!(out.aux.len(), 2);
    assert!(out.aux.iter().all(|a| a.dims() == [2, 5]));
    let no_aux = cnn_models::GoogLeNetConfig::new()
        .with_num_classes(5)
        .with_aux_logits(false)
        .init(&device);
    assert_eq!(param_count(&no_aux), 6_624_904 - 1024 * 1000 - 1000 + 1024 * 5 + 5);
    assert!(
        no_aux
            .forward_train(Tensor::zeros([1, 3, 96, 96], &device))
            .aux
            .is_empty()
    );
}

#[test]
fn cifar_resnet_parameter_counts_match_the_paper() {
    let device = Device::flex();
    // He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-56 0.85M (option A: no shortcut weights).
    assert_eq!(param_count(&ResNet::resnet_cifar(20, 10, &device)), 269_722);
    assert_eq!(param_count(&ResNet::resnet_cifar(56, 10, &device)), 853_018);
    // Option B adds a 1x1 projection + BN where the shape changes (twice).
    let b = ResNetConfig::cifar(3, ShortcutKind::Projection).init(&device);
    assert_eq!(param_count(&b), 269_722 + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64));
}

#[test]
fn plain_twins_share_parameters_and_differ_in_the_forward() {
    let device = Device::flex();
    for (res, plain) in [
        ("resnet20", "plain20"),
        ("resnet56", "plain56"),
        ("resnet110", "plain110"),
    ] {
        let r = build(res, BuildOptions::classes(10), &device).unwrap();
        let p = build(plain, BuildOptions::classes(10), &device).unwrap();
        assert_eq!(tensor_shapes(&r), tensor_shapes(&p), "{res} vs {plain}");
        assert_eq!(param_count(&r), param_count(&p));
    }
    // Same weights, different forward: the shortcut is the only difference.
    let r = build("resnet20", BuildOptions::classes(10), &device).unwrap().valid();
    let p = build("plain20", BuildOptions::classes(10), &device)
        .unwrap()
        .load_record(r.clone().into_record())
        .valid();
    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
    let diff = (r.logits(x.clone()) - p.logits(x)).abs().max().into_scalar::<f32>();
    assert!(diff > 1e-4, "plain and residual gave the same output");
    // The ImageNet plain twin drops only the projection shortcuts.
    let r34 = build("resnet34", BuildOptions::classes(10), &device).unwrap();
    let p34 = build("plain34", BuildOptions::classes(10), &device).unwrap();
    let projections: usize = tensor_shapes(&r34)
        .iter()
        .filter(|(k, _)| k.contains("downsample") && !k.contains("running"))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(param_count(&r34), param_count(&p34) + projections);
}

#[test]
fn alexnet_options_follow_the_paper() {
    let device = Device::flex();
    let base = cnn_models::AlexNet::alexnet(1000, &device);
    assert_eq!(param_count(&base), 61_100_840);
    let grouped = cnn_models::AlexNetConfig::new().with_two_gpu_groups(true).init(&device);
    // conv2, conv4 and conv5 lose half their weights (not their biases).
    let halved = (64 * 192 * 25 + 384 * 256 * 9 + 256 * 256 * 9) / 2;
    assert_eq!(param_count(&grouped), 61_100_840 - halved);
    let lrn = cnn_models::AlexNetConfig::new()
        .with_local_response_norm(true)
        .with_num_classes(3)
        .init(&device);
    assert_eq!(lrn.features.len(), 15);
    assert_eq!(lrn.forward(Tensor::zeros([1, 3, 64, 64], &device)).dims(), [1, 3]);
}

#[test]
fn googlenet_transform_input_renormalises_imagenet_input() {
    let device = Device::flex();
    let plain = cnn_models::GoogLeNetConfig::new().with_num_classes(3).init(&device);
    let transformed = cnn_models::GoogLeNetConfig::new()
        .with_num_classes(3)
        .with_transform_input(true)
        .init(&device);
    let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
    // torchvision: x_c * (std_c / 0.5) + (mean_c - 0.5) / 0.5
    let manual: Vec<Tensor<4>> = [(0.229f32, 0.485f32), (0.224, 0.456), (0.225, 0.406)]
        .iter()
        .enumerate()
        .map(|(c, &(std, mean))| {
            x.clone()
                .narrow(1, c, 1)
                .mul_scalar(std / 0.5)
                .add_scalar((mean - 0.5) / 0.5)
        })
        .collect();
    let diff = (transformed.transform(x.clone()) - Tensor::cat(manual, 1))
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
    let same = (plain.transform(x.clone()) - x).abs().max().into_scalar::<f32>();
    assert_eq!(same, 0.0);
    // One channel: nothing to re-normalise.
    let gray = cnn_models::GoogLeNetConfig::new()
        .with_in_channels(1)
        .with_transform_input(true)
        .init(&device);
    assert!(!gray.transform_input);
}

#[test]
fn head_of_backbone_is_the_forward_pass() {
    let device = Device::flex();
    for (name, size) in [
        ("lenet5", 32),
        ("alexnet", 64),
        ("vgg11_bn", 32),
        ("resnet20", 32),
        ("resnet18", 32),
        ("googlenet", 64),
    ] {
        let info = cnn_models::registry::lookup(name).unwrap();
        let model = cnn_models::build(name, cnn_models::BuildOptions::classes(5), &device).unwrap();
        let x = burn::tensor::Tensor::<4>::random(
            [2, info.default_input.channels, size, size],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let whole = cnn_models::ImageClassifier::logits(&model, x.clone()).into_data();
        let split = model.head(model.backbone(x).unwrap()).into_data();
        whole.assert_approx_eq::<f32>(&split, burn::tensor::Tolerance::absolute(1e-5));
    }
}

#[test]
fn with_num_classes_replaces_only_the_final_classifier() {
    let device = Device::flex();
    for (name, size) in [
        ("lenet5", 32),
        ("alexnet", 64),
        ("vgg11", 32),
        ("resnet18", 32),
        ("googlenet", 64),
    ] {
        let info = cnn_models::registry::lookup(name).unwrap();
        let model = build(name, BuildOptions::classes(10), &device).unwrap();
        let before = cnn_models::keys::tensor_shapes(&model);
        let x = Tensor::<4>::random(
            [2, info.default_input.channels, size, size],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let features = model.backbone(x.clone()).unwrap().into_data();
        let model = model.with_num_classes(7, &device);
        let after = cnn_models::keys::tensor_shapes(&model);
        // Same tensors apart from the head(s), whose outputs are now 7.
        let changed: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
        assert!(
            !changed.is_empty() && changed.iter().all(|k| k.contains("fc") || k.starts_with("classifier.")),
            "{name}: {changed:?}"
        );
        assert_eq!(ImageClassifier::logits(&model, x.clone()).dims(), [2, 7], "{name}");
        // The backbone is untouched.
        model.backbone(x).unwrap().into_data().assert_eq(&features, true);
    }
}

/// The GPU backend computes what the CPU backend computes: every registered model, same weights,
/// inference mode, batch 2 at a small input (software Vulkan in CI).
///
/// AlexNet's and VGG's first fully connected layers (9216x4096 and 25088x4096 floats: 151 and
/// 411 MB) exceed the 128 MiB that Mesa's software Vulkan driver can bind as one storage buffer
/// (`maxStorageBufferRange`), so on such an adapter their convolutional part (`features` then
/// `avgpool`) is compared instead; real GPUs bind gigabytes and run the whole model.
#[cfg(feature = "wgpu")]
#[test]
fn every_model_on_wgpu_equals_flex() {
    use cnn_models::Model;
    use cnn_models::layers::forward_seq;

    fn outputs(model: &Model, x: Tensor<4>, whole: bool) -> Vec<f32> {
        let out = match model {
            Model::AlexNet(m) if !whole => m.avgpool.forward(forward_seq(&m.features, x)).flatten(1, 3),
            Model::Vgg(m) if !whole => m.avgpool.forward(forward_seq(&m.features, x)).flatten(1, 3),
            _ => model.logits(x),
        };
        out.into_data().try_to_vec::<f32>().unwrap()
    }

    let cpu = Device::flex();
    let gpu = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    for info in MODELS {
        let model = build(info.name, BuildOptions::classes(5), &cpu).unwrap().valid();
        let whole = !matches!(
            info.family,
            Family::AlexNet | Family::AlexNetLrn | Family::AlexNetPaper | Family::Vgg(..)
        );
        let [c, h, w] = small_input(info.family, info.default_input.channels);
        let x = Tensor::<4>::random([2, c, h, w], Distribution::Normal(0.0, 1.0), &cpu);
        let on_cpu = outputs(&model, x.clone(), whole);
        let on_gpu = outputs(&model.to_device(&gpu), x.to_device(&gpu), whole);
        assert_eq!(on_cpu.len(), on_gpu.len());
        let gap = on_cpu
            .iter()
            .zip(&on_gpu)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(gap <= 1e-3, "{}: wgpu differs from flex by {gap}", info.name);
    }
}

/// Every model's inference logits with bf16 convolutions (`--precision bf16`) against f32, on the
/// same weights and batch: within 1% of the largest logit (bf16 keeps 8 bits of each operand, the
/// products are summed in f32; at most 0.41% in a run at two images, `resnet9_w32`), and not equal wherever
/// the logits depend on the input at all (the bf16 path really ran). Several random-init
/// networks pass almost nothing through in eval mode (the plain twins, VGG, GoogLeNet: their
/// logits move by 1e-10 to 1e-5 between two inputs), so the test checks the logits' size, and
/// trained runs' accuracy is checked with `cnn eval --precision bf16` (docs/performance.md).
#[test]
fn every_model_in_bf16_gives_the_f32_logits_within_one_percent() {
    use cnn_models::precision::{Precision, with};

    let device = Device::flex();
    for info in MODELS {
        let model = build(info.name, BuildOptions::classes(7), &device).unwrap().valid();
        let [c, h, w] = small_input(info.family, info.default_input.channels);
        // Six images: enough output columns that bf16 pays for a convolution of every family
        // (`bf16_pays`: 512 columns, 16 channels), LeNet-5's second (10×10) included.
        let x = Tensor::<4>::random([6, c, h, w], Distribution::Normal(0.0, 1.0), &device);
        let other = Tensor::<4>::random([6, c, h, w], Distribution::Normal(0.0, 1.0), &device);
        let f32_logits = with(Precision::F32, || model.logits(x.clone()));
        let signal = (f32_logits.clone() - model.logits(other)).abs().max().into_scalar::<f32>();
        let bf16_logits = with(Precision::Bf16, || model.logits(x));
        let size = f32_logits.clone().abs().max().into_scalar::<f32>();
        let gap = (f32_logits - bf16_logits).abs().max().into_scalar::<f32>();
        assert!(gap <= 0.01 * size, "{}: bf16 logits {gap} off, logits up to {size}", info.name);
        assert!(signal <= 1e-6 * size || gap > 0.0, "{}: bf16 changed nothing", info.name);
    }
}
