//! `cnn train --distributed` under Open MPI's `mpirun` on this machine: two processes give the
//! one-process result, rank 0 alone reports and writes, a ResNet trained by two processes
//! resumes in one, and a process that dies mid-epoch ends the job with a clear error and a run
//! that resumes. Built with the `mpi` feature only (`cargo xtask test` turns it on).
#![cfg(all(feature = "mpi", feature = "flex"))]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{assert_success, cnn};

/// `mpirun -n ranks cnn args…`, one thread per process. CI runs as root, which Open MPI
/// refuses unless told; `--oversubscribe` lets two processes share fewer cores.
fn mpirun(ranks: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-n", &ranks.to_string()]);
    for (name, value) in [("RAYON_NUM_THREADS", "1")].iter().chain(env) {
        cmd.args(["-x", &format!("{name}={value}")]);
    }
    cmd.arg(env!("CARGO_BIN_EXE_cnn")).args(args);
    cmd.output().expect("run mpirun (Debian: apt-get install openmpi-bin)")
}

fn scratch(name: &str) -> cnn_testkit::Scratch {
    let dir = cnn_testkit::scratch("distributed", name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every float of a run's final model.
fn weights(dir: &Path) -> Vec<f32> {
    let run = cnn_trainer::RunFolder::open(dir).unwrap();
    let model = run.load_model(&burn::tensor::Device::flex()).unwrap();
    cnn_trainer::run::checkpoint::parameter_values(&model).concat()
}

/// `‖a − b‖ / ‖a‖` over all weights.
fn relative_gap(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
    (diff / norm).sqrt()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const LENET: [&str; 16] = [
    "--model", "lenet5", "--dataset", "mnist-5k", "--subset", "600", "--epochs", "2", "--batch-size", "32",
    "--optimizer", "sgd", "--lr", "0.05", "--workers", "1",
];

#[test]
fn two_processes_train_lenet5_to_the_one_process_weights_and_rank_0_alone_writes() {
    let root = scratch("lenet");
    let (one, two) = (root.join("one"), root.join("two"));
    let mut args = vec!["train"];
    args.extend(LENET);
    let single = cnn(&[&["--device", "flex"], args.as_slice(), &["--out", s(&one)]].concat());
    assert_success(&single);
    let out = mpirun(2, &[&["--device", "flex"], args.as_slice(), &["--distributed", "--out", s(&two)]].concat(), &[]);
    let stdout = assert_success(&out);
    // Rank 0 alone prints the run's lines and writes its folder.
    assert_eq!(stdout.matches("test accuracy").count(), 1, "{stdout}");
    assert!(stdout.contains("2 MPI processes"), "{stdout}");
    assert!(two.join("model.bpk").is_file() && two.join("summary.json").is_file());
    // The epochs' figures count the whole batches, not rank 0's halves.
    let metrics = |dir: &Path| std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let columns = |text: &str| -> Vec<Vec<f64>> {
        text.lines().skip(1).map(|l| l.split(',').take(7).map(|v| v.parse().unwrap()).collect()).collect()
    };
    for (a, b) in columns(&metrics(&one)).iter().zip(columns(&metrics(&two))) {
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 2e-3 * (1.0 + x.abs()), "{}\nvs\n{}", metrics(&one), metrics(&two));
        }
    }
    let gap = relative_gap(&weights(&one), &weights(&two));
    assert!(gap < 1e-5, "relative weight gap {gap:e}");
    // Each process may split its slices again over its own devices.
    let four = root.join("four");
    let out = mpirun(2, &[args.as_slice(), &["--distributed", "--devices", "flex,flex", "--out", s(&four)]].concat(), &[]);
    assert_success(&out);
    let gap = relative_gap(&weights(&one), &weights(&four));
    assert!(gap < 1e-4, "relative weight gap with two devices a process {gap:e}");
    // The same test accuracy, evaluated in two halves.
    let accuracy = |dir: &Path| {
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        summary["test_accuracy"].as_f64().unwrap()
    };
    assert!((accuracy(&one) - accuracy(&two)).abs() < 2e-3, "{} vs {}", accuracy(&one), accuracy(&two));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_resnet_trained_by_two_processes_resumes_in_one() {
    let root = scratch("resnet");
    let run = root.join("run");
    let common = [
        "--device", "flex", "train", "--model", "resnet20", "--dataset", "mnist-5k", "--subset", "128",
        "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05", "--workers", "1",
    ];
    let out = mpirun(2, &[&common[..], &["--epochs", "1", "--distributed", "--out", s(&run)]].concat(), &[]);
    assert_success(&out);
    let out = cnn(&["--device", "flex", "train", "--resume", s(&run), "--epochs", "2"]);
    let stdout = assert_success(&out);
    assert!(stdout.contains("resuming"), "{stdout}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_process_that_dies_mid_epoch_ends_the_job_and_the_run_resumes() {
    assert!(
        cfg!(feature = "fault-injection"),
        "build the tests with --features fault-injection (cargo xtask test does)"
    );
    let root = scratch("killed");
    let run = root.join("run");
    let mut args = vec!["--device", "flex", "train"];
    args.extend(LENET);
    let distributed = [args.as_slice(), &["--distributed", "--out", s(&run)]].concat();
    // Rank 1 crashes at batch 5 of epoch 2, after the checkpoint of epoch 1.
    let out = mpirun(2, &distributed, &[("CNN_FAULT_KILL_AT", "1:2:5")]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "the job went on: {stderr}");
    assert!(stderr.contains("rank 1"), "no word of the dead rank: {stderr}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "epoch 1's checkpoint: {metrics}");
    // The run resumes, here with two processes again, and finishes.
    let out = mpirun(2, &["--device", "flex", "train", "--distributed", "--resume", s(&run)], &[]);
    let stdout = assert_success(&out);
    assert!(stdout.contains("resuming") && stdout.contains("test accuracy"), "{stdout}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn without_mpirun_a_distributed_run_is_a_job_of_one() {
    let root = scratch("alone");
    let mut args = vec!["--device", "flex", "train"];
    args.extend(LENET);
    let out = cnn(&[args.as_slice(), &["--distributed", "--out", s(&root.join("run"))]].concat());
    let stdout = assert_success(&out);
    assert!(stdout.contains("1 MPI process)"), "{stdout}");
    std::fs::remove_dir_all(&root).unwrap();
}
