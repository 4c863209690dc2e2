//! The augmentation-pipeline config parsers (JSON, TOML, `--augment` argument) on arbitrary
//! text; a pipeline that validates is then applied to a small image, which must not panic.
#![no_main]

use cnn_data_augment::augment::Pipeline;
use cnn_data_augment::image::Image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = [Pipeline::from_json(text), Pipeline::from_toml(text), Pipeline::from_arg(text)];
    for pipeline in parsed.into_iter().flatten() {
        for (w, h, c) in [(12, 9, 3), (5, 7, 1)] {
            let pixels = (0..w * h * c).map(|i| (i * 37 % 256) as u8).collect();
            let img = Image::new(w, h, c, pixels).unwrap();
            if pipeline.check_input(h, w).is_ok() {
                let _ = pipeline.apply(&img, 1, 2, 3);
            }
        }
    }
});
