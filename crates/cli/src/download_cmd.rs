//! `cnn download NAME [--from DIR] [--data-dir DIR]`: checked downloads with a progress bar.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use cnn_data_augment::download::{Download, DownloadEvent, Origin, dataset_files};
use indicatif::{ProgressBar, ProgressStyle};

/// Flags of `cnn download`.
#[derive(clap::Args)]
pub struct DownloadArgs {
    /// Data set: mnist, fashion-mnist, cifar10 or cifar100.
    name: String,
    /// Import the files from this folder instead of the web (same file names, same checks);
    /// e.g. /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Download from this base URL instead of the official addresses and their mirrors (a local
    /// mirror or proxy): each file is fetched from `<URL>/<file name>`, with the same checksums.
    #[arg(long, conflicts_with = "from")]
    mirror: Option<String>,
    /// Data folder to fill [default: ~/.cache/cnn-casestudies, where `cnn train` looks].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Runs `cnn download`.
pub fn run(args: DownloadArgs) -> Result<()> {
    let mut spec = dataset_files(&args.name)?;
    if let Some(mirror) = &args.mirror {
        let base = mirror.trim_end_matches('/');
        for file in &mut spec.files {
            file.urls = vec![format!("{base}/{}", file.name)];
        }
    }
    let data_dir = args
        .data_dir
        .unwrap_or_else(cnn_data_augment::datasets::default_data_dir);
    let download = Download {
        origin: args.from.map_or(Origin::Web, Origin::Local),
        ..Download::new(&data_dir)
    };
    println!("{} -> {}", spec.name, data_dir.join(&spec.name).display());
    let mut display = Display::new();
    download.run(&spec, &mut |e| display.event(e))?;
    println!(
        "{} is ready: cnn train --dataset {}{}",
        spec.name,
        spec.name,
        if download.data_dir == cnn_data_augment::datasets::default_data_dir() {
            String::new()
        } else {
            format!(" --data-dir {}", download.data_dir.display())
        }
    );
    Ok(())
}

/// A progress bar on a terminal, a line every 10% otherwise (logs, CI).
struct Display {
    bar: Option<ProgressBar>,
    terminal: bool,
    next_tenth: u64,
    started: Instant,
}

impl Display {
    fn new() -> Self {
        Self {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            next_tenth: 1,
            started: Instant::now(),
        }
    }

    fn event(&mut self, event: &DownloadEvent) {
        match event {
            DownloadEvent::Start { file, source, total } => {
                eprintln!("  {file} from {source}");
                self.started = Instant::now();
                self.next_tenth = 1;
                if self.terminal {
                    let bar = ProgressBar::new(total.unwrap_or(0));
                    bar.set_style(
                        ProgressStyle::with_template("  {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    self.bar = Some(bar);
                }
            }
            DownloadEvent::Bytes { done, total, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*done);
                } else if let Some(total) = total.filter(|t| *t > 0)
                    && *done * 10 >= self.next_tenth * total
                {
                    let secs = self.started.elapsed().as_secs_f64().max(1e-3);
                    eprintln!(
                        "  {:>3}%  {:.1} of {:.1} MB  {:.1} MB/s",
                        100 * done / total,
                        *done as f64 / 1e6,
                        total as f64 / 1e6,
                        *done as f64 / 1e6 / secs
                    );
                    self.next_tenth = 10 * done / total + 1;
                }
            }
            DownloadEvent::Failed { source, reason, .. } => {
                self.finish_bar();
                eprintln!("  warning: {source}: {reason}");
            }
            DownloadEvent::Done(outcome) => {
                self.finish_bar();
                println!("  {}: {} ({})", outcome.file, outcome.verified, outcome.source);
            }
        }
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
