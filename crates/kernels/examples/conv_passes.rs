//! Times the fast convolution's three passes (forward, input gradient, weight gradient), and the
//! passes as `--precision bf16` runs them (`fwd bf16`, [`forward_bf16`] where [`bf16_pays`];
//! `dx bf16` and `dw bf16`, [`backward_bf16`]; f32 where bf16 does not pay), at the
//! convolution shapes of the benchmark suite's cases — ResNet-20 (32 px, batch 128), ResNet-18
//! (64 px, batch 32), VGG-16 (64 px, batch 16), AlexNet's features (224 px, batch 8) — so a
//! change to the kernels can be measured pass by pass, and compared with PyTorch's passes at
//! the same shapes (`scripts/conv_passes_pytorch.py`, which shares [`shapes`]' table), and the
//! speedrun's ResNet-9 (28 px, batch 256):
//!
//! ```sh
//! cargo build --workspace --features wgpu --example conv_passes
//! target/debug/examples/conv_passes [resnet20|resnet18|vgg16|alexnet|resnet9|resnet9w32]
//! ```

use std::time::Instant;

use cnn_kernels::fast_conv::kernel::{ConvGeometry, backward, backward_bf16, bf16_pays, forward, forward_bf16};

/// `(label, geometry, convolutions of this shape per step)`.
fn shapes(model: &str) -> Vec<(String, ConvGeometry, usize)> {
    let conv = ConvGeometry::square;
    let list: Vec<(ConvGeometry, usize)> = match model {
        "resnet18" => vec![
            (conv(32, 3, 64, 64, 7, 2, 3), 1),
            (conv(32, 64, 16, 64, 3, 1, 1), 4),
            (conv(32, 64, 16, 128, 3, 2, 1), 1),
            (conv(32, 128, 8, 128, 3, 1, 1), 3),
            (conv(32, 128, 8, 256, 3, 2, 1), 1),
            (conv(32, 256, 4, 256, 3, 1, 1), 3),
            (conv(32, 256, 4, 512, 3, 2, 1), 1),
            (conv(32, 512, 2, 512, 3, 1, 1), 3),
        ],
        "vgg16" => vec![
            (conv(16, 3, 64, 64, 3, 1, 1), 1),
            (conv(16, 64, 64, 64, 3, 1, 1), 1),
            (conv(16, 64, 32, 128, 3, 1, 1), 1),
            (conv(16, 128, 32, 128, 3, 1, 1), 1),
            (conv(16, 128, 16, 256, 3, 1, 1), 1),
            (conv(16, 256, 16, 256, 3, 1, 1), 2),
            (conv(16, 256, 8, 512, 3, 1, 1), 1),
            (conv(16, 512, 8, 512, 3, 1, 1), 2),
            (conv(16, 512, 4, 512, 3, 1, 1), 3),
        ],
        "alexnet" => vec![
            (conv(8, 3, 224, 64, 11, 4, 2), 1),
            (conv(8, 64, 27, 192, 5, 1, 2), 1),
            (conv(8, 192, 13, 384, 3, 1, 1), 1),
            (conv(8, 384, 13, 256, 3, 1, 1), 1),
            (conv(8, 256, 13, 256, 3, 1, 1), 1),
        ],
        // The speedrun's ResNet-9 (width 16) and the hour's (width 32, the `speedrun-hour` preset).
        "resnet9" => resnet9(16),
        "resnet9w32" => resnet9(32),
        _ => vec![
            (conv(128, 3, 32, 16, 3, 1, 1), 1),
            (conv(128, 16, 32, 16, 3, 1, 1), 6),
            (conv(128, 16, 32, 32, 3, 2, 1), 1),
            (conv(128, 32, 16, 32, 3, 1, 1), 5),
            (conv(128, 32, 16, 64, 3, 2, 1), 1),
            (conv(128, 64, 8, 64, 3, 1, 1), 5),
        ],
    };
    let label = |g: &ConvGeometry| {
        format!(
            "{}→{} {}×{} k{} s{}",
            g.channels_in, g.channels_out, g.input[0], g.input[1], g.kernel[0], g.stride[0]
        )
    };
    list.into_iter().map(|(g, n)| (label(&g), g, n)).collect()
}

