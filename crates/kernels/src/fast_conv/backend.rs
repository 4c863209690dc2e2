//! The backend extension that routes [`super::conv2d`] to [`super::kernel`] on flex, and its
//! autodiff node (forward and backward both ours, so training uses the fast backward too).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};

use super::kernel::{self, ConvGeometry};
use crate::flex_tensors::{all_f32, contiguous, elements, flex_tensor};

/// A 2-D convolution without bias whose forward and backward passes a backend may replace.
///
/// The default bodies are burn's own convolution and its backward passes; flex overrides them
/// with [`kernel`], and `Autodiff` wires the three together as one differentiable operation.
#[backend_extension(Flex, Autodiff)]
pub trait FastConvBackend: Backend {
    /// `conv2d(x, weight)` with `options` (symmetric padding).
    fn fast_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The gradient of [`fast_conv2d`](Self::fast_conv2d) with respect to `weight` when
    /// `wrt_weight`, else with respect to `x`.
    fn fast_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
        wrt_weight: bool,
    ) -> FloatTensor<Self> {
        if wrt_weight {
            Self::conv2d_weight_backward(x, weight, grad, options)
        } else {
            Self::conv2d_x_backward(x, weight, grad, options)
        }
    }
}

/// The kernel's view of a flex convolution, or `None` where the kernel does not apply
/// (other dtypes, groups, asymmetric padding) and burn's own path runs instead.
fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<ConvGeometry> {
    if !all_f32(&[x, weight]) {
        return None;
    }
    if options.groups != 1 || options.is_asymmetric() {
        return None;
    }
    let (xs, ws) = (x.shape(), weight.shape());
    if xs.num_dims() != 4 || ws.num_dims() != 4 || xs[1] != ws[1] {
        return None;
    }
    let g = ConvGeometry {
        batch: xs[0],
        channels_in: xs[1],
        input: [xs[2], xs[3]],
        channels_out: ws[0],
        kernel: [ws[2], ws[3]],
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
    };
    g.output().map(|_| g)
}

impl FastConvBackend for Flex {
    fn fast_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let Some(g) = geometry(&x, &weight, &options) else {
            return Flex::conv2d(x, weight, None, options);
        };
        let (x, weight) = (contiguous(&x), contiguous(&weight));
        let forward = match crate::precision::current() {
            crate::precision::Precision::Bf16 if kernel::bf16_pays(&g) => kernel::forward_bf16,
            _ => kernel::forward,
        };
        let out = forward(&g, elements(&x), elements(&weight), None);
        let [oh, ow] = g.output().expect("checked in geometry");
        flex_tensor(out, [g.batch, g.channels_out, oh, ow])
    }

    fn fast_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
        wrt_weight: bool,
    ) -> FlexTensor {
        let Some(g) = geometry(&x, &weight, &options) else {
            return if wrt_weight {
                Flex::conv2d_weight_backward(x, weight, grad, options)
            } else {
                Flex::conv2d_x_backward(x, weight, grad, options)
            };
        };
        let (x, weight, grad) = (contiguous(&x), contiguous(&weight), contiguous(&grad));
        let want = [!wrt_weight, wrt_weight, false];
        let backward = match crate::precision::current() {
            crate::precision::Precision::Bf16 => kernel::backward_bf16,
            crate::precision::Precision::F32 => kernel::backward,
        };
        let grads = backward(&g, elements(&x), elements(&weight), elements(&grad), want);
        if wrt_weight {
            let dw = grads.weight.expect("asked for");
            flex_tensor(dw, [g.channels_out, g.channels_in, g.kernel[0], g.kernel[1]])
        } else {
            let dx = grads.input.expect("asked for");
            flex_tensor(dx, [g.batch, g.channels_in, g.input[0], g.input[1]])
        }
    }
}

/// The autodiff node: saves `x` and `weight` (as burn's own convolution does) and asks the inner
/// backend for the two gradients that are needed.
#[derive(Debug)]
struct FastConvNode;

impl<B: FastConvBackend> Backward<B, 2> for FastConvNode {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let dx = B::fast_conv2d_backward(x.clone(), weight.clone(), grad.clone(), options.clone(), false);
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::fast_conv2d_backward(x, weight, grad, options, true));
        }
    }
}

impl<B: FastConvBackend, C: CheckpointStrategy> FastConvBackend for Autodiff<B, C> {
    fn fast_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        match FastConvNode
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = B::fast_conv2d(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fast_conv2d(x.into_primitive(), weight.into_primitive(), options))
            }
        }
    }
}
