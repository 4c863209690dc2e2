//! The max pooling kernel (`cnn_models::fast_pool`) against burn's own operation, forward and
//! backward, at the zoo's pooling layers and in whole networks. The kernel picks the same value
//! at the same place as burn, so everything here must be equal exactly, not just close.

mod common;

use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fast_pool;
use common::{Kernel, check_network, max_gap, serial};

/// `(input dims, kernel, stride, padding, ceil_mode)` of the zoo's poolings.
const LAYERS: [([usize; 4], usize, usize, usize, bool); 7] = [
    ([8, 64, 32, 32], 3, 2, 1, false), // ResNet-18's stem at 64 px
    ([4, 64, 32, 32], 2, 2, 0, false), // VGG
    ([4, 64, 55, 55], 3, 2, 0, false), // AlexNet's features at 224 px
    ([4, 64, 48, 48], 3, 2, 0, true),  // GoogLeNet at 96 px (ceil)
    ([4, 192, 12, 12], 3, 1, 1, true), // an inception branch
    ([8, 16, 32, 32], 1, 2, 0, false), // ResNet-20's shortcut subsampling
    ([2, 6, 28, 28], 2, 2, 0, false),  // LeNet-5
];

/// Output and input gradient of one pooling, the kernel on or off, on `x`.
fn pass(on: bool, x: &Tensor<4>, kernel: usize, stride: usize, padding: usize, ceil: bool) -> (Tensor<4>, Tensor<4>) {
    let pool = MaxPool2dConfig::new([kernel, kernel])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_ceil_mode(ceil)
        .init();
    let x = x.clone().require_grad();
    let out = fast_pool::with_fast_pool(on, || fast_pool::max_pool2d(&pool, x.clone()));
    let upstream = Tensor::<4>::random(out.dims(), Distribution::Normal(0.0, 1.0), &x.device());
    let grads = (out.clone() * upstream).sum().backward();
    (out, x.grad(&grads).expect("x takes part"))
}

#[test]
fn every_zoo_pooling_equals_burns_forward_and_backward() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    for (dims, kernel, stride, padding, ceil) in LAYERS {
        // Normal values, then whole numbers with many ties (the first of equal values wins).
        let normal = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let ties = Tensor::<4>::random(dims, Distribution::Uniform(0.0, 4.0), &device).floor();
        for x in [normal, ties] {
            let before = fast_pool::calls();
            device.seed(21);
            let (out, dx) = pass(true, &x, kernel, stride, padding, ceil);
            assert!(fast_pool::calls() > before, "{dims:?}: the kernel did not run");
            device.seed(21);
            let (want, want_dx) = pass(false, &x, kernel, stride, padding, ceil);
            let case = format!("{dims:?} k{kernel} s{stride} p{padding} ceil {ceil}");
            assert_eq!(out.dims(), want.dims(), "{case}: output shape");
            assert_eq!(max_gap(want, out), 0.0, "{case}: output");
            assert_eq!(max_gap(want_dx, dx), 0.0, "{case}: input gradient");
        }
    }
}

#[test]
fn inference_without_autodiff_equals_burns() {
    let _serial = serial();
    let device = Device::flex();
    let x = Tensor::<4>::random([4, 8, 17, 17], Distribution::Normal(0.0, 1.0), &device);
    let pool = MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_ceil_mode(true)
        .init();
    let before = fast_pool::calls();
    let fast = fast_pool::max_pool2d(&pool, x.clone());
    assert!(fast_pool::calls() > before, "the kernel did not run");
    assert_eq!(max_gap(pool.forward(x), fast), 0.0);
}

#[test]
fn resnet18_logits_and_gradients_equal_with_the_kernel_off() {
    let _serial = serial();
    check_network(Kernel::FastPool, "resnet18", [4, 3, 64, 64], 0.0, Some(0.0));
}

#[test]
fn googlenet_logits_and_gradients_equal_with_the_kernel_off() {
    let _serial = serial();
    check_network(Kernel::FastPool, "googlenet", [2, 3, 64, 64], 0.0, Some(0.0));
}

#[test]
fn vgg11_logits_and_gradients_equal_with_the_kernel_off() {
    let _serial = serial();
    check_network(Kernel::FastPool, "vgg11", [2, 3, 32, 32], 0.0, Some(0.0));
}

/// ResNet-20's shortcuts subsample through the kernel (a 1×1 window at stride 2).
#[test]
fn resnet20_logits_and_gradients_equal_with_the_kernel_off() {
    let _serial = serial();
    check_network(Kernel::FastPool, "resnet20", [4, 3, 32, 32], 0.0, Some(0.0));
}

/// Average pooling over unpadded windows (LeNet-5's subsampling, and overlapping windows) equals
/// burn's exactly, forward and backward.
#[test]
fn average_pooling_equals_burns_forward_and_backward() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    for (dims, kernel, stride) in [
        ([8, 6, 28, 28], 2, 2),
        ([4, 16, 10, 10], 2, 2),
        ([2, 5, 9, 11], 3, 1),
        ([2, 5, 9, 11], 3, 2),
    ] {
        let pool = burn::nn::pool::AvgPool2dConfig::new([kernel, kernel])
            .with_strides([stride, stride])
            .init();
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
        let pass = |on: bool| {
            let x = x.clone().require_grad();
            let out = fast_pool::with_fast_pool(on, || fast_pool::avg_pool2d(&pool, x.clone()));
            device.seed(4);
            let upstream = Tensor::<4>::random(out.dims(), Distribution::Normal(0.0, 1.0), &device);
            let grads = (out.clone() * upstream).sum().backward();
            (out, x.grad(&grads).expect("x takes part"))
        };
        let (out, dx) = pass(true);
        let (want, want_dx) = pass(false);
        assert_eq!(out.dims(), want.dims(), "{dims:?} k{kernel} s{stride}");
        assert_eq!(max_gap(want, out), 0.0, "{dims:?} k{kernel} s{stride}: output");
        assert_eq!(
            max_gap(want_dx, dx),
            0.0,
            "{dims:?} k{kernel} s{stride}: input gradient"
        );
    }
}

/// LeNet-5 (average-pooling subsampling) through both pooling kernels.
#[test]
fn lenet5_logits_and_gradients_equal_with_the_kernel_off() {
    let _serial = serial();
    check_network(Kernel::FastPool, "lenet5", [8, 1, 32, 32], 0.0, Some(0.0));
}
