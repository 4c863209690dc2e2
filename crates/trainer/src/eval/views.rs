//! Test-time views: each image shown as it is, mirrored (`--test-flip`), shifted a pixel or two
//! (`--test-shift`), or as AlexNet's ten crops, and the class probabilities averaged over them.
//! The same views come from a batch of tensors ([`view_logits`], validation and the final test)
//! and from single images ([`views`], `cnn eval` of a run and `cnn predict`).

use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use cnn_data_augment::augment::geometry::{PadMode, crop, flip_horizontal, pad, resize};
use cnn_data_augment::{Image, Preprocess};
use cnn_models::ImageClassifier;

use crate::config::TaskSettings;

/// How each image is shown to the model at validation and test time. The views are the image
/// itself and, with `shift`, the image moved `shift` pixels down and to the right and `shift`
/// pixels up and to the left (the edge rows and columns repeated into the gap, as airbench's
/// test-time translation); with `mirror`, each of those and its left–right mirror. Their class
/// probabilities are averaged, each view counting the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestViews {
    /// Add each view's left–right mirror.
    pub mirror: bool,
    /// Pixels of the two diagonal shifts; 0: no shifted views.
    pub shift: usize,
}

impl TestViews {
    /// The views a run with these task settings is validated and tested on.
    pub fn of(task: &TaskSettings) -> Self {
        Self {
            mirror: task.test_flip,
            shift: task.test_shift,
        }
    }

    /// The image and its mirror (`--test-flip` alone).
    pub fn mirror() -> Self {
        Self { mirror: true, shift: 0 }
    }

    /// How many views each image gives.
    pub fn count(self) -> usize {
        (1 + 2 * usize::from(self.shift > 0)) * (1 + usize::from(self.mirror))
    }

    /// The shifts, as signed pixels along both axes.
    fn shifts(self) -> Vec<isize> {
        match self.shift as isize {
            0 => vec![0],
            s => vec![0, s, -s],
        }
    }
}

/// `images` (`[batch, channels, height, width]`) moved `by` pixels down and right (`by > 0`)
/// or up and left (`by < 0`), the edge rows and columns repeated into the gap; `by` must be
/// smaller than the height and width.
pub fn shift_images(images: Tensor<4>, by: isize) -> Tensor<4> {
    let mut out = images;
    for axis in [2, 3] {
        let len = out.dims()[axis];
        let s = by.unsigned_abs().min(len.saturating_sub(1));
        if s == 0 {
            continue;
        }
        out = if by > 0 {
            let edge = out.clone().narrow(axis, 0, 1).repeat_dim(axis, s);
            Tensor::cat(vec![edge, out.narrow(axis, 0, len - s)], axis)
        } else {
            let edge = out.clone().narrow(axis, len - 1, 1).repeat_dim(axis, s);
            Tensor::cat(vec![out.narrow(axis, s, len - s), edge], axis)
        };
    }
    out
}

/// `model`'s logits for `images` seen in `views`: with one view the logits themselves, else the
/// logarithm of the mean of the views' class probabilities, whose softmax is that mean, so
/// losses, accuracies and ensembles treat the views as one prediction (the same as
/// [`super::probabilities`] with these views).
pub fn view_logits<M: ImageClassifier>(model: &M, images: Tensor<4>, views: TestViews) -> Tensor<2> {
    if views.count() == 1 {
        return model.logits(images);
    }
    let mut sum: Option<Tensor<2>> = None;
    for by in views.shifts() {
        let shifted = if by == 0 {
            images.clone()
        } else {
            shift_images(images.clone(), by)
        };
        let mut batch = vec![shifted.clone()];
        if views.mirror {
            batch.push(shifted.flip([3]));
        }
        for view in batch {
            let probs = softmax(model.logits(view), 1);
            sum = Some(match sum {
                Some(s) => s + probs,
                None => probs,
            });
        }
    }
    let mean = sum.expect("at least one view") / views.count() as f32;
    // A probability that underflowed to 0 would make an infinite loss.
    mean.clamp_min(f32::MIN_POSITIVE).log()
}

/// [`view_logits`] with the image and, with `mirror`, its mirror only.
pub fn mirrored_logits<M: ImageClassifier>(model: &M, images: Tensor<4>, mirror: bool) -> Tensor<2> {
    view_logits(model, images, TestViews { mirror, shift: 0 })
}

