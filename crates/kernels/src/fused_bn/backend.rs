//! The backend extension that runs batch normalisation in training mode (+ residual add)
//! (+ ReLU) as one operation: [`super::kernel`] on flex, and an autodiff node whose backward is
//! ours too (two passes, ReLU's mask applied as they read; a pass of its own only when a
//! residual needs the masked gradient).

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};

use super::kernel::{self, Dims};
use crate::flex_tensors::{all_f32, contiguous, elements, flex_tensor};

/// `(output, batch mean, biased batch variance)` of a training-mode batch norm.
pub type BatchNormOutput<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// Batch normalisation with the batch's statistics, optionally followed by a residual add and a
/// ReLU, as one operation a backend may replace.
///
/// The default bodies are burn's own `batch_norm_train` and element-wise operations; flex
/// overrides them with [`kernel`], and `Autodiff` wires them into one differentiable operation.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBatchNormBackend: Backend {
    /// `relu?(batch_norm(x))` with `x`'s own statistics.
    fn fused_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_forward::<Self>(x, None, gamma, beta, epsilon, relu)
    }

    /// `relu?(batch_norm(x) + residual)` with `x`'s own statistics.
    fn fused_batch_norm_add(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_forward::<Self>(x, Some(residual), gamma, beta, epsilon, relu)
    }

    /// `relu?(batch_norm(x))` with running statistics (inference).
    #[allow(clippy::too_many_arguments)]
    fn fused_batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        burn_eval::<Self>(x, None, [gamma, beta, mean, variance], epsilon, relu)
    }

    /// `relu?(batch_norm(x) + residual)` with running statistics (inference).
    #[allow(clippy::too_many_arguments)]
    fn fused_batch_norm_eval_add(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        burn_eval::<Self>(x, Some(residual), [gamma, beta, mean, variance], epsilon, relu)
    }

    /// `(dx, dgamma, dbeta)` of the batch norm, given the gradient of its output (before any
    /// residual add, after any ReLU's mask).
    fn fused_batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        burn_backward::<Self>(x, gamma, mean, variance, grad, epsilon)
    }

    /// [`Self::fused_batch_norm_backward`] of `relu(batch_norm(x))`: `grad` is the gradient of
    /// the ReLU's output `relu_output`, whose mask is applied here.
    #[allow(clippy::too_many_arguments)]
    fn fused_batch_norm_relu_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        relu_output: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let grad = Self::relu_backward(relu_output, grad);
        burn_backward::<Self>(x, gamma, mean, variance, grad, epsilon)
    }
}

/// The forward as burn's own operations (the reference, and the path for what the kernel does
/// not take).
fn burn_forward<B: Backend>(
    x: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
    relu: bool,
) -> BatchNormOutput<B> {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    let out = match residual {
        Some(residual) => B::float_add(r.output, residual),
        None => r.output,
    };
    (if relu { B::relu(out) } else { out }, r.mean, r.variance)
}

/// The backward as burn's own operation.
fn burn_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
) -> BatchNormOutput<B> {
    let g = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
    (g.x_grad, g.gamma_grad, g.beta_grad)
}

/// Inference as burn's own operations: its batch norm, then the add and the ReLU.
fn burn_eval<B: Backend>(
    x: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    [gamma, beta, mean, variance]: [FloatTensor<B>; 4],
    epsilon: f64,
    relu: bool,
) -> FloatTensor<B> {
    let out = B::batch_norm(x, gamma, beta, mean, variance, epsilon);
    let out = match residual {
        Some(residual) => B::float_add(out, residual),
        None => out,
    };
    if relu { B::relu(out) } else { out }
}

/// Inference on flex: [`kernel::forward_eval`], one pass.
fn flex_eval(
    x: FlexTensor,
    residual: Option<FlexTensor>,
    stats: [FlexTensor; 4],
    epsilon: f64,
    relu: bool,
) -> FlexTensor {
    let others: Vec<&FlexTensor> = stats.iter().chain(residual.as_ref()).collect();
    let Some(d) = dims(&x, &others) else {
        return burn_eval::<Flex>(x, residual, stats, epsilon, relu);
    };
    let shape = x.shape();
    let x = contiguous(&x);
    let residual = residual.map(|r| contiguous(&r));
    let stats = stats.map(|t| contiguous(&t));
    let slices = [0, 1, 2, 3].map(|i| elements(&stats[i]));
    let out = kernel::forward_eval(elements(&x), residual.as_ref().map(elements), slices, epsilon, relu, d);
    flex_tensor(out, shape)
}

