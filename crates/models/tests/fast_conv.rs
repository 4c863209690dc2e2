//! The fast flex convolution (`cnn_models::fast_conv`) against burn's own, forward and backward:
//! single layers of every kind our models use, then whole networks, with the kernel's call
//! counter showing the fast path really ran.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fast_conv::{self, kernel};
use burn::tensor::Gradients;
use cnn_models::{BuildOptions, ImageClassifier, Model, build};

/// The tests share flex's generator: seeding it only means something if no other test draws
/// from it meanwhile.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn max_gap<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

fn scale<const D: usize>(t: Tensor<D>) -> f32 {
    t.abs().max().into_scalar::<f32>().max(1e-6)
}

/// Forward output and the gradients of input, weight and bias agree within `1e-4` of their size.
fn check_layer(conv: &Conv2d, x_dims: [usize; 4]) {
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random(x_dims, Distribution::Normal(0.0, 1.0), &device).require_grad();
    let plain = conv.forward(x.clone());
    let before = kernel::calls();
    let fast = fast_conv::with_fast_conv(true, || fast_conv::conv2d(conv, x.clone()));
    assert_eq!(plain.dims(), fast.dims(), "{x_dims:?}");
    let after_forward = kernel::calls();
    assert!(after_forward[0] > before[0], "the fast kernel did not run for {x_dims:?}");
    let rel = max_gap(plain.clone(), fast.clone()) / scale(plain.clone());
    assert!(rel <= 1e-5, "{x_dims:?}: forward relative gap {rel}");

    // A random upstream gradient, the same for both.
    let upstream = Tensor::<4>::random(plain.dims(), Distribution::Normal(0.0, 1.0), &device);
    let g_plain = (plain * upstream.clone()).sum().backward();
    let g_fast = (fast * upstream).sum().backward();
    assert!(kernel::calls()[1] > after_forward[1], "the fast backward did not run");
    let pairs = [
        ("input", x.grad(&g_plain).unwrap(), x.grad(&g_fast).unwrap()),
    ];
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
            Tensor::cat(vec![fast_conv::conv2d(&a, x.clone()), fast_conv::conv2d(&b, x.clone())], 1)
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

/// Every parameter's gradient, flattened, in visiting order.
struct CollectGradients<'a> {
    grads: &'a Gradients,
    out: Vec<Tensor<1>>,
}

impl ModuleVisitor for CollectGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            self.out.push(g.flatten(0, D - 1));
        }
    }
}

/// `‖a − b‖₂ / ‖a‖₂`: a few ReLU kinks or max-pool ties flipped by rounding move single
/// elements a lot but the norm little, while a wrong gradient moves the norm.
fn relative_l2(a: Tensor<1>, b: Tensor<1>) -> f32 {
    let diff = (a.clone() - b).powi_scalar(2).sum().sqrt().into_scalar::<f32>();
    diff / a.powi_scalar(2).sum().sqrt().into_scalar::<f32>().max(1e-12)
}

fn worst_gap(a: Vec<Tensor<1>>, b: Vec<Tensor<1>>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.into_iter().zip(b).map(|(a, b)| relative_l2(a, b)).fold(0.0, f32::max)
}

/// A network's logits and (with `gradients`) every parameter gradient of `logits.sum()`, fast
/// against burn: each pass on its own copy of the same weights, forward then backward, as
/// training does.
fn check_network(name: &str, input: [usize; 4], tolerance: f32, gradients: bool) {
    let device = Device::flex().autodiff();
    let master: Model = build(name, BuildOptions::classes(10), &device).expect("registered model");
    let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
    let pass = |on: bool| {
        let model = build(name, BuildOptions::classes(10), &device)
            .unwrap()
            .load_record(master.clone().into_record());
        // Same seed before each pass: GoogLeNet's dropout drops the same units in each.
        device.seed(11);
        let logits = fast_conv::with_fast_conv(on, || model.logits(x.clone()));
        if !gradients {
            return (logits, Vec::new());
        }
        let grads = logits.clone().sum().backward();
        let mut collect = CollectGradients { grads: &grads, out: Vec::new() };
        model.visit(&mut collect);
        (logits, collect.out)
    };
    let before = kernel::calls();
    let (plain, plain_grads) = pass(false);
    let (fast, fast_grads) = pass(true);
    assert!(kernel::calls()[0] > before[0], "{name}: the fast kernel did not run");
    let rel = max_gap(plain.clone(), fast) / scale(plain);
    assert!(rel <= tolerance, "{name}: logits relative gap {rel}");
    if !gradients {
        return;
    }
    assert!(kernel::calls()[1] > before[1], "{name}: the fast backward did not run");
    assert!(plain_grads.len() >= 4, "{name}: only {} gradients", plain_grads.len());
    let worst = worst_gap(plain_grads, fast_grads);
    println!("{name}: logits relative gap {rel:e}, worst gradient relative L2 gap {worst:e}");
    assert!(worst <= tolerance, "{name}: worst parameter-gradient relative L2 gap {worst}");
}

#[test]
fn resnet18_logits_and_gradients_match_burns_convolution() {
    let _serial = serial();
    check_network("resnet18", [8, 3, 64, 64], 1e-4, true);
}

#[test]
fn lenet5_logits_and_gradients_match_burns_convolution() {
    let _serial = serial();
    check_network("lenet5", [4, 1, 32, 32], 1e-4, true);
}

/// GoogLeNet's logits only. Its parameter gradients move by 1–3% (relative L2) on burn's own
/// convolution when the input moves by 1e-6 (max-pool ties after ReLU, measured), so they cannot
/// be compared at rounding level; its layers' gradients are checked one by one above.
#[test]
fn googlenet_logits_match_burns_convolution() {
    let _serial = serial();
    check_network("googlenet", [4, 3, 64, 64], 1e-4, false);
    let device = Device::flex();
    let model = build("googlenet", BuildOptions::classes(10), &device).unwrap();
    let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let before = kernel::calls();
    let plain = fast_conv::with_fast_conv(false, || model.logits(x.clone()));
    let fast = fast_conv::with_fast_conv(true, || model.logits(x.clone()));
    assert!(kernel::calls()[0] > before[0], "the fast kernel did not run without autodiff");
    let rel = max_gap(plain.clone(), fast) / scale(plain);
    assert!(rel <= 1e-4, "inference logits relative gap {rel}");
}
