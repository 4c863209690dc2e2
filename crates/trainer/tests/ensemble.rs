//! Ensembles and ten-crop evaluation of a whole test set.

mod common;

use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use cnn_data_augment::Batch;
use cnn_models::ImageClassifier;
use cnn_trainer::{OptimizerKind, Probabilities, RunFolder, TrainConfig, evaluate_runs, load_data, train_run};

/// burn's random generator is global per backend: runs that seed it must not interleave.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scratch(tag: &str) -> common::Scratch {
    common::scratch("ensemble", tag)
}

/// A LeNet-5 run on 300 embedded digits, one epoch, with `seed`.
fn tiny_run(dir: &Path, seed: u64) -> RunFolder {
    let _rng = RNG.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_seed(seed)
        .with_subset(Some(300))
        .with_valid_split(0.0)
        .with_epochs(1)
        .with_batch_size(16)
        .with_optimizer(OptimizerKind::Adam)
        .with_lr(1e-3)
        .with_workers(1);
    train_run(&cfg, &Device::flex(), dir, false, &mut |_| {}).unwrap();
    RunFolder::open(dir).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        } else {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        }
    }
}

fn copy_run(from: &Path, to: &Path) -> RunFolder {
    copy_dir(from, to);
    RunFolder::open(to).unwrap()
}

#[test]
fn two_identical_runs_ensemble_to_the_accuracy_of_one_and_ten_crops_are_reported() {
    let root = scratch("identical");
    let a = tiny_run(&root.join("a"), 1);
    let b = copy_run(&a.dir, &root.join("b"));
    let device = Device::flex();
    let one = evaluate_runs(std::slice::from_ref(&a), None, None, true, &device).unwrap();
    let two = evaluate_runs(&[a.clone(), b], None, None, true, &device).unwrap();
    assert_eq!(one.single.summary.images, 1000);
    assert_eq!(two.single, one.single, "two identical members must score as one");
    assert_eq!(two.ten_crop, one.ten_crop);
    assert_eq!(two.members.len(), 2);
    assert_eq!(two.members[0].single, one.single.summary);
    // A one-member ensemble is the member: single view and ten crops.
    assert_eq!(
        one.members[0].ten_crop.as_ref(),
        one.ten_crop.as_ref().map(|e| &e.summary)
    );
    // Ten crops are other views: the figures move (AlexNet's crops of a 32-px digit cut its edges).
    let (single, crops) = (one.single.summary, one.ten_crop.unwrap().summary);
    assert_eq!(crops.images, 1000);
    assert_ne!(single.loss, crops.loss);
    // The evaluation through probabilities agrees with the plain evaluation loop on logits.
    let plain = a.evaluate_on(None, None, &device).unwrap();
    assert_eq!(plain.summary.accuracy, single.accuracy);
    assert!(
        (plain.summary.loss - single.loss).abs() < 1e-4,
        "{} vs {}",
        plain.summary.loss,
        single.loss
    );
}

#[test]
fn an_ensemble_averages_probabilities_not_logits() {
    let root = scratch("average");
    let runs = [tiny_run(&root.join("a"), 1), tiny_run(&root.join("b"), 2)];
    let device = Device::flex();
    let data = load_data("mnist-5k", None, 1).unwrap();
    // The members' logits on the first 200 test images, computed here directly.
    let samples: Vec<_> = (0..200).map(|i| data.test.get(i).unwrap()).collect();
    let logits: Vec<Tensor<2>> = runs
        .iter()
        .map(|r| {
            let (images, _) = Batch::from_images(&samples, &r.preprocess).unwrap().to_device(&device);
            r.load_model(&device).unwrap().logits(images)
        })
        .collect();
    let to_vec = |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let mean_of_softmax = to_vec((softmax(logits[0].clone(), 1) + softmax(logits[1].clone(), 1)) / 2.0);
    let softmax_of_mean = to_vec(softmax((logits[0].clone() + logits[1].clone()) / 2.0, 1));
    // The two rules differ on these members, so the comparison below can tell them apart.
    let gap = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(gap(&mean_of_softmax, &softmax_of_mean) > 1e-3);

    let members: Vec<Probabilities> = runs
        .iter()
        .map(|r| Probabilities::of_run(r, &*data.test, false, &device).unwrap())
        .collect();
    let ensemble = Probabilities::mean(&members).unwrap();
    assert!(gap(&ensemble.rows[..2000], &mean_of_softmax) < 1e-6);
    // And the ensemble's accuracy is that of the averaged probabilities' argmax.
    let labels: Vec<usize> = (0..data.test.len()).map(|i| data.test.get(i).unwrap().1).collect();
    let correct = ensemble
        .rows
        .chunks(10)
        .zip(&labels)
        .filter(|(row, label)| {
            let best = row.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0;
            best == **label
        })
        .count();
    let result = evaluate_runs(&runs, None, None, false, &device).unwrap();
    assert_eq!(result.single.summary.accuracy, correct as f64 / 1000.0);
    assert_eq!(result.single.confusion.iter().flatten().sum::<usize>(), 1000);
}

#[test]
fn members_that_disagree_on_the_classes_are_refused() {
    let root = scratch("classes");
    let a = tiny_run(&root.join("a"), 1);
    let other = copy_run(&a.dir, &root.join("other"));
    let renamed: Vec<String> = (0..10).map(|i| format!("class{i}")).collect();
    std::fs::write(other.dir.join("classes.json"), serde_json::to_string(&renamed).unwrap()).unwrap();
    let other = RunFolder::open(&other.dir).unwrap();
    let err = evaluate_runs(&[a, other], None, None, false, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("must agree on the classes"), "{err}");
    assert!(evaluate_runs(&[], None, None, false, &Device::flex()).is_err());
}

#[test]
fn a_run_on_some_classes_trains_tests_and_evaluates_on_those_alone() {
    let root = scratch("classes-subset");
    let _rng = RNG.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = TrainConfig::new("lenet5", "mnist-5k")
        .with_subset(Some(90))
        .with_valid_split(0.0)
        .with_classes(Some(vec![7, 3, 5]))
        .with_epochs(1)
        .with_batch_size(16)
        .with_workers(1);
    let report = train_run(&cfg, &Device::flex(), &root.join("run"), false, &mut |_| {}).unwrap();
    // mnist-5k's test split has 100 digits of each class.
    assert_eq!(report.test.images, 300);
    let run = RunFolder::open(&root.join("run")).unwrap();
    assert_eq!(run.class_names, ["7", "3", "5"]);
    assert_eq!(run.config.task.classes, Some(vec![7, 3, 5]));
    let eval = run.evaluate_on(None, None, &Device::flex()).unwrap();
    assert_eq!(eval.summary.images, 300);
    assert_eq!(eval.confusion.len(), 3);
    assert!(eval.confusion.iter().all(|row| row.iter().sum::<usize>() == 100));
    let bad = cfg.with_classes(Some(vec![3, 10]));
    let err = train_run(&bad, &Device::flex(), &root.join("bad"), false, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("class 10 does not exist"), "{err}");
}
