//! Exporting a model back to PyTorch: its tensors under torchvision's state_dict keys and
//! layouts (Linear weights `[out, in]`, BatchNorm `weight`/`bias`/`running_mean`/`running_var`
//! plus `num_batches_tracked`), as `.safetensors` or as a `torch.save` file (`.pth`), so that
//! `torchvision.models.resnet18(num_classes=…).load_state_dict(…, strict=True)` takes it.
//!
//! The `.pth` file is written as `torch.save` writes one (a zip archive holding a pickled
//! `OrderedDict` of tensors rebuilt by `torch._utils._rebuild_tensor_v2`, and one storage record
//! per tensor) using only what `torch.load(weights_only=True)` allows.

use std::io::Write;
use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use cnn_models::Model;

use crate::error::{Result, TransferError};
use crate::import::Format;

/// The values of an exported tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// 32-bit floats (weights, biases, running statistics).
    F32(Vec<f32>),
    /// 64-bit integers (`num_batches_tracked`).
    I64(Vec<i64>),
}

/// One entry of an exported state_dict.
#[derive(Clone, Debug, PartialEq)]
pub struct Exported {
    /// torchvision's key (`layer1.0.bn1.running_mean`).
    pub key: String,
    /// PyTorch's shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Values,
}

impl Exported {
    fn bytes(&self) -> Vec<u8> {
        match &self.values {
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// `model`'s state_dict as PyTorch holds it, in the model's order; every BatchNorm gets a
/// `num_batches_tracked` of 0 (PyTorch reads it only for `momentum=None`, which torchvision's
/// models do not use).
pub fn state_dict(model: &Model) -> Result<Vec<Exported>> {
    let mut out = Vec::new();
    for tensor in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let key = tensor.name.clone();
        let shape = tensor.shape.to_vec();
        let (_, dtype, _, _, bytes) = tensor
            .into_parts()
            .map_err(|e| TransferError::Weights(format!("{key}: cannot read the tensor: {e}")))?;
        if dtype != burn::tensor::DType::F32 {
            return Err(TransferError::Weights(format!(
                "{key}: {dtype:?} tensors cannot be exported, only f32"
            )));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let stats = key.strip_suffix(".running_var").map(str::to_string);
        out.push(Exported {
            key,
            shape,
            values: Values::F32(values),
        });
        if let Some(prefix) = stats {
            out.push(Exported {
                key: format!("{prefix}.num_batches_tracked"),
                shape: Vec::new(),
                values: Values::I64(vec![0]),
            });
        }
    }
    Ok(out)
}

/// The bytes of `model`'s state_dict in the format `path`'s extension names (`.safetensors`,
/// `.pth`/`.pt`), and the number of tensors.
pub fn export_bytes(model: &Model, path: &Path) -> Result<(Vec<u8>, usize)> {
    let tensors = state_dict(model)?;
    let bytes = match Format::of(path)? {
        Format::Safetensors => safetensors_bytes(&tensors)?,
        Format::Pytorch => pth_bytes(&tensors)?,
        Format::Burnpack => {
            return Err(TransferError::Weights(format!(
                "{}: export writes PyTorch's formats (.safetensors, .pth); a run's model.bpk is already burn's",
                path.display()
            )));
        }
    };
    Ok((bytes, tensors.len()))
}

/// A reference file for checking an export elsewhere: the float32 tensors `input`
/// `[N, C, H, W]` and `logits` `[N, classes]` as safetensors, the layout `cnn weights verify`
/// and `scripts/check_export.py` read.
pub fn io_bytes(input: (&[f32], [usize; 4]), logits: (&[f32], [usize; 2])) -> Result<Vec<u8>> {
    let f32s = |key: &str, v: &[f32], shape: Vec<usize>| Exported {
        key: key.into(),
        shape,
        values: Values::F32(v.to_vec()),
    };
    safetensors_bytes(&[
        f32s("input", input.0, input.1.to_vec()),
        f32s("logits", logits.0, logits.1.to_vec()),
    ])
}

fn safetensors_bytes(tensors: &[Exported]) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let data: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            let dtype = match t.values {
                Values::F32(_) => Dtype::F32,
                Values::I64(_) => Dtype::I64,
            };
            (t.key.clone(), t.shape.clone(), dtype, t.bytes())
        })
        .collect();
    let views = data
        .iter()
        .map(|(key, shape, dtype, bytes)| Ok((key.clone(), TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| TransferError::Weights(format!("safetensors: {e}")))?;
    safetensors::serialize(views, None).map_err(|e| TransferError::Weights(format!("safetensors: {e}")))
}

/// A `torch.save` zip archive: `archive/data.pkl`, one `archive/data/<i>` per tensor,
/// `archive/byteorder` and `archive/version`.
fn pth_bytes(tensors: &[Exported]) -> Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let err = |e: zip::result::ZipError| TransferError::Weights(format!("writing the .pth archive: {e}"));
    let io = |e: std::io::Error| TransferError::Weights(format!("writing the .pth archive: {e}"));
    // Stored, not deflated, and 64-byte aligned like torch.save's records (torch can map them).
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("archive/data.pkl", options).map_err(err)?;
    zip.write_all(&pickle_state_dict(tensors)).map_err(io)?;
    zip.start_file("archive/byteorder", options).map_err(err)?;
    zip.write_all(b"little").map_err(io)?;
    for (i, t) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), options).map_err(err)?;
        zip.write_all(&t.bytes()).map_err(io)?;
    }
    zip.start_file("archive/version", options).map_err(err)?;
    zip.write_all(b"3\n").map_err(io)?;
    Ok(zip.finish().map_err(err)?.into_inner())
}

/// The pickle (protocol 2) of an `OrderedDict` whose values are
/// `torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`, each
/// storage a persistent id `('storage', torch.FloatStorage, '<i>', 'cpu', numel)`.
fn pickle_state_dict(tensors: &[Exported]) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]);
    p.global("collections", "OrderedDict");
    p.op(b")R"); // OrderedDict()
    p.op(b"(");
    for (i, t) in tensors.iter().enumerate() {
        p.string(&t.key);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b"(");
        {
            p.op(b"(");
            p.string("storage");
            match t.values {
                Values::F32(_) => p.global("torch", "FloatStorage"),
                Values::I64(_) => p.global("torch", "LongStorage"),
            }
            p.string(&i.to_string());
            p.string("cpu");
            p.int(t.shape.iter().product::<usize>() as u64);
            p.op(b"tQ"); // the persistent id tuple → the storage
        }
        p.int(0); // storage offset
        p.tuple(&t.shape);
        let strides: Vec<usize> = (0..t.shape.len()).map(|d| t.shape[d + 1..].iter().product()).collect();
        p.tuple(&strides);
        p.op(&[0x89]); // requires_grad = False
        p.global("collections", "OrderedDict");
        p.op(b")R"); // backward hooks
        p.op(b"tR"); // _rebuild_tensor_v2(...)
    }
    p.op(b"u."); // SETITEMS, STOP
    p.0
}

/// Just enough of the pickle protocol for a state_dict.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn string(&mut self, s: &str) {
        self.0.push(b'X'); // BINUNICODE
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: u64) {
        if let Ok(small) = i32::try_from(v) {
            self.0.push(b'J'); // BININT
            self.0.extend_from_slice(&small.to_le_bytes());
        } else {
            self.0.extend_from_slice(&[0x8a, 8]); // LONG1, 8 bytes
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn tuple(&mut self, values: &[usize]) {
        self.0.push(b'(');
        for &v in values {
            self.int(v as u64);
        }
        self.0.push(b't');
    }
}
