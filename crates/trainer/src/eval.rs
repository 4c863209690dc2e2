//! Evaluation in detail (`cnn eval`: top-1, top-5, per-class accuracy, confusion matrix) and
//! prediction on image files (`cnn predict`, optionally with AlexNet's ten-crop averaging).

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor};
use cnn_data_augment::augment::geometry::{crop, flip_horizontal, resize};
use cnn_data_augment::{Batch, Image, Preprocess, Source};
use cnn_models::ImageClassifier;

use crate::error::{Result, TrainError};
use crate::fit::{Evaluation, count_correct};

/// Images per batch when evaluating.
const EVAL_BATCH: usize = 250;

/// Everything `cnn eval` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct DetailedEvaluation {
    /// Loss, top-1 and top-5 accuracy.
    pub summary: Evaluation,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl DetailedEvaluation {
    /// Accuracy of each true class (`None` for a class with no images).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let total: usize = row.iter().sum();
                (total > 0).then(|| row[c] as f64 / total as f64)
            })
            .collect()
    }
}

/// Evaluates `model` (inference mode) on `data` with `num_classes` classes.
pub fn evaluate_detailed<M: ImageClassifier>(
    model: &M,
    data: &dyn Source,
    num_classes: usize,
    pre: &Preprocess,
    device: &Device,
) -> Result<DetailedEvaluation> {
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(device);
    let mut confusion = vec![vec![0usize; num_classes]; num_classes];
    let (mut loss_sum, mut top1, mut top5) = (0f64, 0usize, 0usize);
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(EVAL_BATCH) {
        let samples = indices
            .iter()
            .map(|&i| data.get(i))
            .collect::<cnn_data_augment::Result<Vec<_>>>()?;
        if let Some((_, bad)) = samples.iter().find(|(_, label)| *label >= num_classes) {
            return Err(TrainError::Config(format!(
                "the data has label {bad} but the model has {num_classes} classes"
            )));
        }
        let (images, labels) = Batch::from_images(&samples, pre)?.to_device(device);
        let logits = model.logits(images);
        let (c1, c5) = count_correct(logits.clone(), labels.clone());
        (top1, top5) = (top1 + c1, top5 + c5);
        let predicted: Tensor<1, Int> = logits.clone().argmax(1).squeeze_dim(1);
        let predicted = predicted
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default();
        for ((_, truth), p) in samples.iter().zip(predicted) {
            confusion[*truth][p as usize] += 1;
        }
        loss_sum += f64::from(loss_fn.forward(logits, labels).into_scalar::<f32>()) * indices.len() as f64;
    }
    let n = data.len().max(1) as f64;
    Ok(DetailedEvaluation {
        summary: Evaluation {
            loss: loss_sum / n,
            accuracy: top1 as f64 / n,
            top5: top5 as f64 / n,
            images: data.len(),
        },
        confusion,
    })
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

/// Class probabilities of `model` for each image, ranked, at most `top_k` per image. With
/// `tta`, the probabilities are averaged over [`ten_crops`].
///
/// Images are fitted to the model as in training (`pre`); an image larger than the input of a
/// run trained without resizing (digits) is resized rather than cropped.
pub fn predict<M: ImageClassifier>(
    model: &M,
    images: &[Image],
    pre: &Preprocess,
    top_k: usize,
    tta: bool,
    device: &Device,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let mut out = Vec::with_capacity(images.len());
    for img in images {
        let fitted = Preprocess {
            resize: pre.resize || img.width > pre.size || img.height > pre.size,
            ..pre.clone()
        };
        let views: Vec<(Image, usize)> = if tta {
            ten_crops(img, pre.size).into_iter().map(|c| (c, 0)).collect()
        } else {
            vec![(img.clone(), 0)]
        };
        let (batch, _) = Batch::from_images(&views, &fitted)?.to_device(device);
        let probs = softmax(model.logits(batch), 1).mean_dim(0);
        let probs = probs
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        let mut ranked: Vec<(usize, f32)> = probs.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(top_k.max(1));
        out.push(ranked);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
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
}
