//! One process per run folder. A run (or an experiment) holds an advisory lock on
//! `<folder>/.lock` for as long as it writes there; the operating system releases it when the
//! process ends, however it ends, so a killed run's folder can be resumed at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// The lock file inside a run folder; it holds the owner's process id, for the error message.
pub const LOCK_FILE: &str = ".lock";

/// Ownership of a folder by this process; dropping it releases the folder.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    dir: PathBuf,
}

impl FolderLock {
    /// Creates `dir` if needed and takes it for this process, or fails at once with
    /// [`TrainError::InUse`] when another process (or another run in this one) holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let write_err = |e: std::io::Error| TrainError::Write {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(TrainError::InUse {
                    dir: dir.to_path_buf(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(write_err(e)),
        }
        file.set_len(0)
            .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
            .map_err(write_err)?;
        Ok(Self {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The folder held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_folder_is_refused_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = FolderLock::acquire(&dir).unwrap();
        assert_eq!(first.dir(), dir);
        let err = FolderLock::acquire(&dir).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is in use by another cnn process (pid {})",
                dir.display(),
                std::process::id()
            )
        );
        drop(first);
        FolderLock::acquire(&dir).unwrap();
    }
}
