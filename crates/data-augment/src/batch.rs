//! Turning 8-bit images into normalised float mini-batches, and batches into tensors.
//!
//! A [`Batch`] is assembled on the CPU (by the loader's threads, later) and only then moved to
//! a [`Device`], so the training thread never decodes or converts pixels.
//!
//! # How images are fitted to the model's input ([`Preprocess`])
//! - **Size**: an image smaller than the model's input is centred on a canvas filled with pixel
//!   value 0 (so MNIST's 28×28 digits become LeNet-5's 32×32 input, padded by 2 as in the paper);
//!   a larger one is centre-cropped. Resizing is the augmentation pipeline's job.
//! - **Channels**: grayscale → RGB repeats the gray value; RGB → grayscale uses the ITU-R BT.601
//!   luma weights (0.299, 0.587, 0.114); RGBA drops alpha first.
//! - **Values**: `(pixel / 255 − mean[c]) / std[c]` per output channel.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};
use crate::image::Image;
use crate::source::Source;

/// Per-channel mean and standard deviation of MNIST's training pixels (in [0, 1]).
pub const MNIST_MEAN_STD: (f32, f32) = (0.1307, 0.3081);

/// How images are fitted to a model's input.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// Output channels (1 or 3).
    pub channels: usize,
    /// Output height and width.
    pub size: usize,
    /// Per-channel mean (in [0, 1] units), one value per output channel.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, one value per output channel.
    pub std: Vec<f32>,
    /// Resize (bilinear) images of another size to `size × size` instead of centring/cropping
    /// them: for sources whose images differ in size, such as photo folders.
    pub resize: bool,
    /// With `resize`: scale the shorter side to `size · 8/7` and keep the centre `size × size`
    /// square (torchvision's `Resize(256)` + `CenterCrop(224)`), instead of stretching the
    /// whole image to the square. Photo folders use it; runs written before it existed do not.
    #[serde(default)]
    pub center_crop: bool,
}

impl Preprocess {
    /// The MNIST normalisation for a grayscale model of input `size`×`size`.
    pub fn mnist(size: usize) -> Self {
        Self {
            channels: 1,
            size,
            mean: vec![MNIST_MEAN_STD.0],
            std: vec![MNIST_MEAN_STD.1],
            resize: false,
            center_crop: false,
        }
    }

    /// `img` fitted to the model's `size × size` input exactly as a batch fits it: resized
    /// (bilinear) when [`resize`](Self::resize) is set, otherwise centred on a canvas of pixel
    /// value 0, or centre-cropped. Channels are kept (they are converted when the batch is
    /// written). Test-time views (ten crops) are cut from this image.
    pub fn fit(&self, img: &Image) -> Image {
        let s = self.size;
        if (img.height, img.width) == (s, s) {
            return img.clone();
        }
        if self.resize && self.center_crop {
            // The centre square of side 7/8 of the shorter side, resized once to size × size.
            let side = ((img.height.min(img.width) * 7 + 4) / 8).max(1);
            let window = [(img.height - side) / 2, (img.width - side) / 2, side, side];
            return crate::augment::geometry::resize_window(img, window, s, s);
        }
        if self.resize {
            return crate::augment::geometry::resize(img, s, s);
        }
        let c = img.channels;
        let mut out = Image::filled(s, s, c, 0);
        // Offsets of the source inside the canvas (positive: padding) or of the crop (negative).
        let off_y = (s as isize - img.height as isize) / 2;
        let off_x = (s as isize - img.width as isize) / 2;
        let x0 = off_x.max(0) as usize;
        let x1 = (off_x + img.width as isize).min(s as isize) as usize;
        for y in 0..s {
            let sy = y as isize - off_y;
            if sy < 0 || sy >= img.height as isize || x0 >= x1 {
                continue;
            }
            let sx0 = (x0 as isize - off_x) as usize;
            let src = &img.data[(sy as usize * img.width + sx0) * c..][..(x1 - x0) * c];
            out.data[(y * s + x0) * c..][..(x1 - x0) * c].copy_from_slice(src);
        }
        out
    }

