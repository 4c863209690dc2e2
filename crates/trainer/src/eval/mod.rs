//! Evaluation in detail (`cnn eval`: top-1, top-5, per-class accuracy, confusion matrix) and
//! prediction on image files (`cnn predict`, optionally with AlexNet's ten-crop averaging).

pub mod cached;
pub mod ensemble;
pub mod explain;
pub mod views;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor};
use cnn_data_augment::{Batch, Image, Preprocess, Source};
use cnn_models::ImageClassifier;

use crate::error::{Result, TrainError};
pub use views::{TestViews, mirrored_logits, shift_images, ten_crops, view_logits, views};

/// Images per batch when evaluating (no gradients, so larger batches are cheap).
pub(crate) const EVAL_BATCH: usize = 250;

/// Loss and accuracy over a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy loss.
    pub loss: f64,
    /// Top-1 accuracy in [0, 1].
    pub accuracy: f64,
    /// Top-5 accuracy in [0, 1] (top-k with k = classes when fewer than 5).
    pub top5: f64,
    /// Number of images evaluated.
    pub images: usize,
}

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

/// The one evaluation loop: `forward` turns each batch into logits, and their loss, top-1,
/// top-5 and (for `classes: Some(n)`) confusion matrix are summed over all batches. Every
/// evaluation — of images, of cached features, of crops or ensembles to come — runs through it.
pub(crate) fn evaluate_batches<X>(
    batches: impl Iterator<Item = Result<(X, Tensor<1, Int>)>>,
    mut forward: impl FnMut(X) -> Tensor<2>,
    classes: Option<usize>,
    device: &Device,
) -> Result<DetailedEvaluation> {
    let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init(device);
    let n = classes.unwrap_or(0);
    let mut confusion = vec![vec![0usize; n]; n];
    let (mut loss_sum, mut top1, mut top5, mut images) = (0f64, 0usize, 0usize, 0usize);
    for batch in batches {
        let (input, labels) = batch?;
        let logits = forward(input);
        let count = labels.dims()[0];
        if classes.is_some() {
            add_to_confusion(&mut confusion, logits.clone(), labels.clone())?;
        }
        let (c1, c5) = count_correct(logits.clone(), labels.clone());
        (top1, top5, images) = (top1 + c1, top5 + c5, images + count);
        loss_sum += f64::from(loss_fn.forward(logits, labels).into_scalar::<f32>()) * count as f64;
    }
    let seen = images.max(1) as f64;
    Ok(DetailedEvaluation {
        summary: Evaluation {
            loss: loss_sum / seen,
            accuracy: top1 as f64 / seen,
            top5: top5 as f64 / seen,
            images,
        },
        confusion,
    })
}

/// Counts each (true, predicted) pair of a batch; a label past the matrix is an error.
fn add_to_confusion(confusion: &mut [Vec<usize>], logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<()> {
    let classes = confusion.len();
    let as_vec = |t: Tensor<1, Int>| t.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default();
    let predicted = as_vec(logits.argmax(1).squeeze_dim(1));
    for (truth, p) in as_vec(labels).into_iter().zip(predicted) {
        let truth = usize::try_from(truth).unwrap_or(usize::MAX);
        if truth >= classes {
            return Err(TrainError::LabelOutOfRange { label: truth, classes });
        }
        confusion[truth][p as usize] += 1;
    }
    Ok(())
}

/// `data`'s images and labels in batches of [`EVAL_BATCH`], fitted with `pre`, on `device`.
pub fn image_batches<'a>(
    data: &'a dyn Source,
    pre: &'a Preprocess,
    device: &'a Device,
) -> impl Iterator<Item = Result<(Tensor<4>, Tensor<1, Int>)>> + 'a {
    let step = eval_batch(pre.size, 1);
    (0..data.len()).step_by(step).map(move |first| {
        let samples = (first..(first + step).min(data.len()))
            .map(|i| data.get(i))
            .collect::<cnn_data_augment::Result<Vec<_>>>()?;
        Ok(Batch::from_images(&samples, pre)?.to_device(device))
    })
}

/// Loss, top-1 and top-5 accuracy of `model` (in inference mode) on `data`.
pub fn evaluate<M: ImageClassifier>(
    model: &M,
    data: &dyn Source,
    pre: &Preprocess,
    device: &Device,
) -> Result<Evaluation> {
    evaluate_views(model, data, pre, TestViews::default(), device)
}

/// [`evaluate`] on each image in `test` views ([`view_logits`]): the evaluation of a run trained
/// with `--test-flip` or `--test-shift`.
pub fn evaluate_views<M: ImageClassifier>(
    model: &M,
    data: &dyn Source,
    pre: &Preprocess,
    test: TestViews,
    device: &Device,
) -> Result<Evaluation> {
    let batches = image_batches(data, pre, device);
    let forward = |images| view_logits(model, images, test);
    Ok(evaluate_batches(batches, forward, None, device)?.summary)
}

