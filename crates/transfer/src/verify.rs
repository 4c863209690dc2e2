//! Checking imported weights against reference logits (`cnn weights verify`): a model built to
//! fit a weights file, run on the `input` of a safetensors file, compared with its `logits`
//! (what `scripts/make_torchvision_fixtures.py` writes from PyTorch in eval mode).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use cnn_models::ImageClassifier;

use crate::error::{Result, TransferError};
use crate::import::LoadReport;
use crate::inspect::load_fitting;

/// The outcome of [`verify`].
#[derive(Clone, Debug)]
pub struct Parity {
    /// What the import applied, missed and left unused.
    pub report: LoadReport,
    /// The largest absolute difference between our logits and the reference's.
    pub max_abs_diff: f32,
    /// How many logits were compared.
    pub values: usize,
}

/// Loads `weights` into `model_name` (the head fitted to the file) on `device`, runs it in
/// inference mode on `io`'s `input` and compares with `io`'s `logits`.
pub fn verify(model_name: &str, weights: &Path, io: &Path, device: &Device) -> Result<Parity> {
    let (model, report, _) = load_fitting(model_name, weights, None, device)?;
    let (input, expected) = read_io(io)?;
    let got = model.logits(Tensor::<4>::from_data(input, device)).into_data();
    if got.shape() != expected.shape() {
        return Err(TransferError::Weights(format!(
            "the model gives logits of shape {:?} but {} holds {:?}",
            got.shape(),
            io.display(),
            expected.shape()
        )));
    }
    let as_vec = |d: TensorData| {
        d.convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| TransferError::Weights(format!("{}: {e:?}", io.display())))
    };
    let (got, want) = (as_vec(got)?, as_vec(expected)?);
    let max_abs_diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    Ok(Parity {
        report,
        max_abs_diff,
        values: want.len(),
    })
}

/// The float32 `input` and `logits` tensors of a safetensors file.
fn read_io(path: &Path) -> Result<(TensorData, TensorData)> {
    let bad = |what: String| TransferError::Weights(format!("{}: {what}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let get = |key: &str| -> Result<TensorData> {
        let t = st.tensor(key).map_err(|_| bad(format!("no tensor '{key}'")))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!("tensor '{key}' is {:?}, expected F32", t.dtype())));
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
