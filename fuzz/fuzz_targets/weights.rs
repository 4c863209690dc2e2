//! The weight-file loader (PyTorch `.pth` zip or legacy pickle, `.safetensors`, burn's `.bpk`) on
//! arbitrary bytes, loaded into LeNet-5: an error or a model, never a panic. The first byte picks
//! the format.
#![no_main]

use std::io::Write;

use burn::tensor::Device;
use cnn_models::{BuildOptions, build};
use cnn_transfer::{Partial, load_torchvision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let ext = ["pth", "safetensors", "bpk"][selector as usize % 3];
    let path = std::env::temp_dir().join(format!("cnn-fuzz-{}.{ext}", std::process::id()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes)).unwrap();
    let model = build("lenet5", BuildOptions::classes(10), &Device::flex()).unwrap();
    let _ = load_torchvision(model, &path, &Partial::Any);
});
