//! `cnn experiment identity`: why adding residual blocks cannot hurt. The course's argument:
//! with its weights at zero a residual block computes `a[l+2] = g(z[l+2] + a[l]) = g(a[l]) =
//! a[l]` (its input is a ReLU's output), so a deeper residual network can always do at least as
//! well as a shallower one, where a plain block has no such easy way to pass its input through.
//!
//! The experiment takes a trained ResNet run, appends `k` residual blocks whose last batch-norm
//! γ is zero (torchvision's `zero_init_residual`) and `k` plain blocks with the default
//! initialisation, evaluates all three networks on the test set (the first two must agree bit
//! for bit), then fine-tunes each for the same epochs and evaluates again.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use cnn_models::resnet::AppendedBlock;
use cnn_models::{ImageClassifier, Model};

use cnn_trainer::RunFolder;
use cnn_trainer::atomic::write_file;
use cnn_trainer::config::{Schedule, TrainConfig};
use cnn_trainer::error::{Result, TrainError};
use cnn_trainer::eval::{evaluate, image_batches};
use cnn_trainer::fit::{Progress, TrainData, fit};
use cnn_trainer::run::RunData;

/// What the identity experiment starts from and how long it fine-tunes.
#[derive(Clone, Debug)]
pub struct IdentityOptions {
    /// A finished run of a ResNet (its `model.bpk` and configuration).
    pub run: PathBuf,
    /// Blocks appended to the last stage.
    pub blocks: usize,
    /// Fine-tuning epochs for each network.
    pub epochs: usize,
    /// Fine-tuning learning rate (constant; the run's optimiser otherwise).
    pub lr: f64,
    /// Training images for fine-tuning (stratified sample) [default: the run's].
    pub subset: Option<usize>,
    /// Folder holding the data sets [default: the run's].
    pub data_dir: Option<PathBuf>,
    /// Output folder: `identity.csv` and `identity.md`.
    pub out: PathBuf,
}

impl IdentityOptions {
    /// Three blocks, one epoch at learning rate 0.01, into `runs/identity`.
    pub fn new(run: impl Into<PathBuf>) -> Self {
        Self {
            run: run.into(),
            blocks: 3,
            epochs: 1,
            lr: 0.01,
            subset: None,
            data_dir: None,
            out: PathBuf::from("runs/identity"),
        }
    }

    /// The fine-tuning configuration: the run's, with these epochs, rate and images.
    fn config(&self, run: &TrainConfig) -> TrainConfig {
        run.clone()
            .with_subset(self.subset.or(run.task.subset))
            .with_data_dir(self.data_dir.clone().or_else(|| run.task.data_dir.clone()))
            .with_zero_init_residual(false)
            .with_epochs(self.epochs)
            .with_lr(self.lr)
            .with_schedule(Schedule::Constant)
            .with_warmup(0)
            .with_weights(None)
    }
}

/// One network of the experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityRow {
    /// What it is, e.g. `+ 3 identity blocks`.
    pub network: String,
    /// Weight layers (convolutions and the classifier).
    pub layers: usize,
    /// Test accuracy before fine-tuning.
    pub accuracy: f64,
    /// Largest `|logit − trained network's logit|` over the test set before fine-tuning.
    pub max_logit_change: f32,
    /// Test accuracy after fine-tuning.
    pub finetuned: f64,
}

