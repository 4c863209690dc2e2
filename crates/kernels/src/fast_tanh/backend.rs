//! The backend extension that runs tanh through [`super::kernel`] on flex, and an autodiff node
//! whose backward (`grad · (1 − y²)`, from the saved output) is one pass too.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::Scalar;

use super::kernel;
use crate::flex_tensors::{all_f32, contiguous, elements, flex_tensor};

/// tanh and its backward, which a backend may replace; the defaults are burn's operations.
#[backend_extension(Flex, Autodiff)]
pub trait FastTanhBackend: Backend {
    /// `tanh(x)`.
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_tanh(x)
    }

    /// `grad · (1 − y²)`, the input gradient of `y = tanh(x)`.
    fn fast_tanh_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        burn_backward::<Self>(y, grad)
    }
}

/// `grad · (1 − y²)` as burn's own operations.
fn burn_backward<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let y2 = B::float_mul(y.clone(), y);
    let one_minus = B::float_add_scalar(B::float_neg(y2), Scalar::Float(1.0));
    B::float_mul(grad, one_minus)
}

impl FastTanhBackend for Flex {
    fn fast_tanh(x: FlexTensor) -> FlexTensor {
        if !all_f32(&[&x]) {
            return <Flex as burn::backend::ops::FloatTensorOps<Flex>>::float_tanh(x);
        }
        let shape = x.shape();
        let x = contiguous(&x);
        flex_tensor(kernel::forward(elements(&x)), shape)
    }

    fn fast_tanh_backward(y: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if !all_f32(&[&y, &grad]) || y.shape() != grad.shape() {
            return burn_backward::<Flex>(y, grad);
        }
        let shape = y.shape();
        let (y, grad) = (contiguous(&y), contiguous(&grad));
        flex_tensor(kernel::backward(elements(&y), elements(&grad)), shape)
    }
}

#[derive(Debug)]
struct TanhNode;

impl<B: FastTanhBackend> Backward<B, 1> for TanhNode {
    /// The forward's output.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = &ops.parents[0] {
            grads.register::<B>(parent.id, B::fast_tanh_backward(ops.state, grad));
        }
    }
}

impl<B: FastTanhBackend, C: CheckpointStrategy> FastTanhBackend for Autodiff<B, C> {
    fn fast_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match TanhNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::fast_tanh(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fast_tanh(x.into_primitive())),
        }
    }
}
