//! Who may write a run folder, and how a run stops when asked: one process per folder (a second
//! `cnn train` or `--resume` is refused at once), Ctrl-C ends after the current batch with the
//! last checkpoint intact, a second Ctrl-C ends at once, and a resume accepts the run's own
//! flags.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_clean_failure, assert_success, cnn};

fn scratch(tag: &str) -> cnn_testkit::Scratch {
    let dir = cnn_testkit::scratch("run_control", tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A long LeNet-5 run in `out`, started in the background.
fn long_run(out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args([
            "--device",
            "flex",
            "train",
            "--epochs",
            "200",
            "--subset",
            "1000",
            "--out",
            s(out),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `path` exists (the child must still be running).
fn wait_for(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {} appeared",
            path.display()
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn stderr_of(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_folder_in_use_is_refused_and_resumes_after_its_owner_is_killed() {
    let root = scratch("lock");
    let run = root.join("x");
    let mut first = long_run(&run);
    wait_for(&run.join("checkpoint.json"), &mut first);
    let busy = format!(
        "error: {} is in use by another cnn process (pid {})\n",
        run.display(),
        first.id()
    );
    // A new run into the same folder, and a resume of it, both stop before doing anything.
    let out = cnn(&["--device", "flex", "train", "--epochs", "1", "--out", s(&run)]);
    assert_eq!(assert_clean_failure(&out), busy);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .all(|l| !l.starts_with("epoch"))
    );
    let out = cnn(&["--device", "flex", "train", "--resume", s(&run)]);
    assert_eq!(assert_clean_failure(&out), busy);
    // The owner dies without a chance to clean up: the OS releases the lock.
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let done = cnn_trainer::run::checkpoint::info(&run).unwrap().epoch;
    let total = (done + 1).to_string();
    let stdout = assert_success(&cnn(&[
        "--device",
        "flex",
        "train",
        "--resume",
        s(&run),
        "--epochs",
        &total,
    ]));
    assert!(stdout.contains(&format!("epoch {total:>3}/{total}")), "{stdout}");
    assert!(run.join("model.bpk").is_file());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn two_experiments_cannot_share_a_folder() {
    let root = scratch("experiments");
    let out = root.join("degradation");
    let _held = cnn_trainer::FolderLock::acquire(&out).unwrap();
    let msg = assert_clean_failure(&cnn(&[
        "--device",
        "flex",
        "experiment",
        "degradation",
        "--subset",
        "100",
        "--epochs",
        "1",
        "--out",
        s(&out),
    ]));
    assert!(
        msg.contains(&format!(
            "{} is in use by another cnn process (pid {})",
            out.display(),
            std::process::id()
        )),
        "{msg}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn ctrl_c_ends_after_the_batch_keeps_the_checkpoint_and_says_how_to_resume() {
    let root = scratch("interrupt");
    let run = root.join("x");
    let mut child = long_run(&run);
    wait_for(&run.join("checkpoint.json"), &mut child);
    signal(&child, libc::SIGINT);
    let (code, stderr) = stderr_of(child);
    assert_eq!(code, Some(130), "{stderr}");
    let done = cnn_trainer::run::checkpoint::info(&run).unwrap().epoch;
    let hint = format!("interrupted in epoch {} after ", done + 1);
    assert!(stderr.contains(&hint), "{stderr}");
    assert!(
        stderr.trim_end().ends_with(&format!(
            "resume with --resume {} (the checkpoint of epoch {done} is kept; epoch {} starts again)",
            run.display(),
            done + 1
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    let total = (done + 1).to_string();
    let stdout = assert_success(&cnn(&[
        "--device",
        "flex",
        "train",
        "--resume",
        s(&run),
        "--epochs",
        &total,
    ]));
    assert!(stdout.contains(&format!("epoch {total:>3}/{total}")), "{stdout}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_second_ctrl_c_ends_at_once() {
    let root = scratch("interrupt2");
    let run = root.join("x");
    // A ResNet-20 batch of 512 takes seconds, so the first Ctrl-C is still waiting for its
    // batch when the second arrives 20 ms later.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args([
            "--device",
            "flex",
            "train",
            "--model",
            "resnet20",
            "--batch-size",
            "512",
            "--out",
            s(&run),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&run.join("config.json"), &mut child);
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(20));
    signal(&child, libc::SIGINT);
    let (code, stderr) = stderr_of(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupt: stopping after the current batch"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("interrupted in epoch"),
        "the first Ctrl-C ended it, not the second: {stderr}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_resume_accepts_the_runs_own_flags_and_names_a_change() {
    let root = scratch("resume-flags");
    let run = root.join("b");
    let settings = |seed| {
        [
            "--model",
            "lenet5",
            "--dataset",
            "mnist-5k",
            "--seed",
            seed,
            "--batch-size",
            "64",
            "--subset",
            "300",
        ]
    };
    let mut first = vec!["--device", "flex", "train", "--epochs", "1", "--out", s(&run)];
    first.extend(settings("11"));
    assert_success(&cnn(&first));
    // The same command with --resume (and a new total) is what people type.
    let mut again = vec!["--device", "flex", "train", "--epochs", "2", "--resume", s(&run)];
    again.extend(settings("11"));
    let stdout = assert_success(&cnn(&again));
    assert!(
        stdout.contains("epoch   2/2") && !stdout.contains("epoch   1/2"),
        "{stdout}"
    );
    let mut changed = vec!["--device", "flex", "train", "--epochs", "3", "--resume", s(&run)];
    changed.extend(settings("12"));
    let msg = assert_clean_failure(&cnn(&changed));
    assert!(
        msg.contains("changes --seed 12 (the run's: 11): drop those flags"),
        "{msg}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
