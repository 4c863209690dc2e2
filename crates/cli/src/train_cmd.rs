//! `cnn train`: flags → [`TrainConfig`] → a run folder, with progress and resume.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use cnn_trainer::{OptimizerKind, Progress, RunFolder, Schedule, Stop, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

/// Flags of `cnn train` (also used by `cnn bench-loader`).
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Start from a named recipe (lenet5-mnist5k, lenet5-fashion, resnet20-fashion); other
    /// flags override its settings.
    #[arg(long)]
    preset: Option<String>,
    /// Model name (see `cnn models`) [default: lenet5].
    #[arg(long)]
    model: Option<String>,
    /// Train data-parallel over several devices, comma-separated, the first holding the model:
    /// e.g. `wgpu:0,wgpu:1` (two GPUs) or `flex,wgpu`. Each batch is split over them.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Data set: mnist-5k (embedded), mnist, fashion-mnist, cifar10, cifar100, or the path of an
    /// image folder (root/<class>/*.png|jpg…, or root/train/… and root/val/…) [default: mnist-5k].
    #[arg(long)]
    dataset: Option<String>,
    /// Folder holding the data sets' folders [default: ~/.cache/cnn-casestudies]; Debian's
    /// dataset-fashion-mnist works with --data-dir /usr/share/datasets.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Passes over the training set; with --resume, the total to reach [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per mini-batch [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate (peak, after warm-up) [default: 0.001].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Optimiser: sgd, adam or adamw [default: adam].
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Momentum for sgd [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f64>,
    /// Weight decay: L2 for sgd and adam, decoupled for adamw [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Learning-rate schedule: constant, step (x0.1 at 50% and 75% of the epochs) or cosine
    /// [default: constant].
    #[arg(long)]
    schedule: Option<Schedule>,
    /// Epochs of linear learning-rate warm-up [default: 0].
    #[arg(long)]
    warmup: Option<usize>,
    /// Stop when the validation loss has not improved for N epochs [default: off].
    #[arg(long)]
    early_stop: Option<usize>,
    /// Share of the training set held out for validation (stratified); 0 validates on the
    /// test set [default: 0.1].
    #[arg(long)]
    valid_split: Option<f64>,
    /// Start from torchvision weights (.pth/.safetensors); the head is replaced when the data
    /// set has another number of classes (see `cnn weights`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// With --weights: start from a fresh head even when the class count matches (a new task).
    #[arg(long)]
    new_head: bool,
    /// Freeze part of the backbone: none, all (train only the head), upto:<stage> (e.g.
    /// upto:layer2, upto:features.10, upto:inception4a) or auto (from the labelled images per
    /// class; auto:<small>,<large> sets the thresholds) [default: none].
    #[arg(long)]
    freeze: Option<cnn_transfer::FreezePolicy>,
    /// With --freeze all: run the backbone once over each split, cache the features on disk and
    /// train the head from them (no augmentation possible).
    #[arg(long)]
    cache_features: bool,
    /// Folder for feature caches [default: ~/.cache/cnn-casestudies/features].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Train on a stratified sample of this many training images [default: all].
    #[arg(long)]
    subset: Option<usize>,
    /// Seed for initialisation, shuffling, augmentation and dropout [default: 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Augmentation of the training images: a preset (none, flip, mnist, cifar, imagenet) or a
    /// .toml/.json pipeline file [default: none].
    #[arg(long)]
    augment: Option<String>,
    /// Data worker threads that prepare batches in the background; 0 = on the training thread
    /// [default: cores - 1, at least 1].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Most finished batches kept waiting for the training loop (bounds memory)
    /// [default: 2 per worker].
    #[arg(long)]
    prefetch: Option<usize>,
    /// Run folder to write [default: runs/<model>-<dataset>-<unix time>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the interrupted (or finished) run in this folder from its last checkpoint, with
    /// its own settings; only --epochs (the new total), --workers and --prefetch may change
    /// (other flags are accepted when they repeat the run's own settings).
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
}

