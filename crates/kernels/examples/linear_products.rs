//! Times the three products of a fully connected layer — `X · W`, `dY · Wᵀ`, `Xᵀ · dY` — at the
//! zoo's classifier shapes: burn-flex's (the `gemm` crate) against `cnn_kernels::fast_linear`'s,
//! fastest and median of 7 runs. `scripts/linear_products_pytorch.py` times PyTorch's:
//!
//! ```sh
//! cargo build -p cnn-kernels --features flex --example linear_products
//! target/debug/examples/linear_products
//! ```

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use cnn_kernels::fast_linear::kernel;

fn time(f: &dyn Fn()) -> (f64, f64) {
    f();
    let mut ms: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[3])
}

fn main() {
    let device = Device::flex();
    println!("[batch, inputs, outputs]   product   burn-flex best / median ms   fast_linear best / median ms");
    for sizes @ [batch, inputs, outputs] in [[16, 25088, 4096], [16, 4096, 4096], [8, 9216, 4096]] {
        let x = Tensor::<2>::random([batch, inputs], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<2>::random([inputs, outputs], Distribution::Normal(0.0, 1.0), &device);
        let dy = Tensor::<2>::random([batch, outputs], Distribution::Normal(0.0, 1.0), &device);
        let values = |t: &Tensor<2>| t.to_data().try_to_vec::<f32>().expect("f32");
        let (xs, ws, dys) = (values(&x), values(&w), values(&dy));
        let rows: [(&str, &dyn Fn(), &dyn Fn()); 3] = [
            ("X·W", &|| drop(x.clone().matmul(w.clone()).into_data()), &|| {
                drop(kernel::forward(sizes, &xs, &ws))
            }),
            (
                "dY·Wᵀ",
                &|| drop(dy.clone().matmul(w.clone().transpose()).into_data()),
                &|| drop(kernel::input_gradient(sizes, &ws, &dys)),
            ),
            (
                "Xᵀ·dY",
                &|| drop(x.clone().transpose().matmul(dy.clone()).into_data()),
                &|| drop(kernel::weight_gradient(sizes, &xs, &dys)),
            ),
        ];
        for (name, burn, ours) in rows {
            let (burn, ours) = (time(burn), time(ours));
            println!(
                "{:<26} {name:<9} {:>8.1} / {:<8.1} {:>18.1} / {:.1}",
                format!("{sizes:?}"),
                burn.0,
                burn.1,
                ours.0,
                ours.1
            );
        }
        assert!(kernel::applies(sizes), "no AVX-512 here: fast_linear would not run");
    }
}
