//! Loading torchvision weights (`.pth`, `.safetensors`) and our own burnpack files into the
//! registry's models through `burn::store`.
//!
//! Our modules carry torchvision's state_dict names (`conv1`, `layer1.0.downsample.1`,
//! `features.3`, `classifier.6`, `inception3a.branch2.1.conv`, `aux1.fc2`), so the only
//! transformations are the ones burn's PyTorch adapter makes (BatchNorm `weight`/`bias` →
//! `gamma`/`beta`, Linear weights transposed); the variant names of the `Model` enum are
//! skipped in paths. BatchNorm's `num_batches_tracked` has no counterpart and is ignored.

use std::path::Path;

use burn::store::{ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, PytorchStore, SafetensorsStore};
use cnn_models::Model;

use crate::error::{Result, TransferError};

/// Which keys may be absent from the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Partial {
    /// Every tensor of the model must be in the file.
    #[default]
    None,
    /// Keys starting with one of these prefixes may be missing (e.g. `fc.` for a new head).
    Prefixes(Vec<String>),
    /// Anything may be missing (report only).
    Any,
}

/// What a load did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadReport {
    /// Model tensors set from the file.
    pub applied: Vec<String>,
    /// Model tensors the file did not have (allowed by [`Partial`]); they keep their values.
    pub missing: Vec<String>,
    /// File tensors the model has no place for (BatchNorm's `num_batches_tracked` left out).
    pub unused: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tensors applied, {} missing, {} unused",
            self.applied.len(),
            self.missing.len(),
            self.unused.len()
        )?;
        for (what, keys) in [("missing", &self.missing), ("unused", &self.unused)] {
            if !keys.is_empty() {
                let shown: Vec<&str> = keys.iter().take(6).map(String::as_str).collect();
                write!(
                    f,
                    "; {what}: {}{}",
                    shown.join(", "),
                    if keys.len() > 6 { ", …" } else { "" }
                )?;
            }
        }
        Ok(())
    }
}

/// The weight file formats we read, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PyTorch `torch.save` files (`.pth`, `.pt`, `.bin`): zip or legacy pickle.
    Pytorch,
    /// `.safetensors` with torchvision's key names and layouts.
    Safetensors,
    /// burn's burnpack (`.bpk`): our own runs' `model.bpk` and `cnn weights import` output.
    Burnpack,
}

impl Format {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "pth" | "pt" | "bin" | "ckpt" => Ok(Format::Pytorch),
            "safetensors" => Ok(Format::Safetensors),
            "bpk" => Ok(Format::Burnpack),
            _ => Err(TransferError::Weights(format!(
                "{}: unknown weights format '.{ext}' (expected .pth/.pt, .safetensors or .bpk)",
                path.display()
            ))),
        }
    }
}

/// Loads torchvision-layout weights from `path` into `model`.
///
/// A tensor whose shape differs from the model's is an error naming the key and both shapes;
/// so is a model tensor missing from the file, unless `partial` allows it.
pub fn load_torchvision(model: Model, path: &Path, partial: &Partial) -> Result<(Model, LoadReport)> {
    load_torchvision_remapped(model, path, partial, &[])
}

