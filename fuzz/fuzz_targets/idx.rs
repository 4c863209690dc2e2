//! The IDX parser (MNIST, Fashion-MNIST) on arbitrary bytes: an error or an array, never a
//! panic; a parsed array's element count matches its dimensions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = cnn_data_augment::idx::parse_idx(data, std::path::Path::new("fuzz.idx")) {
        let expected: usize = array.dims.iter().product();
        assert_eq!(array.data.len(), expected);
    }
});
