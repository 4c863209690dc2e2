//! Backbone features cached on disk, so that when only the head trains the images go through the
//! frozen backbone once.
//!
//! A cache is identified by a key: named parts (model, weights file hash, preprocessing, data
//! set and split, a fingerprint of the images and labels, …) hashed with SHA-256. Any change to
//! a part gives another key, so a stale cache is never read. Layout, one folder per key:
//!
//! ```text
//! <cache dir>/<first 16 hex digits of the key>/meta.json
//!     {"format": 1, "key": {part: value, …}, "count": N, "dim": D,
//!      "shards": [{"file": "shard-00000.bin", "count": 4096}, …]}
//! <cache dir>/<…>/shard-00000.bin
//!     count × D float32 features (row-major, little-endian), then count × u32 labels
//! ```
//!
//! A cache is written into `<id>.tmp-<pid>/` and renamed into place when complete.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, TransferError};

/// Samples per shard file.
pub const SHARD_SIZE: usize = 4096;

/// The identity of a cache: named parts, hashed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The parts, e.g. `model`, `weights_sha256`, `preprocess`, `dataset`, `split`, `data_sha256`.
    pub parts: BTreeMap<String, String>,
}

impl CacheKey {
    /// Adds a part.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parts.insert(name.to_string(), value.into());
        self
    }

    /// SHA-256 of the parts, as hex.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.parts {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        format!("{:x}", h.finalize())
    }

    /// The folder name of this key's cache.
    pub fn folder(&self) -> String {
        self.digest()[..16].to_string()
    }
}