    /// How training images that went through `pipeline` are fitted: a pipeline that crops
    /// (random crop, random-resized crop) has already chosen the window, so its output is
    /// resized whole rather than centre-cropped a second time.
    pub fn for_pipeline(&self, pipeline: &crate::augment::pipeline::Pipeline) -> Self {
        Self {
            center_crop: self.center_crop && !pipeline.crops(),
            ..self.clone()
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.channels == 1 || self.channels == 3) {
            return Err(DataError::Invalid(format!(
                "models take 1 or 3 channels, not {}",
                self.channels
            )));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return Err(DataError::Invalid(format!(
                "normalisation needs one mean and one std per channel ({} channels)",
                self.channels
            )));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) || self.size == 0 {
            return Err(DataError::Invalid("std must be positive and size non-zero".into()));
        }
        Ok(())
    }
}

/// A mini-batch on the host: normalised NCHW floats and class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[batch, channels, size, size]`, row-major.
    pub images: Vec<f32>,
    /// The image tensor's shape.
    pub shape: [usize; 4],
    /// One class index per image.
    pub labels: Vec<i64>,
}

impl Batch {
    /// Assembles the images at `indices` of `data` into a batch.
    pub fn from_dataset(data: &ImageDataset, indices: &[usize], pre: &Preprocess) -> Result<Self> {
        let samples = indices.iter().map(|&i| data.get(i)).collect::<Result<Vec<_>>>()?;
        Self::from_images(&samples, pre)
    }

    /// Assembles already-decoded (and augmented) images with their labels into a batch.
    pub fn from_images(samples: &[(Image, usize)], pre: &Preprocess) -> Result<Self> {
        pre.validate()?;
        let (c, s) = (pre.channels, pre.size);
        let mut images = vec![0f32; samples.len() * c * s * s];
        for ((img, _), slot) in samples.iter().zip(images.chunks_exact_mut(c * s * s)) {
            if (img.height, img.width) == (s, s) {
                write_image(&img.data, img.channels, pre, slot);
            } else {
                let fitted = pre.fit(img);
                write_image(&fitted.data, fitted.channels, pre, slot);
            }
        }
        let labels = samples.iter().map(|(_, l)| *l as i64).collect();
        Ok(Self {
            images,
            shape: [samples.len(), c, s, s],
            labels,
        })
    }

    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Moves the batch to `device` as `(images [B,C,H,W], labels [B])`.
    pub fn to_device(&self, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let images = Tensor::<4>::from_data(TensorData::new(self.images.clone(), self.shape), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(self.labels.clone(), [self.labels.len()]), device);
        (images, labels)
    }
}

/// Writes one `size × size` HWC u8 image (already fitted) into a CHW f32 slot, converting
/// channels and normalising.
fn write_image(src: &[u8], src_c: usize, pre: &Preprocess, out: &mut [f32]) {
    let area = pre.size * pre.size;
    for oc in 0..pre.channels {
        let (mean, std) = (pre.mean[oc], pre.std[oc]);
        let plane = &mut out[oc * area..(oc + 1) * area];
        for (value, p) in plane.iter_mut().zip(src.chunks_exact(src_c)) {
            *value = (channel_value(p, oc, pre.channels) / 255.0 - mean) / std;
        }
    }
}

