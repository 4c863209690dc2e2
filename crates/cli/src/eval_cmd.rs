//! `cnn eval` and `cnn predict`: use a trained run folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cnn_data_augment::Image;
use cnn_models::precision::Precision;
use cnn_trainer::RunFolder;

/// Flags of `cnn eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// The run folder (written by `cnn train`); repeat it to evaluate an ensemble, whose members'
    /// softmax outputs are averaged.
    #[arg(long, required = true)]
    run: Vec<PathBuf>,
    /// Data set to evaluate on (its test split) [default: the first run's own].
    #[arg(long)]
    dataset: Option<String>,
    /// Folder holding the data sets [default: the first run's own, else ~/.cache/cnn-casestudies].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also evaluate with AlexNet's ten crops (four corners and the centre, and their mirrors)
    /// of every test image, printed beside the single-crop figures.
    #[arg(long)]
    tta: bool,
    /// Where to draw the confusion matrix [default: <run>/confusion.png for one run,
    /// confusion-ensemble.png for several].
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Also draw the N test images with the highest loss, captioned true → predicted class and
    /// probability, into <run>/worst.png (worst-ensemble.png for several runs).
    #[arg(long, value_name = "N")]
    worst: Option<usize>,
    #[command(flatten)]
    precision: crate::precision_arg::PrecisionArg,
}

/// Flags of `cnn predict`.
#[derive(clap::Args)]
pub struct PredictArgs {
    /// The run folder (written by `cnn train`); repeat it to average an ensemble's probabilities.
    #[arg(long, required = true)]
    run: Vec<PathBuf>,
    /// Image files to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Average over AlexNet's ten crops (four corners and the centre, and their mirrors).
    #[arg(long)]
    tta: bool,
    #[command(flatten)]
    precision: crate::precision_arg::PrecisionArg,
}

/// Opens every run folder named.
fn open_runs(paths: &[PathBuf]) -> Result<Vec<RunFolder>> {
    paths.iter().map(|p| Ok(RunFolder::open(p)?)).collect()
}

/// The precision the runs' own tests ran in: bf16 when every run trained in bf16, else f32.
fn runs_precision(runs: &[RunFolder]) -> Precision {
    let all_bf16 = runs.iter().all(|r| r.config.task.precision == Precision::Bf16);
    if all_bf16 { Precision::Bf16 } else { Precision::F32 }
}

/// Runs `cnn eval`: accuracy, top-5, per-class accuracy and the confusion matrix (printed and
/// drawn) of one run or of an ensemble, optionally with ten crops.
pub fn eval(device: Option<&str>, args: EvalArgs) -> Result<()> {
    let runs = open_runs(&args.run)?;
    let (backend, device) = crate::open_device(device)?;
    args.precision.apply(backend, runs_precision(&runs));
    let result = cnn_trainer::evaluate_runs(
        &runs,
        args.dataset.as_deref(),
        args.data_dir.as_deref(),
        args.tta,
        &device,
    )
    .with_context(|| format!("evaluating {}", args.run[0].display()))?;
    let dataset = &result.dataset;
    let s = &result.single.summary;
    let models: Vec<&str> = runs.iter().map(|r| r.config.task.model.as_str()).collect();
    println!(
        "{} on the {} test images of {dataset}: accuracy {:.4}  top-5 {:.4}  loss {:.4}",
        if runs.len() == 1 {
            models[0].to_string()
        } else {
            format!("ensemble of {} ({})", runs.len(), models.join(", "))
        },
        s.images,
        s.accuracy,
        s.top5,
        s.loss
    );
    if runs.len() > 1 || args.tta {
        print_table(&result);
    }
    // The figures drawn and listed per class: the ensemble's, with ten crops when asked for.
    let detail = result.ten_crop.as_ref().unwrap_or(&result.single);
    let names = &runs[0].class_names;
    print_per_class(names, detail);
    let png = args.plot.clone().unwrap_or_else(|| match runs.len() {
        1 => args.run[0].join("confusion.png"),
        _ => PathBuf::from("confusion-ensemble.png"),
    });
    let views = if result.ten_crop.is_some() { ", 10 crops" } else { "" };
    cnn_trainer::report::plot::confusion_matrix(
        &png,
        &format!(
            "{} on {dataset}{views}: accuracy {:.4}",
            models.join(" + "),
            detail.summary.accuracy
        ),
        &detail.confusion,
        names,
    )?;
    println!("\nwrote {}", png.display());
    if let Some(n) = args.worst {
        write_worst(&runs, &args, &result, n)?;
    }
    Ok(())
}

