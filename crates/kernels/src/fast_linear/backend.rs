//! The backend extension that runs `x · W` through [`super::kernel`] on flex, and its autodiff
//! node (both gradients ours too).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};

use super::kernel;
use crate::flex_tensors::{all_f32, contiguous, elements, flex_tensor};

/// The product of a fully connected layer, `x [rows, inputs] · W [inputs, outputs]`, and its
/// two gradients, which a backend may replace; the defaults are burn's matrix products.
#[backend_extension(Flex, Autodiff)]
pub trait FastLinearBackend: Backend {
    /// `x · weight`.
    fn fast_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, weight)
    }

    /// The gradient of [`fast_linear`](Self::fast_linear) with respect to `weight` (`xᵀ · dY`)
    /// when `wrt_weight`, else with respect to `x` (`dY · Wᵀ`).
    fn fast_linear_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        wrt_weight: bool,
    ) -> FloatTensor<Self> {
        burn_backward::<Self>(x, weight, grad, wrt_weight)
    }
}

/// [`FastLinearBackend::fast_linear_backward`] as burn's own matrix products.
fn burn_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    wrt_weight: bool,
) -> FloatTensor<B> {
    if wrt_weight {
        B::float_matmul(B::float_swap_dims(x, 0, 1), grad)
    } else {
        B::float_matmul(grad, B::float_swap_dims(weight, 0, 1))
    }
}

/// `[rows, inputs, outputs]` where the kernel applies to these operands, else `None`.
fn sizes(x: &FlexTensor, weight: &FlexTensor) -> Option<[usize; 3]> {
    let (xs, ws) = (x.shape(), weight.shape());
    let sizes = [xs[0], ws[0], ws[1]];
    let fits = all_f32(&[x, weight]) && xs.num_dims() == 2 && ws.num_dims() == 2 && xs[1] == ws[0];
    (fits && kernel::applies(sizes)).then_some(sizes)
}

impl FastLinearBackend for Flex {
    fn fast_linear(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let Some(sizes) = sizes(&x, &weight) else {
            return <Flex as FloatTensorOps<Flex>>::float_matmul(x, weight);
        };
        let (x, weight) = (contiguous(&x), contiguous(&weight));
        crate::Kernel::FastLinear.record(false);
        flex_tensor(
            kernel::forward(sizes, elements(&x), elements(&weight)),
            [sizes[0], sizes[2]],
        )
    }

    fn fast_linear_backward(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, wrt_weight: bool) -> FlexTensor {
        let Some(sizes @ [rows, inputs, outputs]) = sizes(&x, &weight) else {
            return burn_backward::<Flex>(x, weight, grad, wrt_weight);
        };
        crate::Kernel::FastLinear.record(true);
        let grad = contiguous(&grad);
        if wrt_weight {
            let x = contiguous(&x);
            flex_tensor(
                kernel::weight_gradient(sizes, elements(&x), elements(&grad)),
                [inputs, outputs],
            )
        } else {
            let weight = contiguous(&weight);
            flex_tensor(
                kernel::input_gradient(sizes, elements(&weight), elements(&grad)),
                [rows, inputs],
            )
        }
    }
}

/// The autodiff node: saves `x` and the weight and asks the inner backend for the gradients
/// that are needed.
#[derive(Debug)]
struct FastLinearNode;

impl<B: FastLinearBackend> Backward<B, 2> for FastLinearNode {
    type State = (NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let dx = B::fast_linear_backward(x.clone(), weight.clone(), grad.clone(), false);
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::fast_linear_backward(x, weight, grad, true));
        }
    }
}

impl<B: FastLinearBackend, C: CheckpointStrategy> FastLinearBackend for Autodiff<B, C> {
    fn fast_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        match FastLinearNode
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = B::fast_linear(x.into_primitive(), weight.into_primitive());
                prep.finish((x_state, weight_state), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fast_linear(x.into_primitive(), weight.into_primitive())),
        }
    }
}
