//! `cnn weights import | download | verify | export`: torchvision weights into our models, and a
//! run's weights back out to PyTorch.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;

/// The `cnn weights` subcommands.
#[derive(clap::Subcommand)]
pub enum WeightsCommand {
    /// Convert a torchvision .pth/.safetensors file into burn's native format (.bpk), after
    /// checking every key and shape.
    Import {
        /// Model name (see `cnn models`).
        #[arg(long)]
        model: String,
        /// The torchvision weights (.pth, .pt or .safetensors).
        #[arg(long)]
        from: PathBuf,
        /// Output file (burnpack).
        #[arg(long)]
        out: PathBuf,
        /// Classes of the model [default: what the file's head says]; another number gives a
        /// fresh head.
        #[arg(long)]
        num_classes: Option<usize>,
    },
    /// Fetch torchvision's published ImageNet weights of a model (checked against the SHA-256
    /// prefix in the file name) into the weights cache, or import a local copy with --from.
    Download {
        /// Model name (alexnet, vgg11 … vgg19_bn, resnet18 … resnet152, googlenet).
        model: String,
        /// A local copy of the file (same checks), instead of the web.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Data folder whose `weights/` keeps the file [default: ~/.cache/cnn-casestudies].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a model with torchvision weights on the `input` tensor of a .io.safetensors file and
    /// compare with its `logits` tensor.
    Verify {
        /// Model name (see `cnn models`).
        #[arg(long)]
        model: String,
        /// The torchvision weights (.pth, .pt or .safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// A safetensors file with `input` [N, C, H, W] and `logits` [N, classes] (float32).
        #[arg(long)]
        io: PathBuf,
    },
    /// Write a run's weights for PyTorch (torchvision's keys and layouts, as .safetensors or as
    /// a torch.save .pth, so that the matching torchvision model loads them with strict=True),
    /// or its inference graph as ONNX (opset 18, the preprocessing in the metadata).
    Export {
        /// The run folder (written by `cnn train`).
        #[arg(long)]
        run: PathBuf,
        /// Output file: .safetensors, .pth/.pt or .onnx.
        #[arg(long)]
        out: PathBuf,
        /// The format [default: --out's extension].
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// ONNX: images per call [default: 1].
        #[arg(long, conflicts_with = "dynamic_batch")]
        batch: Option<usize>,
        /// ONNX: any number of images per call (the input's first axis is named `batch`).
        #[arg(long)]
        dynamic_batch: bool,
        /// Also write random images and the run's logits for them (safetensors `input`,
        /// `logits`; two images, or --batch's number), for scripts/check_export.py,
        /// scripts/check_onnx.py or `cnn weights verify`.
        #[arg(long)]
        io: Option<PathBuf>,
    },
}

/// Runs a `cnn weights` subcommand.
pub fn run(device: Option<&str>, cmd: WeightsCommand) -> Result<()> {
    if let WeightsCommand::Download { model, from, dir } = cmd {
        return download(&model, from, dir);
    }
    if let WeightsCommand::Export {
        run,
        out,
        format,
        batch,
        dynamic_batch,
        io,
    } = cmd
    {
        return export(&run, &out, format, batch, dynamic_batch, io);
    }
    let (_, device) = crate::open_device(device)?;
    match cmd {
        WeightsCommand::Download { .. } | WeightsCommand::Export { .. } => unreachable!("handled above"),
        WeightsCommand::Import {
            model,
            from,
            out,
            num_classes,
        } => {
            let (loaded, report, head) = cnn_transfer::load_fitting(&model, &from, num_classes, &device)?;
            println!(
                "{model} from {}: {report}{}",
                from.display(),
                if head.aux_heads {
                    " (with GoogLeNet's auxiliary heads)"
                } else {
                    ""
                }
            );
            let bytes = loaded
                .into_record()
                .into_bytes()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("encoding {}", out.display()))?;
            std::fs::write(&out, &bytes[..]).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        WeightsCommand::Verify { model, weights, io } => {
            let parity = cnn_transfer::verify(&model, &weights, &io, &device)?;
            println!("{model} from {}: {}", weights.display(), parity.report);
            println!("max abs diff {:e} over {} values", parity.max_abs_diff, parity.values);
        }
    }
    Ok(())
}

/// The formats of `cnn weights export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// safetensors, torchvision's keys.
    Safetensors,
    /// torch.save archive, torchvision's keys.
    Pth,
    /// ONNX inference graph.
    Onnx,
}

