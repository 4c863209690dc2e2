//! `cnn eval` and `cnn predict`: use a trained run folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cnn_data_augment::Image;
use cnn_trainer::RunFolder;

/// Flags of `cnn eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The run folder (written by `cnn train`).
    #[arg(long)]
    run: PathBuf,
    /// Data set to evaluate on (its test split) [default: the run's own].
    #[arg(long)]
    dataset: Option<String>,
    /// Folder holding the data sets [default: the run's own, else ~/.cache/cnn-casestudies].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Flags of `cnn predict`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The run folder (written by `cnn train`).
    #[arg(long)]
    run: PathBuf,
    /// Image files to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Average over AlexNet's ten crops (four corners and the centre, and their mirrors).
    #[arg(long)]
    tta: bool,
}

/// Runs `cnn eval`: accuracy, top-5, per-class accuracy and the confusion matrix (printed and
/// written to `<run>/confusion.png`).
pub fn eval(device: Option<&str>, args: EvalArgs) -> Result<()> {
    let run = RunFolder::open(&args.run)?;
    let dataset = args.dataset.clone().unwrap_or_else(|| run.config.dataset.clone());
    let (_, device) = crate::open_device(device)?;
    let result = run
        .evaluate_on(Some(&dataset), args.data_dir.as_deref(), &device)
        .with_context(|| format!("evaluating {} on {dataset}", args.run.display()))?;
    let s = &result.summary;
    println!(
        "{} on the {} test images of {dataset}: accuracy {:.4}  top-5 {:.4}  loss {:.4}",
        run.config.model, s.images, s.accuracy, s.top5, s.loss
    );
    let width = run
        .class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(5)
        .clamp(5, 20);
    println!("\nper class:");
    for (name, acc) in run.class_names.iter().zip(result.per_class_accuracy()) {
        match acc {
            Some(a) => println!("  {name:<width$}  {a:.4}"),
            None => println!("  {name:<width$}  (no images)"),
        }
    }
    let n = run.class_names.len();
    if n <= 20 {
        println!("\nconfusion matrix (rows: true class, columns: predicted, in class order):");
        for (name, row) in run.class_names.iter().zip(&result.confusion) {
            let cells: Vec<String> = row.iter().map(|c| format!("{c:>5}")).collect();
            println!("  {name:<width$} {}", cells.join(""));
        }
    } else {
        println!("\n({n} classes: the confusion matrix is only drawn, not printed)");
    }
    let png = args.run.join("confusion.png");
    cnn_trainer::plot::confusion_matrix(
        &png,
        &format!("{} on {dataset}: accuracy {:.4}", run.config.model, s.accuracy),
        &result.confusion,
        &run.class_names,
    )?;
    println!("\nwrote {}", png.display());
    Ok(())
}

/// Runs `cnn predict`: the top classes of each image with their probabilities.
pub fn predict(device: Option<&str>, args: PredictArgs) -> Result<()> {
    let run = RunFolder::open(&args.run)?;
    let (_, device) = crate::open_device(device)?;
    let model = run.load_model(&device)?;
    let images = args
        .images
        .iter()
        .map(|p| Image::open(p).map(|img| img.with_channels(run.preprocess.channels)))
        .collect::<cnn_data_augment::Result<Vec<_>>>()?;
    let ranked = cnn_trainer::predict(&model, &images, &run.preprocess, args.top_k, args.tta, &device)?;
    for (path, top) in args.images.iter().zip(ranked) {
        println!("{}{}", path.display(), if args.tta { " (10-crop average)" } else { "" });
        for (class, p) in top {
            let name = run.class_names.get(class).map_or("?", String::as_str);
            println!("  {p:>7.4}  {name}");
        }
    }
    Ok(())
}
