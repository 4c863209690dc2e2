//! Times burn's `Conv2d::forward`, the side-by-side `cnn_models::small_map::conv_forward` and
//! our `cnn_models::fast_conv::conv2d` for ResNet's 3×3 convolutions at ResNet-18's map sizes
//! (batch 32, flex, forward only):
//!
//! ```sh
//! cargo build --workspace --features wgpu --examples   # the workspace's feature set
//! target/debug/examples/small_map_bench
//! ```

use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, Distribution, Tensor};
use cnn_models::fast_conv::{conv2d, with_fast_conv};
use cnn_models::small_map::conv_forward;

fn main() {
    let device = Device::flex();
    for (channels, hw) in [(512usize, 2usize), (256, 4), (128, 8), (64, 16)] {
        let conv = Conv2dConfig::new([channels, channels], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device);
        let x = Tensor::<4>::random([32, channels, hw, hw], Distribution::Normal(0.0, 1.0), &device);
        let time = |f: &dyn Fn() -> Tensor<4>| {
            let _ = f().into_data(); // warm-up
            let started = Instant::now();
            for _ in 0..20 {
                let _ = f().into_data();
            }
            started.elapsed().as_secs_f64() * 1000.0 / 20.0
        };
        let plain = time(&|| conv.forward(x.clone()));
        let side_by_side = time(&|| with_fast_conv(false, || conv_forward(&conv, x.clone())));
        let fast = time(&|| conv2d(&conv, x.clone()));
        println!(
            "{channels} channels {hw}x{hw}: burn {plain:.2} ms, side by side {side_by_side:.2} ms, \
             fast_conv {fast:.2} ms"
        );
    }
}
