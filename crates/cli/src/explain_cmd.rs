//! `cnn explain`: Grad-CAM heat maps of a trained run over image files.

use cnn_models::Network;
use std::path::PathBuf;

use anyhow::{Context, Result};
use cnn_trainer::RunFolder;

/// Flags of `cnn explain`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The run folder (written by `cnn train`).
    #[arg(long)]
    run: PathBuf,
    /// Image files to explain.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Explain this class (its number in the run's classes.json) instead of the predicted one.
    #[arg(long)]
    class: Option<usize>,
    /// Folder for the heat maps [default: <run>/explain].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `cnn explain`: one PNG per image, the heat map over the image as the network saw it,
/// named `<image>-<class>-p<probability>.png`, and with several images `explain.png` with all
/// of them.
pub fn explain(device: Option<&str>, args: ExplainArgs) -> Result<()> {
    let run = RunFolder::open(&args.run)?;
    let (_, device) = crate::open_device(device)?;
    let model = run.load_model(&device)?;
    let layer = model
        .last_maps_layer()
        .ok_or_else(|| anyhow::anyhow!("{} has no convolutional stage to explain", run.config.task.model))?;
    let out = args.out.clone().unwrap_or_else(|| run.dir.join("explain"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let title = format!("Grad-CAM of {} at {layer}", run.config.task.model);
    let mut tiles = Vec::new();
    for path in &args.images {
        let (heat, tile) = cnn_trainer::eval::explain::explain_file(&run, &model, path, args.class, &device)?;
        let class = run.class_names.get(heat.class).map_or("?", String::as_str);
        let stem = path
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let file = out.join(format!("{stem}-{}-p{:.3}.png", file_safe(class), heat.probability));
        cnn_trainer::report::plot::tile_grid(&file, &title, std::slice::from_ref(&tile), 1)?;
        tiles.push(tile);
        println!(
            "{}: {class} (p = {:.4}{}) -> {}",
            path.display(),
            heat.probability,
            if heat.class == heat.predicted {
                String::new()
            } else {
                format!(", predicted {}", heat.predicted)
            },
            file.display()
        );
    }
    if tiles.len() > 1 {
        let all = out.join("explain.png");
        cnn_trainer::report::plot::tile_grid(&all, &title, &tiles, 5)?;
        println!("all {} -> {}", tiles.len(), all.display());
    }
    Ok(())
}

/// `name` with everything but letters, digits, `-` and `_` replaced by `_`.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