/// Evaluates `model` (inference mode) on `data` with `num_classes` classes, with the confusion
/// matrix.
pub fn evaluate_detailed<M: ImageClassifier>(
    model: &M,
    data: &dyn Source,
    num_classes: usize,
    pre: &Preprocess,
    device: &Device,
) -> Result<DetailedEvaluation> {
    let batches = image_batches(data, pre, device);
    evaluate_batches(batches, |images| model.logits(images), Some(num_classes), device)
}

/// `(top-1, top-5)` correct predictions in a batch; top-5 counts a label whose logit is beaten
/// by fewer than 5 others (by fewer than all others when there are at most 5 classes).
pub(crate) fn count_correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> (usize, usize) {
    let [batch, classes] = logits.dims();
    let predicted: Tensor<1, Int> = logits.clone().argmax(1).squeeze_dim(1);
    let top1 = predicted.equal(labels.clone()).int().sum().into_scalar::<i64>() as usize;
    let k = classes.min(5) as i64;
    let own = logits
        .clone()
        .gather(1, labels.unsqueeze_dim(1))
        .expand([batch, classes]);
    let beaten_by = logits.greater(own).int().sum_dim(1);
    let top5 = beaten_by.lower_elem(k).int().sum().into_scalar::<i64>() as usize;
    (top1, top5)
}

/// Images per evaluation batch for inputs of `size` px shown in `views` views: [`EVAL_BATCH`]
/// at 64 px and below, fewer for larger inputs, so a batch's activations stay near the same
/// size (20 images at 224 px; 2 with ten crops).
pub(crate) fn eval_batch(size: usize, views: usize) -> usize {
    let pixels = (EVAL_BATCH * 64 * 64) / (size * size).max(1);
    (pixels.min(EVAL_BATCH) / views.max(1)).max(1)
}

/// Class probabilities (softmax of the logits) of `model` for each of `images`, row by row
/// (`images.len() × classes`); with `ten_crop`, each row is the mean over the image's ten crops,
/// else over its `test` views ([`views`]).
pub fn probabilities<M: ImageClassifier>(
    model: &M,
    images: &[Image],
    pre: &Preprocess,
    (ten_crop, test): (bool, TestViews),
    device: &Device,
) -> Result<Vec<f32>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let crops: Vec<(Image, usize)> = images
        .iter()
        .flat_map(|img| views(img, pre, ten_crop, test))
        .map(|v| (v, 0))
        .collect();
    let per_image = crops.len() / images.len();
    let (batch, _) = Batch::from_images(&crops, pre)?.to_device(device);
    let probs = softmax(model.logits(batch), 1);
    let classes = probs.dims()[1];
    let probs = probs.reshape([images.len(), per_image, classes]).mean_dim(1);
    Ok(probs
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default())
}

/// `pre` for an image from outside the data set: one larger than the input of a run trained
/// without resizing (digits) is resized rather than cropped.
pub fn for_image(pre: &Preprocess, img: &Image) -> Preprocess {
    Preprocess {
        resize: pre.resize || img.width > pre.size || img.height > pre.size,
        ..pre.clone()
    }
}

/// Class probabilities of an ensemble for each image, ranked, at most `top_k` per image: each
/// member (a model and its own preprocessing) gives its probabilities ([`probabilities`], with
/// `tta` averaged over [`ten_crops`]) and the members' probabilities are averaged. One member is
/// a plain prediction.
///
/// An image larger than the input of a run trained without resizing (digits) is resized rather
/// than cropped.
pub fn predict<M: ImageClassifier>(
    members: &[(&M, &Preprocess)],
    images: &[Image],
    top_k: usize,
    tta: bool,
    device: &Device,
) -> Result<Vec<Vec<(usize, f32)>>> {
    let mut out = Vec::with_capacity(images.len());
    for img in images {
        let mut mean: Vec<f32> = Vec::new();
        for (model, pre) in members {
            let fitted = for_image(pre, img);
            let probs = probabilities(*model, std::slice::from_ref(img), &fitted, (tta, TestViews::default()), device)?;
            if mean.is_empty() {
                mean = vec![0.0; probs.len()];
            }
            if probs.len() != mean.len() {
                return Err(TrainError::Ensemble(format!(
                    "members disagree on the number of classes ({} and {})",
                    mean.len(),
                    probs.len()
                )));
            }
            for (m, p) in mean.iter_mut().zip(probs) {
                *m += p / members.len() as f32;
            }
        }
        let mut ranked: Vec<(usize, f32)> = mean.into_iter().enumerate().collect();
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
    fn top1_and_top5_counts() {
        let device = Device::flex();
        // 3 samples, 6 classes; label ranks: 1st, 6th (last), 3rd.
        let logits = Tensor::<2>::from_floats(
            [
                [9.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                [1.0, 6.0, 5.0, 2.0, 3.0, 4.0],
            ],
            &device,
        );
        let labels = Tensor::<1, Int>::from_ints([0, 0, 5], &device);
        assert_eq!(count_correct(logits, labels), (1, 2));
    }
}
