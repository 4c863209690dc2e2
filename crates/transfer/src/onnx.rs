//! ONNX export of a model's inference graph, for serving it outside Rust and outside PyTorch.
//!
//! burn-onnx's exporter runs the forward pass once on its capture device, records every tensor
//! operation and lowers the graph to ONNX (opset [`OPSET`]) with the weights embedded. A fixed
//! batch captures once; a dynamic batch captures at two batch sizes and marks the first axis
//! symbolic. What the model expects of its input (size, channels, normalisation, class names)
//! goes into the file's `metadata_props`, which ONNX Runtime reads back with
//! `InferenceSession.get_modelmeta().custom_metadata_map`.
//!
//! The whole zoo exports: where a model used an operation the exporter cannot lower (adaptive
//! pooling to a size other than 1×1, the channel transpose of local response normalisation, a
//! maximum over a dimension), the model computes it with operations it can. An operation that
//! still has no ONNX form is [`TransferError::Onnx`] naming it, never a file that fails later.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};

use crate::error::{Result, TransferError};

/// The ONNX operator set of exported files.
pub const OPSET: i64 = 18;

/// The batch axis of an exported model's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnnxBatch {
    /// Exactly this many images per call.
    Fixed(usize),
    /// Any number of images (the axis is named `batch`).
    Dynamic,
}

/// Exports `forward` of `module` for inputs `[batch, channels, height, width]` (`input` is the
/// last three) as an ONNX model with `metadata` in its `metadata_props`; returns the file's bytes.
pub fn onnx_bytes<M: Module>(
    module: &M,
    input: [usize; 3],
    batch: OnnxBatch,
    metadata: &[(String, String)],
    forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
) -> Result<Vec<u8>> {
    cnn_models::portable::portable(|| capture(module, input, batch, forward)).map(|mut bytes| {
        append_metadata(&mut bytes, metadata);
        bytes
    })
}

/// The exporter's run, inside [`cnn_models::portable::portable`].
fn capture<M: Module>(
    module: &M,
    input: [usize; 3],
    batch: OnnxBatch,
    forward: impl Fn(&M, Tensor<4>) -> Tensor<2>,
) -> Result<Vec<u8>> {
    // The exporter moves its clone of the module to the capture device, and a clone shares
    // batch norm's running statistics with the original: `valid` gives a copy of its own.
    let module = &module.valid();
    let device = Device::flex();
    let sample = |n: usize| Tensor::<4>::zeros([n, input[0], input[1], input[2]], &device);
    let exporter = OnnxExporter::new();
    let model = match batch {
        OnnxBatch::Fixed(0) => {
            return Err(TransferError::InvalidSetting {
                setting: "batch",
                reason: "must be at least 1".into(),
            });
        }
        OnnxBatch::Fixed(n) => exporter.export(module, sample(n), &forward),
        OnnxBatch::Dynamic => {
            let axes = InputSpec::new([
                AxisSpec::dynamic("batch"),
                AxisSpec::Static,
                AxisSpec::Static,
                AxisSpec::Static,
            ]);
            // The exporter tells the batch axis apart by its length in each capture: lengths no
            // other axis of the zoo's graphs has keep that unambiguous.
            exporter.export_dynamic(module, sample(17), sample(19), &[axes], &forward)
        }
    }
    .map_err(onnx_error)?;
    Ok(model.into_bytes())
}

/// [`onnx_bytes`] of a zoo model's logits, without what only training uses (GoogLeNet's
/// auxiliary classifiers, whose weights would otherwise be embedded unused).
pub fn model_onnx(
    model: &cnn_models::Model,
    input: [usize; 3],
    batch: OnnxBatch,
    metadata: &[(String, String)],
) -> Result<Vec<u8>> {
    let model = model.clone().for_inference();
    onnx_bytes(&model, input, batch, metadata, |m, x| {
        cnn_models::ImageClassifier::logits(m, x)
    })
}

/// The exporter's error in one line: an unsupported operation by its name, not its whole
/// recorded form (which lists every tensor it touches).
fn onnx_error(error: ExportError) -> TransferError {
    TransferError::Onnx(match error {
        ExportError::UnsupportedOperation { operation, kind } => format!(
            "the forward pass uses {} (operation {operation}), which burn-onnx {} cannot write as ONNX",
            operation_name(&kind),
            BURN_ONNX_VERSION
        ),
        other => other.to_string(),
    })
}

/// The burn-onnx release the exporter comes from (for error messages).
const BURN_ONNX_VERSION: &str = "0.22";

/// The innermost operation name of a recorded operation's debug form:
/// `NumericFloat(F32, MaxDim(ReduceDimOpIr { … }))` → `MaxDim`.
fn operation_name(kind: &str) -> String {
    let head = kind.split('{').next().unwrap_or(kind);
    head.split(['(', ',', ' ', ')'])
        .filter(|word| word.chars().next().is_some_and(char::is_uppercase))
        .filter(|word| !word.ends_with("Ir") && !matches!(*word, "F16" | "F32" | "F64" | "BF16"))
        .last()
        .unwrap_or(head)
        .to_string()
}

/// Appends `entries` to a serialised `ModelProto` as its `metadata_props` (field 14, repeated
/// `StringStringEntryProto { key = 1, value = 2 }`). Protocol buffers read fields in any order
/// and gather a repeated field's entries wherever they appear, so appending is a valid edit.
pub fn append_metadata(model: &mut Vec<u8>, entries: &[(String, String)]) {
    for (key, value) in entries {
        let mut entry = Vec::new();
        put_bytes_field(&mut entry, 1, key.as_bytes());
        put_bytes_field(&mut entry, 2, value.as_bytes());
        put_bytes_field(model, 14, &entry);
    }
}

/// A length-delimited field (wire type 2): tag, length, bytes.
fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A protocol-buffer varint: seven bits per byte, low bits first.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_protobufs_encoding() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut field = Vec::new();
        put_bytes_field(&mut field, 14, b"ab");
        assert_eq!(field, [0x72, 2, b'a', b'b']);
    }

    #[test]
    fn operation_names_are_read_from_the_recorded_form() {
        assert_eq!(
            operation_name("NumericFloat(F32, MaxDim(ReduceDimOpIr { input: TensorIr { id: 3 } }))"),
            "MaxDim"
        );
        assert_eq!(
            operation_name("BaseFloat(SwapDims(SwapDimsOpIr { dim1: 1 }))"),
            "SwapDims"
        );
        assert_eq!(
            operation_name("Float(F32, PowfScalar(ScalarOpIr { lhs: 1 }))"),
            "PowfScalar"
        );
    }
}
