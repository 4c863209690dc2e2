//! What each downloadable data set consists of: file names, URLs (official first, then
//! mirrors) and checksums.

use crate::datasets::NAMES;
use crate::error::{DataError, Result};

/// A checksum, as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// MD5 of the file as published.
    Md5(String),
    /// SHA-256 of the file as published.
    Sha256(String),
    /// The first hex digits of the file's SHA-256 (torchvision puts them in its weight files'
    /// names, e.g. `resnet18-f37072fd.pth`).
    Sha256Prefix(String),
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checksum::Md5(h) => write!(f, "md5 {h}"),
            Checksum::Sha256(h) => write!(f, "sha256 {h}"),
            Checksum::Sha256Prefix(h) => write!(f, "sha256 starting {h}"),
        }
    }
}

/// One file of a data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// Name of the file in the data set's folder (and in a `--from` folder).
    pub name: String,
    /// Where to fetch it: tried in order until one succeeds.
    pub urls: Vec<String>,
    /// The checksum of the file as published.
    pub checksum: Checksum,
    /// For gzip files: SHA-256 of the decompressed contents, accepted when a recompressed copy
    /// fails `checksum`.
    pub content_sha256: Option<String>,
    /// For `.tar.gz` archives: the folder inside the archive that the readers use; the archive
    /// is unpacked and that folder moved to `<data dir>/<name>/<folder>`.
    pub unpack_to: Option<String>,
}

/// The files of one data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetFiles {
    /// Registry name (`mnist`, …), also the folder under the data dir.
    pub name: String,
    /// Its files.
    pub files: Vec<RemoteFile>,
}

const MNIST_MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];
const FASHION_MIRRORS: [&str; 1] = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];
const CIFAR_MIRRORS: [&str; 1] = ["https://www.cs.toronto.edu/~kriz/"];

/// `(file, md5 as published, sha256 of the decompressed contents if known)`.
type IdxFile = (&'static str, &'static str, Option<&'static str>);

const MNIST_FILES: [IdxFile; 4] = [
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", None),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", None),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", None),
];

// MD5s from Fashion-MNIST's README; the SHA-256s were computed from the decompressed files of
// Debian's dataset-fashion-mnist package, whose gzip files are recompressed.
const FASHION_FILES: [IdxFile; 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        Some("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "25c81989df183df01b3e8a0aad5dffbe",
        Some("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "bef4ecab320f06d8554ea6380940ec79",
        Some("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "bb300cfdad3c16e7a12a480ee83cd310",
        Some("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
];

fn idx_files(mirrors: &[&str], files: &[IdxFile]) -> Vec<RemoteFile> {
    files
        .iter()
        .map(|(name, md5, content)| RemoteFile {
            name: name.to_string(),
            urls: mirrors.iter().map(|m| format!("{m}{name}")).collect(),
            checksum: Checksum::Md5(md5.to_string()),
            content_sha256: content.map(str::to_string),
            unpack_to: None,
        })
        .collect()
}

fn archive(name: &str, md5: &str, folder: &str) -> Vec<RemoteFile> {
    vec![RemoteFile {
        name: name.to_string(),
        urls: CIFAR_MIRRORS.iter().map(|m| format!("{m}{name}")).collect(),
        checksum: Checksum::Md5(md5.to_string()),
        content_sha256: None,
        unpack_to: Some(folder.to_string()),
    }]
}

/// The files of a downloadable data set (`mnist`, `fashion-mnist`, `cifar10`, `cifar100`).
pub fn dataset_files(name: &str) -> Result<DatasetFiles> {
    let lower = name.to_ascii_lowercase();
    let files = match lower.as_str() {
        "mnist" => idx_files(&MNIST_MIRRORS, &MNIST_FILES),
        "fashion-mnist" => idx_files(&FASHION_MIRRORS, &FASHION_FILES),
        "cifar10" => archive(
            "cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
            "cifar-10-batches-bin",
        ),
        "cifar100" => archive(
            "cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8",
            "cifar-100-binary",
        ),
        "mnist-5k" => {
            return Err(DataError::Invalid(
                "mnist-5k is embedded in the program: there is nothing to download".into(),
            ));
        }
        other => {
            return Err(DataError::Invalid(format!(
                "unknown dataset '{other}'; downloadable datasets: {}",
                NAMES[1..].join(", ")
            )));
        }
    };
    Ok(DatasetFiles { name: lower, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_downloadable_name_has_files_with_urls_and_checksums() {
        for name in &NAMES[1..] {
            let spec = dataset_files(name).unwrap();
            assert!(!spec.files.is_empty());
            for f in &spec.files {
                assert!(f.urls.iter().all(|u| u.ends_with(&f.name) && u.contains("://")));
                let Checksum::Md5(h) = &f.checksum else {
                    panic!("{name}: md5 expected")
                };
                assert!(h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        assert!(dataset_files("mnist-5k").unwrap_err().to_string().contains("embedded"));
        assert!(dataset_files("imagenet").unwrap_err().to_string().contains("cifar100"));
    }
}
