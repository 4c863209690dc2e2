//! The vectorised tanh (`cnn_models::fast_tanh`) against burn's, forward and backward, on a
//! tensor and through LeNet-5 (the paper's tanh network).

mod common;

use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fast_tanh;
use common::{Kernel, check_network, max_gap, serial};

#[test]
fn tanh_and_its_gradient_match_burns() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    device.seed(3);
    let x = Tensor::<4>::random([16, 6, 28, 28], Distribution::Normal(0.0, 2.0), &device);
    let upstream = Tensor::<4>::random([16, 6, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let pass = |on: bool| {
        let x = x.clone().require_grad();
        let y = fast_tanh::with_fast_tanh(on, || fast_tanh::tanh(x.clone()));
        let grads = (y.clone() * upstream.clone()).sum().backward();
        (y, x.grad(&grads).expect("x takes part"))
    };
    let before = fast_tanh::calls();
    let (y, dx) = pass(true);
    let after = fast_tanh::calls();
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "the kernel did not run both ways"
    );
    let (want, want_dx) = pass(false);
    // Eigen's approximation is within 1e-6 of the exact tanh (kernel tests); so are burn's.
    assert!(max_gap(want, y) <= 2e-6, "output");
    assert!(max_gap(want_dx, dx) <= 1e-5, "input gradient");
}

#[test]
fn lenet5_logits_and_gradients_match_with_the_kernel_off() {
    let _serial = serial();
    check_network(Kernel::FastTanh, "lenet5", [8, 1, 32, 32], 1e-4, Some(1e-4));
}
