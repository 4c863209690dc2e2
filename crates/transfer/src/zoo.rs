//! torchvision's published ImageNet weights (`IMAGENET1K_V1`) for the models we mirror: where
//! they are, fetching them (checked) into the weights cache, and loading them into our models.
//! The 8 hex digits in each file name are the start of the file's SHA-256, which every fetch
//! (and every reuse of a cached copy) checks.
//!
//! ResNet-18 with ImageNet's weights and a new 5-class head, downloaded on first use into
//! `~/.cache/cnn-casestudies/weights/` (the same file `cnn weights download resnet18` fetches):
//!
//! ```no_run
//! use burn::tensor::Device;
//! use cnn_transfer::zoo::Pretrained;
//!
//! let device = Device::flex();
//! let (model, report, _head) = Pretrained::RESNET18.load(Some(5), &Pretrained::cache(), &device)?;
//! println!("{report}");
//! # let _ = model;
//! # Ok::<(), cnn_transfer::TransferError>(())
//! ```

use burn::tensor::Device;
use cnn_data_augment::download::{Checksum, DatasetFiles, Download, DownloadEvent, Outcome, RemoteFile};
use cnn_models::registry::Model;

use crate::error::{Result, TransferError};
use crate::import::LoadReport;
use crate::inspect::{HeadInfo, load_fitting};

/// torchvision's weights server.
pub const BASE_URL: &str = "https://download.pytorch.org/models/";

/// The folder (under the data folder) that holds weight files.
pub const WEIGHTS_DIR: &str = "weights";

/// One published weights file: the registry name of its model and torchvision's file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pretrained {
    /// Model name in the `cnn-models` registry.
    pub model: &'static str,
    /// File name on torchvision's server, `<model>-<first 8 hex digits of its SHA-256>.pth`
    /// (any weights extension that [`Format::of`](crate::Format::of) reads).
    pub file: &'static str,
}

macro_rules! published {
    ($($const:ident = $model:literal, $file:literal;)*) => {
        impl Pretrained {
            $(
                #[doc = concat!("`", $model, "` (`", $file, "`).")]
                pub const $const: Pretrained = Pretrained { model: $model, file: $file };
            )*
            /// Every published file we can load.
            pub const ALL: &'static [Pretrained] = &[$(Pretrained::$const),*];
        }
    };
}

published! {
    ALEXNET = "alexnet", "alexnet-owt-7be5be79.pth";
    VGG11 = "vgg11", "vgg11-8a719046.pth";
    VGG11_BN = "vgg11_bn", "vgg11_bn-6002323d.pth";
    VGG13 = "vgg13", "vgg13-19584684.pth";
    VGG13_BN = "vgg13_bn", "vgg13_bn-abd245e5.pth";
    VGG16 = "vgg16", "vgg16-397923af.pth";
    VGG16_BN = "vgg16_bn", "vgg16_bn-6c64b313.pth";
    VGG19 = "vgg19", "vgg19-dcbb9e9d.pth";
    VGG19_BN = "vgg19_bn", "vgg19_bn-c79401a0.pth";
    RESNET18 = "resnet18", "resnet18-f37072fd.pth";
    RESNET34 = "resnet34", "resnet34-b627a593.pth";
    RESNET50 = "resnet50", "resnet50-0676ba61.pth";
    RESNET101 = "resnet101", "resnet101-63fe2227.pth";
    RESNET152 = "resnet152", "resnet152-394f9c45.pth";
    // Ported from TensorFlow by torchvision.
    GOOGLENET = "googlenet", "googlenet-1378be20.pth";
}