/// SHA-256 of a file's bytes, as hex (for the weights part of a key).
pub fn file_sha256(path: &Path) -> Result<String> {
    let err = |e: std::io::Error| TransferError::Weights(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    format: u32,
    key: CacheKey,
    count: usize,
    dim: usize,
    shards: Vec<ShardMeta>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ShardMeta {
    file: String,
    count: usize,
}

/// A complete cache on disk.
#[derive(Clone, Debug)]
pub struct FeatureCache {
    dir: PathBuf,
    meta: Meta,
}

fn cache_err(path: &Path, e: impl std::fmt::Display) -> TransferError {
    TransferError::Cache(format!("{}: {e}", path.display()))
}

impl FeatureCache {
    /// The cache for `key` under `root`, if a complete one exists (and its key matches).
    pub fn open(root: &Path, key: &CacheKey) -> Result<Option<Self>> {
        let dir = root.join(key.folder());
        let meta_path = dir.join("meta.json");
        if !meta_path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&meta_path).map_err(|e| cache_err(&meta_path, e))?;
        let meta: Meta = serde_json::from_str(&text).map_err(|e| cache_err(&meta_path, e))?;
        if meta.key != *key || meta.format != 1 {
            return Ok(None);
        }
        Ok(Some(Self { dir, meta }))
    }

    /// Samples in the cache.
    pub fn len(&self) -> usize {
        self.meta.count
    }

    /// `true` when the cache holds no sample.
    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// Length of each feature vector.
    pub fn dim(&self) -> usize {
        self.meta.dim
    }

    /// The folder holding it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every feature (row-major `[len, dim]`) and label.
    pub fn read_all(&self) -> Result<(Vec<f32>, Vec<u32>)> {
        let (mut features, mut labels) = (Vec::with_capacity(self.meta.count * self.meta.dim), Vec::new());
        for shard in &self.meta.shards {
            let path = self.dir.join(&shard.file);
            let bytes = std::fs::read(&path).map_err(|e| cache_err(&path, e))?;
            let feature_bytes = shard.count * self.meta.dim * 4;
            if bytes.len() != feature_bytes + shard.count * 4 {
                return Err(cache_err(
                    &path,
                    format!("{} bytes, expected {}", bytes.len(), feature_bytes + shard.count * 4),
                ));
            }
            features.extend(
                bytes[..feature_bytes]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            labels.extend(
                bytes[feature_bytes..]
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
        }
        Ok((features, labels))
    }
}

/// Writes a cache for `key` under `root` from batches of `(features [n × dim], labels [n])`.
pub struct CacheWriter {
    root: PathBuf,
    tmp: PathBuf,
    key: CacheKey,
    dim: Option<usize>,
    count: usize,
    shards: Vec<ShardMeta>,
    pending: (Vec<f32>, Vec<u32>),
}

impl CacheWriter {
    /// Starts a cache for `key` under `root`.
    pub fn new(root: &Path, key: CacheKey) -> Result<Self> {
        let tmp = root.join(format!("{}.tmp-{}", key.folder(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| cache_err(&tmp, e))?;
        Ok(Self {
            root: root.to_path_buf(),
            tmp,
            key,
            dim: None,
            count: 0,
            shards: Vec::new(),
            pending: (Vec::new(), Vec::new()),
        })
    }

    /// Appends `labels.len()` samples; `features` holds `labels.len() × dim` values.
    pub fn push(&mut self, features: &[f32], labels: &[u32]) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let dim = features.len() / labels.len();
        if dim * labels.len() != features.len() || self.dim.is_some_and(|d| d != dim) {
            return Err(TransferError::Cache(format!(
                "feature batch of {} values for {} labels does not match dimension {:?}",
                features.len(),
                labels.len(),
                self.dim
            )));
        }
        self.dim = Some(dim);
        self.pending.0.extend_from_slice(features);
        self.pending.1.extend_from_slice(labels);
        while self.pending.1.len() >= SHARD_SIZE {
            self.flush(SHARD_SIZE)?;
        }
        Ok(())
    }

    fn flush(&mut self, n: usize) -> Result<()> {
        let dim = self.dim.unwrap_or(0);
        let file = format!("shard-{:05}.bin", self.shards.len());
        let path = self.tmp.join(&file);
        let f = std::fs::File::create(&path).map_err(|e| cache_err(&path, e))?;
        let mut w = BufWriter::new(f);
        let features: Vec<f32> = self.pending.0.drain(..n * dim).collect();
        let labels: Vec<u32> = self.pending.1.drain(..n).collect();
        for v in &features {
            w.write_all(&v.to_le_bytes()).map_err(|e| cache_err(&path, e))?;
        }
        for l in &labels {
            w.write_all(&l.to_le_bytes()).map_err(|e| cache_err(&path, e))?;
        }
        w.flush().map_err(|e| cache_err(&path, e))?;
        self.shards.push(ShardMeta { file, count: n });
        self.count += n;
        Ok(())
    }

    /// Writes the last shard and `meta.json`, and moves the cache into place.
    pub fn finish(mut self) -> Result<FeatureCache> {
        let rest = self.pending.1.len();
        if rest > 0 {
            self.flush(rest)?;
        }
        let meta = Meta {
            format: 1,
            key: self.key.clone(),
            count: self.count,
            dim: self.dim.unwrap_or(0),
            shards: self.shards.clone(),
        };
        let meta_path = self.tmp.join("meta.json");
        std::fs::write(
            &meta_path,
            serde_json::to_string_pretty(&meta).expect("meta serialises"),
        )
        .map_err(|e| cache_err(&meta_path, e))?;
        let dir = self.root.join(self.key.folder());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| cache_err(&dir, e))?;
        }
        std::fs::rename(&self.tmp, &dir).map_err(|e| cache_err(&dir, e))?;
        Ok(FeatureCache { dir, meta })
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        // A cache that was not finished is removed (finish() renamed it away already).
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_round_trips_across_shards_and_its_key_decides_reuse() {
        let scratch = tempfile::tempdir().unwrap();
        let root = scratch.path().to_path_buf();
        let key = CacheKey::default().with("model", "lenet5").with("data", "x");
        assert!(FeatureCache::open(&root, &key).unwrap().is_none());
        let mut w = CacheWriter::new(&root, key.clone()).unwrap();
        let n = SHARD_SIZE + 10;
        let features: Vec<f32> = (0..n * 3).map(|i| i as f32).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 7).collect();
        for (f, l) in features.chunks(3 * 100).zip(labels.chunks(100)) {
            w.push(f, l).unwrap();
        }
        let cache = w.finish().unwrap();
        assert_eq!((cache.len(), cache.dim()), (n, 3));
        let again = FeatureCache::open(&root, &key).unwrap().unwrap();
        assert_eq!(again.read_all().unwrap(), (features, labels));
        // Another part value: another key, no cache.
        let other = key.clone().with("data", "y");
        assert_ne!(other.folder(), key.folder());
        assert!(FeatureCache::open(&root, &other).unwrap().is_none());
        // An unfinished writer leaves nothing behind.
        let mut w = CacheWriter::new(&root, other.clone()).unwrap();
        w.push(&[1.0, 2.0], &[0]).unwrap();
        drop(w);
        assert!(FeatureCache::open(&root, &other).unwrap().is_none());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
