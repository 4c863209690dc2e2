//! What the trainer's integration tests share.

use std::ops::Deref;
use std::path::Path;

/// A fresh folder under the system's temporary directory, removed with everything in it when
/// dropped — also when the test fails (these runs write checkpoints of up to a gigabyte).
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

/// A [`Scratch`] folder named after the test file's `family` and the test's `tag`.
pub fn scratch(family: &str, tag: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("cnn-{family}-{tag}-"))
        .tempdir()
        .expect("a temporary folder");
    Scratch(dir)
}
