//! Throughput benchmarks: images per second for inference and for a full training step
//! (forward, backward, optimiser update), with warm-up and repeated timed runs.
//!
//! Timing syncs the device after every step (the loss or logits are read back), so GPU work is
//! counted completely.

use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use cnn_models::{BuildOptions, ImageClassifier, Model, registry};
use serde::{Deserialize, Serialize};

use cnn_trainer::error::{Result, TrainError};
use cnn_trainer::fit::Targets;
use cnn_trainer::fit::step::{OneDevice, Step};

/// What is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchPhase {
    /// Forward pass of the model in inference mode.
    Infer,
    /// Forward, backward and an SGD-with-momentum update.
    Train,
}

impl std::str::FromStr for BenchPhase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "infer" | "inference" => Ok(BenchPhase::Infer),
            "train" | "training" => Ok(BenchPhase::Train),
            other => Err(format!("unknown phase '{other}' (expected infer or train)")),
        }
    }
}

/// Which part of the network is timed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchPart {
    /// The whole classifier (training: cross-entropy, plus GoogLeNet's auxiliary losses).
    #[default]
    Whole,
    /// The convolutional part of AlexNet/VGG (`features` then `avgpool`); training minimises the
    /// mean of its output, so that the large fully connected layers do not dominate.
    Features,
}

/// One benchmark case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchCase {
    /// Registered model name.
    pub model: String,
    /// Input height and width.
    pub size: usize,
    /// Images per step.
    pub batch: usize,
    /// Number of classes of the model's head.
    pub num_classes: usize,
    /// Inference or training.
    pub phase: BenchPhase,
    /// The part of the network that runs.
    #[serde(default)]
    pub part: BenchPart,
}

impl BenchCase {
    /// The key that pairs this case with the same case in another run (e.g. PyTorch's).
    pub fn key(&self) -> (String, usize, usize, BenchPhase, BenchPart) {
        (self.model.clone(), self.size, self.batch, self.phase, self.part)
    }
}

/// The measurement of one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// What was measured.
    pub case: BenchCase,
    /// Median images per second over the timed repetitions.
    pub median_img_s: f64,
    /// Slowest repetition, images per second.
    pub min_img_s: f64,
    /// Fastest repetition, images per second.
    pub max_img_s: f64,
    /// Timed repetitions.
    pub repetitions: usize,
    /// Multiply-adds of one image's forward pass (from the model summary).
    pub mult_adds_per_image: u64,
    /// Achieved GFLOP/s at the median: 2 FLOPs per multiply-add, forward only for inference and
    /// 3× forward (forward + backward) for training.
    pub gflops: f64,
}

/// Runs `case` on `device`: `warmup` untimed steps, then `repetitions` timed ones.
pub fn run_bench(case: &BenchCase, device: &Device, warmup: usize, repetitions: usize) -> Result<BenchResult> {
    if case.batch == 0 || repetitions == 0 {
        return Err(TrainError::InvalidOption {
            option: if case.batch == 0 { "batch" } else { "reps" },
            reason: "must be at least 1".into(),
        });
    }
    let macs = mult_adds(case, device)?;
    let steps = Steps { warmup, repetitions };
    let mut times = match case.phase {
        BenchPhase::Infer => time_inference(case, device, steps)?,
        BenchPhase::Train => time_training(case, device, steps)?,
    };
    times.sort_by(f64::total_cmp);
    let rate = |t: f64| case.batch as f64 / t.max(1e-12);
    let median = rate(times[times.len() / 2]);
    let flops_per_image = 2.0 * macs as f64 * if case.phase == BenchPhase::Train { 3.0 } else { 1.0 };
    Ok(BenchResult {
        case: case.clone(),
        median_img_s: median,
        min_img_s: rate(*times.last().expect("at least one repetition")),
        max_img_s: rate(times[0]),
        repetitions,
        mult_adds_per_image: macs,
        gflops: median * flops_per_image / 1e9,
    })
}

/// Warm-up steps, then timed ones.
#[derive(Clone, Copy)]
struct Steps {
    warmup: usize,
    repetitions: usize,
}

