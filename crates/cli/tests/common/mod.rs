//! Running the `cnn` binary from integration tests.

#![allow(dead_code)] // each test file uses its own subset

use std::process::{Command, Output};

/// Runs `cnn` with `args` and waits for it.
pub fn cnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(args)
        .output()
        .expect("run cnn")
}

/// Asserts that the command succeeded (showing both streams if not) and returns its stdout.
pub fn assert_success(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asserts that the command failed with one line on stderr starting `error: `, and no panic;
/// returns that line.
pub fn assert_clean_failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// [`assert_clean_failure`] that lets `warning: ` lines come before the error line.
pub fn assert_failure_after_warnings(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure, stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let (error, warnings) = lines.split_last().expect("an error line");
    assert!(error.starts_with("error: "), "{stderr}");
    assert!(warnings.iter().all(|l| l.starts_with("warning: ")), "{stderr}");
    error.to_string()
}
