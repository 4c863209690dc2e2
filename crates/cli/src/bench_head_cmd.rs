//! `cnn bench-head`: one head-training epoch through the frozen backbone vs from cached features.

use std::time::Instant;

use anyhow::Result;

use crate::train_cmd::TrainArgs;

/// Flags of `cnn bench-head`: those of `cnn train` (model, data set, weights, …).
#[derive(clap::Args)]
pub struct BenchHeadArgs {
    #[command(flatten)]
    train: TrainArgs,
}

/// Runs both epochs in temporary run folders and prints their times.
pub fn run(device: Option<&str>, args: BenchHeadArgs) -> Result<()> {
    let base = args
        .train
        .config()?
        .with_epochs(1)
        .with_freeze(cnn_transfer::FreezePolicy::All);
    let (backend, device) = crate::open_device(device)?;
    // Removed with everything in it when the command ends, however it ends.
    let scratch = tempfile::Builder::new().prefix("cnn-bench-head-").tempdir()?;
    let cache_dir = scratch.path().join("features");
    println!(
        "one head-training epoch of {} on {} (frozen backbone{}) on {backend}",
        base.task.model,
        base.task.dataset,
        base.transfer
            .weights
            .as_ref()
            .map(|w| format!(", weights {}", w.display()))
            .unwrap_or_default()
    );
    let mut seconds = Vec::new();
    for (label, cached) in [("through the frozen backbone", false), ("from cached features", true)] {
        let cfg = base
            .clone()
            .with_cache_features(cached)
            .with_cache_dir(Some(cache_dir.clone()));
        let started = Instant::now();
        let report = cnn_trainer::train_run(
            &cfg,
            &device,
            &scratch.path().join(label.replace(' ', "-")),
            false,
            &mut |_| {},
        )?;
        let epoch = &report.history[0];
        println!(
            "  {label:<28} epoch {:>9.3} s  ({:.0} img/s; whole run incl. set-up {:.1} s)",
            epoch.train_seconds,
            epoch.images_per_second,
            started.elapsed().as_secs_f64()
        );
        seconds.push(epoch.train_seconds);
    }
    println!("  speed-up of the epoch: {:.0}x", seconds[0] / seconds[1].max(1e-9));
    Ok(())
}
