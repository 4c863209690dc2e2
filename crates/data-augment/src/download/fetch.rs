//! Fetching, checking and placing the files of a [`DatasetFiles`].

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use sha2::Sha256;

use super::spec::{Checksum, DatasetFiles, RemoteFile};
use crate::error::{DataError, Result};

/// Where the files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Their URLs (official first, then mirrors).
    Web,
    /// Copies already on disk: a folder holding them under the same file names, or, for a
    /// one-file download, the file itself.
    Local(PathBuf),
}

/// Which check a file passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The published checksum of the file itself.
    Published(Checksum),
    /// The SHA-256 of its decompressed contents (a recompressed copy).
    Contents(String),
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verified::Published(c) => write!(f, "{c} ok"),
            Verified::Contents(h) => write!(f, "recompressed copy: sha256 of the contents {h} ok"),
        }
    }
}

/// What happened to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The file's name.
    pub file: String,
    /// Where it now is.
    pub path: PathBuf,
    /// Where it came from: a URL, a local path, or `already present`.
    pub source: String,
    /// The check it passed.
    pub verified: Verified,
}

/// Progress of a download, for a progress bar or log lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownloadEvent {
    /// A file starts coming from `source`; `total` bytes if the server said.
    Start {
        /// File name.
        file: String,
        /// URL or local path.
        source: String,
        /// Size in bytes, if known.
        total: Option<u64>,
    },
    /// `done` bytes of `file` have arrived.
    Bytes {
        /// File name.
        file: String,
        /// Bytes so far.
        done: u64,
        /// Size in bytes, if known.
        total: Option<u64>,
    },
    /// A source failed and the next one will be tried.
    Failed {
        /// File name.
        file: String,
        /// URL or local path.
        source: String,
        /// Why, in words.
        reason: String,
    },
    /// A file is in place and checked.
    Done(Outcome),
}

/// A download (or import) of data sets into a data folder.
#[derive(Clone, Debug)]
pub struct Download {
    /// The data folder; each data set goes to `<data_dir>/<name>/`.
    pub data_dir: PathBuf,
    /// Web or a local folder.
    pub origin: Origin,
    /// Give up on a connection that sends nothing for this long.
    pub timeout: Duration,
}

impl Download {
    /// Downloads from the web into `data_dir`, with a 60 s stall timeout.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            origin: Origin::Web,
            timeout: Duration::from_secs(60),
        }
    }

    /// Fetches (or imports) every file of `spec`; files already present and intact are kept.
    pub fn run(&self, spec: &DatasetFiles, progress: &mut dyn FnMut(&DownloadEvent)) -> Result<Vec<Outcome>> {
        let dir = self.data_dir.join(&spec.name);
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let mut outcomes = Vec::new();
        for file in &spec.files {
            let target = dir.join(&file.name);
            let present = target.is_file().then(|| verify(&target, file)).transpose();
            let fresh = !matches!(present, Ok(Some(_)));
            let outcome = match present {
                Ok(Some(verified)) => Outcome {
                    file: file.name.clone(),
                    path: target.clone(),
                    source: "already present".into(),
                    verified,
                },
                other => {
                    if let Err(e) = other {
                        tracing::warn!(file = %file.name, path = %target.display(), reason = %e, "present but damaged; fetching it again");
                        progress(&DownloadEvent::Failed {
                            file: file.name.clone(),
                            source: target.display().to_string(),
                            reason: format!("{e}; fetching it again"),
                        });
                    }
                    match &self.origin {
                        Origin::Web => self.fetch_web(file, &target, progress)?,
                        Origin::Local(from) => import(file, from, &target, progress)?,
                    }
                }
            };
            if let Some(folder) = &file.unpack_to
                && (fresh || !dir.join(folder).is_dir())
            {
                unpack(&target, &dir, folder)?;
            }
            tracing::info!(file = %outcome.file, source = %outcome.source, "verified");
            progress(&DownloadEvent::Done(outcome.clone()));
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn fetch_web(&self, file: &RemoteFile, target: &Path, progress: &mut dyn FnMut(&DownloadEvent)) -> Result<Outcome> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(self.timeout))
            .timeout_recv_response(Some(self.timeout))
            .timeout_per_read(Some(self.timeout))
            .user_agent(concat!("cnn-casestudies/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let mut failures = Vec::new();
        for url in &file.urls {
            match self.fetch_one(&agent, url, file, target, progress) {
                Ok(verified) => {
                    return Ok(Outcome {
                        file: file.name.clone(),
                        path: target.to_path_buf(),
                        source: url.clone(),
                        verified,
                    });
                }
                Err(reason) => {
                    tracing::warn!(file = %file.name, %url, %reason, "download failed; trying the next source");
                    progress(&DownloadEvent::Failed {
                        file: file.name.clone(),
                        source: url.clone(),
                        reason: reason.clone(),
                    });
                    failures.push(format!("{url}: {reason}"));
                }
            }
        }
        Err(DataError::Download(format!(
            "could not download {}: {}. No network here? Fetch the files on another machine and \
             import them with `from` DIR",
            file.name,
            failures.join("; ")
        )))
    }

    /// One attempt from one URL; the error is a sentence for the user.
    fn fetch_one(
        &self,
        agent: &ureq::Agent,
        url: &str,
        file: &RemoteFile,
        target: &Path,
        progress: &mut dyn FnMut(&DownloadEvent),
    ) -> std::result::Result<Verified, String> {
        let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
        let total = response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        progress(&DownloadEvent::Start {
            file: file.name.clone(),
            source: url.to_string(),
            total,
        });
        let partial = Partial::create(target).map_err(|e| e.to_string())?;
        let mut reader = response.body_mut().as_reader();
        let mut out = std::io::BufWriter::new(&partial.file);
        let mut buf = vec![0u8; 1 << 16];
        let mut done = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| format!("transfer broke off after {done} bytes: {e}"))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| format!("cannot write {}: {e}", partial.path.display()))?;
            done += n as u64;
            progress(&DownloadEvent::Bytes {
                file: file.name.clone(),
                done,
                total,
            });
        }
        out.flush().map_err(|e| e.to_string())?;
        drop(out);
        if let Some(t) = total
            && t != done
        {
            return Err(format!("got {done} of {t} bytes"));
        }
        let verified = verify(&partial.path, file).map_err(|e| format!("{e} (download discarded)"))?;
        partial.commit(target).map_err(|e| e.to_string())?;
        Ok(verified)
    }
}