/// ResNet-9 of width `c` on Fashion-MNIST (28 px, batch 256): prep, layer 1 and its residual at
/// 28 then 14 px, layer 2 at 14, layer 3 and its residual at 7 then 3.
fn resnet9(c: usize) -> Vec<(ConvGeometry, usize)> {
    let conv = ConvGeometry::square;
    vec![
        (conv(256, 1, 28, c, 3, 1, 1), 1),
        (conv(256, c, 28, 2 * c, 3, 1, 1), 1),
        (conv(256, 2 * c, 14, 2 * c, 3, 1, 1), 2),
        (conv(256, 2 * c, 14, 4 * c, 3, 1, 1), 1),
        (conv(256, 4 * c, 7, 8 * c, 3, 1, 1), 1),
        (conv(256, 8 * c, 3, 8 * c, 3, 1, 1), 2),
    ]
}

/// Fastest milliseconds of `reps` runs of `f`, after one warm-up run (the least disturbed by the
/// machine's other work).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[0]
}

fn main() {
    let model = std::env::args().nth(1).unwrap_or_else(|| "resnet20".into());
    let reps = 7;
    println!("{model}: fastest ms of {reps} runs; `total` weighs each shape by its count per step");
    println!(
        "{:<24} {:>5} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>9}",
        "shape", "count", "forward", "d input", "d weight", "GFLOP/s", "fwd bf16", "dx bf16", "dw bf16"
    );
    let mut totals = [0.0f64; 6];
    for (label, g, count) in shapes(&model) {
        let [oh, ow] = g.output().expect("valid shape");
        let x: Vec<f32> = (0..g.batch * g.channels_in * g.input[0] * g.input[1])
            .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
            .collect();
        let w: Vec<f32> = (0..g.channels_out * g.channels_in * g.kernel[0] * g.kernel[1])
            .map(|i| ((i % 31) as f32 - 15.0) / 100.0)
            .collect();
        let dy: Vec<f32> = (0..g.batch * g.channels_out * oh * ow)
            .map(|i| ((i % 13) as f32 - 6.0) / 10.0)
            .collect();
        let f = time(reps, || drop(forward(&g, &x, &w, None)));
        let forward_as_run = if bf16_pays(&g) { forward_bf16 } else { forward };
        let f16 = time(reps, || drop(forward_as_run(&g, &x, &w, None)));
        let di = time(reps, || drop(backward(&g, &x, &w, &dy, [true, false, false])));
        let dw = time(reps, || drop(backward(&g, &x, &w, &dy, [false, true, false])));
        let di16 = time(reps, || drop(backward_bf16(&g, &x, &w, &dy, [true, false, false])));
        let dw16 = time(reps, || drop(backward_bf16(&g, &x, &w, &dy, [false, true, false])));
        let flops = 2.0 * (g.batch * g.channels_out * oh * ow * g.channels_in * g.kernel[0] * g.kernel[1]) as f64;
        let rate = 3.0 * flops / ((f + di + dw) * 1e-3) / 1e9;
        println!("{label:<24} {count:>5} {f:>9.2} {di:>9.2} {dw:>9.2} {rate:>8.1} {f16:>9.2} {di16:>9.2} {dw16:>9.2}");
        for (total, t) in totals.iter_mut().zip([f, di, dw, f16, di16, dw16]) {
            *total += t * count as f64;
        }
    }
    let [f, di, dw, f16, di16, dw16] = totals;
    println!(
        "{:<24} {:>5} {f:>9.2} {di:>9.2} {dw:>9.2} {:>8} {f16:>9.2} {di16:>9.2} {dw16:>9.2}",
        "total", "", ""
    );
}
