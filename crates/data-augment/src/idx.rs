//! The IDX format of MNIST and Fashion-MNIST (`*-images-idx3-ubyte[.gz]`, `*-labels-idx1-ubyte[.gz]`).
//!
//! Each file starts with a big-endian magic number `0x0000_08NN` (`08` = unsigned bytes, `NN` = the
//! number of dimensions), then one big-endian `u32` per dimension, then the data. Gzipped files
//! (recognised by their `1f 8b` header, not by their name) are decompressed on the fly.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};

/// A decoded IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (`[n, 28, 28]` for images, `[n]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes from disk, gzipped or raw.
pub fn read_idx_file(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_idx(&bytes, path)
}

/// The largest IDX file accepted after decompression (MNIST's training images are 47 MB).
pub const MAX_IDX_BYTES: u64 = 2 << 30;

/// Parses IDX bytes (gzipped or raw); `origin` names the file in errors.
pub fn parse_idx(bytes: &[u8], origin: &Path) -> Result<IdxArray> {
    let raw;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // A few bytes of gzip can inflate to gigabytes: stop at a size no IDX data set reaches.
        GzDecoder::new(bytes)
            .take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(origin, format!("corrupt or truncated gzip stream: {e}")))?;
        if out.len() as u64 > MAX_IDX_BYTES {
            return Err(DataError::format(
                origin,
                format!("decompresses to more than {MAX_IDX_BYTES} bytes: not an IDX data set"),
            ));
        }
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    if bytes.len() < 4 {
        return Err(DataError::format(origin, "file too short for an IDX header"));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 {
        return Err(DataError::format(
            origin,
            format!(
                "not an IDX file of unsigned bytes (magic {:02x}{:02x}{:02x}{:02x}, expected 000008nn)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 || rank > 4 {
        return Err(DataError::format(
            origin,
            format!("IDX rank {rank} is not supported (1 to 4)"),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::format(origin, "file ends inside the IDX header"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let body = &bytes[header..];
    match expected {
        Some(n) if n == body.len() => Ok(IdxArray {
            dims,
            data: body.to_vec(),
        }),
        Some(n) => Err(DataError::format(
            origin,
            format!(
                "header promises {n} bytes of data ({dims:?}) but the file holds {}",
                body.len()
            ),
        )),
        None => Err(DataError::format(origin, format!("dimensions {dims:?} overflow"))),
    }
}

/// Builds a grayscale data set from an IDX images array `[n, h, w]` and labels array `[n]`.
pub fn dataset_from_idx(
    images: IdxArray,
    labels: IdxArray,
    images_path: &Path,
    labels_path: &Path,
    class_names: Vec<String>,
) -> Result<ImageDataset> {
    let mismatch = |reason: String| DataError::Mismatch {
        images: images_path.to_path_buf(),
        labels: labels_path.to_path_buf(),
        reason,
    };
    if images.dims.len() != 3 {
        return Err(DataError::format(
            images_path,
            format!("expected a 3-D image array, found dimensions {:?}", images.dims),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(DataError::format(
            labels_path,
            format!("expected a 1-D label array, found dimensions {:?}", labels.dims),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(mismatch(format!(
            "{} images but {} labels",
            images.dims[0], labels.dims[0]
        )));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, l)| **l as usize >= class_names.len())
    {
        return Err(DataError::format(
            labels_path,
            format!(
                "label {l} at index {i} is out of range for {} classes",
                class_names.len()
            ),
        ));
    }
    let labels: Vec<u16> = labels.data.iter().map(|&l| u16::from(l)).collect();
    ImageDataset::new(images.dims[1], images.dims[2], 1, images.data, labels, class_names)
}

/// Reads an images/labels pair of IDX files from disk.
pub fn read_idx_pair(images: &Path, labels: &Path, class_names: Vec<String>) -> Result<ImageDataset> {
    dataset_from_idx(
        read_idx_file(images)?,
        read_idx_file(labels)?,
        images,
        labels,
        class_names,
    )
}

pub(crate) fn resource(name: &str) -> PathBuf {
    PathBuf::from(format!("<embedded>/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn parses_raw_and_gzipped() {
        let bytes = idx(&[2, 2], &[1, 2, 3, 4]);
        let p = Path::new("x");
        let a = parse_idx(&bytes, p).unwrap();
        assert_eq!(a.dims, vec![2, 2]);
        assert_eq!(a.data, vec![1, 2, 3, 4]);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        assert_eq!(parse_idx(&gz.finish().unwrap(), p).unwrap(), a);
    }

    #[test]
    fn rejects_wrong_magic_and_short_bodies() {
        let p = Path::new("bad.idx");
        let mut bytes = idx(&[3], &[1, 2, 3]);
        bytes[2] = 0x0d; // float data
        assert!(parse_idx(&bytes, p).unwrap_err().to_string().contains("bad.idx"));
        let short = idx(&[4], &[1, 2]);
        let msg = parse_idx(&short, p).unwrap_err().to_string();
        assert!(msg.contains("promises 4 bytes") && msg.contains("holds 2"), "{msg}");
    }

    #[test]
    fn label_count_and_range_are_checked() {
        let names: Vec<String> = (0..2).map(|i| i.to_string()).collect();
        let images = IdxArray {
            dims: vec![2, 1, 1],
            data: vec![0, 0],
        };
        let (ip, lp) = (Path::new("i"), Path::new("l"));
        let one = IdxArray {
            dims: vec![1],
            data: vec![0],
        };
        assert!(dataset_from_idx(images.clone(), one, ip, lp, names.clone()).is_err());
        let out_of_range = IdxArray {
            dims: vec![2],
            data: vec![0, 2],
        };
        let msg = dataset_from_idx(images, out_of_range, ip, lp, names)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("label 2 at index 1"), "{msg}");
    }
}