impl Steps {
    /// Runs `step` `warmup + repetitions` times and returns the timed ones' seconds.
    fn time(self, mut step: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
        let mut times = Vec::with_capacity(self.repetitions);
        for index in 0..self.warmup + self.repetitions {
            let started = Instant::now();
            step()?;
            if index >= self.warmup {
                times.push(started.elapsed().as_secs_f64());
            }
        }
        Ok(times)
    }
}

/// The model `case` times, its build options and one batch of its input.
fn bench_model(case: &BenchCase) -> Result<(&'static str, BuildOptions, [usize; 4])> {
    let info = registry::lookup(&case.model)?;
    let channels = info.default_input.channels;
    let options = BuildOptions {
        num_classes: case.num_classes,
        in_channels: Some(channels),
    };
    Ok((info.name, options, [case.batch, channels, case.size, case.size]))
}

/// Multiply-adds per image of the part `case` times; an error when the input is too small for
/// the model or the part does not exist.
fn mult_adds(case: &BenchCase, device: &Device) -> Result<u64> {
    let (name, options, [_, channels, size, _]) = bench_model(case)?;
    let probe = registry::build(name, options, device)?;
    let summary = probe.summary([channels, size, size]);
    if summary
        .rows
        .iter()
        .any(|r| matches!(r.output, cnn_models::summary::OutShape::Map([_, 0, _] | [_, _, 0])))
    {
        return Err(TrainError::Unsupported {
            model: name.to_string(),
            reason: format!("input {size}px is too small"),
        });
    }
    match case.part {
        BenchPart::Whole => Ok(summary.total_mult_adds()),
        BenchPart::Features if matches!(probe, Model::AlexNet(_) | Model::Vgg(_)) => Ok(summary
            .rows
            .iter()
            .filter(|r| r.name.starts_with("features") || r.name.starts_with("avgpool"))
            .map(|r| r.mult_adds)
            .sum()),
        BenchPart::Features => Err(TrainError::Unsupported {
            model: name.to_string(),
            reason: "only AlexNet and VGG have a separate convolutional part to time".into(),
        }),
    }
}

/// Seconds per inference batch (the logits, or the convolutional part's output, read back).
fn time_inference(case: &BenchCase, device: &Device, steps: Steps) -> Result<Vec<f64>> {
    let (name, options, input) = bench_model(case)?;
    let images = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), device);
    let model = registry::build(name, options, device)?.valid();
    steps.time(|| {
        let _ = match case.part {
            BenchPart::Whole => model.logits(images.clone()).into_data(),
            BenchPart::Features => features(&model, images.clone()).into_data(),
        };
        Ok(())
    })
}

/// Seconds per training step: forward, backward and an SGD-with-momentum update (the whole
/// model through the training loop's own step; the convolutional part through the mean of its
/// output).
fn time_training(case: &BenchCase, device: &Device, steps: Steps) -> Result<Vec<f64>> {
    let (name, options, input) = bench_model(case)?;
    let autodiff = device.clone().autodiff();
    let images = Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &autodiff);
    let labels: Vec<i64> = (0..case.batch as i64).map(|i| i % case.num_classes as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [case.batch]), &autodiff);
    let mut model = Some(registry::build(name, options, &autodiff)?);
    let mut optim = cnn_trainer::fit::sgd_momentum(0.9, None);
    let step = OneDevice::new(&autodiff, 0.0);
    let targets = Targets::plain(labels);
    steps.time(|| {
        let current = model.take().expect("put back after every step");
        let grads = match case.part {
            BenchPart::Whole => step.step(&current, (images.clone(), targets.clone()), 1.0)?.grads,
            BenchPart::Features => {
                let loss = features(&current, images.clone()).mean();
                GradientsParams::from_grads(loss.backward(), &current)
            }
        };
        model = Some(optim.step(0.01, current, grads));
        Ok(())
    })
}

/// The convolutional part of AlexNet/VGG, pooled and flattened.
fn features(model: &Model, images: Tensor<4>) -> Tensor<2> {
    cnn_models::Network::conv_features(model, images).expect("checked in run_bench")
}

