//! `cnn train`: flags → [`TrainConfig`] → a run folder, with progress and resume.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use cnn_models::precision::Precision;
use cnn_trainer::{Progress, RunPlan, Stop, TrainConfig, TrainOverrides};
use indicatif::{ProgressBar, ProgressStyle};

/// Flags of `cnn train` (also used by `cnn bench-loader` and `cnn bench-head`): the trainer's
/// [`TrainOverrides`] plus where to run and write.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The training settings (merged over a preset or the defaults by the trainer).
    #[command(flatten)]
    pub settings: TrainOverrides,
    /// Train data-parallel over several devices, comma-separated, the first holding the model:
    /// e.g. `wgpu:0,wgpu:1` (two GPUs) or `flex,wgpu`. Each batch is split over them.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Run folder to write [default: runs/<model>-<dataset>-<unix time>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the interrupted (or finished) run in this folder from its last checkpoint, with
    /// its own settings; only --epochs (the new total), --workers and --prefetch may change
    /// (other flags are accepted when they repeat the run's own settings).
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Train as one process of an MPI job, e.g. `mpirun -n 4 cnn train --distributed …` (with a
    /// hostfile, across machines): each process trains on its slice of every batch, gradients
    /// are summed over the processes, rank 0 writes the run folder. Builds with `--features mpi`.
    #[arg(long)]
    pub distributed: bool,
}

impl TrainArgs {
    /// The trainer's defaults (or the preset), overridden by whatever flags were given.
    pub fn config(&self) -> Result<TrainConfig> {
        Ok(self.settings.config()?)
    }
}

/// Runs `cnn train`.
pub fn run(device: Option<&str>, args: TrainArgs) -> Result<()> {
    if args.settings.preset.as_deref() == Some("list") {
        for (name, preset) in cnn_trainer::config::presets::built_in()? {
            println!("{name:<24} {}", preset.description);
        }
        return Ok(());
    }
    if args.distributed {
        return run_distributed(device, args);
    }
    let plan = args.settings.plan(args.out.as_deref(), args.resume.as_deref())?;
    let (backend, devices) = crate::device::open_many(device, &args.devices).map_err(anyhow::Error::msg)?;
    train(plan, &backend, |cfg, dir, resume, progress| {
        cnn_trainer::train_run_on(cfg, &devices, dir, resume, &mut with_faults(0, progress))
    })
}

/// `progress`, after the crash-safety tests' fault point of every batch (nothing outside a
/// `fault-injection` build: [`cnn_trainer::run::faults`]).
fn with_faults<'a>(rank: usize, progress: &'a mut dyn FnMut(Progress<'_>)) -> impl FnMut(Progress<'_>) + 'a {
    move |p| {
        if let Progress::Batch { epoch, batch, .. } = p {
            cnn_trainer::run::faults::after_batch(rank, epoch, batch);
        }
        progress(p)
    }
}

#[cfg(not(feature = "mpi"))]
fn run_distributed(_: Option<&str>, _: TrainArgs) -> Result<()> {
    anyhow::bail!("this cnn was built without MPI: build it with `--features mpi` to use --distributed")
}

/// `cnn train --distributed`: one process of an MPI job. Rank 0 prints and writes; an error on
/// any rank is printed there and ends the whole job (its peers would otherwise wait for it).
#[cfg(feature = "mpi")]
fn run_distributed(device: Option<&str>, args: TrainArgs) -> Result<()> {
    use cnn_trainer::Collective;
    let mpi = cnn_trainer::distributed::mpi::Mpi::init()?;
    let (rank, size) = (mpi.rank(), mpi.size());
    let outcome = (|| {
        let plan = args.settings.plan(args.out.as_deref(), args.resume.as_deref())?;
        let (backend, devices) = crate::device::open_many(device, &args.devices).map_err(anyhow::Error::msg)?;
        let backend = format!("{backend} ({size} MPI process{})", if size == 1 { "" } else { "es" });
        let train_here = |cfg: &TrainConfig, dir: &std::path::Path, resume, progress: &mut dyn FnMut(Progress<'_>)| {
            cnn_trainer::train_run_across(cfg, &devices, &mpi, dir, resume, &mut with_faults(rank, progress))
        };
        if rank == 0 {
            train(plan, &backend, train_here)
        } else {
            let RunPlan { config, dir, resume } = plan;
            train_here(&config, &dir, resume, &mut |_| {})
                .map(drop)
                .map_err(anyhow::Error::from)
        }
    })();
    if let Err(e) = outcome {
        eprintln!("error: rank {rank} of {size}: {}", crate::one_line(&e));
        if size > 1 {
            mpi.abort(1);
        }
        return Err(e);
    }
    Ok(())
}

