//! Layers written with the operations every engine has, so that a model's forward pass also
//! exports to ONNX (burn-onnx lowers convolutions, pooling, batch norm, matrix products and
//! element-wise arithmetic, but not a transpose, a power or a maximum over a dimension):
//! adaptive average pooling to any size, local response normalisation, a global maximum and
//! ResNet's option-A shortcut.
//! Each computes what the burn or torchvision layer it replaces computes, in training too.
//!
//! [`portable`] runs a closure with the paths that reshape tensors for speed turned off (the
//! side-by-side convolution of [`crate::small_map`], the pooling form of [`Lrn`]'s window), for
//! capturing a forward pass with a free batch axis.

use std::cell::Cell;

use burn::module::Module;
use burn::tensor::module::{adaptive_avg_pool2d as burn_adaptive_avg_pool2d, avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

thread_local! {
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with only portable operations (see the module docs) on this thread.
pub fn portable<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PORTABLE.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PORTABLE.with(|p| p.replace(true)));
    f()
}

/// Whether this thread is inside [`portable`].
pub fn is_portable() -> bool {
    PORTABLE.with(Cell::get)
}

/// torchvision's `AdaptiveAvgPool2d(output)`: output cell `i` of an axis of length `n` averages
/// input positions `⌊i·n/out⌋ … ⌈(i+1)·n/out⌉ − 1`. An equal size is the identity, 1×1 is the
/// global average, a 1×1 input is repeated (VGG's 7×7 and AlexNet's 6×6 from small inputs), a
/// whole divisor is an average pooling with kernel = stride, and any other size (VGG's 7×7 from
/// 2×2 maps) is a product with the averaging matrix of each axis.
pub fn adaptive_avg_pool2d(x: Tensor<4>, output: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == output {
        return x;
    }
    if output == [1, 1] {
        return burn_adaptive_avg_pool2d(x, output);
    }
    let device = x.device();
    if [h, w] == [1, 1] {
        // Each cell averages the one value: a broadcast product with ones (no matrix product,
        // which GPU backends would first tune for the shape).
        return x * Tensor::<4>::ones([1, 1, output[0], output[1]], &device);
    }
    if h % output[0] == 0 && w % output[1] == 0 {
        let kernel = [h / output[0], w / output[1]];
        return avg_pool2d(x, AvgPoolOptions::new(kernel));
    }
    let rows = averaging_matrix(h, output[0], false, &device).reshape([1, 1, output[0], h]);
    let cols = averaging_matrix(w, output[1], true, &device).reshape([1, 1, w, output[1]]);
    rows.matmul(x).matmul(cols)
}