/// Runs the experiment; `progress` gets the network's name with each fine-tuning report.
pub fn identity(
    opts: &IdentityOptions,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<Vec<IdentityRow>> {
    let run = RunFolder::open(&opts.run)?;
    // One experiment per folder at a time (the lock creates the folder).
    let _lock = cnn_trainer::FolderLock::acquire(&opts.out)?;
    let cfg = opts.config(&run.config);
    cfg.validate()?;
    let train_device = device.clone().autodiff();
    // Each network from the file: clones of a module share its batch norms' running
    // statistics, which fine-tuning one of them would change under the others.
    let trained = || match run.load_model(&train_device)? {
        Model::ResNet(net) => Ok(net),
        _ => Err(TrainError::Unsupported {
            model: run.config.task.model.clone(),
            reason: format!(
                "{} is a {} run; the identity experiment appends residual blocks to a ResNet",
                opts.run.display(),
                run.config.task.model
            ),
        }),
    };
    let base = trained()?;
    let data = RunData::load(&cfg, &mut |p| progress("data", p))?;
    let test = &*data.loaded.test;
    let base_logits = logits(&Model::ResNet(base.clone()).valid(), &data, device)?;
    let k = opts.blocks;
    let nets = [
        (format!("{} (trained)", run.config.task.model), base),
        (
            format!("+ {k} identity blocks"),
            trained()?.append_blocks(k, AppendedBlock::Identity, &train_device),
        ),
        (
            format!("+ {k} plain blocks"),
            trained()?.append_blocks(k, AppendedBlock::Plain, &train_device),
        ),
    ];
    let mut rows = Vec::new();
    for (name, net) in nets {
        let layers = weight_layers(&net);
        let model = Model::ResNet(net);
        let before = evaluate(&model.valid(), test, &data.pre, device)?;
        let change = max_abs_difference(&base_logits, &logits(&model.valid(), &data, device)?);
        let train = TrainData {
            train: data.train.clone(),
            valid: &*data.valid,
            pre: &data.pre,
        };
        let (tuned, _) = fit(model, train, &cfg, &train_device, &mut |p| progress(&name, p))?;
        let after = evaluate(&tuned.valid(), test, &data.pre, device)?;
        rows.push(IdentityRow {
            network: name,
            layers,
            accuracy: before.accuracy,
            max_logit_change: change,
            finetuned: after.accuracy,
        });
        write_outputs(opts, &rows)?;
    }
    Ok(rows)
}

/// Convolutions and the classifier: 2 per basic block, 3 per bottleneck, plus the stem and fc.
fn weight_layers(net: &cnn_models::resnet::ResNet) -> usize {
    let per_block = net.layer1.first().map_or(2, |b| if b.conv3.is_some() { 3 } else { 2 });
    2 + per_block * net.block_count()
}

/// The model's logits for every test image, in order.
fn logits<M: ImageClassifier>(model: &M, data: &RunData, device: &Device) -> Result<Vec<f32>> {
    let mut all = Vec::new();
    for batch in image_batches(&*data.loaded.test, &data.pre, device) {
        let (images, _) = batch?;
        let out: Tensor<2> = model.logits(images);
        let values = out.into_data().convert::<f32>().try_to_vec::<f32>();
        all.extend(values.map_err(|e| TrainError::Backend(format!("reading the logits back: {e:?}")))?);
    }
    Ok(all)
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The rows as a markdown table.
pub fn table_markdown(rows: &[IdentityRow], epochs: usize) -> String {
    let mut md = format!(
        "| network | layers | test top-1 | max \\|Δ logit\\| vs trained | after {epochs} epoch(s) of fine-tuning |\n\
         | --- | ---: | ---: | ---: | ---: |\n"
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {:.4} | {:.3e} | {:.4} |\n",
            r.network, r.layers, r.accuracy, r.max_logit_change, r.finetuned
        ));
    }
    md
}

fn write_outputs(opts: &IdentityOptions, rows: &[IdentityRow]) -> Result<()> {
    let mut csv = String::from("network,layers,test_top1,max_logit_change,finetuned_top1\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{:.6},{:e},{:.6}\n",
            r.network, r.layers, r.accuracy, r.max_logit_change, r.finetuned
        ));
    }
    write_file(&opts.out.join("identity.csv"), csv.as_bytes())?;
    write_file(
        &opts.out.join("identity.md"),
        table_markdown(rows, opts.epochs).as_bytes(),
    )
}