/// AlexNet's ten crops of `img` for a model input of `size`: the image is resized to
/// `size × 8/7` (256 for 224), then the four corner crops and the centre crop, and their mirror
/// images.
pub fn ten_crops(img: &Image, size: usize) -> Vec<Image> {
    let big = (size * 8).div_ceil(7);
    let scaled = resize(img, big, big);
    let m = big - size;
    let mut crops: Vec<Image> = [(0, 0), (0, m), (m, 0), (m, m), (m / 2, m / 2)]
        .into_iter()
        .map(|(top, left)| crop(&scaled, top, left, size, size))
        .collect();
    let mirrors: Vec<Image> = crops.iter().map(flip_horizontal).collect();
    crops.extend(mirrors);
    crops
}

/// How `img` is shown to a model with input `pre`: fitted as in training ([`Preprocess::fit`]),
/// and with `ten_crop` AlexNet's [`ten_crops`] of that fitted image, else the fitted image in
/// `test` views ([`TestViews`], in [`view_logits`]'s order).
pub fn views(img: &Image, pre: &Preprocess, ten_crop: bool, test: TestViews) -> Vec<Image> {
    let fitted = pre.fit(img);
    if ten_crop {
        return ten_crops(&fitted, pre.size);
    }
    let s = test.shift.min(fitted.width.min(fitted.height).saturating_sub(1));
    let padded = (s > 0).then(|| pad(&fitted, s, PadMode::Edge));
    let mut out = Vec::with_capacity(test.count());
    for by in test.shifts() {
        let view = match (&padded, by) {
            (Some(p), b) if b > 0 => crop(p, 0, 0, fitted.height, fitted.width),
            (Some(p), b) if b < 0 => crop(p, 2 * s, 2 * s, fitted.height, fitted.width),
            _ => fitted.clone(),
        };
        if test.mirror {
            let mirrored = flip_horizontal(&view);
            out.extend([view, mirrored]);
        } else {
            out.push(view);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};
    use cnn_data_augment::Batch;

    use super::*;

    #[test]
    fn ten_crops_are_the_corners_the_centre_and_their_mirrors() {
        // 7×7 input, size 7 → resized to 8×8, crops of 7 at offsets 0 and 1.
        let data: Vec<u8> = (0..49).collect();
        let img = Image::new(7, 7, 1, data).unwrap();
        let crops = ten_crops(&img, 7);
        assert_eq!(crops.len(), 10);
        assert!(crops.iter().all(|c| (c.width, c.height) == (7, 7)));
        for i in 0..5 {
            assert_eq!(crops[i + 5], flip_horizontal(&crops[i]));
        }
        // The top-left and bottom-right crops differ; the mirrors of a crop differ from it.
        assert_ne!(crops[0], crops[3]);
        assert_ne!(crops[0], crops[5]);
    }

    #[test]
    fn shifts_move_the_image_and_repeat_its_edges() {
        let device = Device::flex();
        // 3×4 image: value = 10 × row + column.
        let values: Vec<f32> = (0..3).flat_map(|r| (0..4).map(move |c| (10 * r + c) as f32)).collect();
        let images = Tensor::<4>::from_data(TensorData::new(values, [1, 1, 3, 4]), &device);
        let down_right = shift_images(images.clone(), 1).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(down_right, [0., 0., 1., 2., 0., 0., 1., 2., 10., 10., 11., 12.]);
        let up_left = shift_images(images, -2).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(up_left, [22., 23., 23., 23., 22., 23., 23., 23., 22., 23., 23., 23.]);
    }

    #[test]
    fn image_views_match_the_tensor_shifts() {
        let device = Device::flex();
        let data: Vec<u8> = (0..6 * 6).map(|v| (v * 37 % 251) as u8).collect();
        let img = Image::new(6, 6, 1, data).unwrap();
        let pre = Preprocess::mnist(6);
        let test = TestViews { mirror: true, shift: 1 };
        let seen = views(&img, &pre, false, test);
        assert_eq!(seen.len(), test.count());
        let as_tensor = |i: &Image| {
            Batch::from_images(&[(i.clone(), 0)], &pre)
                .unwrap()
                .to_device(&device)
                .0
        };
        let fitted = as_tensor(&pre.fit(&img));
        let expected = [
            fitted.clone(),
            fitted.clone().flip([3]),
            shift_images(fitted.clone(), 1),
            shift_images(fitted.clone(), 1).flip([3]),
            shift_images(fitted.clone(), -1),
            shift_images(fitted, -1).flip([3]),
        ];
        for (view, want) in seen.iter().zip(expected) {
            as_tensor(view).into_data().assert_eq(&want.into_data(), true);
        }
    }
}
