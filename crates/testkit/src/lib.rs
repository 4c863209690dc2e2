//! # cnn-testkit
//!
//! What the workspace's integration tests share about the torchvision reference data:
//!
//! - [`MANIFEST_JSON`]: keys, shapes and parameter counts of torchvision's models, committed
//!   (130 KB), so the tests that need only those run everywhere;
//! - [`torchvision_fixtures`]: the large seeded `.pth` files and their reference logits, which a
//!   clone does not carry. They are found through `CNN_FIXTURES`, else in
//!   `../shared/fixtures/torchvision` beside the repository. A test that cannot find them says
//!   so once, by name, and passes without running; with `CNN_REQUIRE_FIXTURES=1` (CI) it fails.
//!
//! Every test's scratch folder is a [`scratch`] folder: a `tempfile` folder removed with all it
//! holds when the test ends, passed or failed.
//!
//! Tests that did not run are also appended to the file named by `CNN_NOT_RUN_LOG`, which
//! `cargo xtask test` sets to list them after the suite.

use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh folder under the system's temporary directory, removed with everything in it when
/// dropped — also when the test fails (some runs write checkpoints of up to a gigabyte).
pub struct Scratch(tempfile::TempDir);

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// So that `&scratch` goes wherever a path-like value does (`Into<PathBuf>`, `Command::env`).
impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

/// A [`Scratch`] folder named `cnn-<family>-<tag>-<random>`, so a leftover (after a crash of the
/// whole test process) says which test made it.
pub fn scratch(family: &str, tag: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("cnn-{family}-{tag}-"))
        .tempdir()
        .expect("a temporary folder");
    Scratch(dir)
}

/// torchvision's `manifest.json` (state_dict keys and shapes, parameter counts of 15 models),
/// as in the shared fixtures; a test compares the two whenever the fixtures are present.
pub const MANIFEST_JSON: &str = include_str!("../data/torchvision_manifest.json");

/// Set to `1` to make a missing fixture folder a failure instead of a test that did not run.
pub const REQUIRE_VAR: &str = "CNN_REQUIRE_FIXTURES";
/// The folder holding the torchvision fixtures (`manifest.json`, `resnet18.pth`, …).
pub const FIXTURES_VAR: &str = "CNN_FIXTURES";
/// A file to which every test that did not run appends one line.
pub const NOT_RUN_LOG_VAR: &str = "CNN_NOT_RUN_LOG";

/// Where the torchvision fixtures are looked for: `$CNN_FIXTURES`, else
/// `../shared/fixtures/torchvision` beside the repository.
pub fn torchvision_dir() -> PathBuf {
    std::env::var_os(FIXTURES_VAR).map(PathBuf::from).unwrap_or_else(|| {
        // cargo sets CARGO_MANIFEST_DIR when it runs a test: the tested crate's folder, two
        // levels below the repository like this one. It is read at run time because a build
        // folder shared by two checkouts can hand one of them a test compiled in the other.
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        crate_dir.join("../../../shared/fixtures/torchvision")
    })
}

/// The torchvision fixtures folder, or `None` after reporting that the calling test did not run
/// (call it first in a test and return on `None`).
///
/// # Panics
/// When the folder is missing and `CNN_REQUIRE_FIXTURES=1`.
pub fn torchvision_fixtures() -> Option<PathBuf> {
    let dir = torchvision_dir();
    if dir.join("manifest.json").is_file() {
        return Some(dir);
    }
    let why = format!(
        "the torchvision fixtures are not at {} (set {FIXTURES_VAR} to the folder holding manifest.json)",
        dir.display()
    );
    if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        panic!("{why}; {REQUIRE_VAR}=1 requires them");
    }
    not_run(&why);
    None
}

/// Reports that the calling test did not run, and why: on the process's stderr (the test
/// harness captures only the `print!` family of a passing test, so this line stays visible) and
/// in `$CNN_NOT_RUN_LOG`.
pub fn not_run(why: &str) {
    let line = format!("not run: {}: {why}\n", current_test());
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(log) = std::env::var_os(NOT_RUN_LOG_VAR)
        && let Err(e) = append(Path::new(&log), &line)
    {
        let _ = writeln!(std::io::stderr(), "(could not append to ${NOT_RUN_LOG_VAR}: {e})");
    }
}

fn append(log: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| f.write_all(line.as_bytes()))
}

/// `binary::test_name` of the running test: libtest names each test's thread after the test,
/// and the binary's file name (less cargo's hash) says which test file it is.
fn current_test() -> String {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| stem.rsplit_once('-').map_or(stem.clone(), |(name, _)| name.to_string()));
    match binary {
        Some(binary) => format!("{binary}::{test}"),
        None => test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_manifest_lists_the_mirrored_models() {
        for name in ["alexnet", "vgg16_bn", "resnet18", "resnet152", "googlenet"] {
            assert!(MANIFEST_JSON.contains(&format!("\"{name}\":{{")), "{name}");
        }
    }

    #[test]
    fn the_log_names_the_running_test_and_keeps_every_line() {
        assert_eq!(
            current_test(),
            "cnn_testkit::tests::the_log_names_the_running_test_and_keeps_every_line"
        );
        let dir = scratch("testkit", "log");
        let log = dir.join("not-run.log");
        append(&log, "not run: a: x\n").unwrap();
        append(&log, "not run: b: y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "not run: a: x\nnot run: b: y\n");
    }
}