impl TrainArgs {
    /// The trainer's defaults, overridden by whatever flags were given.
    pub fn config(&self) -> Result<TrainConfig> {
        self.config_over(TrainConfig::new("lenet5", "mnist-5k"))
    }

    /// `--preset`'s settings if given, else `defaults`, overridden by whatever flags were given.
    fn config_over(&self, defaults: TrainConfig) -> Result<TrainConfig> {
        let base = match &self.preset {
            Some(name) => cnn_trainer::presets::preset(name)?,
            None => defaults,
        };
        let d = TrainConfig {
            model: self.model.clone().unwrap_or(base.model.clone()),
            dataset: self.dataset.clone().unwrap_or(base.dataset.clone()),
            ..base
        };
        let augment = match &self.augment {
            Some(a) => cnn_data_augment::Pipeline::from_arg(a)?,
            None => d.augment.clone(),
        };
        Ok(TrainConfig {
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            optimizer: self.optimizer.unwrap_or(d.optimizer),
            momentum: self.momentum.unwrap_or(d.momentum),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            schedule: self.schedule.unwrap_or(d.schedule),
            warmup: self.warmup.unwrap_or(d.warmup),
            early_stop: self.early_stop.or(d.early_stop),
            valid_split: self.valid_split.unwrap_or(d.valid_split),
            subset: self.subset.or(d.subset),
            weights: self.weights.clone().or(d.weights),
            new_head: self.new_head || d.new_head,
            freeze: self.freeze.clone().unwrap_or(d.freeze),
            cache_features: self.cache_features || d.cache_features,
            cache_dir: self.cache_dir.clone().or(d.cache_dir),
            seed: self.seed.unwrap_or(d.seed),
            workers: self.workers.unwrap_or(d.workers),
            prefetch: self.prefetch.or(d.prefetch),
            data_dir: self.data_dir.clone().or(d.data_dir),
            augment,
            ..d
        })
    }

    /// The run's own config with the few settings a resume may change (--epochs, --workers,
    /// --prefetch). Other flags may be repeated as the run had them; a change is refused and
    /// named.
    fn resumed_config(&self, dir: &std::path::Path) -> Result<TrainConfig> {
        let run = RunFolder::open(dir)?;
        let asked = self.config_over(run.config.clone())?;
        let changes = asked.changes_for_resume(&run.config);
        if !changes.is_empty() {
            bail!(
                "--resume continues {} with its own settings (its config.json), and this command changes {}: drop those flags, or start a new run with --out",
                dir.display(),
                changes.join(", ")
            );
        }
        Ok(TrainConfig {
            epochs: self.epochs.unwrap_or(run.config.epochs),
            workers: self.workers.unwrap_or(run.config.workers),
            prefetch: self.prefetch.or(run.config.prefetch),
            ..run.config
        })
    }
}

/// The device of `--device`, or the devices of `--devices` (data-parallel, first = main); the
/// backend named is the main device's.
fn open_devices(device: Option<&str>, list: &[String]) -> Result<(String, Vec<burn::tensor::Device>)> {
    if list.is_empty() {
        let (backend, device) = crate::open_device(device)?;
        return Ok((backend.to_string(), vec![device]));
    }
    if device.is_some() {
        anyhow::bail!("give either --device or --devices, not both");
    }
    let available = cnn_trainer::device::compiled();
    let devices = list
        .iter()
        .map(|spec| cnn_trainer::device::open_spec(spec, &available).map(|(_, d)| d))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    Ok((format!("{} (data-parallel)", list.join(" + ")), devices))
}