/// Value of output channel `oc` (of `out_c`) for one source pixel `p`, on the 0–255 scale.
fn channel_value(p: &[u8], oc: usize, out_c: usize) -> f32 {
    match (p.len(), out_c) {
        (1, _) | (2, _) => p[0] as f32, // gray (+ alpha): repeated into every output channel
        (_, 1) => 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32,
        _ => p[oc] as f32, // RGB(A) → RGB: alpha dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_image(h: usize, w: usize, c: usize, pixels: Vec<u8>) -> ImageDataset {
        ImageDataset::new(h, w, c, pixels, vec![0], vec!["x".into()]).unwrap()
    }

    #[test]
    fn pads_small_images_centred_with_background() {
        let ds = one_image(2, 2, 1, vec![255; 4]);
        let pre = Preprocess {
            channels: 1,
            size: 4,
            mean: vec![0.0],
            std: vec![1.0],
            resize: false,
            center_crop: false,
        };
        let b = Batch::from_dataset(&ds, &[0], &pre).unwrap();
        assert_eq!(b.shape, [1, 1, 4, 4]);
        #[rustfmt::skip]
        let expected = [0., 0., 0., 0.,  0., 1., 1., 0.,  0., 1., 1., 0.,  0., 0., 0., 0.];
        assert_eq!(b.images, expected);
    }

    #[test]
    fn crops_large_images_and_converts_channels() {
        // 3x3 RGB, centre pixel pure red; crop to 1x1 and convert to gray.
        let mut px = vec![0u8; 27];
        px[4 * 3] = 255;
        let ds = one_image(3, 3, 3, px);
        let gray = Preprocess {
            channels: 1,
            size: 1,
            mean: vec![0.0],
            std: vec![1.0],
            resize: false,
            center_crop: false,
        };
        let b = Batch::from_dataset(&ds, &[0], &gray).unwrap();
        assert!((b.images[0] - 0.299).abs() < 1e-6);
        let rgb = Preprocess {
            channels: 3,
            size: 1,
            mean: vec![0.5; 3],
            std: vec![0.5; 3],
            resize: false,
            center_crop: false,
        };
        let b = Batch::from_dataset(&one_image(1, 1, 1, vec![255]), &[0], &rgb).unwrap();
        assert_eq!(b.images, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn bad_preprocess_is_an_error() {
        let ds = one_image(1, 1, 1, vec![0]);
        let pre = Preprocess {
            channels: 2,
            size: 1,
            mean: vec![0.0; 2],
            std: vec![1.0; 2],
            resize: false,
            center_crop: false,
        };
        assert!(Batch::from_dataset(&ds, &[0], &pre).is_err());
        assert!(Batch::from_dataset(&ds, &[1], &Preprocess::mnist(1)).is_err());
    }

    #[test]
    fn photos_are_fitted_by_their_centre_square_like_torchvision_evaluation() {
        // 40 wide, 20 high: the shorter side's 7/8 (18 px, rounded) is the centre square
        // rows 1..19, columns 11..29; it alone is bright.
        let (w, h) = (40, 20);
        let mut data = vec![0u8; w * h];
        for y in 1..19 {
            for x in 11..29 {
                data[y * w + x] = 200;
            }
        }
        let img = Image::new(w, h, 1, data).unwrap();
        let mut pre = Preprocess {
            channels: 1,
            size: 7,
            mean: vec![0.0],
            std: vec![1.0],
            resize: true,
            center_crop: true,
        };
        let fitted = pre.fit(&img);
        assert_eq!((fitted.width, fitted.height), (7, 7));
        assert!(fitted.data.iter().all(|&v| v == 200), "{:?}", fitted.data);
        // Stretching the whole image instead keeps the dark sides.
        pre.center_crop = false;
        assert!(pre.fit(&img).data.contains(&0));
        // A pipeline that crops has chosen its window: its output is resized whole.
        pre.center_crop = true;
        let cifar = crate::augment::pipeline::Pipeline::preset("cifar").unwrap();
        let flip = crate::augment::pipeline::Pipeline::preset("flip").unwrap();
        assert!(!pre.for_pipeline(&cifar).center_crop);
        assert!(pre.for_pipeline(&flip).center_crop);
        // The batch writes exactly the fitted image.
        let batch = Batch::from_images(&[(img, 0)], &pre).unwrap();
        assert!(batch.images.iter().all(|&v| (v - 200.0 / 255.0).abs() < 1e-6));
    }
}
