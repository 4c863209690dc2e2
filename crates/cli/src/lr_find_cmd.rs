//! `cnn lr-find`: sweeps the learning rate over a few hundred updates of a run's model and data
//! and suggests a peak rate ([`cnn_trainer::run::lr_find`]).

use std::path::PathBuf;

use anyhow::Result;
use cnn_trainer::run::lr_find::{LrSweep, lr_find, write_finding};
use cnn_trainer::{Progress, TrainOverrides};

/// Flags of `cnn lr-find`: the training settings (as `cnn train`'s) and the sweep.
#[derive(clap::Args)]
pub struct LrFindArgs {
    /// The training settings (model, data, optimiser, augmentation, …) as for `cnn train`.
    #[command(flatten)]
    pub settings: TrainOverrides,
    /// Updates (one batch each) in the sweep [default: 200].
    #[arg(long, default_value_t = LrSweep::default().steps)]
    steps: usize,
    /// The first rate [default: 1e-7].
    #[arg(long, default_value_t = LrSweep::default().start)]
    start: f64,
    /// The last rate [default: 10].
    #[arg(long, default_value_t = LrSweep::default().end)]
    end: f64,
    /// Folder for lr-find.csv and lr-find.png [default: runs/lr-find-<model>-<dataset>].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `cnn lr-find`.
pub fn run(device: Option<&str>, args: LrFindArgs) -> Result<()> {
    let cfg = args.settings.config()?;
    let sweep = LrSweep {
        steps: args.steps,
        start: args.start,
        end: args.end,
    };
    let (backend, device) = crate::open_device(device)?;
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("runs/lr-find-{}-{}", cfg.task.model, cfg.dataset_tag())));
    println!(
        "sweeping the rate of {} on {} from {:.0e} to {:.0e} over {} updates on {backend}",
        cfg.task.model, cfg.task.dataset, sweep.start, sweep.end, sweep.steps
    );
    let mut last_report = std::time::Instant::now();
    let finding = lr_find(&cfg, &sweep, &device, &mut |p| match p {
        Progress::Batch {
            batch,
            batches,
            loss,
            lr,
            ..
        } if last_report.elapsed().as_secs_f32() >= 2.0 || batch == batches => {
            println!("  update {batch}/{batches}  lr {lr:.2e}  loss {loss:.4}");
            last_report = std::time::Instant::now();
        }
        Progress::Note(n) => println!("{}", crate::with_flags(&n)),
        Progress::Warning(w) => eprintln!("warning: {}", crate::with_flags(&w)),
        _ => {}
    })?;
    write_finding(
        &out,
        &finding,
        &format!("learning-rate sweep: {} on {}", cfg.task.model, cfg.task.dataset),
    )?;
    if finding.exploded {
        println!(
            "the loss exploded after {} updates: the sweep stopped there",
            finding.points.len()
        );
    }
    match finding.suggested {
        Some(lr) => println!("suggested peak rate: {lr:.2e} (steepest fall of the loss; try it with --lr)"),
        None => println!("no suggestion: the loss did not fall (try a lower --start or more --steps)"),
    }
    println!("wrote {} (lr-find.csv, lr-find.png)", out.display());
    Ok(())
}
