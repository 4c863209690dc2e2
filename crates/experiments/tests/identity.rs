//! `cnn experiment identity` end to end on a small run: appended identity blocks change no
//! logit, appended plain blocks do, and every network is fine-tuned and evaluated.

mod common;

use burn::tensor::Device;
use cnn_experiments::identity::{IdentityOptions, identity, table_markdown};
use cnn_trainer::{OptimizerKind, TrainConfig, train_run};

fn scratch(tag: &str) -> common::Scratch {
    common::scratch("identity", tag)
}

#[test]
fn identity_blocks_keep_every_logit_and_plain_blocks_do_not() {
    let root = scratch("run");
    let cfg = TrainConfig::new("resnet20", "mnist-5k")
        .with_subset(Some(256))
        .with_valid_split(0.0)
        .with_epochs(1)
        .with_batch_size(32)
        .with_optimizer(OptimizerKind::Sgd)
        .with_lr(0.05)
        .with_workers(1);
    let run = root.join("resnet20");
    train_run(&cfg, &Device::flex(), &run, false, &mut |_| {}).unwrap();
    let opts = IdentityOptions {
        blocks: 2,
        subset: Some(128),
        out: root.join("identity"),
        ..IdentityOptions::new(&run)
    };
    let mut fine_tuned = Vec::new();
    let rows = identity(&opts, &Device::flex(), &mut |who, p| {
        if let cnn_trainer::Progress::Epoch(m) = p {
            fine_tuned.push((who.to_string(), m.epoch));
        }
    })
    .unwrap();
    assert_eq!(rows.len(), 3);
    let [trained, identity_rows, plain] = [&rows[0], &rows[1], &rows[2]];
    assert_eq!((trained.layers, identity_rows.layers, plain.layers), (20, 24, 24));
    assert_eq!(trained.max_logit_change, 0.0);
    assert_eq!(
        identity_rows.max_logit_change, 0.0,
        "identity blocks must change no logit"
    );
    assert_eq!(identity_rows.accuracy, trained.accuracy);
    assert!(plain.max_logit_change > 0.0, "plain blocks start as random functions");
    assert_eq!(
        fine_tuned.len(),
        3,
        "each network fine-tuned for one epoch: {fine_tuned:?}"
    );
    for r in &rows {
        assert!((0.0..=1.0).contains(&r.finetuned), "{r:?}");
    }
    let csv = std::fs::read_to_string(opts.out.join("identity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(table_markdown(&rows, 1).contains("+ 2 identity blocks | 24 |"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_run_that_is_not_a_resnet_is_refused_in_one_line() {
    let root = scratch("lenet");
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_subset(Some(64))
        .with_valid_split(0.0)
        .with_epochs(1)
        .with_workers(1);
    train_run(&cfg, &Device::flex(), &root.join("lenet5"), false, &mut |_| {}).unwrap();
    let err = identity(
        &IdentityOptions::new(root.join("lenet5")),
        &Device::flex(),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("lenet5 run") && err.contains("ResNet"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}