/// The run as the user sees it: the settings line, progress, and where the results went.
fn train(
    plan: RunPlan,
    backend: &str,
    train_run: impl FnOnce(
        &TrainConfig,
        &std::path::Path,
        bool,
        &mut dyn FnMut(Progress<'_>),
    ) -> cnn_trainer::Result<cnn_trainer::RunReport>,
) -> Result<()> {
    let RunPlan {
        config: cfg,
        dir,
        resume,
    } = plan;
    println!(
        "{} {} on {} for {} epochs (batch {}, {:?} lr {} {:?}{}{}, seed {}, {} augmentation ops, {} data workers) on {backend}",
        if resume { "resuming" } else { "training" },
        cfg.task.model,
        cfg.task.dataset,
        cfg.optim.epochs,
        cfg.optim.batch_size,
        cfg.optim.optimizer,
        cfg.optim.lr,
        cfg.optim.schedule,
        if cfg.optim.warmup > 0 {
            format!(", warm-up {}", cfg.optim.warmup)
        } else {
            String::new()
        },
        if cfg.optim.weight_decay > 0.0 {
            format!(", weight decay {}", cfg.optim.weight_decay)
        } else {
            String::new()
        },
        cfg.task.seed,
        cfg.augmentation.augment.ops.len(),
        cfg.loader.workers
    );
    if cfg.task.precision == Precision::Bf16 {
        println!("precision: bf16 products with f32 sums in the convolutions");
        if let Some(why) = crate::precision_arg::bf16_training_notice(backend) {
            eprintln!("note: {why}");
        }
    }
    println!("run folder: {}", dir.display());
    let started = Instant::now();
    let mut display = EpochDisplay::new(cfg.optim.epochs);
    let report = train_run(&cfg, &dir, resume, &mut |p| display.show(p))
        .with_context(|| format!("training {} on {}", cfg.task.model, cfg.task.dataset))?;
    display.finish();
    if let Stop::EarlyStopped { best_epoch } = report.stop {
        println!(
            "early stop after epoch {}: the validation loss has not improved since epoch {best_epoch}",
            report.history.len()
        );
    }
    let ema = cfg.optim.ema.is_some();
    println!(
        "wrote {} (curves.png, metrics.csv, checkpoint, best.bpk, model.bpk, {}summary.json) in {:.1} s",
        report.dir.display(),
        if ema { "model-ema.bpk, " } else { "" },
        started.elapsed().as_secs_f64()
    );
    println!(
        "test accuracy {:.4} on {} images{}",
        report.test.accuracy,
        report.test.images,
        match (
            ema,
            cnn_trainer::run::checkpoint::run_weights(&report.dir).ok() == Some(report.dir.join("model-ema.bpk"))
        ) {
            (true, true) => " (the average of the weights: it validated better)",
            (true, false) => " (the trained weights: they validated at least as well as their average)",
            _ => "",
        }
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
                eprintln!("warning: {}", crate::with_flags(&w));
            }
            Progress::Note(n) => {
                self.finish();
                println!("{}", crate::with_flags(&n));
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
                if let (Some(loss), Some(accuracy)) = (m.ema_valid_loss, m.ema_valid_accuracy) {
                    println!("             average of the weights (--ema): valid loss {loss:.4} acc {accuracy:.4}");
                }
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
