//! Ensembles and ten-crop evaluation of a whole test set (`cnn eval --run A --run B --tta`): the
//! course's advice for benchmarks — average several networks, and average crops at test time.
//!
//! Each member sees the test images with its own run's preprocessing. What is averaged is class
//! probabilities (softmax outputs), never logits; the averaged probabilities are then scored by
//! the one evaluation loop (their logarithm is a set of logits whose softmax is exactly them).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use cnn_data_augment::Source;

use crate::error::{Result, TrainError};
use crate::eval::{DetailedEvaluation, EVAL_BATCH, Evaluation, TestViews, eval_batch, evaluate_batches, probabilities};
use crate::run::data::{LoadedData, load_data};
use crate::run::folder::RunFolder;

/// Class probabilities for every image of a test set, `images × classes`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Probabilities {
    /// Number of classes (row length).
    pub classes: usize,
    /// One row per image.
    pub rows: Vec<f32>,
}

impl Probabilities {
    /// The probabilities that `run`'s model gives each image of `data` (with `ten_crop`, the mean
    /// over its ten crops).
    pub fn of_run(run: &RunFolder, data: &dyn Source, ten_crop: bool, device: &Device) -> Result<Self> {
        let model = run.load_model(device)?;
        let pre = &run.preprocess;
        // A run trained with --test-flip or --test-shift is tested on those views of each image.
        let test = TestViews::of(&run.config.task);
        let step = eval_batch(pre.size, if ten_crop { 10 } else { test.count() });
        let mut rows = Vec::new();
        for first in (0..data.len()).step_by(step) {
            let images = (first..(first + step).min(data.len()))
                .map(|i| data.get(i).map(|(img, _)| img))
                .collect::<cnn_data_augment::Result<Vec<_>>>()?;
            rows.extend(probabilities(&model, &images, pre, (ten_crop, test), device)?);
        }
        Ok(Self {
            classes: run.class_names.len(),
            rows,
        })
    }

    /// The element-wise mean of `members` (all of one shape).
    pub fn mean(members: &[Probabilities]) -> Result<Self> {
        let first = members
            .first()
            .ok_or_else(|| TrainError::Ensemble("an ensemble needs at least one member".into()))?;
        if members
            .iter()
            .any(|m| (m.classes, m.rows.len()) != (first.classes, first.rows.len()))
        {
            return Err(TrainError::Ensemble(
                "members gave probabilities of different shapes".into(),
            ));
        }
        let share = 1.0 / members.len() as f32;
        let mut rows = vec![0f32; first.rows.len()];
        for m in members {
            for (sum, p) in rows.iter_mut().zip(&m.rows) {
                *sum += p * share;
            }
        }
        Ok(Self {
            classes: first.classes,
            rows,
        })
    }

    /// Loss (−log of the true class's probability), top-1, top-5 and the confusion matrix of these
    /// probabilities against `labels`, through the one evaluation loop.
    pub fn evaluate(&self, labels: &[usize], device: &Device) -> Result<DetailedEvaluation> {
        let c = self.classes;
        if self.rows.len() != labels.len() * c {
            return Err(TrainError::Ensemble(format!(
                "{} probabilities for {} images of {c} classes",
                self.rows.len(),
                labels.len()
            )));
        }
        let batches = self
            .rows
            .chunks(EVAL_BATCH * c)
            .zip(labels.chunks(EVAL_BATCH))
            .map(|(rows, labels)| {
                let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
                let n = labels.len();
                Ok((rows, Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device)))
            });
        // log p as logits: softmax(log p) = p, so the loop's cross-entropy is −log p[label].
        let forward = |rows: &[f32]| {
            Tensor::<2>::from_data(TensorData::new(rows.to_vec(), [rows.len() / c, c]), device)
                .clamp_min(f32::MIN_POSITIVE)
                .log()
        };
        evaluate_batches(batches, forward, Some(c), device)
    }
}

/// One member's figures in an ensemble evaluation.
#[derive(Clone, Debug)]
pub struct MemberEvaluation {
    /// The member's run folder.
    pub run: PathBuf,
    /// Single-view (the training input) figures.
    pub single: Evaluation,
    /// Ten-crop figures, when asked for.
    pub ten_crop: Option<Evaluation>,
}

/// What `cnn eval` reports for one run or an ensemble of runs.
#[derive(Clone, Debug)]
pub struct EnsembleEvaluation {
    /// The data set evaluated (its test split).
    pub dataset: String,
    /// Each member alone, in the order given.
    pub members: Vec<MemberEvaluation>,
    /// The members' averaged probabilities, one view per image.
    pub single: DetailedEvaluation,
    /// The members' averaged ten-crop probabilities, when asked for.
    pub ten_crop: Option<DetailedEvaluation>,
    /// The members' averaged probabilities of every test image (one view), in the test
    /// split's order.
    pub probabilities: Probabilities,
    /// The test images' labels, in the same order.
    pub labels: Vec<usize>,
}