impl Pretrained {
    /// The published weights of `model` (a registry name or alias); an error lists the models
    /// that have some.
    ///
    /// ```
    /// use cnn_transfer::zoo::Pretrained;
    ///
    /// let weights = Pretrained::of("ResNet18")?;
    /// assert_eq!(weights, Pretrained::RESNET18);
    /// assert_eq!(weights.url(), "https://download.pytorch.org/models/resnet18-f37072fd.pth");
    /// assert_eq!(weights.sha256_prefix(), "f37072fd");
    /// assert!(Pretrained::of("lenet5").is_err());
    /// # Ok::<(), cnn_transfer::TransferError>(())
    /// ```
    pub fn of(model: &str) -> Result<Self> {
        let name = cnn_models::registry::lookup(model)?.name;
        Self::ALL.iter().copied().find(|p| p.model == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|p| p.model).collect();
            TransferError::Weights(format!(
                "torchvision publishes no weights for {name}; it does for {}",
                names.join(", ")
            ))
        })
    }

    /// Where torchvision serves the file.
    pub fn url(&self) -> String {
        format!("{BASE_URL}{}", self.file)
    }

    /// The start of the file's SHA-256, from its name.
    pub fn sha256_prefix(&self) -> &'static str {
        let stem = self.file.rsplit_once('.').map_or(self.file, |(stem, _)| stem);
        stem.rsplit('-').next().unwrap_or(stem)
    }

    /// A download from the web into the default data folder's `weights/`.
    pub fn cache() -> Download {
        Download::new(cnn_data_augment::datasets::default_data_dir())
    }

    /// The file in `download`'s data folder (`<data dir>/weights/<file>`): kept when present and
    /// intact, otherwise fetched from the web (or imported from `download.origin`'s local copy)
    /// and checked against the SHA-256 prefix.
    pub fn fetch(&self, download: &Download, progress: &mut dyn FnMut(&DownloadEvent)) -> Result<Outcome> {
        let spec = DatasetFiles {
            name: WEIGHTS_DIR.into(),
            files: vec![RemoteFile {
                name: self.file.to_string(),
                urls: vec![self.url()],
                checksum: Checksum::Sha256Prefix(self.sha256_prefix().to_string()),
                content_sha256: None,
                unpack_to: None,
            }],
        };
        let mut outcomes = download.run(&spec, progress)?;
        outcomes
            .pop()
            .ok_or_else(|| TransferError::Weights(format!("{}: the download gave no file", self.file)))
    }

    /// [`fetch`](Self::fetch)es the file, then builds the model to fit it and loads it
    /// ([`load_fitting`]): ImageNet's 1000 classes, or a fresh head of `num_classes`.
    pub fn load(
        &self,
        num_classes: Option<usize>,
        download: &Download,
        device: &Device,
    ) -> Result<(Model, LoadReport, HeadInfo)> {
        let fetched = self.fetch(download, &mut |_| {})?;
        tracing::info!(model = self.model, path = %fetched.path.display(), source = %fetched.source, "pretrained weights");
        load_fitting(self.model, &fetched.path, num_classes, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cnn_data_augment::download::Origin;

    #[test]
    fn every_published_model_is_in_the_registry_with_an_8_digit_prefix() {
        for p in Pretrained::ALL {
            assert_eq!(Pretrained::of(p.model).unwrap(), *p);
            assert!(p.url().ends_with(p.file) && p.url().starts_with("https://"));
            let prefix = p.sha256_prefix();
            assert!(prefix.len() == 8 && prefix.bytes().all(|b| b.is_ascii_hexdigit()), "{}", p.file);
        }
        assert_eq!(Pretrained::ALL.len(), 15);
        assert_eq!(Pretrained::RESNET18.sha256_prefix(), "f37072fd");
        assert_eq!(Pretrained::of("ResNet18").unwrap(), Pretrained::RESNET18);
        let none = Pretrained::of("lenet5").unwrap_err().to_string();
        assert!(none.contains("no weights for lenet5") && none.contains("resnet18"), "{none}");
    }

    #[test]
    fn a_fetch_checks_the_prefix_and_then_reuses_the_cached_copy() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"weights of a test";
        let digest = format!("{:x}", Sha256::digest(bytes));
        let file: &'static str = format!("resnet18-{}.pth", &digest[..8]).leak();
        let copy = dir.path().join("copy.pth");
        std::fs::write(&copy, bytes).unwrap();
        let fake = Pretrained { model: "resnet18", file };
        let download = Download {
            origin: Origin::Local(copy.clone()),
            ..Download::new(dir.path().join("data"))
        };
        let first = fake.fetch(&download, &mut |_| {}).unwrap();
        assert_eq!(first.path, dir.path().join("data").join(WEIGHTS_DIR).join(file));
        assert_eq!(std::fs::read(&first.path).unwrap(), bytes);
        let again = fake.fetch(&download, &mut |_| {}).unwrap();
        assert_eq!(again.source, "already present");

        // A copy whose digest does not match the name is refused, and nothing is kept.
        let wrong = Pretrained {
            model: "resnet18",
            file: "resnet18-00000000.pth",
        };
        let err = wrong.fetch(&download, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("00000000"), "{err}");
        assert!(!dir.path().join("data").join(WEIGHTS_DIR).join(wrong.file).exists());
    }
}
