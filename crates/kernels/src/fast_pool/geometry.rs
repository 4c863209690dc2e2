//! The shape of one 2-D pooling, shared by the kernels of [`super`].

/// One 2-D max pooling over `planes` planes of `input` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Batch × channels.
    pub planes: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit −∞ padding on each side.
    pub padding: [usize; 2],
    /// Round the output size up (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
}

impl PoolGeometry {
    /// Output height and width (PyTorch's rule: with `ceil_mode`, a last window must start
    /// inside the image or its left padding); `None` when the window does not fit.
    pub fn output(&self) -> Option<[usize; 2]> {
        let side = |i: usize| {
            let padded = self.input[i] + 2 * self.padding[i];
            if padded < self.kernel[i] || self.stride[i] == 0 || self.kernel[i] == 0 {
                return None;
            }
            let span = padded - self.kernel[i];
            let mut out = if self.ceil_mode {
                span.div_ceil(self.stride[i])
            } else {
                span / self.stride[i]
            } + 1;
            if self.ceil_mode && (out - 1) * self.stride[i] >= self.input[i] + self.padding[i] {
                out -= 1;
            }
            Some(out)
        };
        Some([side(0)?, side(1)?])
    }

    /// For each output position along axis `i`, the input range its window covers.
    pub(super) fn windows(&self, i: usize, out: usize) -> Vec<(usize, usize)> {
        (0..out)
            .map(|o| {
                let start = (o * self.stride[i]) as isize - self.padding[i] as isize;
                let end = (start + self.kernel[i] as isize).min(self.input[i] as isize);
                (start.max(0) as usize, end.max(0) as usize)
            })
            .collect()
    }
}
