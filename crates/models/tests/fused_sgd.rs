//! The one-pass SGD update (`cnn_models::fused_sgd`) against burn's `Sgd`: bit-identical
//! parameters after several steps (with weight decay, on a parameter large enough to be split
//! over the cores), with the kernel on and off, and checkpoints that load into either.

use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fused_sgd::{self, FusedSgdConfig};

mod common;
use common::serial;

fn burn_sgd() -> ModuleOptimizer {
    SgdConfig::new()
        .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
        .with_weight_decay(Some(WeightDecayConfig::new(5e-4)))
        .init()
}

fn fused() -> ModuleOptimizer {
    FusedSgdConfig {
        momentum: Some(MomentumConfig::new().with_dampening(0.0)),
        weight_decay: Some(5e-4),
    }
    .init()
}

/// 300 × 200 weights: more than one task's share, so the parallel path runs.
fn model(device: &Device) -> Linear {
    device.seed(7);
    LinearConfig::new(300, 200).init(device)
}

fn steps(mut model: Linear, optim: &mut ModuleOptimizer, n: usize, device: &Device) -> Linear {
    for i in 0..n {
        device.seed(100 + i as u64);
        let x = Tensor::<2>::random([16, 300], Distribution::Normal(0.0, 1.0), device);
        let loss = model.forward(x).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.05, model, grads);
    }
    model
}

/// The parameters' bits, so equality is exact and a failure prints little.
fn values(model: &Linear) -> Vec<u32> {
    let mut v = model.weight.val().into_data().try_to_vec::<f32>().unwrap();
    v.extend(model.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
    v.into_iter().map(f32::to_bits).collect()
}

/// How many values differ (0 when bit-identical).
fn differing(a: &[u32], b: &[u32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[test]
fn the_fused_step_is_burns_sgd_bit_for_bit() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let want = values(&steps(model(&device), &mut burn_sgd(), 3, &device));
    let before = fused_sgd::calls()[0];
    let got = fused_sgd::with_fused_sgd(true, || values(&steps(model(&device), &mut fused(), 3, &device)));
    assert!(fused_sgd::calls()[0] >= before + 6, "the kernel did not run for both tensors each step");
    assert_eq!(differing(&got, &want), 0, "fused vs burn's Sgd");
    let off = fused_sgd::with_fused_sgd(false, || values(&steps(model(&device), &mut fused(), 3, &device)));
    assert_eq!(differing(&off, &want), 0, "kernel off vs burn's Sgd");
    assert_ne!(want, values(&model(&device)), "the steps changed nothing");
}

#[test]
fn checkpoints_load_into_either_optimiser() {
    let _serial = serial();
    let device = Device::flex().autodiff();
    let mut ours = fused();
    let half = steps(model(&device), &mut ours, 2, &device);
    let mut theirs = burn_sgd().from_bytes(ours.into_bytes().unwrap()).unwrap();
    let mut ours_again = fused().from_bytes(ours.into_bytes().unwrap()).unwrap();
    let a = values(&steps(half.clone(), &mut theirs, 2, &device));
    let b = values(&steps(half.clone(), &mut ours_again, 2, &device));
    assert_eq!(differing(&a, &b), 0, "our record continued by burn's Sgd vs ours");
    // And the other way: burn's record continues in ours.
    let mut burns = burn_sgd();
    let half = steps(model(&device), &mut burns, 2, &device);
    let mut ours = fused().from_bytes(burns.into_bytes().unwrap()).unwrap();
    let c = values(&steps(half.clone(), &mut ours, 2, &device));
    let d = values(&steps(half, &mut burns, 2, &device));
    assert_eq!(differing(&c, &d), 0, "burn's record continued by ours vs burn's");
}
