//! `cnn augment preview` and `cnn augment fit-pca`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cnn_data_augment::Image;
use cnn_data_augment::augment::{Pipeline, preview};

/// The `cnn augment` subcommands.
#[derive(clap::Subcommand)]
pub enum AugmentCommand {
    /// Write a PNG grid: the original image (tile 0, green frame) and N augmented versions.
    Preview {
        /// The image to augment.
        #[arg(long)]
        image: PathBuf,
        /// Preset (none, flip, mnist, cifar, imagenet) or a .toml/.json pipeline file.
        #[arg(long)]
        augment: String,
        /// Number of augmented versions.
        #[arg(long, default_value_t = 16)]
        n: usize,
        /// Seed of the augmentation.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure augmentation throughput (images/s on one core) for a pipeline on real images.
    Bench {
        /// Preset or pipeline file.
        #[arg(long)]
        augment: String,
        /// Folder of images to cycle through (default: the repository's datasets/photos).
        #[arg(long, default_value = "datasets/photos")]
        images: PathBuf,
        /// Resize the inputs to SIZE x SIZE first (e.g. 32 for the cifar preset).
        #[arg(long)]
        input_size: Option<usize>,
        /// Images to augment per timed repetition.
        #[arg(long, default_value_t = 200)]
        n: usize,
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
    /// Fit AlexNet-style PCA colour statistics over a data set and write them as JSON.
    FitPca {
        /// `mnist-5k` (the embedded digits) or a folder of images (searched recursively).
        #[arg(long)]
        dataset: String,
        /// Output JSON (the fields `pca_color` ops take: eigenvalues, eigenvectors).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs one `cnn augment` subcommand.
pub fn run(cmd: AugmentCommand) -> Result<()> {
    match cmd {
        AugmentCommand::Preview {
            image,
            augment,
            n,
            seed,
            out,
        } => preview_grid(&image, &augment, n, seed, &out),
        AugmentCommand::FitPca { dataset, out } => fit_pca(&dataset, &out),
        AugmentCommand::Bench {
            augment,
            images,
            input_size,
            n,
            reps,
        } => bench(&augment, &images, input_size, n, reps),
    }
}

fn preview_grid(image: &Path, augment: &str, n: usize, seed: u64, out: &Path) -> Result<()> {
    let pipeline = Pipeline::from_arg(augment)?;
    preview::sheet(&Image::open(image)?, &pipeline, n, seed)?.save_png(out)?;
    println!(
        "wrote {} ({} tiles: the original and {n} augmented, {} ops)",
        out.display(),
        n + 1,
        pipeline.ops.len()
    );
    Ok(())
}

fn bench(augment: &str, dir: &Path, input_size: Option<usize>, n: usize, reps: usize) -> Result<()> {
    let pipeline = Pipeline::from_arg(augment)?;
    let inputs = cnn_data_augment::augment::load_inputs(&pipeline, dir, input_size)?;
    let t = cnn_data_augment::augment::throughput(&pipeline, &inputs, n, reps)?;
    let (w, h) = (inputs[0].width, inputs[0].height);
    println!(
        "augment {augment}: {:.0} images/s on one core (median of {}, min {:.0}, max {:.0}; {} inputs, first {w}x{h})",
        t.median,
        t.rounds,
        t.min,
        t.max,
        inputs.len()
    );
    Ok(())
}

fn fit_pca(dataset: &str, out: &Path) -> Result<()> {
    let fitted = cnn_data_augment::augment::fit_pca(dataset)?;
    // Each reason names its file.
    for (_, reason) in &fitted.skipped {
        eprintln!("warning: skipping {reason}");
    }
    let (pca, images) = (&fitted.pca, fitted.images);
    println!(
        "fitted RGB PCA over {images} images ({} pixels), 0-1 scale",
        fitted.pixels
    );
    for (i, (value, vector)) in pca.eigenvalues.iter().zip(&pca.eigenvectors).enumerate() {
        println!(
            "  eigenvalue {} = {value:.6}  eigenvector [{:+.4}, {:+.4}, {:+.4}]",
            i + 1,
            vector[0],
            vector[1],
            vector[2]
        );
    }
    std::fs::write(out, serde_json::to_string_pretty(pca)?).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
