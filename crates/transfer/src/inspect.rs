//! What a weights file says about the model it was saved from: its tensors' names and shapes,
//! the number of classes of its head, and whether GoogLeNet's auxiliary heads are in it. Used
//! to build a model that fits the file before loading it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use burn::tensor::Device;
use cnn_models::{BuildOptions, GoogLeNetConfig, Model};

use crate::error::{Result, TransferError};
use crate::import::{Format, LoadReport, Partial, load_torchvision, load_torchvision_remapped};

/// Prefix given to a file's head keys that are not loaded.
const SET_ASIDE: &str = "__file_head__.";

/// `name → shape` of every tensor in a `.pth` or `.safetensors` file (torchvision's layout).
pub fn tensor_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
    let bad =
        |e: &dyn std::fmt::Display| TransferError::Weights(format!("{}: cannot read the weights: {e}", path.display()));
    match Format::of(path)? {
        Format::Pytorch => {
            let reader = burn::store::pytorch_reader::PytorchReader::new(path).map_err(|e| bad(&e))?;
            Ok(reader
                .tensors()
                .iter()
                .map(|(k, t)| (k.clone(), t.shape().to_vec()))
                .collect())
        }
        Format::Burnpack => Err(TransferError::Weights(format!(
            "{}: listing the tensors of a .bpk file is not supported; pass the number of classes",
            path.display()
        ))),
        Format::Safetensors => {
            // The format: 8-byte little-endian header length, then a JSON header.
            let mut file = std::fs::File::open(path).map_err(|e| bad(&e))?;
            let mut len = [0u8; 8];
            file.read_exact(&mut len).map_err(|e| bad(&e))?;
            let len = u64::from_le_bytes(len);
            if len > 100_000_000 {
                return Err(bad(&format!("header length {len} is not plausible")));
            }
            let mut header = vec![0u8; len as usize];
            file.read_exact(&mut header).map_err(|e| bad(&e))?;
            let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| bad(&e))?;
            let entries = json
                .as_object()
                .ok_or_else(|| bad(&"the header is not a JSON object"))?;
            Ok(entries
                .iter()
                .filter(|(k, _)| *k != "__metadata__")
                .map(|(k, v)| {
                    let shape = v["shape"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|d| d.as_u64()).map(|d| d as usize).collect())
                        .unwrap_or_default();
                    (k.clone(), shape)
                })
                .collect())
        }
    }
}

/// What a file says about its model's head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadInfo {
    /// Classes of the final classifier (`fc` or `classifier.6`), if the file has one.
    pub num_classes: Option<usize>,
    /// Whether GoogLeNet's auxiliary classifiers (`aux1.*`, `aux2.*`) are in the file.
    pub aux_heads: bool,
}

/// Reads the head out of `shapes` (from [`tensor_shapes`]).
pub fn head_info(shapes: &BTreeMap<String, Vec<usize>>) -> HeadInfo {
    let num_classes = ["fc.bias", "classifier.6.bias", "classifier.bias", "fc3.bias"]
        .iter()
        .find_map(|k| shapes.get(*k).and_then(|s| s.first().copied()));
    HeadInfo {
        num_classes,
        aux_heads: shapes.keys().any(|k| k.starts_with("aux1.") || k.starts_with("aux2.")),
    }
}

/// Builds `model_name` to fit the weights in `path` (its number of classes, unless
/// `num_classes` overrides it, and GoogLeNet with or without auxiliary heads) and loads them.
///
/// With `num_classes` different from the file's, the head is left out of the load and keeps its
/// fresh initialisation: a new head for a new task.
pub fn load_fitting(
    model_name: &str,
    path: &Path,
    num_classes: Option<usize>,
    device: &Device,
) -> Result<(Model, LoadReport, HeadInfo)> {
    load_fitting_with(model_name, path, num_classes, false, device)
}

/// [`load_fitting`] that always leaves the file's head out (a new softmax for a new task, even
/// with the same number of classes): the course's "drop their softmax, add yours".
pub fn load_with_new_head(
    model_name: &str,
    path: &Path,
    num_classes: usize,
    device: &Device,
) -> Result<(Model, LoadReport, HeadInfo)> {
    load_fitting_with(model_name, path, Some(num_classes), true, device)
}