/// The CPU performance suite (issue #8), mirrored by `scripts/bench_pytorch.py`: each model at
/// the size and batch people train it at here; `phases` lists what is timed.
pub fn perf_suite(phases: &[BenchPhase]) -> Vec<BenchCase> {
    let cases = [
        ("lenet5", 32, 64, BenchPart::Whole),
        ("resnet20", 32, 128, BenchPart::Whole),
        ("resnet18", 64, 32, BenchPart::Whole),
        ("vgg16", 64, 16, BenchPart::Whole),
        ("googlenet", 96, 16, BenchPart::Whole),
        ("alexnet", 224, 8, BenchPart::Features),
    ];
    cases
        .into_iter()
        .flat_map(|(model, size, batch, part)| {
            phases.iter().map(move |&phase| BenchCase {
                model: model.into(),
                size,
                batch,
                num_classes: 10,
                phase,
                part,
            })
        })
        .collect()
}

/// [`family_suite`] at `batch`, each case timed in every phase of `phases`.
pub fn family_suite_at(batch: usize, phases: &[BenchPhase]) -> Vec<BenchCase> {
    family_suite()
        .into_iter()
        .flat_map(|c| {
            phases.iter().map(move |&phase| BenchCase {
                batch,
                phase,
                ..c.clone()
            })
        })
        .collect()
}

/// One case per model and phase: `size` px (default: the model's own, at most 64), `batch`
/// images, 10 classes, the whole model.
pub fn model_cases(
    models: &[String],
    size: Option<usize>,
    batch: usize,
    phases: &[BenchPhase],
) -> Result<Vec<BenchCase>> {
    let mut cases = Vec::new();
    for name in models {
        let info = registry::lookup(name)?;
        for &phase in phases {
            cases.push(BenchCase {
                model: info.name.into(),
                size: size.unwrap_or(info.default_input.size.min(64)),
                batch,
                num_classes: 10,
                phase,
                part: BenchPart::Whole,
            });
        }
    }
    Ok(cases)
}

/// The inference suite of the model-zoo issue: one model per family at a CPU-friendly size,
/// batch 32.
pub fn family_suite() -> Vec<BenchCase> {
    [
        ("lenet5", 32, 10),
        ("resnet20", 32, 10),
        ("resnet18", 64, 10),
        ("vgg16", 64, 10),
        ("alexnet", 64, 10),
        ("googlenet", 96, 10),
        ("inception_module", 28, 10),
    ]
    .into_iter()
    .map(|(model, size, num_classes)| BenchCase {
        model: model.into(),
        size,
        batch: 32,
        num_classes,
        phase: BenchPhase::Infer,
        part: BenchPart::Whole,
    })
    .collect()
}

/// The JSON document of a benchmark: one backend's results in the shape `ReferenceFile` reads
/// (`--compare`), several backends as a list of such documents under `runs`; with the CPU model,
/// thread count and versions for the record.
pub fn report_json(runs: &[(&str, &[BenchResult])]) -> serde_json::Value {
    let one =
        |(backend, results): &(&str, &[BenchResult])| serde_json::json!({ "backend": backend, "results": results });
    let mut doc = match runs {
        [single] => one(single),
        many => serde_json::json!({ "runs": many.iter().map(one).collect::<Vec<_>>() }),
    };
    doc["cpu"] = cpu_model().into();
    doc["threads"] = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .into();
    doc["burn"] = "0.22.1".into();
    doc["cnn"] = env!("CARGO_PKG_VERSION").into();
    doc["unix_time"] = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .into();
    doc
}

/// The CPU's model name from /proc/cpuinfo (Linux), else the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_lists_the_issue_models_in_both_phases() {
        let suite = perf_suite(&[BenchPhase::Infer, BenchPhase::Train]);
        assert_eq!(suite.len(), 12);
        let alexnet = suite.iter().find(|c| c.model == "alexnet").unwrap();
        assert_eq!(
            (alexnet.size, alexnet.batch, alexnet.part),
            (224, 8, BenchPart::Features)
        );
    }
}
