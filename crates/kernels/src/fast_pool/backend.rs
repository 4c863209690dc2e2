//! The backend extension that runs 2-D max pooling through [`super::kernel`] on flex, and an
//! autodiff node whose backward is the backend's own (`max_pool2d_with_indices_backward`, a
//! scatter of the gradient by the indices our forward recorded).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{IntDType, TensorData};

use super::kernel::{self, PoolGeometry};
use crate::flex_tensors::{all_f32, contiguous, elements, flex_tensor};

/// Window size, stride and padding of a pooling (dilation 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit −∞ padding on each side.
    pub padding: [usize; 2],
    /// Round the output size up.
    pub ceil_mode: bool,
}

/// 2-D max pooling a backend may replace; the defaults are burn's own operations.
#[backend_extension(Flex, Autodiff)]
pub trait FastPoolBackend: Backend {
    /// `max_pool2d(x)`.
    fn fast_max_pool2d(x: FloatTensor<Self>, o: PoolOptions) -> FloatTensor<Self> {
        Self::max_pool2d(x, o.kernel, o.stride, o.padding, [1, 1], o.ceil_mode)
    }

    /// `(max_pool2d(x), indices)`, the indices as the backward pass wants them.
    fn fast_max_pool2d_with_indices(x: FloatTensor<Self>, o: PoolOptions) -> (FloatTensor<Self>, IntTensor<Self>) {
        let r = Self::max_pool2d_with_indices(x, o.kernel, o.stride, o.padding, [1, 1], o.ceil_mode, IntDType::I64);
        (r.output, r.indices)
    }
}

/// Average pooling and its backward (unpadded windows, `count_include_pad`), which a backend
/// may replace; the defaults are burn's own operations.
#[backend_extension(Flex, Autodiff)]
pub trait FastAvgPoolBackend: Backend {
    /// `avg_pool2d(x)`.
    fn fast_avg_pool2d(x: FloatTensor<Self>, o: PoolOptions) -> FloatTensor<Self> {
        Self::avg_pool2d(x, o.kernel, o.stride, o.padding, true, o.ceil_mode)
    }

    /// The input gradient of [`Self::fast_avg_pool2d`].
    fn fast_avg_pool2d_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, o: PoolOptions) -> FloatTensor<Self> {
        Self::avg_pool2d_backward(x, grad, o.kernel, o.stride, o.padding, true, o.ceil_mode)
    }
}

impl FastAvgPoolBackend for Flex {
    fn fast_avg_pool2d(x: FlexTensor, o: PoolOptions) -> FlexTensor {
        match geometry(&x, o).filter(|g| g.padding == [0, 0] && !g.ceil_mode) {
            Some(g) => {
                let [oh, ow] = g.output().expect("checked by `geometry`");
                let shape = x.shape();
                let x = contiguous(&x);
                flex_tensor(kernel::average(&g, elements(&x)), [shape[0], shape[1], oh, ow])
            }
            None => Self::avg_pool2d(x, o.kernel, o.stride, o.padding, true, o.ceil_mode),
        }
    }

    fn fast_avg_pool2d_backward(x: FlexTensor, grad: FlexTensor, o: PoolOptions) -> FlexTensor {
        let fits = |g: &PoolGeometry| g.padding == [0, 0] && !g.ceil_mode && all_f32(&[&grad]);
        match geometry(&x, o).filter(fits) {
            Some(g) => {
                let grad = contiguous(&grad);
                flex_tensor(kernel::average_backward(&g, elements(&grad)), x.shape())
            }
            None => Self::avg_pool2d_backward(x, grad, o.kernel, o.stride, o.padding, true, o.ceil_mode),
        }
    }
}

#[derive(Debug)]
struct AvgPoolNode;

impl<B: FastAvgPoolBackend> Backward<B, 1> for AvgPoolNode {
    type State = (NodeId, PoolOptions);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let Some(parent) = &ops.parents[0] else { return };
        let (x, o) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        grads.register::<B>(parent.id, B::fast_avg_pool2d_backward(x, grad, o));
    }
}