/// The kernel's view of an NCHW f32 tensor, or `None` where burn's own operations run instead.
fn dims(x: &FlexTensor, others: &[&FlexTensor]) -> Option<Dims> {
    let shape = x.shape();
    let mut all = vec![x];
    all.extend_from_slice(others);
    (shape.num_dims() == 4 && all_f32(&all)).then(|| Dims {
        batch: shape[0],
        channels: shape[1],
        plane: shape[2] * shape[3],
    })
}

/// The flex forward, with or without a residual.
fn flex_forward(
    x: FlexTensor,
    residual: Option<FlexTensor>,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
    relu: bool,
) -> BatchNormOutput<Flex> {
    let others: Vec<&FlexTensor> = [&gamma, &beta].into_iter().chain(residual.as_ref()).collect();
    let Some(d) = dims(&x, &others) else {
        return burn_forward::<Flex>(x, residual, gamma, beta, epsilon, relu);
    };
    let shape = x.shape();
    let (x, gamma, beta) = (contiguous(&x), contiguous(&gamma), contiguous(&beta));
    let residual = residual.map(|r| contiguous(&r));
    let (out, mean, var) = kernel::forward_train(
        elements(&x),
        residual.as_ref().map(elements),
        elements(&gamma),
        elements(&beta),
        epsilon,
        relu,
        d,
    );
    (
        flex_tensor(out, shape),
        flex_tensor(mean, [d.channels]),
        flex_tensor(var, [d.channels]),
    )
}

impl FusedBatchNormBackend for Flex {
    fn fused_batch_norm_eval(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        flex_eval(x, None, [gamma, beta, mean, variance], epsilon, relu)
    }

    fn fused_batch_norm_eval_add(
        x: FlexTensor,
        residual: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        flex_eval(x, Some(residual), [gamma, beta, mean, variance], epsilon, relu)
    }

    fn fused_batch_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOutput<Flex> {
        flex_forward(x, None, gamma, beta, epsilon, relu)
    }

    fn fused_batch_norm_add(
        x: FlexTensor,
        residual: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormOutput<Flex> {
        flex_forward(x, Some(residual), gamma, beta, epsilon, relu)
    }

    fn fused_batch_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> BatchNormOutput<Flex> {
        flex_backward(x, gamma, mean, variance, grad, None, epsilon)
    }

    fn fused_batch_norm_relu_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        grad: FlexTensor,
        relu_output: FlexTensor,
        epsilon: f64,
    ) -> BatchNormOutput<Flex> {
        flex_backward(x, gamma, mean, variance, grad, Some(relu_output), epsilon)
    }
}

/// The flex backward, ReLU's mask applied as the kernel reads when `relu_output` is given.
fn flex_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    grad: FlexTensor,
    relu_output: Option<FlexTensor>,
    epsilon: f64,
) -> BatchNormOutput<Flex> {
    let others: Vec<&FlexTensor> = [&gamma, &mean, &variance, &grad].into_iter().chain(&relu_output).collect();
    let Some(d) = dims(&x, &others) else {
        let grad = match relu_output {
            Some(out) => <Flex as ActivationOps<Flex>>::relu_backward(out, grad),
            None => grad,
        };
        return burn_backward::<Flex>(x, gamma, mean, variance, grad, epsilon);
    };
    let shape = x.shape();
    let [x, gamma, mean, variance, grad] = [x, gamma, mean, variance, grad].map(|t| contiguous(&t));
    let relu_output = relu_output.map(|t| contiguous(&t));
    let g = kernel::backward_train(
        elements(&x),
        elements(&gamma),
        elements(&mean),
        elements(&variance),
        elements(&grad),
        relu_output.as_ref().map(elements),
        epsilon,
        d,
    );
    (
        flex_tensor(g.x, shape),
        flex_tensor(g.gamma, [d.channels]),
        flex_tensor(g.beta, [d.channels]),
    )
}

