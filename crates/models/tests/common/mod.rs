//! What the kernel parity tests share: one generator at a time, gaps, and a whole network with
//! a kernel on against off.
#![allow(dead_code)] // each test file uses its own subset

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Distribution, Gradients, Tensor};
use cnn_models::{BuildOptions, ImageClassifier, Model, build, fast_conv, fast_linear, fast_pool, fast_tanh, fused_bn};

/// One of our flex kernels, switched per thread.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// `cnn_models::fast_conv`.
    FastConv,
    /// `cnn_models::fused_bn`.
    FusedBn,
    /// `cnn_models::fast_pool` (its backward is the backend's, run by the kernel's own node).
    FastPool,
    /// `cnn_models::fast_tanh`.
    FastTanh,
    /// `cnn_models::fast_linear`.
    FastLinear,
}

impl Kernel {
    /// Runs `f` with the kernel on or off on this thread.
    pub fn with<R>(self, on: bool, f: impl FnOnce() -> R) -> R {
        match self {
            Kernel::FastConv => fast_conv::with_fast_conv(on, f),
            Kernel::FusedBn => fused_bn::with_fused_bn(on, f),
            Kernel::FastPool => fast_pool::with_fast_pool(on, f),
            Kernel::FastTanh => fast_tanh::with_fast_tanh(on, f),
            Kernel::FastLinear => fast_linear::with_fast_linear(on, f),
        }
    }

    /// `[forward, backward]` runs of the kernel so far.
    pub fn calls(self) -> [usize; 2] {
        match self {
            Kernel::FastConv => fast_conv::kernel::calls(),
            Kernel::FusedBn => fused_bn::kernel::calls(),
            // Every forward run records the node whose backward then runs.
            Kernel::FastPool => [fast_pool::calls(); 2],
            Kernel::FastTanh => fast_tanh::calls(),
            Kernel::FastLinear => fast_linear::calls(),
        }
    }
}

/// The tests share flex's generator: seeding it only means something if no other test draws
/// from it meanwhile.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn max_gap<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

pub fn scale<const D: usize>(t: Tensor<D>) -> f32 {
    t.abs().max().into_scalar::<f32>().max(1e-6)
}

/// Every parameter's gradient, flattened, in visiting order.
pub struct CollectGradients<'a> {
    pub grads: &'a Gradients,
    pub out: Vec<Tensor<1>>,
}

impl ModuleVisitor for CollectGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            self.out.push(g.flatten(0, D - 1));
        }
    }
}

fn l2(t: Tensor<1>) -> f32 {
    t.powi_scalar(2).sum().sqrt().into_scalar::<f32>()
}

/// `‖a − b‖₂ / ‖a‖₂`: a few ReLU kinks or max-pool ties flipped by rounding move single
/// elements a lot but the norm little, while a wrong gradient moves the norm.
pub fn relative_l2(a: Tensor<1>, b: Tensor<1>) -> f32 {
    l2(a.clone() - b) / l2(a).max(1e-12)
}

/// The worst [`relative_l2`] over parameters, each norm floored at 1e-4 of the largest gradient
/// norm: a gradient that is zero in exact arithmetic (a convolution's bias just before a batch
/// norm, which removes any constant shift) is rounding noise on both sides and not comparable.
/// Returns the gap and the parameter's index in visiting order.
pub fn worst_gap(a: Vec<Tensor<1>>, b: Vec<Tensor<1>>) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    let floor = 1e-4 * a.iter().map(|t| l2(t.clone())).fold(0.0, f32::max);
    a.into_iter()
        .zip(b)
        .map(|(a, b)| l2(a.clone() - b) / l2(a).max(floor).max(1e-12))
        .enumerate()
        .fold(
            (0.0, 0),
            |(worst, at), (i, gap)| if gap > worst { (gap, i) } else { (worst, at) },
        )
}

/// A network's logits (within `tolerance`, relative) and, with `gradients: Some(t)`, every
/// parameter gradient of a random weighting of the logits (within `t`, [`worst_gap`]), with
/// `kernel` on against off: each pass on its own copy of the same weights, forward then
/// backward, as training does.
pub fn check_network(kernel: Kernel, name: &str, input: [usize; 4], tolerance: f32, gradients: Option<f32>) {
    let device = Device::flex().autodiff();
    // Seeded, so each test sees the same weights and input whatever ran before it in this
    // process: with unseeded draws a ReLU input within rounding of zero came up now and then
    // and moved the gradients above it by ~1e-3 (a flaky failure, not a kernel's error).
    device.seed(7);
    let master: Model = build(name, BuildOptions::classes(10), &device).expect("registered model");
    let x = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device);
    // The gradients of a random weighting of the logits: with `logits.sum()` every batch norm
    // in training mode receives a gradient that is constant over its batch, whose input
    // gradient is then zero in exact arithmetic — everything below the last batch norm would
    // be comparing rounding noise.
    let upstream = Tensor::<2>::random([input[0], 10], Distribution::Normal(0.0, 1.0), &device);
    let pass = |on: bool| {
        let model = build(name, BuildOptions::classes(10), &device)
            .unwrap()
            .load_record(master.clone().into_record());
        // Same seed before each pass: GoogLeNet's dropout drops the same units in each.
        device.seed(11);
        let logits = kernel.with(on, || model.logits(x.clone()));
        if gradients.is_none() {
            return (logits, Vec::new());
        }
        let grads = (logits.clone() * upstream.clone()).sum().backward();
        let mut collect = CollectGradients {
            grads: &grads,
            out: Vec::new(),
        };
        model.visit(&mut collect);
        (logits, collect.out)
    };
    let before = kernel.calls();
    let (plain, plain_grads) = pass(false);
    let (fast, fast_grads) = pass(true);
    assert!(kernel.calls()[0] > before[0], "{name}: the fast kernel did not run");
    let rel = max_gap(plain.clone(), fast) / scale(plain);
    assert!(rel <= tolerance, "{name}: logits relative gap {rel}");
    let Some(gradient_tolerance) = gradients else {
        return;
    };
    assert!(kernel.calls()[1] > before[1], "{name}: the fast backward did not run");
    assert!(plain_grads.len() >= 4, "{name}: only {} gradients", plain_grads.len());
    let (worst, at) = worst_gap(plain_grads, fast_grads);
    println!("{name}: logits relative gap {rel:e}, worst gradient relative L2 gap {worst:e} (parameter {at})");
    assert!(
        worst <= gradient_tolerance,
        "{name}: worst parameter-gradient relative L2 gap {worst} (parameter {at} in visiting order)"
    );
}