/// `worst.png`: the `n` test images with the highest loss under the (averaged) probabilities.
fn write_worst(runs: &[RunFolder], args: &EvalArgs, result: &cnn_trainer::EnsembleEvaluation, n: usize) -> Result<()> {
    if n == 0 {
        anyhow::bail!("--worst needs at least 1 image");
    }
    let (_, data) =
        cnn_trainer::eval::ensemble::test_data(&runs[0], args.dataset.as_deref(), args.data_dir.as_deref())?;
    let worst = cnn_trainer::eval::explain::worst(&result.probabilities, &result.labels, n);
    let tiles =
        cnn_trainer::eval::explain::mistake_tiles(&*data.test, &worst, &runs[0].preprocess, &runs[0].class_names)?;
    let png = match runs.len() {
        1 => args.run[0].join("worst.png"),
        _ => PathBuf::from("worst-ensemble.png"),
    };
    let title = format!(
        "the {} test images of {} with the highest loss (true → predicted, probability)",
        worst.len(),
        result.dataset
    );
    cnn_trainer::report::plot::tile_grid(&png, &title, &tiles, 6)?;
    println!(
        "wrote {} ({} images, losses {:.2} to {:.2})",
        png.display(),
        worst.len(),
        worst.first().map_or(0.0, |m| m.loss),
        worst.last().map_or(0.0, |m| m.loss)
    );
    Ok(())
}

/// Each member's and the ensemble's top-1 and top-5, single crop and (with --tta) ten crops.
fn print_table(result: &cnn_trainer::EnsembleEvaluation) {
    let tta = result.ten_crop.is_some();
    let width = result
        .members
        .iter()
        .map(|m| m.run.display().to_string().chars().count())
        .max()
        .unwrap_or(8)
        .clamp(8, 60);
    let head = if tta { "   10-crop top-1  top-5" } else { "" };
    println!("\n  {:<width$}  top-1   top-5 {head}", "");
    let row = |name: &str, single: &cnn_trainer::Evaluation, crop: Option<&cnn_trainer::Evaluation>| {
        let crop = crop.map_or(String::new(), |c| format!("   {:>13.4}  {:.4}", c.accuracy, c.top5));
        println!("  {name:<width$}  {:.4}  {:.4}{crop}", single.accuracy, single.top5);
    };
    for m in &result.members {
        row(&m.run.display().to_string(), &m.single, m.ten_crop.as_ref());
    }
    if result.members.len() > 1 {
        let name = format!("ensemble of {}", result.members.len());
        row(
            &name,
            &result.single.summary,
            result.ten_crop.as_ref().map(|e| &e.summary),
        );
    }
}

/// Per-class accuracy, and the confusion matrix when it fits a terminal.
fn print_per_class(names: &[String], detail: &cnn_trainer::DetailedEvaluation) {
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(5).clamp(5, 20);
    println!("\nper class:");
    for (name, acc) in names.iter().zip(detail.per_class_accuracy()) {
        match acc {
            Some(a) => println!("  {name:<width$}  {a:.4}"),
            None => println!("  {name:<width$}  (no images)"),
        }
    }
    if names.len() <= 20 {
        println!("\nconfusion matrix (rows: true class, columns: predicted, in class order):");
        for (name, row) in names.iter().zip(&detail.confusion) {
            let cells: Vec<String> = row.iter().map(|c| format!("{c:>5}")).collect();
            println!("  {name:<width$} {}", cells.join(""));
        }
        let confused = cnn_trainer::eval::explain::most_confused(&detail.confusion, 5);
        if !confused.is_empty() {
            println!("\nmost confused (true → predicted: images):");
            for (t, p, count) in confused {
                let name = |c: usize| names.get(c).map_or("?", String::as_str);
                println!("  {} → {}: {count}", name(t), name(p));
            }
        }
    } else {
        println!(
            "\n({} classes: the confusion matrix is only drawn, not printed)",
            names.len()
        );
    }
}

/// Runs `cnn predict`: the top classes of each image with their probabilities, from one run or
/// the average of several.
pub fn predict(device: Option<&str>, args: PredictArgs) -> Result<()> {
    let runs = open_runs(&args.run)?;
    cnn_trainer::eval::ensemble::check_same_classes(&runs)?;
    let (backend, device) = crate::open_device(device)?;
    args.precision.apply(backend, runs_precision(&runs));
    let models = runs
        .iter()
        .map(|r| r.load_model(&device))
        .collect::<cnn_trainer::Result<Vec<_>>>()?;
    let members: Vec<_> = models.iter().zip(&runs).map(|(m, r)| (m, &r.preprocess)).collect();
    let images = args
        .images
        .iter()
        .map(|p| Image::open(p))
        .collect::<cnn_data_augment::Result<Vec<_>>>()?;
    let ranked = cnn_trainer::predict(&members, &images, args.top_k, args.tta, &device)?;
    let how = match (runs.len(), args.tta) {
        (1, false) => String::new(),
        (1, true) => " (10-crop average)".into(),
        (n, false) => format!(" (average of {n} runs)"),
        (n, true) => format!(" (average of {n} runs, 10 crops each)"),
    };
    for (path, top) in args.images.iter().zip(ranked) {
        println!("{}{how}", path.display());
        for (class, p) in top {
            let name = runs[0].class_names.get(class).map_or("?", String::as_str);
            println!("  {p:>7.4}  {name}");
        }
    }
    Ok(())
}
