//! `cnn weights import` and `cnn weights verify`: torchvision weights into our models.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use cnn_models::ImageClassifier;

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
}

/// Runs a `cnn weights` subcommand.
pub fn run(device: Option<&str>, cmd: WeightsCommand) -> Result<()> {
    let (_, device) = crate::open_device(device)?;
    match cmd {
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
            let (loaded, report, _) = cnn_transfer::load_fitting(&model, &weights, None, &device)?;
            println!("{model} from {}: {report}", weights.display());
            let (input, expected) = read_io(&io)?;
            let logits = loaded.logits(Tensor::<4>::from_data(input, &device));
            let got = logits.into_data();
            if got.shape() != expected.shape() {
                bail!(
                    "the model gives logits of shape {:?} but {} holds {:?}",
                    got.shape(),
                    io.display(),
                    expected.shape()
                );
            }
            let got = got
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let want = expected.try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            println!("max abs diff {diff:e} over {} values", want.len());
        }
    }
    Ok(())
}

/// The float32 `input` and `logits` tensors of a safetensors file.
fn read_io(path: &std::path::Path) -> Result<(TensorData, TensorData)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let get = |key: &str| -> Result<TensorData> {
        let t = st
            .tensor(key)
            .with_context(|| format!("{} has no tensor '{key}'", path.display()))?;
        if t.dtype() != safetensors::Dtype::F32 {
            bail!("{}: tensor '{key}' is {:?}, expected F32", path.display(), t.dtype());
        }
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(TensorData::new(values, t.shape().to_vec()))
    };
    Ok((get("input")?, get("logits")?))
}
