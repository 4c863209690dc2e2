//! The fast flex convolution (`cnn_models::fast_conv`) against burn's own, forward and backward:
//! single layers of every kind our models use, then whole networks, with the kernel's call
//! counter showing the fast path really ran.

mod common;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fast_conv::{self, kernel};
use cnn_models::{BuildOptions, ImageClassifier, build};
use common::{Kernel, check_network, max_gap, scale, serial};

/// Forward output and the gradients of input, weight and bias agree within `1e-4` of their size.
fn check_layer(conv: &Conv2d, x_dims: [usize; 4]) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random(x_dims, Distribution::Normal(0.0, 1.0), &device).require_grad();
    let plain = conv.forward(x.clone());
    let before = kernel::calls();
    let fast = fast_conv::with_fast_conv(true, || fast_conv::conv2d(conv, x.clone()));
    assert_eq!(plain.dims(), fast.dims(), "{x_dims:?}");
    let after_forward = kernel::calls();
    assert!(
        after_forward[0] > before[0],
        "the fast kernel did not run for {x_dims:?}"
    );
    let rel = max_gap(plain.clone(), fast.clone()) / scale(plain.clone());
    assert!(rel <= 1e-5, "{x_dims:?}: forward relative gap {rel}");

    // A random upstream gradient, the same for both.
    let upstream = Tensor::<4>::random(plain.dims(), Distribution::Normal(0.0, 1.0), &device);
    let g_plain = (plain * upstream.clone()).sum().backward();
    let g_fast = (fast * upstream).sum().backward();
    assert!(kernel::calls()[1] > after_forward[1], "the fast backward did not run");
    let pairs = [("input", x.grad(&g_plain).unwrap(), x.grad(&g_fast).unwrap())];
    for (name, a, b) in pairs {
        let rel = max_gap(a.clone(), b) / scale(a);
        assert!(rel <= 1e-4, "{x_dims:?}: {name} gradient relative gap {rel}");
    }
    let (a, b) = (conv.weight.grad(&g_plain).unwrap(), conv.weight.grad(&g_fast).unwrap());
    let rel = max_gap(a.clone(), b) / scale(a);
    assert!(rel <= 1e-4, "{x_dims:?}: weight gradient relative gap {rel}");
    if let Some(bias) = &conv.bias {
        let (a, b) = (bias.grad(&g_plain).unwrap(), bias.grad(&g_fast).unwrap());
        let rel = max_gap(a.clone(), b) / scale(a);
        assert!(rel <= 1e-4, "{x_dims:?}: bias gradient relative gap {rel}");
    }
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize, padding: usize, bias: bool) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(bias)
        .init(&Device::flex().autodiff())
}

#[test]
fn every_layer_kind_matches_burns_convolution_forward_and_backward() {
    let _serial = serial();
    // ResNet: 3×3 stride 1 and 2, 1×1 stride-2 shortcut, the 7×7 stem; on large and 2×2 maps.
    check_layer(&conv([16, 16], 3, 1, 1, false), [4, 16, 16, 16]);
    check_layer(&conv([32, 48], 3, 1, 1, false), [8, 32, 2, 2]);
    check_layer(&conv([16, 32], 3, 2, 1, false), [4, 16, 9, 9]);
    check_layer(&conv([16, 32], 1, 2, 0, false), [4, 16, 8, 8]);
    check_layer(&conv([3, 16], 7, 2, 3, false), [2, 3, 33, 33]);
    // AlexNet's 11×11 stride 4 and LeNet's 5×5 valid, with bias; a 1×1 (GoogLeNet, NiN).
    check_layer(&conv([3, 8], 11, 4, 2, true), [2, 3, 63, 63]);
    check_layer(&conv([1, 6], 5, 1, 0, true), [5, 1, 32, 32]);
    check_layer(&conv([24, 12], 1, 1, 0, true), [3, 24, 7, 7]);
    // Maps of 256+ pixels run one image per GEMM (a 1×1 then needs no column matrix at all).
    check_layer(&conv([24, 12], 1, 1, 0, true), [3, 24, 16, 17]);
    check_layer(&conv([8, 12], 3, 1, 1, true), [3, 8, 20, 16]);
    // Small maps with 128+ blocks of 2×2 outputs run as Winograd F(2×2, 3×3): odd sizes, with
    // bias, a batch of 5 lane blocks; 1×1 maps.
    check_layer(&conv([24, 20], 3, 1, 1, true), [40, 24, 7, 5]);
    check_layer(&conv([6, 10], 3, 1, 1, false), [130, 6, 1, 1]);
    // Dilation and `Same` padding go through the same kernel.
    let dilated = Conv2dConfig::new([4, 6], [3, 3])
        .with_dilation([2, 2])
        .with_padding(PaddingConfig2d::Same)
        .init(&Device::flex().autodiff());
    check_layer(&dilated, [2, 4, 10, 10]);
}