/// [`load_torchvision`] with key renaming first: each `(regex, replacement)` applies to the
/// file's keys (e.g. `(r"^(\d+)\.", "features.$1.")` for a file holding AlexNet's `features`
/// alone).
///
/// Sequential indices are kept as they are in the file (`features.3`, `branch4.1`): our modules
/// store their layers at torchvision's indices, so burn's contiguous re-numbering is off.
pub fn load_torchvision_remapped(
    mut model: Model,
    path: &Path,
    partial: &Partial,
    remap: &[(&str, &str)],
) -> Result<(Model, LoadReport)> {
    if !path.is_file() {
        return Err(TransferError::Weights(format!("{}: no such file", path.display())));
    }
    let remapper = |pairs: &[(&str, &str)]| -> Result<KeyRemapper> {
        pairs.iter().try_fold(KeyRemapper::new(), |r, (from, to)| {
            r.add_pattern(from, *to)
                .map_err(|e| TransferError::Weights(format!("key remapping '{from}': {e}")))
        })
    };
    // An empty remapper renames nothing: the stores' own default.
    let remapper = remapper(remap)?;
    let result = match Format::of(path)? {
        Format::Pytorch => {
            let mut store = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .skip_enum_variants(true)
                .allow_partial(true)
                .validate(false)
                .remap(remapper.clone());
            model.load_from(&mut store).map_err(|e| read_error(path, e))?
        }
        Format::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(burn::store::PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .skip_enum_variants(true)
                .allow_partial(true)
                .validate(false)
                .remap(remapper.clone());
            model.load_from(&mut store).map_err(|e| read_error(path, e))?
        }
        Format::Burnpack => {
            // Our own format: our names (with the model's variant first), burn's layouts.
            let mut store = burn::store::BurnpackStore::from_file(path)
                .allow_partial(true)
                .validate(false)
                .remap(remapper.clone());
            model.load_from(&mut store).map_err(|e| read_error(path, e))?
        }
    };
    let report = check(result, path, partial)?;
    tracing::info!(path = %path.display(), %report, "weights imported");
    Ok((model, report))
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> TransferError {
    TransferError::Weights(format!("{}: cannot read the weights: {e}", path.display()))
}

/// Turns burn-store's result into our report, or into the first error that matters.
fn check(result: ApplyResult, path: &Path, partial: &Partial) -> Result<LoadReport> {
    if let Some(e) = result.errors.first() {
        let msg = match e {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => format!(
                "tensor '{}' has shape {found} in the file but {expected} in the model{}",
                bare(key),
                if found.num_dims() == 2 {
                    " (burn's layout: Linear weights transposed)"
                } else {
                    ""
                }
            ),
            other => other.to_string(),
        };
        // The first few other mismatches too: together they tell another architecture's file
        // from one odd tensor.
        const LISTED: usize = 4;
        let others: Vec<String> = result.errors[1..]
            .iter()
            .take(LISTED)
            .map(|e| match e {
                ApplyError::ShapeMismatch {
                    path: key,
                    expected,
                    found,
                } => format!("'{}' {found} vs {expected}", bare(key)),
                other => other.to_string(),
            })
            .collect();
        let more = match result.errors.len() - 1 {
            0 => String::new(),
            n if n <= LISTED => format!("; also {}", others.join(", ")),
            n => format!("; also {} and {} more", others.join(", "), n - LISTED),
        };
        let absent: Vec<&str> = result.missing.iter().map(|(key, _)| bare(key)).collect();
        let absent = match absent.as_slice() {
            [] => String::new(),
            [one] => format!("; the file has no '{one}'"),
            [a, b, ..] => format!(
                "; {} of the model's tensors are not in the file, e.g. '{a}', '{b}'",
                absent.len()
            ),
        };
        let hint = if result.errors.len() > 1 || !absent.is_empty() {
            " (is it the weights of another architecture?)"
        } else {
            ""
        };
        return Err(TransferError::Weights(format!(
            "{}: {msg}{more}{absent}{hint}",
            path.display()
        )));
    }
    let missing: Vec<String> = result.missing.iter().map(|(key, _)| bare(key).to_string()).collect();
    let not_allowed: Vec<&String> = missing
        .iter()
        .filter(|k| match partial {
            Partial::None => true,
            Partial::Prefixes(prefixes) => !prefixes.iter().any(|p| k.starts_with(p.as_str())),
            Partial::Any => false,
        })
        .collect();
    if let Some(first) = not_allowed.first() {
        return Err(TransferError::Weights(format!(
            "{}: the file has no tensor '{first}' ({} of the model's tensors are missing{}); is it the right model?",
            path.display(),
            not_allowed.len(),
            if not_allowed.len() > 1 {
                format!(", e.g. also '{}'", not_allowed[1])
            } else {
                String::new()
            }
        )));
    }
    Ok(LoadReport {
        applied: result.applied.iter().map(|k| bare(k).to_string()).collect(),
        missing,
        unused: result
            .unused
            .iter()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .map(|k| bare(k).to_string())
            .collect(),
    })
}

/// The names of the `Model` enum's variants, which burnpack paths start with.
pub(crate) const VARIANTS: [&str; 7] = ["LeNet5", "AlexNet", "Vgg", "ResNet", "GoogLeNet", "Inception", "Conv1x1"];

/// A key without the model variant burnpack paths start with (`LeNet5.fc3.weight` → `fc3.weight`).
fn bare(key: &str) -> &str {
    match key.split_once('.') {
        Some((first, rest)) if VARIANTS.contains(&first) => rest,
        _ => key,
    }
}
