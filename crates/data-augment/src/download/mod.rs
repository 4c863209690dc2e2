//! Checked downloads of the registered data sets (`cargo xtask download NAME`, `cnn download NAME`).
//!
//! Every file is fetched from its official URL (falling back to the mirrors torchvision uses),
//! streamed into a hidden temporary file beside its final name (`.NAME.part-PID`), checked
//! against its published checksum, and only then renamed into place — so an interrupted or
//! corrupted download never leaves a file that looks complete. Archives (CIFAR) are unpacked
//! into a temporary folder that is renamed into place the same way.
//!
//! [`Origin::Local`] imports copies found in a local folder instead (the same checks apply).
//! Published checksums are MD5s of the archives (the ones torchvision's data set classes list).
//! Some distributions recompress the gzip files (Debian's `dataset-fashion-mnist` does), which
//! changes the archive's MD5 but not its contents; for those files the SHA-256 of the
//! *decompressed* data is also known and accepted.
//!
//! | data set | files, under `<data dir>/<name>/` |
//! | --- | --- |
//! | `mnist`, `fashion-mnist` | the four `*-idx?-ubyte.gz` files |
//! | `cifar10` | `cifar-10-binary.tar.gz`, unpacked to `cifar-10-batches-bin/` |
//! | `cifar100` | `cifar-100-binary.tar.gz`, unpacked to `cifar-100-binary/` |

mod fetch;
mod spec;

pub use fetch::{Download, DownloadEvent, Origin, Outcome, Verified};
pub use spec::{Checksum, DatasetFiles, RemoteFile, dataset_files};
