//! `cnn experiment degradation | transfer | ensemble`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use cnn_experiments::degradation::{DegradationOptions, degradation};
use cnn_experiments::ensemble::{EnsembleOptions, ensemble, table_markdown};
use cnn_experiments::identity::{IdentityOptions, identity};
use cnn_trainer::Progress;

/// The experiments.
#[derive(clap::Subcommand)]
pub enum ExperimentCommand {
    /// Train plain-20/56 and ResNet-20/56 alike on Fashion-MNIST and plot their training error
    /// (He et al. 2016, Fig. 1 and 6). Finished runs are reused, interrupted ones resumed.
    Degradation {
        /// Training images (stratified sample) [default: 4000].
        #[arg(long)]
        subset: Option<usize>,
        /// Epochs per network [default: 8].
        #[arg(long)]
        epochs: Option<usize>,
        /// Mini-batch size [default: 64].
        #[arg(long)]
        batch_size: Option<usize>,
        /// Peak learning rate (SGD, momentum 0.9, 1 warm-up epoch, cosine) [default: 0.05].
        #[arg(long)]
        lr: Option<f64>,
        /// Networks to compare, comma-separated [default: plain20,plain56,resnet20,resnet56].
        #[arg(long, value_delimiter = ',')]
        nets: Option<Vec<String>>,
        /// Depths to train plain and residual twins at, comma-separated (e.g. 20,32,44,56; 110
        /// too), for the plot of final training error against depth (`degradation-depth.png`)
        #[arg(long, value_delimiter = ',', conflicts_with = "nets")]
        depths: Option<Vec<usize>>,
        /// Data set [default: fashion-mnist].
        #[arg(long)]
        dataset: Option<String>,
        /// Folder holding the data sets [default: ~/.cache/cnn-casestudies].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Data worker threads [default: cores - 1].
        #[arg(long)]
        workers: Option<usize>,
        /// Input height and width in pixels [default: the networks' own, 32].
        #[arg(long)]
        input_size: Option<usize>,
        /// Output folder [default: runs/degradation].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Reuse a pretrained backbone on a data set with few labels: from scratch, frozen
    /// backbone + new softmax (cached features), fine-tuning the last stage, fine-tuning
    /// everything at a lower rate, and rates per stage, each over several labelled subsets.
    Transfer {
        /// Pretrained weights: a run's model.bpk (e.g. LeNet-5 trained on Fashion-MNIST) or a
        /// torchvision file [default with --pretrain-preset: <out>/pretrain/model.bpk].
        #[arg(long, required_unless_present = "pretrain_preset")]
        pretrained: Option<PathBuf>,
        /// Train the source network first with this preset (e.g. resnet20-fashion), into
        /// <out>/pretrain (reused when finished), and transfer from it.
        #[arg(long, conflicts_with = "pretrained")]
        pretrain_preset: Option<String>,
        /// With --pretrain-preset: its classes, comma-separated (e.g. 0,1,2,3,4).
        #[arg(long, value_delimiter = ',', requires = "pretrain_preset")]
        pretrain_classes: Option<Vec<usize>>,
        /// With --pretrain-preset: its epochs [default: the preset's].
        #[arg(long, requires = "pretrain_preset")]
        pretrain_epochs: Option<usize>,
        /// The target task's classes of the data set, comma-separated (e.g. 5,6,7,8,9)
        /// [default: all].
        #[arg(long, value_delimiter = ',')]
        classes: Option<Vec<usize>>,
        /// Folder holding the data sets [default: ~/.cache/cnn-casestudies].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The model of those weights [default: lenet5_relu].
        #[arg(long, default_value = "lenet5_relu")]
        model: String,
        /// Target data set [default: mnist-5k].
        #[arg(long, default_value = "mnist-5k")]
        dataset: String,
        /// Labelled images per class (training and validation together), comma-separated
        /// [default: 10,50,100].
        #[arg(long, value_delimiter = ',')]
        per_class: Option<Vec<usize>>,
        /// Methods to compare, comma-separated: scratch, frozen-cached, finetune-top,
        /// finetune-all, discriminative [default: all five].
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<cnn_experiments::transfer::Method>>,
        /// Labelled subsets per cell (seeds --seed, --seed + 1, …) [default: 3].
        #[arg(long)]
        seeds: Option<usize>,
        /// Epochs of every run [default: 30].
        #[arg(long)]
        epochs: Option<usize>,
        /// Mini-batch size [default: 16].
        #[arg(long)]
        batch_size: Option<usize>,
        /// Adam's peak rate of the new head on a transferred backbone [default: 0.001].
        #[arg(long)]
        lr: Option<f64>,
        /// Adam's peak rate from scratch [default: 0.003].
        #[arg(long)]
        scratch_lr: Option<f64>,
        /// Adam's peak rate for frozen-cached, which trains the new softmax alone on the
        /// backbone's features [default: 0.3].
        #[arg(long)]
        head_only_lr: Option<f64>,
        /// Learning-rate schedule of every run: constant, step, cosine or onecycle [default: cosine].
        #[arg(long)]
        schedule: Option<cnn_trainer::Schedule>,
        /// The backbone's share of --lr when fine-tuning everything (finetune-all; the top
        /// stage's share with discriminative) [default: 0.3].
        #[arg(long)]
        backbone_lr_scale: Option<f64>,
        /// discriminative: each stage's rate as a share of the stage above it [default: 0.5].
        #[arg(long)]
        stage_lr_decay: Option<f64>,
        /// Share of each run's labelled images held out to validate on [default: 0.2].
        #[arg(long)]
        valid_split: Option<f64>,
        /// The first seed [default: 42].
        #[arg(long)]
        seed: Option<u64>,
        /// Input height and width in pixels [default: as `cnn train` chooses for the weights].
        #[arg(long)]
        input_size: Option<usize>,
        /// Output folder [default: runs/transfer].
        #[arg(long, default_value = "runs/transfer")]
        out: PathBuf,
    },
    /// Train several networks alike but for their seed and compare each alone, their
    /// ensemble (averaged probabilities) and the ensemble with ten crops. Finished members are
    /// reused, interrupted ones resumed.
    Ensemble {
        /// The preset every member is trained with (`cnn presets` lists them).
        #[arg(long, default_value = "lenet5-fashion")]
        preset: String,
        /// Number of members (seeds 42, 43, …).
        #[arg(long, default_value_t = 5)]
        members: usize,
        /// Epochs per member [default: the preset's].
        #[arg(long)]
        epochs: Option<usize>,
        /// Training images per member (stratified sample) [default: all].
        #[arg(long)]
        subset: Option<usize>,
        /// Leave out the ten-crop evaluation.
        #[arg(long)]
        no_tta: bool,
        /// Input height and width in pixels [default: the preset's].
        #[arg(long)]
        input_size: Option<usize>,
        /// Folder holding the data sets [default: ~/.cache/cnn-casestudies].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Output folder [default: runs/ensemble-<preset>].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Why residual blocks cannot hurt: append blocks that start as the identity, and plain
    /// blocks, to a trained ResNet; evaluate (the identity blocks change no logit), fine-tune
    /// each network alike and evaluate again.
    Identity {
        /// A finished ResNet run (e.g. from `cnn train --preset resnet20-fashion`).
        #[arg(long)]
        run: PathBuf,
        /// Blocks appended to the last stage.
        #[arg(long, default_value_t = 3)]
        blocks: usize,
        /// Fine-tuning epochs for each network.
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        /// Fine-tuning learning rate (constant; the run's optimiser).
        #[arg(long, default_value_t = 0.01)]
        lr: f64,
        /// Training images for fine-tuning (stratified sample) [default: the run's].
        #[arg(long)]
        subset: Option<usize>,
        /// Folder holding the data sets [default: the run's].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "runs/identity")]
        out: PathBuf,
    },
}

/// Runs an experiment.
pub fn run(device: Option<&str>, cmd: ExperimentCommand) -> Result<()> {
    if let ExperimentCommand::Identity {
        run,
        blocks,
        epochs,
        lr,
        subset,
        data_dir,
        out,
    } = cmd
    {
        let opts = IdentityOptions {
            blocks,
            epochs,
            lr,
            subset,
            data_dir,
            out,
            ..IdentityOptions::new(run)
        };
        return identity_cmd(device, &opts);
    }
    if let ExperimentCommand::Ensemble {
        preset,
        members,
        epochs,
        subset,
        no_tta,
        input_size,
        data_dir,
        out,
    } = cmd
    {
        let d = EnsembleOptions::new(&preset, members);
        let opts = EnsembleOptions {
            epochs,
            subset,
            data_dir,
            ten_crop: !no_tta,
            input_size,
            out: out.unwrap_or(d.out.clone()),
            ..d
        };
        return ensemble_cmd(device, &opts);
    }
    if let ExperimentCommand::Transfer {
        pretrained,
        pretrain_preset,
        pretrain_classes,
        pretrain_epochs,
        classes,
        data_dir,
        model,
        dataset,
        per_class,
        methods,
        seeds,
        epochs,
        batch_size,
        lr,
        scratch_lr,
        head_only_lr,
        schedule,
        backbone_lr_scale,
        stage_lr_decay,
        valid_split,
        seed,
        input_size,
        out,
    } = cmd
    {
        let d = cnn_experiments::transfer::TransferOptions::new(
            model,
            dataset,
            pretrained.unwrap_or_else(|| out.join("pretrain").join("model.bpk")),
        );
        let seed = seed.unwrap_or(d.seed);
        let pretrain = pretrain_preset
            .map(|name| -> Result<cnn_trainer::TrainConfig> {
                let mut cfg = cnn_trainer::config::presets::preset(&name)?;
                (cfg.task.classes, cfg.task.data_dir, cfg.task.seed) = (pretrain_classes, data_dir.clone(), seed);
                cfg.optim.epochs = pretrain_epochs.unwrap_or(cfg.optim.epochs);
                Ok(cfg)
            })
            .transpose()?;
        let opts = cnn_experiments::transfer::TransferOptions {
            pretrain,
            classes,
            data_dir,
            per_class: per_class.unwrap_or(d.per_class.clone()),
            methods: methods.unwrap_or(d.methods.clone()),
            seeds: seeds.unwrap_or(d.seeds),
            epochs: epochs.unwrap_or(d.epochs),
            batch_size: batch_size.unwrap_or(d.batch_size),
            lr: lr.unwrap_or(d.lr),
            scratch_lr: scratch_lr.unwrap_or(d.scratch_lr),
            schedule: schedule.unwrap_or(d.schedule),
            head_only_lr: head_only_lr.unwrap_or(d.head_only_lr),
            backbone_lr_scale: backbone_lr_scale.unwrap_or(d.backbone_lr_scale),
            stage_lr_decay: stage_lr_decay.unwrap_or(d.stage_lr_decay),
            valid_split: valid_split.unwrap_or(d.valid_split),
            seed,
            input_size,
            out,
            ..d
        };
        return transfer(device, &opts);
    }
    let ExperimentCommand::Degradation {
        subset,
        epochs,
        batch_size,
        lr,
        nets,
        depths,
        dataset,
        data_dir,
        workers,
        input_size,
        out,
    } = cmd
    else {
        unreachable!("handled above")
    };
    let d = DegradationOptions::default();
    let opts = DegradationOptions {
        nets: nets.unwrap_or(d.nets),
        dataset: dataset.unwrap_or(d.dataset),
        data_dir: data_dir.or(d.data_dir),
        subset: subset.unwrap_or(d.subset),
        epochs: epochs.unwrap_or(d.epochs),
        batch_size: batch_size.unwrap_or(d.batch_size),
        lr: lr.unwrap_or(d.lr),
        workers: workers.unwrap_or(d.workers),
        input_size: input_size.or(d.input_size),
        out: out.unwrap_or(d.out),
        ..d
    };
    let opts = match depths {
        Some(depths) => opts.with_depths(&depths),
        None => opts,
    };
    opts.validate()?;
    let (backend, device) = crate::open_device(device)?;
    println!(
        "degradation: {} on {} images of {}, {} epochs each, batch {}, SGD lr {} (cosine) on {backend} -> {}",
        opts.nets.join(", "),
        opts.subset,
        opts.dataset,
        opts.epochs,
        opts.batch_size,
        opts.lr,
        opts.out.display()
    );
    let started = Instant::now();
    let results = degradation(&opts, &device, &mut progress_printer(9, opts.epochs))?;
    println!("\nfinal training error (last epoch) and test accuracy:");
    for r in &results {
        if let Some(m) = r.history.last() {
            println!(
                "  {:<9} train error {:.2}%   test accuracy {:.4}",
                r.net,
                100.0 * (1.0 - m.train_accuracy),
                r.test_accuracy
            );
        }
    }
    let depth_plot = opts.out.join("degradation-depth.png");
    println!(
        "wrote {} and {}{} in {:.0} s",
        opts.out.join("degradation.csv").display(),
        opts.out.join("degradation.png").display(),
        if depth_plot.is_file() {
            format!(" and {}", depth_plot.display())
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn transfer(device: Option<&str>, opts: &cnn_experiments::transfer::TransferOptions) -> Result<()> {
    cnn_models::registry::lookup(&opts.model)?;
    if let Some(cfg) = &opts.pretrain {
        cfg.validate()?;
    } else if !opts.pretrained.is_file() {
        anyhow::bail!("--pretrained {}: no such file", opts.pretrained.display());
    }
    let (backend, device) = crate::open_device(device)?;
    println!(
        "transfer: {} from {} to {} with {:?} labelled images per class, {} seed(s), {} epochs each, on {backend} -> {}",
        opts.model,
        opts.pretrained.display(),
        opts.dataset,
        opts.per_class,
        opts.seeds,
        opts.epochs,
        opts.out.display()
    );
    let started = Instant::now();
    // The cells are short: only the pretraining run reports its epochs.
    let pretrain_epochs = opts.pretrain.as_ref().map_or(0, |cfg| cfg.optim.epochs);
    let mut print = progress_printer(18, pretrain_epochs);
    let rows = cnn_experiments::transfer::transfer(opts, &device, &mut |label, p| match p {
        Progress::Epoch(_) | Progress::Batch { .. } if label != "pretrain" => {}
        p => print(label, p),
    })?;
    for r in &rows {
        println!(
            "{:>4} per class  {:<14} seed {:<4} test accuracy {:.4}  ({:.1} s of training)",
            r.per_class,
            r.method.name(),
            r.seed,
            r.test_accuracy,
            r.train_seconds
        );
    }
    println!("\n{}", std::fs::read_to_string(opts.out.join("transfer.md"))?);
    println!(
        "wrote {} in {:.0} s",
        opts.out.join("transfer.csv").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ensemble_cmd(device: Option<&str>, opts: &EnsembleOptions) -> Result<()> {
    opts.validate()?;
    let (backend, device) = crate::open_device(device)?;
    println!(
        "ensemble: {} members of preset {} (seeds {}..{}){} on {backend} -> {}",
        opts.members,
        opts.preset,
        opts.seed,
        opts.seed + opts.members as u64 - 1,
        if opts.ten_crop {
            ", evaluated with and without ten crops"
        } else {
            ""
        },
        opts.out.display()
    );
    let started = Instant::now();
    let result = ensemble(opts, &device, &mut progress_printer(9, opts.config(0)?.optim.epochs))?;
    println!(
        "\ntest accuracy on the {} test images of {}:\n",
        result.single.summary.images, result.dataset
    );
    print!("{}", table_markdown(&result));
    println!(
        "\nwrote {} and {} in {:.0} s",
        opts.out.join("ensemble.csv").display(),
        opts.out.join("ensemble.md").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn identity_cmd(device: Option<&str>, opts: &IdentityOptions) -> Result<()> {
    let (backend, device) = crate::open_device(device)?;
    println!(
        "identity: {} with {} identity and {} plain blocks appended, {} epoch(s) of fine-tuning each, on {backend} -> {}",
        opts.run.display(),
        opts.blocks,
        opts.blocks,
        opts.epochs,
        opts.out.display()
    );
    let started = Instant::now();
    let rows = identity(opts, &device, &mut progress_printer(22, opts.epochs))?;
    println!();
    print!("{}", cnn_experiments::identity::table_markdown(&rows, opts.epochs));
    println!(
        "\nwrote {} in {:.0} s",
        opts.out.join("identity.csv").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints an experiment's progress, each line starting with the run's name padded to `width`:
/// each finished epoch (of `epochs`), a line every 30 s within a long one, notes and (on stderr) warnings.
fn progress_printer(width: usize, epochs: usize) -> impl FnMut(&str, Progress<'_>) {
    let mut last = Instant::now();
    move |who, p| match p {
        Progress::Epoch(m) => {
            println!(
                "{who:<width$} epoch {:>2}/{epochs}  train accuracy {:.4}  valid accuracy {:.4}  {:.0} img/s",
                m.epoch, m.train_accuracy, m.valid_accuracy, m.images_per_second
            );
            last = Instant::now();
        }
        Progress::Batch {
            epoch, batch, batches, ..
        } if last.elapsed().as_secs() >= 30 => {
            println!("{who:<width$} epoch {epoch} batch {batch}/{batches}");
            last = Instant::now();
        }
        Progress::Batch { .. } => {}
        Progress::Warning(w) => eprintln!("warning: {}", crate::with_flags(&w)),
        Progress::Note(n) => println!("{who:<width$} {}", crate::with_flags(&n)),
    }
}