/// Runs `cnn train`.
pub fn run(device: Option<&str>, args: TrainArgs) -> Result<()> {
    let (cfg, dir, resume) = match &args.resume {
        Some(dir) => (args.resumed_config(dir)?, dir.clone(), true),
        None => {
            let cfg = args.config()?;
            let dir = args.out.clone().unwrap_or_else(|| {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let data = std::path::Path::new(&cfg.dataset)
                    .file_name()
                    .map_or(cfg.dataset.clone(), |n| n.to_string_lossy().into_owned());
                PathBuf::from("runs").join(format!("{}-{data}-{secs}", cfg.model))
            });
            (cfg, dir, false)
        }
    };
    cfg.validate()?;
    cnn_models::registry::lookup(&cfg.model)?;
    let (backend, devices) = open_devices(device, &args.devices)?;
    println!(
        "{} {} on {} for {} epochs (batch {}, {:?} lr {} {:?}{}{}, seed {}, {} augmentation ops, {} data workers) on {backend}",
        if resume { "resuming" } else { "training" },
        cfg.model,
        cfg.dataset,
        cfg.epochs,
        cfg.batch_size,
        cfg.optimizer,
        cfg.lr,
        cfg.schedule,
        if cfg.warmup > 0 {
            format!(", warm-up {}", cfg.warmup)
        } else {
            String::new()
        },
        if cfg.weight_decay > 0.0 {
            format!(", weight decay {}", cfg.weight_decay)
        } else {
            String::new()
        },
        cfg.seed,
        cfg.augment.ops.len(),
        cfg.workers
    );
    println!("run folder: {}", dir.display());
    let started = Instant::now();
    let mut display = EpochDisplay::new(cfg.epochs);
    let report = cnn_trainer::train_run_on(&cfg, &devices, &dir, resume, &mut |p| display.show(p))
        .with_context(|| format!("training {} on {}", cfg.model, cfg.dataset))?;
    display.finish();
    if let Stop::EarlyStopped { best_epoch } = report.stop {
        println!(
            "early stop after epoch {}: the validation loss has not improved since epoch {best_epoch}",
            report.history.len()
        );
    }
    println!(
        "wrote {} (curves.png, metrics.csv, checkpoint, best.bpk, model.bpk, summary.json) in {:.1} s",
        report.dir.display(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "test accuracy {:.4} on {} images",
        report.test.accuracy, report.test.images
    );
    Ok(())
}

/// Per-epoch lines always; within an epoch a progress bar on a terminal, else a line every
/// few seconds.
struct EpochDisplay {
    epochs: usize,
    bar: Option<ProgressBar>,
    terminal: bool,
    last_line: Instant,
}

impl EpochDisplay {
    fn new(epochs: usize) -> Self {
        Self {
            epochs,
            bar: None,
            terminal: std::io::stdout().is_terminal(),
            last_line: Instant::now(),
        }
    }

    fn show(&mut self, p: Progress<'_>) {
        match p {
            Progress::Batch {
                epoch,
                batch,
                batches,
                loss,
                lr,
            } => {
                if self.terminal {
                    let bar = self.bar.get_or_insert_with(|| {
                        let bar = ProgressBar::new(batches as u64);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "epoch {prefix} {bar:30} {pos}/{len} batches  {msg}  eta {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.set_prefix(format!("{epoch}/{}", self.epochs));
                        bar
                    });
                    bar.set_position(batch as u64);
                    bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
                } else if self.last_line.elapsed().as_secs_f32() >= 5.0 && batch < batches {
                    // A line every few seconds keeps long epochs visible without flooding logs.
                    println!("  epoch {epoch} batch {batch}/{batches} loss {loss:.4} lr {lr:.2e}");
                    self.last_line = Instant::now();
                }
            }
            Progress::Warning(w) => {
                self.finish();
                eprintln!("warning: {w}");
            }
            Progress::Note(n) => {
                self.finish();
                println!("{n}");
            }
            Progress::Epoch(m) => {
                self.finish();
                println!(
                    "epoch {:>3}/{}  train loss {:.4} acc {:.4}  valid loss {:.4} acc {:.4} top-5 {:.4}  lr {:.2e}  {:.0} img/s  data wait {:.1}%",
                    m.epoch,
                    self.epochs,
                    m.train_loss,
                    m.train_accuracy,
                    m.valid_loss,
                    m.valid_accuracy,
                    m.valid_top5,
                    m.lr,
                    m.images_per_second,
                    100.0 * m.data_wait_share
                );
                self.last_line = Instant::now();
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