fn load_fitting_with(
    model_name: &str,
    path: &Path,
    num_classes: Option<usize>,
    new_head: bool,
    device: &Device,
) -> Result<(Model, LoadReport, HeadInfo)> {
    let info = cnn_models::registry::lookup(model_name)?;
    if Format::of(path)? == Format::Burnpack {
        return load_fitting_burnpack(info.name, path, num_classes, new_head, device);
    }
    let head = head_info(&tensor_shapes(path)?);
    let file_classes = head.num_classes;
    let classes = num_classes.or(file_classes).unwrap_or(1000);
    let model = if info.name == "googlenet" {
        Model::GoogLeNet(
            GoogLeNetConfig::new()
                .with_num_classes(classes)
                .with_aux_logits(head.aux_heads)
                .init(device),
        )
    } else {
        cnn_models::build(info.name, BuildOptions::classes(classes), device)?
    };
    let partial = match file_classes {
        Some(n) if n == classes && !new_head => Partial::None,
        _ => Partial::Prefixes(head_prefixes(info.name)),
    };
    let (model, report) = if matches!(partial, Partial::None) {
        load_torchvision(model, path, &partial)?
    } else {
        // Load everything but the head: the file's head is renamed out of the way (a head of
        // another size would be a shape error) and dropped from the report.
        let patterns: Vec<(String, String)> = head_prefixes(info.name)
            .iter()
            .map(|p| (format!("^{}", regex_escape(p)), format!("{SET_ASIDE}{p}")))
            .collect();
        let remap: Vec<(&str, &str)> = patterns.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let (model, mut report) = load_torchvision_remapped(model, path, &partial, &remap)?;
        report.unused.retain(|k| !k.starts_with(SET_ASIDE));
        (model, report)
    };
    Ok((model, report, head))
}

/// [`load_fitting`] for our own burnpack files, which do not say their shapes up front: the
/// model is built with `num_classes` classes (needed), and if the file's head does not fit, the
/// head is left out of the load.
fn load_fitting_burnpack(
    name: &str,
    path: &Path,
    num_classes: Option<usize>,
    new_head: bool,
    device: &Device,
) -> Result<(Model, LoadReport, HeadInfo)> {
    let classes = num_classes.ok_or_else(|| {
        TransferError::Weights(format!(
            "{}: give the number of classes (`num_classes`) to load a .bpk file",
            path.display()
        ))
    })?;
    let build = || cnn_models::build(name, BuildOptions::classes(classes), device);
    let head = HeadInfo {
        num_classes: None,
        aux_heads: false,
    };
    if !new_head {
        match load_torchvision(build()?, path, &Partial::None) {
            Ok((model, report)) => {
                let head = HeadInfo {
                    num_classes: Some(classes),
                    ..head
                };
                return Ok((model, report, head));
            }
            // Only a head that does not fit is worked around; anything else is the answer.
            Err(e)
                if !head_prefixes(name)
                    .iter()
                    .any(|p| e.to_string().contains(&format!("'{p}"))) =>
            {
                return Err(e);
            }
            Err(_) => {}
        }
    }
    let variant = crate::freeze::variant_name(&build()?);
    let patterns: Vec<(String, String)> = head_prefixes(name)
        .iter()
        .map(|p| {
            (
                format!("^({variant}\\.)?{}", regex_escape(p)),
                format!("{SET_ASIDE}{p}"),
            )
        })
        .collect();
    let remap: Vec<(&str, &str)> = patterns.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (model, mut report) =
        load_torchvision_remapped(build()?, path, &Partial::Prefixes(head_prefixes(name)), &remap)?;
    report.unused.retain(|k| !k.starts_with(SET_ASIDE));
    Ok((model, report, head))
}

/// The final classifier's key prefixes of a family (torchvision names).
pub fn head_prefixes(model_name: &str) -> Vec<String> {
    let prefixes: &[&str] = if model_name.starts_with("alexnet") || model_name.starts_with("vgg") {
        &["classifier.6."]
    } else if model_name.starts_with("lenet5") {
        &["fc3."]
    } else {
        &["fc."]
    };
    prefixes.iter().map(|s| s.to_string()).collect()
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_info_reads_classes_and_aux_heads() {
        let shapes: BTreeMap<String, Vec<usize>> = [
            ("fc.weight".to_string(), vec![7, 512]),
            ("fc.bias".to_string(), vec![7]),
            ("aux1.fc2.bias".to_string(), vec![7]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            head_info(&shapes),
            HeadInfo {
                num_classes: Some(7),
                aux_heads: true
            }
        );
        let vgg: BTreeMap<String, Vec<usize>> = [("classifier.6.bias".to_string(), vec![4])].into_iter().collect();
        assert_eq!(
            head_info(&vgg),
            HeadInfo {
                num_classes: Some(4),
                aux_heads: false
            }
        );
        assert_eq!(regex_escape("classifier.6."), "classifier\\.6\\.");
    }
}
