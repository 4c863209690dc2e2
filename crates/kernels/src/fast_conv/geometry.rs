//! The sizes of one convolution and the batching rules derived from them: how many images
//! share a GEMM and how the batch is split over the threads.

/// Column-matrix budget per chunk of images, in floats (1 MiB, about a core's L2 cache: the
/// matrix is written by im2col and read back by the GEMM, measured 1.4× faster at 8×8 maps than
/// with a 16 MiB budget) ...
const COLUMN_BUDGET: usize = 1 << 18;
/// ... unless the GEMM would then have fewer columns than this (2×2 and 4×4 maps, where wide
/// products matter more: 512 channels at 2×2 ran 1.2× slower held to the budget).
const MIN_COLUMNS: usize = 128;

/// One image per GEMM is enough from this many output pixels (ResNet-18's first stage at 64 px
/// has 256) and multiply-adds per image (8 Mi; ResNet-20's 16-channel stage, 2.4 M, measured
/// 25% slower that way: the `gemm` crate's per-call cost): below, the batch is grouped so that
/// late layers' 2×2 maps and thin layers still make wide GEMMs.
const SINGLE_IMAGE_PIXELS: usize = 256;
const SINGLE_IMAGE_MACS: usize = 1 << 23;

/// Ranges of the batch per thread, at most (see [`ConvGeometry::per_range`]): ResNet-20's training
/// step at batch 128, four ranges of 16 images per thread against one of 64, five rounds
/// alternating: 1.21 / 1.05 / 0.99 / 1.07 / 1.12× faster.
const RANGES_PER_THREAD: usize = 4;
/// Images per range, at least (where the batch has that many per thread).
const MIN_RANGE: usize = 16;

/// The sizes of one 2-D convolution (groups = 1), all in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Output channels.
    pub channels_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride, padding (both sides) and dilation, as in `ConvOptions`.
    pub stride: [usize; 2],
    /// Zero padding added before and after each spatial side.
    pub padding: [usize; 2],
    /// Spacing between kernel taps.
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// A convolution of square maps with a square kernel and no dilation, as the zoo's layers
    /// are: `batch` images of `channels_in` × `size`² into `channels_out` channels.
    pub fn square(batch: usize, channels_in: usize, size: usize, channels_out: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        Self {
            batch,
            channels_in,
            input: [size, size],
            channels_out,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [1, 1],
        }
    }

    /// Output height and width; `None` when the kernel does not fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let side = |i: usize| {
            let span = self.dilation[i] * (self.kernel[i] - 1) + 1;
            let padded = self.input[i] + 2 * self.padding[i];
            (padded >= span && self.stride[i] > 0).then(|| (padded - span) / self.stride[i] + 1)
        };
        Some([side(0)?, side(1)?])
    }

    pub(super) fn out(&self) -> [usize; 2] {
        self.output().expect("convolution geometry checked by the caller")
    }

    /// Rows of the column matrix: `C·KH·KW`.
    pub(super) fn rows(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    pub(super) fn pixels_out(&self) -> usize {
        let [oh, ow] = self.out();
        oh * ow
    }

    pub(super) fn pixels_in(&self) -> usize {
        self.input[0] * self.input[1]
    }

    pub(super) fn is_padded(&self) -> bool {
        self.padding != [0, 0]
    }

    /// Stride 1, no dilation and a padding smaller than the kernel: the input gradient is itself
    /// such a convolution ([`with_turned`]), so passes that take one take the other.
    pub(super) fn is_turnable(&self) -> bool {
        let small_padding = self.padding[0] < self.kernel[0] && self.padding[1] < self.kernel[1];
        self.stride == [1, 1] && self.dilation == [1, 1] && small_padding
    }

    /// The convolution whose forward pass is this one's input gradient, when
    /// [`is_turnable`](Self::is_turnable): dY (`[N, O, OH, OW]`) padded by `K − 1 − pad`, `O`
    /// channels in and `C` out (see [`super::scratch::with_turned`] for its weight).
    pub(super) fn turned(&self) -> ConvGeometry {
        let [kh, kw] = self.kernel;
        ConvGeometry {
            channels_in: self.channels_out,
            input: self.out(),
            channels_out: self.channels_in,
            padding: [kh - 1 - self.padding[0], kw - 1 - self.padding[1]],
            ..*self
        }
    }

    /// A 1×1, stride-1, unpadded convolution: one image's column matrix is the image itself.
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && !self.is_padded()
    }

    /// Elements of one image's padded input planes (0 when there is no padding).
    pub(super) fn padded_plane(&self) -> usize {
        let (hp, wp) = padded(self);
        if self.is_padded() {
            self.channels_in * hp * wp
        } else {
            0
        }
    }

    /// Images in each contiguous range of the batch (the passes' unit of parallel work): up to
    /// [`RANGES_PER_THREAD`] ranges per thread, so that a core the host slows down leaves ranges
    /// for the others to take, but no fewer than [`MIN_RANGE`] images a range where the batch
    /// has them (narrower products cost more than the balance gains: ResNet-18's batch of 32).
    pub(super) fn per_range(&self) -> usize {
        let threads = rayon::current_num_threads().max(1);
        let even = self.batch.div_ceil(threads).max(1);
        let fine = self.batch.div_ceil(RANGES_PER_THREAD * threads).max(1);
        fine.max(MIN_RANGE.min(even))
    }

    /// Images per chunk: one where an image alone gives the GEMMs enough columns (then no
    /// regrouping copies are needed), else as many as fit one column matrix in
    /// [`COLUMN_BUDGET`] but at least [`MIN_COLUMNS`] columns' worth.
    pub(super) fn chunk(&self) -> usize {
        let image_macs = self.channels_out * self.rows() * self.pixels_out();
        if self.pixels_out() >= SINGLE_IMAGE_PIXELS && image_macs >= SINGLE_IMAGE_MACS {
            return 1;
        }
        let per_image = (self.rows() * self.pixels_out()).max(1);
        let wide_enough = MIN_COLUMNS.div_ceil(self.pixels_out().max(1));
        (COLUMN_BUDGET / per_image).max(wide_enough).clamp(1, self.batch.max(1))
    }
}

/// Sizes of a padded image plane: `(rows, row length)`.
pub(super) fn padded(g: &ConvGeometry) -> (usize, usize) {
    (g.input[0] + 2 * g.padding[0], g.input[1] + 2 * g.padding[1])
}
