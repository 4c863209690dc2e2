//! The one way files are written: whole or not at all.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, TrainError};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees a half-written file (the temporary file is removed if anything fails: a
/// full disk must not keep it taking the space).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |e: std::io::Error| TrainError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    // Readable like a file `File::create` makes (a temporary file is private by default).
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder.tempfile_in(dir).map_err(err)?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}
