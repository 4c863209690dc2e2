//! torchvision's `zero_init_residual`: with the last batch-norm γ of a residual block at zero,
//! the block computes exactly the identity on non-negative inputs — `a[l+2] = g(a[l]) = a[l]` —
//! in training and in inference mode, for basic and bottleneck blocks.

use burn::tensor::{Device, Distribution, Tensor, activation::relu};
use cnn_models::resnet::{BlockKind, ResNetConfig, ShortcutKind};

mod common;
use common::serial;

fn bits(t: Tensor<4>) -> Vec<u32> {
    t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

#[test]
fn a_zero_initialised_block_is_the_identity_on_non_negative_inputs() {
    let _serial = serial();
    for device in [Device::flex(), Device::flex().autodiff()] {
        device.seed(5);
        // ResNet-20's first block (basic, 16 → 16) and ResNet-50's second (bottleneck, 256 → 256).
        let cifar = ResNetConfig::cifar(1, ShortcutKind::ZeroPad)
            .with_zero_init_residual(true)
            .init(&device);
        let bottleneck = ResNetConfig::imagenet(BlockKind::Bottleneck, [2, 1, 1, 1])
            .with_zero_init_residual(true)
            .init(&device);
        for (block, channels) in [(&cifar.layer1[0], 16), (&bottleneck.layer1[1], 256)] {
            let x = relu(Tensor::<4>::random([4, channels, 8, 8], Distribution::Normal(0.0, 1.0), &device));
            assert_eq!(bits(block.forward(x.clone())), bits(x), "{channels} channels");
        }
        // Without the option the same block changes its input.
        let plain = ResNetConfig::cifar(1, ShortcutKind::ZeroPad).init(&device);
        let x = relu(Tensor::<4>::random([4, 16, 8, 8], Distribution::Normal(0.0, 1.0), &device));
        assert_ne!(bits(plain.layer1[0].forward(x.clone())), bits(x));
    }
}

#[test]
fn the_option_zeroes_only_the_last_gamma_of_each_block() {
    let device = Device::flex();
    let net = ResNetConfig::cifar(3, ShortcutKind::ZeroPad).init(&device).zero_init_residual();
    for block in net.layer1.iter().chain(&net.layer2).chain(&net.layer3) {
        assert_eq!(block.bn2.gamma.val().abs().sum().into_scalar::<f32>(), 0.0);
        assert!(block.bn1.gamma.val().abs().sum().into_scalar::<f32>() > 0.0);
    }
    assert!(net.bn1.gamma.val().abs().sum().into_scalar::<f32>() > 0.0);
}

#[test]
fn appended_identity_blocks_change_no_logit_and_plain_blocks_do() {
    use cnn_models::resnet::AppendedBlock;
    let _serial = serial();
    let device = Device::flex();
    device.seed(9);
    let net = ResNetConfig::cifar(1, ShortcutKind::ZeroPad).init(&device);
    let x = Tensor::<4>::random([3, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let logits = |n: &cnn_models::resnet::ResNet| n.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
    let want = logits(&net);
    let deeper = net.clone().append_blocks(2, AppendedBlock::Identity, &device);
    assert_eq!((net.block_count(), deeper.block_count()), (3, 5));
    assert_eq!(deeper.layer3.len(), 3, "appended to the last stage");
    let got = logits(&deeper);
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    let plain = net.append_blocks(2, AppendedBlock::Plain, &device);
    assert!(!plain.layer3[2].residual);
    assert_ne!(logits(&plain), want);
}
