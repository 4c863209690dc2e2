//! The CIFAR-10/100 binary parser on arbitrary bytes: an error or a data set, never a panic.
#![no_main]

use cnn_data_augment::cifar::{Cifar, parse_cifar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let kind = if selector % 2 == 0 { Cifar::Ten } else { Cifar::Hundred };
    let classes = match kind {
        Cifar::Ten => 10,
        Cifar::Hundred => 100,
    };
    let names = (0..classes).map(|i| format!("class{i}")).collect();
    let _ = parse_cifar(kind, bytes, std::path::Path::new("fuzz.bin"), names);
});
