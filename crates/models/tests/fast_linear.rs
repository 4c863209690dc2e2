//! The small-batch fully connected layer (`cnn_models::fast_linear`) against burn's, forward and
//! all three gradients, at the zoo's classifier shapes and through VGG and AlexNet. Where the
//! CPU has no AVX-512 the kernel must stand aside: the same tests then check that the layer is
//! exactly burn's.

mod common;

use burn::nn::LinearConfig;
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fast_linear;
use common::{Kernel, check_network, max_gap, scale, serial};

/// `[batch, inputs, outputs]`: VGG's three-layer classifier's first two layers (the first at a
/// small batch: its weight is 392 MiB), AlexNet's first, GoogLeNet's auxiliary `fc1`, and a
/// batch past one tile of 8 rows that ends on a 16-wide column tile.
const SHAPES: [[usize; 3]; 5] = [
    [2, 25088, 4096],
    [16, 4096, 4096],
    [8, 9216, 4096],
    [16, 2048, 1024],
    [13, 1000, 272],
];

#[test]
fn linear_and_its_gradients_match_burns() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(5);
    for [batch, inputs, outputs] in SHAPES {
        let layer = LinearConfig::new(inputs, outputs).init(&device);
        let x = Tensor::<2>::random([batch, inputs], Distribution::Normal(0.0, 1.0), &device);
        let upstream = Tensor::<2>::random([batch, outputs], Distribution::Normal(0.0, 1.0), &device);
        let pass = |on: bool| {
            let x = x.clone().require_grad();
            let y = fast_linear::with_fast_linear(on, || fast_linear::linear(&layer, x.clone()));
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let dw = layer.weight.grad(&grads).expect("the weight takes part");
            let db = layer
                .bias
                .as_ref()
                .and_then(|b| b.grad(&grads))
                .expect("the bias takes part");
            (y, x.grad(&grads).expect("x takes part"), dw, db)
        };
        let before = fast_linear::calls();
        let (y, dx, dw, db) = pass(true);
        let after = fast_linear::calls();
        let (want, want_dx, want_dw, want_db) = pass(false);
        let shape = format!("{batch}×{inputs}→{outputs}");
        if !fast_linear::kernel::applies([batch, inputs, outputs]) {
            assert_eq!(after, before, "{shape}: the kernel ran on a CPU it does not apply to");
            assert_eq!(max_gap(want, y), 0.0, "{shape}: not burn's output");
            continue;
        }
        assert!(
            after[0] > before[0] && after[1] >= before[1] + 2,
            "{shape}: the kernel did not run both ways"
        );
        // Sums of up to 25088 products in another order: relative to the largest value.
        assert!(max_gap(want.clone(), y) <= 1e-5 * scale(want), "{shape}: output");
        assert!(
            max_gap(want_dx.clone(), dx) <= 1e-5 * scale(want_dx),
            "{shape}: input gradient"
        );
        assert!(
            max_gap(want_dw.clone(), dw) <= 1e-5 * scale(want_dw),
            "{shape}: weight gradient"
        );
        assert_eq!(
            max_gap(want_db, db),
            0.0,
            "{shape}: bias gradient (burn's own sum both ways)"
        );
    }
}

/// A whole network with the kernel on against off, or (without AVX-512) the same logits.
fn check(name: &str, input: [usize; 4]) {
    let _serial = serial();
    if fast_linear::kernel::applies([input[0], 4096, 4096]) {
        check_network(Kernel::FastLinear, name, input, 1e-4, Some(1e-4));
    } else {
        let before = fast_linear::calls();
        check_network_without_the_kernel(name, input);
        assert_eq!(
            fast_linear::calls(),
            before,
            "{name}: the kernel ran on a CPU it does not apply to"
        );
    }
}

fn check_network_without_the_kernel(name: &str, input: [usize; 4]) {
    use cnn_models::{BuildOptions, ImageClassifier, build};
    let device = Device::flex();
    device.seed(7);
    let model = build(name, BuildOptions::classes(10), &device).expect("registered model");
    let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
    let on = fast_linear::with_fast_linear(true, || model.logits(x.clone()));
    let off = fast_linear::with_fast_linear(false, || model.logits(x.clone()));
    assert_eq!(
        max_gap(off, on),
        0.0,
        "{name}: logits differ though the kernel does not apply"
    );
}

#[test]
fn vgg11_logits_and_gradients_match_with_the_kernel_off() {
    check("vgg11", [4, 3, 32, 32]);
}

#[test]
fn alexnet_logits_and_gradients_match_with_the_kernel_off() {
    check("alexnet", [4, 3, 64, 64]);
}