/// Two convolutions reading the same input (an Inception module's branches): their input
/// gradients add up in the autodiff graph as burn's do.
#[test]
fn branches_sharing_an_input_accumulate_its_gradient() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let (a, b) = (conv([8, 4], 1, 1, 0, false), conv([8, 6], 3, 1, 1, false));
    let x = Tensor::<4>::random([3, 8, 5, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let branches = |on: bool| {
        fast_conv::with_fast_conv(on, || {
            Tensor::cat(
                vec![fast_conv::conv2d(&a, x.clone()), fast_conv::conv2d(&b, x.clone())],
                1,
            )
        })
    };
    let upstream = Tensor::<4>::random([3, 10, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let g_plain = (branches(false) * upstream.clone()).sum().backward();
    let g_fast = (branches(true) * upstream).sum().backward();
    let (gp, gf) = (x.grad(&g_plain).unwrap(), x.grad(&g_fast).unwrap());
    let rel = max_gap(gp.clone(), gf) / scale(gp);
    assert!(rel <= 1e-4, "input gradient relative gap {rel}");
}

#[test]
fn grouped_convolutions_and_other_backends_take_burns_path_unchanged() {
    let _serial = serial();
    let device = Device::flex();
    let grouped = Conv2dConfig::new([8, 8], [3, 3]).with_groups(4).init(&device);
    let x = Tensor::<4>::random([2, 8, 6, 6], Distribution::Default, &device);
    let gap = max_gap(grouped.forward(x.clone()), fast_conv::conv2d(&grouped, x));
    assert_eq!(gap, 0.0);
    // Off on this thread: exactly burn's convolution.
    let plain = conv([4, 4], 3, 1, 1, true);
    let x = Tensor::<4>::random([2, 4, 5, 5], Distribution::Default, &Device::flex().autodiff());
    let off = fast_conv::with_fast_conv(false, || fast_conv::conv2d(&plain, x.clone()));
    assert_eq!(max_gap(plain.forward(x), off), 0.0);
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_takes_burns_path() {
    let _serial = serial();
    let device = Device::ndarray();
    let c = Conv2dConfig::new([3, 4], [3, 3]).init(&device);
    let x = Tensor::<4>::random([2, 3, 6, 6], Distribution::Default, &device);
    assert_eq!(max_gap(c.forward(x.clone()), fast_conv::conv2d(&c, x)), 0.0);
}

/// ResNet-18's logits agree to ~3e-6; its gradients not at rounding level but to ~2e-2
/// (relative L2, the worst parameter; most agree to ~1e-5): a ReLU input within rounding of zero
/// flips its unit (and, after the stem, which of a max-pool window's tied zeros carries the
/// gradient), which moves a small gradient such as one batch norm's β by a percent. With burn's
/// convolution on both sides nothing flips and they agree to ~1e-6. A wrong gradient moves
/// them by O(1), hence 5e-2.
#[test]
fn resnet18_logits_and_gradients_match_burns_convolution() {
    let _serial = serial();
    check_network(Kernel::FastConv, "resnet18", [8, 3, 64, 64], 1e-4, Some(5e-2));
}

#[test]
fn lenet5_logits_and_gradients_match_burns_convolution() {
    let _serial = serial();
    check_network(Kernel::FastConv, "lenet5", [4, 1, 32, 32], 1e-4, Some(1e-4));
}

/// GoogLeNet's logits only. Its parameter gradients move by 1–3% (relative L2) on burn's own
/// convolution when the input moves by 1e-6 (max-pool ties after ReLU, measured), so they cannot
/// be compared at rounding level; its layers' gradients are checked one by one above.
#[test]
fn googlenet_logits_match_burns_convolution() {
    let _serial = serial();
    check_network(Kernel::FastConv, "googlenet", [4, 3, 64, 64], 1e-4, None);
    let device = Device::flex();
    let model = build("googlenet", BuildOptions::classes(10), &device).unwrap();
    let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let before = kernel::calls();
    let plain = fast_conv::with_fast_conv(false, || model.logits(x.clone()));
    let fast = fast_conv::with_fast_conv(true, || model.logits(x.clone()));
    assert!(
        kernel::calls()[0] > before[0],
        "the fast kernel did not run without autodiff"
    );
    let rel = max_gap(plain.clone(), fast) / scale(plain);
    assert!(rel <= 1e-4, "inference logits relative gap {rel}");
}
