//! Faster 3×3 convolutions on tiny feature maps (CPU backends).
//!
//! burn-flex computes a convolution as one matrix product per image (im2col + GEMM) whose rows
//! are the image's output positions. ResNet's last stage at 64 px input works on 2×2 maps: four
//! rows per product, where the GEMM kernels spend their time on edges. Laying the batch side by
//! side along the width, with a zero column between neighbours, turns 32 products of 4 rows into
//! two of 64: the same sums in the same order (bit-identical output on flex), measured 1.5×
//! faster for 512 channels at 2×2 and slower from 4×4 up, hence the threshold. On flex,
//! [`crate::fast_conv`] groups the batch for every layer and takes precedence; this path serves
//! the other backends and `CNN_FAST_CONV=0`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

/// Maps with at most this many positions take the side-by-side path.
const MAX_POSITIONS: usize = 4;
/// Side-by-side groups: one per core of the development machine keeps both busy.
const GROUPS: usize = 2;

/// `conv.forward(x)`; for a 3×3, stride-1, padding-1 convolution on maps of at most 2×2
/// positions, computed with the batch laid side by side (see the module docs).
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    // The whole-batch kernel of `fast_conv` already does this, and more, where it applies.
    if let Some(y) = crate::fast_conv::try_conv2d(conv, &x) {
        return y;
    }
    let [batch, channels, h, w] = x.dims();
    // `Same` at stride 1 with a 3×3 kernel is this padding too, but our models spell it out.
    let padding_one = matches!(conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1));
    let eligible = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && padding_one
        && h * w <= MAX_POSITIONS
        && batch >= 2 * GROUPS
        && batch % GROUPS == 0
        && !crate::portable::is_portable();
    if !eligible {
        return conv.forward(x);
    }
    let out_channels = conv.weight.dims()[0];
    let per_group = batch / GROUPS;
    let wide = w + 2;
    // [B, C, H, W] → zero column each side → [G, C, H, (B/G)·(W+2)]
    let x = x
        .pad((1, 1, 0, 0), PadMode::Constant(0.0))
        .reshape([GROUPS, per_group, channels, h, wide])
        .permute([0, 2, 3, 1, 4])
        .reshape([GROUPS, channels, h, per_group * wide]);
    let options = ConvOptions::new([1, 1], [1, 0], [1, 1], 1);
    let y = conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), options);
    // Width (B/G)·(W+2) − 2: pad back to whole images, then drop the two gap columns of each.
    y.pad((0, 2, 0, 0), PadMode::Constant(0.0))
        .reshape([GROUPS, out_channels, h, per_group, wide])
        .narrow(4, 0, w)
        .permute([0, 3, 1, 2, 4])
        .reshape([batch, out_channels, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    fn max_gap(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Forward and gradients (input, weight, bias) equal the plain convolution's.
    #[test]
    fn side_by_side_equals_the_plain_convolution_forward_and_backward() {
        // On flex the fast kernel would take these shapes; this tests the side-by-side path.
        crate::fast_conv::with_fast_conv(false, side_by_side_check);
    }

    fn side_by_side_check() {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([16, 24], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        for hw in [1, 2] {
            let x = Tensor::<4>::random([8, 16, hw, hw], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let plain = conv.forward(x.clone());
            let fast = conv_forward(&conv, x.clone());
            assert_eq!(plain.dims(), fast.dims());
            assert!(max_gap(plain.clone(), fast.clone()) <= 1e-5);
            let g_plain = plain.powi_scalar(2).sum().backward();
            let g_fast = fast.powi_scalar(2).sum().backward();
            let gx = max_gap(x.grad(&g_plain).unwrap(), x.grad(&g_fast).unwrap());
            let gw = max_gap(conv.weight.grad(&g_plain).unwrap(), conv.weight.grad(&g_fast).unwrap());
            let gb = (conv.bias.as_ref().unwrap().grad(&g_plain).unwrap()
                - conv.bias.as_ref().unwrap().grad(&g_fast).unwrap())
            .abs()
            .max()
            .into_scalar::<f32>();
            assert!(gx <= 1e-4 && gw <= 1e-4 && gb <= 1e-4, "{hw}x{hw}: {gx} {gw} {gb}");
        }
        // Other shapes take the plain path unchanged.
        let x = Tensor::<4>::random([8, 16, 5, 5], Distribution::Default, &device);
        assert_eq!(max_gap(conv.forward(x.clone()), conv_forward(&conv, x)), 0.0);
        let _ = conv.num_params();
    }
}