/// Copies `from/<name>` to `target` after checking it.
fn import(file: &RemoteFile, from: &Path, target: &Path, progress: &mut dyn FnMut(&DownloadEvent)) -> Result<Outcome> {
    // A folder holding the file under its name, or (for a one-file download) the file itself.
    let source = if from.is_file() {
        from.to_path_buf()
    } else {
        from.join(&file.name)
    };
    if !source.is_file() {
        return Err(DataError::Download(format!(
            "{} is missing: `from` {} must hold {}",
            source.display(),
            from.display(),
            file.name
        )));
    }
    let total = fs::metadata(&source).ok().map(|m| m.len());
    progress(&DownloadEvent::Start {
        file: file.name.clone(),
        source: source.display().to_string(),
        total,
    });
    let verified = verify(&source, file)?;
    if source.canonicalize().ok() != target.canonicalize().ok() {
        let partial = Partial::create(target).map_err(|e| io_err(target, e))?;
        let mut input = File::open(&source).map_err(|e| io_err(&source, e))?;
        std::io::copy(&mut input, &mut &partial.file).map_err(|e| io_err(&partial.path, e))?;
        partial.commit(target).map_err(|e| io_err(target, e))?;
    }
    Ok(Outcome {
        file: file.name.clone(),
        path: target.to_path_buf(),
        source: source.display().to_string(),
        verified,
    })
}

/// Checks `path` against the file's published checksum, or else against the SHA-256 of its
/// decompressed contents when that is known.
pub(crate) fn verify(path: &Path, file: &RemoteFile) -> Result<Verified> {
    let (md5, sha256) = hash(File::open(path).map_err(|e| io_err(path, e))?, path)?;
    let actual = match &file.checksum {
        Checksum::Md5(_) => Checksum::Md5(md5),
        Checksum::Sha256(_) => Checksum::Sha256(sha256.clone()),
        Checksum::Sha256Prefix(p) => Checksum::Sha256Prefix(sha256[..p.len().min(64)].to_string()),
    };
    if actual == file.checksum {
        return Ok(Verified::Published(actual));
    }
    if let Some(expected) = &file.content_sha256 {
        let decoder = flate2::read::GzDecoder::new(File::open(path).map_err(|e| io_err(path, e))?);
        if let Ok((_, contents)) = hash(decoder, path)
            && &contents == expected
        {
            return Ok(Verified::Contents(contents));
        }
    }
    Err(DataError::Checksum {
        path: path.to_path_buf(),
        expected: file.checksum.to_string(),
        actual: match actual {
            Checksum::Sha256Prefix(_) => format!("sha256 {sha256}"),
            other => other.to_string(),
        },
    })
}

/// MD5 and SHA-256 of everything `reader` yields, as lowercase hex.
fn hash(reader: impl Read, path: &Path) -> Result<(String, String)> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let (mut md5, mut sha) = (Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
    }
    // Digest outputs print as lowercase hex themselves.
    Ok((format!("{:x}", md5.finalize()), format!("{:x}", sha.finalize())))
}

/// Unpacks the `.tar.gz` at `archive` and moves its `folder` to `dir/folder`, via a temporary
/// folder so that a half-unpacked archive never sits under the real name.
fn unpack(archive: &Path, dir: &Path, folder: &str) -> Result<()> {
    let scratch = dir.join(format!(".unpack-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    let result = (|| {
        let gz = flate2::read::GzDecoder::new(BufReader::new(File::open(archive).map_err(|e| io_err(archive, e))?));
        tar::Archive::new(gz)
            .unpack(&scratch)
            .map_err(|e| DataError::format(archive, format!("cannot unpack: {e}")))?;
        let inner = scratch.join(folder);
        if !inner.is_dir() {
            return Err(DataError::format(
                archive,
                format!("the archive has no folder '{folder}'"),
            ));
        }
        let dest = dir.join(folder);
        if dest.exists() {
            fs::remove_dir_all(&dest).map_err(|e| io_err(&dest, e))?;
        }
        fs::rename(&inner, &dest).map_err(|e| io_err(&dest, e))
    })();
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// A hidden temporary file beside the target, removed unless committed.
struct Partial {
    path: PathBuf,
    file: File,
    committed: bool,
}

impl Partial {
    fn create(target: &Path) -> std::io::Result<Self> {
        let name = target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        remove_stale_parts(target, &name);
        let path = target.with_file_name(format!(".{name}.part-{}", std::process::id()));
        let file = File::create(&path)?;
        Ok(Self {
            path,
            file,
            committed: false,
        })
    }

    /// Flushes to disk and renames onto `target`.
    fn commit(mut self, target: &Path) -> std::io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, target)?;
        self.committed = true;
        Ok(())
    }
}

/// Removes `.NAME.part-PID` files that a killed download of `target` left behind (their process
/// is gone; on systems without `/proc` every other process's part file counts as stale).
fn remove_stale_parts(target: &Path, name: &str) {
    let Some(dir) = target.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.part-");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn io_err(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}
