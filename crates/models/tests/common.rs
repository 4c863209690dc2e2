//! Shared helpers for the integration tests.

use std::path::PathBuf;

/// The torchvision fixtures folder: `$CNN_FIXTURES` or `../shared/fixtures/torchvision` beside
/// the repository. Missing fixtures fail the test: CI must have them.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("CNN_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/torchvision"
        ))
    });
    assert!(
        dir.join("manifest.json").is_file(),
        "torchvision fixtures not found at {} (set CNN_FIXTURES to the folder holding manifest.json)",
        dir.display()
    );
    dir
}