/// What the backward pass needs: the input and gamma (checkpointed), the batch statistics, the
/// output when a ReLU followed (its mask), and epsilon.
#[derive(Debug, Clone)]
struct SavedState<B: Backend> {
    x: NodeId,
    gamma: NodeId,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    relu_output: Option<FloatTensor<B>>,
    epsilon: f64,
}

/// The autodiff node; `N` is 3 (`x`, `gamma`, `beta`) or 4 (and the residual, whose gradient is
/// the output's gradient after the ReLU's mask).
#[derive(Debug)]
struct FusedBatchNormNode<const N: usize>;

impl<B: FusedBatchNormBackend, const N: usize> Backward<B, N> for FusedBatchNormNode<N> {
    type State = SavedState<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let s = ops.state;
        // The residual's gradient is the masked gradient itself, so with a residual the mask is
        // a pass of its own; without one the batch norm's backward applies it as it reads.
        let residual = if N == 4 { ops.parents[3].as_ref() } else { None };
        let (grad, relu_output) = match (s.relu_output, residual) {
            (Some(out), Some(_)) => (B::relu_backward(out, grad), None),
            (relu_output, _) => (grad, relu_output),
        };
        if let Some(node) = residual {
            grads.register::<B>(node.id, grad.clone());
        }
        if ops.parents[..3].iter().all(Option::is_none) {
            return;
        }
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.x);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(s.gamma);
        let (dx, dgamma, dbeta) = match relu_output {
            Some(out) => B::fused_batch_norm_relu_backward(x, gamma, s.mean, s.variance, grad, out, s.epsilon),
            None => B::fused_batch_norm_backward(x, gamma, s.mean, s.variance, grad, s.epsilon),
        };
        for (parent, g) in ops.parents[..3].iter().zip([dx, dgamma, dbeta]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// Runs the forward through `run(x, gamma)` and records it in the graph when `kind` is tracked,
/// with what the backward pass needs.
fn record<B: FusedBatchNormBackend, C: CheckpointStrategy, const N: usize>(
    kind: OpsKind<FusedBatchNormNode<N>, B, SavedState<B>, C, N>,
    x: FloatTensor<Autodiff<B, C>>,
    gamma: FloatTensor<Autodiff<B, C>>,
    epsilon: f64,
    relu: bool,
    run: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>),
) -> (
    FloatTensor<Autodiff<B, C>>,
    FloatTensor<Autodiff<B, C>>,
    FloatTensor<Autodiff<B, C>>,
) {
    let stats = |mean, variance| {
        (
            <Autodiff<B, C> as AutodiffBackend>::from_inner(mean),
            <Autodiff<B, C> as AutodiffBackend>::from_inner(variance),
        )
    };
    match kind {
        OpsKind::Tracked(mut prep) => {
            let (x_id, gamma_id) = (prep.checkpoint(&x), prep.checkpoint(&gamma));
            let (out, mean, variance) = run(x.into_primitive(), gamma.into_primitive());
            let state = SavedState {
                x: x_id,
                gamma: gamma_id,
                mean: mean.clone(),
                variance: variance.clone(),
                relu_output: relu.then(|| out.clone()),
                epsilon,
            };
            let (mean, variance) = stats(mean, variance);
            (prep.finish(state, out), mean, variance)
        }
        OpsKind::UnTracked(prep) => {
            let (out, mean, variance) = run(x.into_primitive(), gamma.into_primitive());
            let (mean, variance) = stats(mean, variance);
            (prep.finish(out), mean, variance)
        }
    }
}

impl<B: FusedBatchNormBackend, C: CheckpointStrategy> FusedBatchNormBackend for Autodiff<B, C> {
    fn fused_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let kind = FusedBatchNormNode::<3>
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let beta = beta.into_primitive();
        record(kind, x, gamma, epsilon, relu, |x, gamma| {
            B::fused_batch_norm(x, gamma, beta, epsilon, relu)
        })
    }

    fn fused_batch_norm_add(
        x: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let kind = FusedBatchNormNode::<4>
            .prepare::<C>([x.node(), gamma.node(), beta.node(), residual.node()])
            .compute_bound()
            .stateful();
        let (residual, beta) = (residual.into_primitive(), beta.into_primitive());
        record(kind, x, gamma, epsilon, relu, |x, gamma| {
            B::fused_batch_norm_add(x, residual, gamma, beta, epsilon, relu)
        })
    }
}