/// The `[out, n]` matrix whose row `i` averages the inputs of adaptive pooling's cell `i`, or
/// its `[n, out]` transpose.
fn averaging_matrix(n: usize, out: usize, transposed: bool, device: &Device) -> Tensor<2> {
    let mut values = vec![0.0f32; n * out];
    for i in 0..out {
        let (start, end) = (i * n / out, ((i + 1) * n).div_ceil(out));
        for j in start..end {
            let at = if transposed { j * out + i } else { i * n + j };
            values[at] = 1.0 / (end - start) as f32;
        }
    }
    let shape = if transposed { [n, out] } else { [out, n] };
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Local response normalisation across channels (AlexNet §3.3, PyTorch's
/// `LocalResponseNorm(size, alpha, beta, k)`): `x / (k + alpha/size · Σ x²)^beta`, the sum over
/// `size` neighbouring channels (zeros beyond the edges; an even window reaches one channel
/// further after than before). The window sum is an average pooling along the channel axis
/// (inside [`portable`], a 1×1 convolution with a banded kernel) and the power is
/// `exp(beta · ln(·))`.
#[derive(Module, Debug)]
pub struct Lrn {
    /// Channels in the window.
    pub size: usize,
    /// Scale of the window's mean square.
    pub alpha: f64,
    /// Exponent.
    pub beta: f64,
    /// Additive constant.
    pub k: f64,
}

impl Lrn {
    /// PyTorch's defaults for a window of `size` channels: alpha 1e-4, beta 0.75, k 1.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
    }

    /// The same with additive constant `k` (the AlexNet paper's is 2).
    pub fn with_k(self, k: f64) -> Self {
        Self { k, ..self }
    }

    /// Normalises `[N, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let squares = x.clone() * x.clone();
        let mean = if is_portable() {
            self.window_mean_by_product(squares)
        } else {
            self.window_mean(squares)
        };
        let base = mean.mul_scalar(self.alpha).add_scalar(self.k);
        x / base.log().mul_scalar(self.beta).exp()
    }

    /// The mean of each channel's window: an average pooling along the channel axis, laid out
    /// as the pooling's height (5 additions per value).
    fn window_mean(&self, squares: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = squares.dims();
        let (before, after) = ((self.size - 1) / 2, self.size / 2);
        let squares = squares.reshape([n, 1, c, h * w]);
        // The pooling's own zero padding (counted in the mean): no separate pad operation,
        // which some ONNX engines read differently (an odd window, as AlexNet's, pads evenly).
        let window = AvgPoolOptions::new([self.size, 1])
            .with_stride([1, 1])
            .with_padding_pairs([(before, after), (0, 0)])
            .with_count_include_pad(true);
        avg_pool2d(squares, window).reshape([n, c, h, w])
    }

    /// The same as a 1×1 convolution with a banded kernel (C multiply-adds per value, no
    /// reshapes: an ONNX export with a free batch axis cannot follow the pooling form's
    /// reshapes, which split one axis into two).
    fn window_mean_by_product(&self, squares: Tensor<4>) -> Tensor<4> {
        let c = squares.dims()[1];
        let (before, after) = ((self.size - 1) / 2, self.size / 2);
        let mut band = vec![0.0f32; c * c];
        for out in 0..c {
            for from in out.saturating_sub(before)..(out + after + 1).min(c) {
                band[out * c + from] = 1.0 / self.size as f32;
            }
        }
        let band = Tensor::from_data(TensorData::new(band, [c, c, 1, 1]), &squares.device());
        conv2d(squares, band, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
    }
}

/// He et al.'s option-A shortcut: every `stride`-th pixel, with `extra` zero channels (half
/// before, half after, as the common CIFAR implementations do). The subsampling is a 1×1 max
/// pooling with the stride; the zero channels come from a 1×1 convolution with a fixed 0/1
/// kernel (each output is one input times 1, or 0), which keeps the batch axis free where zero
/// tensors of the batch's size would fix it.
pub fn zero_pad_shortcut(x: Tensor<4>, stride: usize, extra: usize) -> Tensor<4> {
    let x = if stride > 1 {
        crate::fast_pool::max_pool(x, [1, 1], [stride, stride], [0, 0], false)
    } else {
        x
    };
    if extra == 0 {
        return x;
    }
    let channels = x.dims()[1];
    let before = extra / 2;
    let mut kernel = vec![0.0f32; (channels + extra) * channels];
    for c in 0..channels {
        kernel[(before + c) * channels + c] = 1.0;
    }
    let kernel = Tensor::from_data(TensorData::new(kernel, [channels + extra, channels, 1, 1]), &x.device());
    conv2d(x, kernel, None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
}

/// The maximum of each map, `[B, C, H, W]` → `[B, C]` (a max pooling over the whole map).
pub fn global_max(maps: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = maps.dims();
    max_pool2d(maps, MaxPoolOptions::new([h, w])).reshape([b, c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LocalResponseNormConfig;
    use burn::tensor::{Distribution, Tolerance};

    fn random(shape: [usize; 4], device: &Device) -> Tensor<4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
    }

    /// Every path equals burn's adaptive pooling (torchvision's windows), down and up.
    #[test]
    fn adaptive_pooling_equals_burns_for_every_size() {
        let device = Device::flex();
        for (input, output) in [
            ([7, 7], [7, 7]),
            ([5, 6], [1, 1]),
            ([12, 6], [6, 3]),
            ([1, 1], [7, 7]),
            ([2, 2], [7, 7]),
            ([3, 5], [7, 6]),
            ([13, 13], [6, 6]),
        ] {
            let x = random([2, 3, input[0], input[1]], &device);
            let ours = adaptive_avg_pool2d(x.clone(), output);
            let burns = burn_adaptive_avg_pool2d(x, output);
            assert_eq!(ours.dims(), burns.dims());
            ours.into_data()
                .assert_approx_eq::<f32>(&burns.into_data(), Tolerance::absolute(1e-6));
        }
    }

    /// Forward and input gradient equal burn's `LocalResponseNorm`, odd and even windows.
    #[test]
    fn local_response_norm_equals_burns() {
        let device = Device::flex().autodiff();
        for size in [5, 4] {
            let x = random([2, 7, 3, 4], &device).mul_scalar(3.0).require_grad();
            let burns = LocalResponseNormConfig::new(size).with_k(2.0).init().forward(x.clone());
            let g_burns = burns.clone().sum().backward();
            for exporting in [false, true] {
                let lrn = Lrn::new(size).with_k(2.0);
                let ours = if exporting {
                    portable(|| lrn.forward(x.clone()))
                } else {
                    lrn.forward(x.clone())
                };
                let g_ours = ours.clone().sum().backward();
                ours.into_data()
                    .assert_approx_eq::<f32>(&burns.to_data(), Tolerance::absolute(1e-6));
                let (a, b) = (x.grad(&g_ours).unwrap(), x.grad(&g_burns).unwrap());
                a.into_data()
                    .assert_approx_eq::<f32>(&b.into_data(), Tolerance::absolute(1e-5));
            }
        }
    }

    #[test]
    fn global_max_is_each_maps_maximum() {
        let device = Device::flex();
        let x = random([2, 3, 3, 5], &device);
        let expected = x.clone().reshape([2, 3, 15]).max_dim(2).reshape([2, 3]);
        global_max(x).into_data().assert_eq(&expected.into_data(), true);
    }

    /// Subsampled input channels between zero channels, as the max-pool-and-concatenate form.
    #[test]
    fn option_a_shortcut_subsamples_and_pads_with_zeros() {
        let device = Device::flex();
        let x = random([2, 4, 6, 6], &device);
        let y = zero_pad_shortcut(x.clone(), 2, 4);
        assert_eq!(y.dims(), [2, 8, 3, 3]);
        let kept = x
            .clone()
            .reshape([2, 4, 3, 2, 3, 2])
            .narrow(3, 0, 1)
            .narrow(5, 0, 1)
            .reshape([2, 4, 3, 3]);
        let zeros = Tensor::<4>::zeros([2, 2, 3, 3], &device);
        let expected = Tensor::cat(vec![zeros.clone(), kept, zeros], 1);
        y.into_data().assert_eq(&expected.into_data(), true);
        assert_eq!(zero_pad_shortcut(x.clone(), 1, 0).into_data(), x.into_data());
    }

    #[test]
    fn portable_is_scoped_to_its_closure() {
        assert!(!is_portable());
        assert!(portable(is_portable));
        assert!(!is_portable());
    }
}
