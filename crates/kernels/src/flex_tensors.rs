//! Moving values between flex tensors and the slices our kernels work on.

use burn::backend::DType;
use burn::backend::flex::FlexTensor;
use burn::tensor::{Shape, TensorData};

/// The tensor with its elements in row-major order (copied only when it is a strided view).
pub(crate) fn contiguous(tensor: &FlexTensor) -> FlexTensor {
    tensor.to_contiguous()
}

/// The f32 elements of a tensor made [`contiguous`] beforehand.
pub(crate) fn elements(tensor: &FlexTensor) -> &[f32] {
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("made contiguous just before");
    &tensor.storage::<f32>()[start..end]
}

/// A flex tensor of `shape` holding `values`.
pub(crate) fn flex_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// Whether every tensor is f32 (the only dtype our kernels handle).
pub(crate) fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}
