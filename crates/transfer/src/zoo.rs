//! Where torchvision publishes its ImageNet weights (`IMAGENET1K_V1`) for the models we mirror.
//! The 8 hex digits in each file name are the start of the file's SHA-256, which downloads check.

/// torchvision's weights server.
pub const BASE_URL: &str = "https://download.pytorch.org/models/";

/// `(model, file name)` of every published weight file we can load.
pub const WEIGHTS: [(&str, &str); 14] = [
    ("alexnet", "alexnet-owt-7be5be79.pth"),
    ("vgg11", "vgg11-8a719046.pth"),
    ("vgg11_bn", "vgg11_bn-6002323d.pth"),
    ("vgg13", "vgg13-19584684.pth"),
    ("vgg13_bn", "vgg13_bn-abd245e5.pth"),
    ("vgg16", "vgg16-397923af.pth"),
    ("vgg16_bn", "vgg16_bn-6c64b313.pth"),
    ("vgg19", "vgg19-dcbb9e9d.pth"),
    ("vgg19_bn", "vgg19_bn-c79401a0.pth"),
    ("resnet18", "resnet18-f37072fd.pth"),
    ("resnet34", "resnet34-b627a593.pth"),
    ("resnet50", "resnet50-0676ba61.pth"),
    ("resnet101", "resnet101-63fe2227.pth"),
    ("resnet152", "resnet152-394f9c45.pth"),
];

/// GoogLeNet's file (ported from TensorFlow by torchvision).
pub const GOOGLENET: (&str, &str) = ("googlenet", "googlenet-1378be20.pth");

/// The published file of `model`: `(file name, URL, SHA-256 prefix)`.
pub fn published(model: &str) -> Option<(&'static str, String, &'static str)> {
    WEIGHTS
        .iter()
        .chain(std::iter::once(&GOOGLENET))
        .find(|(m, _)| *m == model)
        .map(|(_, file)| {
            let prefix = file
                .trim_end_matches(".pth")
                .rsplit('-')
                .next()
                .expect("file names have a hash part");
            (*file, format!("{BASE_URL}{file}"), prefix)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_model_is_in_the_registry_with_an_8_digit_prefix() {
        for (model, _) in WEIGHTS.iter().chain(std::iter::once(&GOOGLENET)) {
            cnn_models::registry::lookup(model).unwrap();
            let (file, url, prefix) = published(model).unwrap();
            assert!(url.ends_with(file) && url.starts_with("https://"));
            assert!(
                prefix.len() == 8 && prefix.bytes().all(|b| b.is_ascii_hexdigit()),
                "{file}"
            );
        }
        assert_eq!(published("resnet18").unwrap().2, "f37072fd");
        assert!(published("lenet5").is_none());
    }
}