/// Checks that `runs` (at least one) agree on their class names, naming the first that differs.
pub fn check_same_classes(runs: &[RunFolder]) -> Result<()> {
    let first = runs
        .first()
        .ok_or_else(|| TrainError::Ensemble("name at least one run folder".into()))?;
    for other in &runs[1..] {
        if other.class_names != first.class_names {
            return Err(TrainError::Ensemble(format!(
                "members must agree on the classes: {} has {} ({}…) but {} has {} ({}…)",
                first.dir.display(),
                first.class_names.len(),
                first.class_names.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                other.dir.display(),
                other.class_names.len(),
                other.class_names.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            )));
        }
    }
    Ok(())
}

/// Evaluates `runs` alone and as an ensemble (averaged probabilities) on the test images of
/// `dataset` from `data_dir` (both default to the first run's), each with its own preprocessing;
/// with `ten_crop`, also with AlexNet's ten crops. A data set with another number of classes
/// than the runs, or members that disagree on the classes, is an error.
pub fn evaluate_runs(
    runs: &[RunFolder],
    dataset: Option<&str>,
    data_dir: Option<&Path>,
    ten_crop: bool,
    device: &Device,
) -> Result<EnsembleEvaluation> {
    check_same_classes(runs)?;
    let (dataset, data) = test_data(&runs[0], dataset, data_dir)?;
    check_one_test_split(runs, &dataset)?;
    let labels = (0..data.test.len())
        .map(|i| data.test.label(i))
        .collect::<cnn_data_augment::Result<Vec<_>>>()?;
    let mut singles = Vec::new();
    let mut crops = Vec::new();
    let mut members = Vec::new();
    for run in runs {
        let single = Probabilities::of_run(run, &*data.test, false, device)?;
        let crop = ten_crop
            .then(|| Probabilities::of_run(run, &*data.test, true, device))
            .transpose()?;
        members.push(MemberEvaluation {
            run: run.dir.clone(),
            single: single.evaluate(&labels, device)?.summary,
            ten_crop: crop
                .as_ref()
                .map(|p| p.evaluate(&labels, device))
                .transpose()?
                .map(|e| e.summary),
        });
        singles.push(single);
        crops.extend(crop);
    }
    let probabilities = Probabilities::mean(&singles)?;
    Ok(EnsembleEvaluation {
        dataset,
        members,
        single: probabilities.evaluate(&labels, device)?,
        ten_crop: ten_crop
            .then(|| Probabilities::mean(&crops)?.evaluate(&labels, device))
            .transpose()?,
        probabilities,
        labels,
    })
}

/// The data a run is tested on: the test split of `dataset` from `data_dir` (both default to
/// the run's own), with the run's classes when it is the run's own data set. Returns the data
/// set's name with it. A data set with another number of classes than the run is an error.
pub fn test_data(run: &RunFolder, dataset: Option<&str>, data_dir: Option<&Path>) -> Result<(String, LoadedData)> {
    let dataset = dataset.unwrap_or(&run.config.task.dataset);
    let data_dir = data_dir.or(run.config.task.data_dir.as_deref());
    // The run's own task keeps its classes (`--classes`); another data set is taken whole.
    let classes = (dataset == run.config.task.dataset)
        .then_some(run.config.task.classes.as_deref())
        .flatten();
    let data = load_data(dataset, data_dir, run.config.task.seed)?.only_classes(classes)?;
    if data.class_names.len() != run.class_names.len() {
        return Err(TrainError::Ensemble(format!(
            "{dataset} has {} classes but the run's model has {}",
            data.class_names.len(),
            run.class_names.len()
        )));
    }
    Ok((dataset.to_string(), data))
}

/// An image folder without `train/` and `val/` is split by each run's seed: members trained with
/// different seeds would each have seen part of the others' test images.
fn check_one_test_split(runs: &[RunFolder], dataset: &str) -> Result<()> {
    let path = Path::new(dataset);
    let split_by_seed = path.is_dir() && !(path.join("train").is_dir() && path.join("val").is_dir());
    if split_by_seed && runs.iter().any(|r| r.config.task.seed != runs[0].config.task.seed) {
        return Err(TrainError::Ensemble(format!(
            "{dataset} is split into training and test images by each run's seed, and these runs \
             have different seeds: give the folder train/ and val/ subfolders so that every member \
             is tested on images it never trained on"
        )));
    }
    Ok(())
}

impl RunFolder {
    /// The run's model evaluated on the test images of `dataset` (the run's own when `None`)
    /// from `data_dir` (the run's when `None`), with the run's preprocessing: accuracy, top-5,
    /// loss, per-class accuracy and the confusion matrix. A data set with another number of
    /// classes than the model is an error. (An ensemble of one: [`evaluate_runs`].)
    pub fn evaluate_on(
        &self,
        dataset: Option<&str>,
        data_dir: Option<&Path>,
        device: &Device,
    ) -> Result<DetailedEvaluation> {
        let result = evaluate_runs(std::slice::from_ref(self), dataset, data_dir, false, device)?;
        Ok(result.single)
    }
}