impl ExportFormat {
    /// The format `path`'s extension names, if any: `.onnx`, or what the weights formats'
    /// own table ([`cnn_transfer::Format::of`]) reads as safetensors or a PyTorch file.
    fn of(path: &Path) -> Option<Self> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
            return Some(Self::Onnx);
        }
        match cnn_transfer::Format::of(path).ok()? {
            cnn_transfer::Format::Safetensors => Some(Self::Safetensors),
            cnn_transfer::Format::Pytorch => Some(Self::Pth),
            cnn_transfer::Format::Burnpack => None,
        }
    }
}

/// `cnn weights export`.
fn export(
    run: &Path,
    out: &Path,
    format: Option<ExportFormat>,
    batch: Option<usize>,
    dynamic_batch: bool,
    io: Option<PathBuf>,
) -> Result<()> {
    let by_extension = ExportFormat::of(out);
    let format = match (format, by_extension) {
        (Some(f), Some(e)) if f != e => anyhow::bail!(
            "--format {f:?} does not match --out {} (give it the format's extension)",
            out.display()
        ),
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => anyhow::bail!(
            "cannot tell the format of --out {}: end it in .onnx, .safetensors or .pth, or give --format",
            out.display()
        ),
    };
    if format != ExportFormat::Onnx && (batch.is_some() || dynamic_batch) {
        anyhow::bail!("--batch and --dynamic-batch apply to ONNX exports only");
    }
    let folder = cnn_trainer::RunFolder::open(run)?;
    let context = || format!("exporting {}", run.display());
    let images = match format {
        ExportFormat::Onnx => {
            let (shape, images, per_call) = match batch {
                _ if dynamic_batch => (cnn_transfer::OnnxBatch::Dynamic, 2, "any number of".to_string()),
                n => {
                    let n = n.unwrap_or(1);
                    (cnn_transfer::OnnxBatch::Fixed(n), n, n.to_string())
                }
            };
            let bytes = folder.export_onnx(out, shape).with_context(context)?;
            let p = &folder.preprocess;
            println!(
                "wrote {} ({:.1} MB, ONNX opset {}): {} on {per_call} images of {}x{}x{} per call, {} classes",
                out.display(),
                bytes as f64 / 1e6,
                cnn_transfer::OPSET,
                folder.config.task.model,
                p.channels,
                p.size,
                p.size,
                folder.class_names.len()
            );
            images
        }
        _ => {
            let tensors = folder.export(out).with_context(context)?;
            println!(
                "wrote {} ({tensors} tensors of {} under torchvision's keys, {} classes)",
                out.display(),
                folder.config.task.model,
                folder.class_names.len()
            );
            2
        }
    };
    if let Some(io) = io {
        folder.write_reference_io(&io, images)?;
        println!(
            "wrote {} ({images} images and their logits at {} px)",
            io.display(),
            folder.preprocess.size
        );
    }
    Ok(())
}

/// `cnn weights download`.
fn download(model: &str, from: Option<PathBuf>, dir: Option<PathBuf>) -> Result<()> {
    use cnn_data_augment::download::{Download, DownloadEvent, Origin};
    let weights = cnn_transfer::zoo::Pretrained::of(model)?;
    let download = Download {
        origin: from.map_or(Origin::Web, Origin::Local),
        ..dir.map_or_else(cnn_transfer::zoo::Pretrained::cache, Download::new)
    };
    let mut last_tenth = 0u64;
    let fetched = weights.fetch(&download, &mut |e| match e {
        DownloadEvent::Start { file, source, .. } => eprintln!("  {file} from {source}"),
        DownloadEvent::Bytes {
            done, total: Some(t), ..
        } if *t > 0 && 10 * done / t > last_tenth => {
            last_tenth = 10 * done / t;
            eprintln!(
                "  {:>3}%  {:.1} of {:.1} MB",
                100 * done / t,
                *done as f64 / 1e6,
                *t as f64 / 1e6
            );
        }
        DownloadEvent::Failed { source, reason, .. } => eprintln!("  warning: {source}: {reason}"),
        _ => {}
    })?;
    println!("{}: {} ({})", fetched.path.display(), fetched.verified, fetched.source);
    println!(
        "use it with: cnn train --model {} --weights {}",
        weights.model,
        fetched.path.display()
    );
    Ok(())
}