impl<B: FastAvgPoolBackend, C: CheckpointStrategy> FastAvgPoolBackend for Autodiff<B, C> {
    fn fast_avg_pool2d(x: FloatTensor<Self>, o: PoolOptions) -> FloatTensor<Self> {
        match AvgPoolNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                prep.finish((x_id, o), B::fast_avg_pool2d(x.into_primitive(), o))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fast_avg_pool2d(x.into_primitive(), o)),
        }
    }
}

/// The kernel's geometry for `x`, or `None` where burn's own operation runs instead.
fn geometry(x: &FlexTensor, o: PoolOptions) -> Option<PoolGeometry> {
    let shape = x.shape();
    if shape.num_dims() != 4 || !all_f32(&[x]) {
        return None;
    }
    let g = PoolGeometry {
        planes: shape[0] * shape[1],
        input: [shape[2], shape[3]],
        kernel: o.kernel,
        stride: o.stride,
        padding: o.padding,
        ceil_mode: o.ceil_mode,
    };
    g.output().map(|_| g)
}

/// The flex forward: values, and indices when asked for.
fn flex_forward(x: FlexTensor, o: PoolOptions, with_indices: bool) -> Option<(FlexTensor, Option<FlexTensor>)> {
    let g = geometry(&x, o)?;
    let shape = x.shape();
    let [oh, ow] = g.output()?;
    let out_shape = [shape[0], shape[1], oh, ow];
    let x = contiguous(&x);
    let (values, indices) = kernel::forward(&g, elements(&x), with_indices);
    let indices = indices.map(|i| FlexTensor::from_data(TensorData::new(i, out_shape)));
    Some((flex_tensor(values, out_shape), indices))
}

impl FastPoolBackend for Flex {
    fn fast_max_pool2d(x: FlexTensor, o: PoolOptions) -> FlexTensor {
        match flex_forward(x.clone(), o, false) {
            Some((values, _)) => values,
            None => Self::max_pool2d(x, o.kernel, o.stride, o.padding, [1, 1], o.ceil_mode),
        }
    }

    fn fast_max_pool2d_with_indices(x: FlexTensor, o: PoolOptions) -> (FlexTensor, FlexTensor) {
        match flex_forward(x.clone(), o, true) {
            Some((values, Some(indices))) => (values, indices),
            _ => {
                let r =
                    Self::max_pool2d_with_indices(x, o.kernel, o.stride, o.padding, [1, 1], o.ceil_mode, IntDType::I64);
                (r.output, r.indices)
            }
        }
    }
}

/// What the backward pass needs: the input (checkpointed, for its shape) and the indices.
#[derive(Debug, Clone)]
struct SavedState<B: Backend> {
    x: NodeId,
    indices: IntTensor<B>,
    options: PoolOptions,
}

#[derive(Debug)]
struct MaxPoolNode;

impl<B: FastPoolBackend> Backward<B, 1> for MaxPoolNode {
    type State = SavedState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let Some(parent) = &ops.parents[0] else { return };
        let s = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.x);
        let o = s.options;
        let dx =
            B::max_pool2d_with_indices_backward(x, o.kernel, o.stride, o.padding, [1, 1], o.ceil_mode, grad, s.indices);
        grads.register::<B>(parent.id, dx.x_grad);
    }
}

impl<B: FastPoolBackend, C: CheckpointStrategy> FastPoolBackend for Autodiff<B, C> {
    fn fast_max_pool2d(x: FloatTensor<Self>, o: PoolOptions) -> FloatTensor<Self> {
        match MaxPoolNode.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let (out, indices) = B::fast_max_pool2d_with_indices(x.into_primitive(), o);
                prep.finish(
                    SavedState {
                        x: x_id,
                        indices,
                        options: o,
                    },
                    out,
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fast_max_pool2d(x.into_primitive(), o)),
        }
    }
}
