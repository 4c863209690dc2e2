//! The backend extension behind [`super::FusedSgd`]: one pass over a parameter on flex, burn's
//! element-wise operations everywhere else.

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use super::formula::{SgdHyper, burn_step};
use crate::flex_tensors::{all_f32, contiguous, elements, flex_tensor};


/// An SGD-with-momentum step of one parameter that a backend may replace; the default body is
/// burn's own operations, in the order burn's `Sgd` applies them.
#[backend_extension(Flex, Autodiff)]
pub trait FusedSgdBackend: Backend {
    /// `(p', v')` from the parameter, its gradient and its velocity; `fresh`: no step ran
    /// before, so `velocity` (zeros) is only the buffer for `v'`.
    fn sgd_momentum_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        hyper: SgdHyper,
        fresh: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let old = (!fresh).then_some(velocity.clone());
        let (param, v) = burn_step::<Self>(param, grad, old, hyper);
        (param, v.unwrap_or(velocity))
    }
}

impl<B: FusedSgdBackend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> FusedSgdBackend
    for Autodiff<B, C>
{
}

impl FusedSgdBackend for Flex {
    fn sgd_momentum_step(
        param: FlexTensor,
        grad: FlexTensor,
        velocity: FlexTensor,
        h: SgdHyper,
        fresh: bool,
    ) -> (FlexTensor, FlexTensor) {
        let same = |t: &FlexTensor| t.shape() == param.shape() && all_f32(&[t]);
        if h.nesterov || h.momentum.is_none() || !same(&param) || !same(&grad) || !same(&velocity) {
            let old = (!fresh).then_some(velocity.clone());
            let (param, v) = burn_step::<Flex>(param, grad, old, h);
            return (param, v.unwrap_or(velocity));
        }
        crate::Kernel::FusedSgd.record(false);
        let n = param.shape().num_elements();
        let grad = contiguous(&grad);
        let (mut param, mut velocity) = (unique(param), unique(velocity));
        update(
            &mut param.storage_mut::<f32>()[..n],
            &mut velocity.storage_mut::<f32>()[..n],
            elements(&grad),
            h,
            !fresh,
        );
        (param, velocity)
    }
}

/// `t` as the only owner of contiguous, offset-0 elements (copied when it is not).
fn unique(t: FlexTensor) -> FlexTensor {
    let n = t.shape().num_elements();
    if t.is_unique() && t.layout().contiguous_offsets() == Some((0, n)) {
        return t;
    }
    let shape = t.shape();
    flex_tensor(elements(&contiguous(&t)).to_vec(), shape)
}

/// Elements per task: large enough that a task's work dwarfs its scheduling.
const CHUNK: usize = 1 << 15;

/// The update of every element, over the cores for large parameters (each element on its own,
/// so the result does not depend on the split).
fn update(p: &mut [f32], v: &mut [f32], g: &[f32], h: SgdHyper, has_old: bool) {
    use rayon::prelude::*;
    if p.len() <= CHUNK {
        return update_chunk(p, v, g, h, has_old);
    }
    p.par_chunks_mut(CHUNK)
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|((p, v), g)| update_chunk(p, v, g, h, has_old));
}

/// The same f32 operations as [`burn_step`], element by element (no fused multiply-add,
/// so the rounding is burn's).
fn update_chunk(p: &mut [f32], v: &mut [f32], g: &[f32], h: SgdHyper, has_old: bool) {
    let penalty = h.penalty.unwrap_or(0.0);
    let decay = h.penalty.is_some();
    let (momentum, keep) = h.momentum.unwrap_or((0.0, 1.0));
    for ((p, v), &g) in p.iter_mut().zip(v.iter_mut()).zip(g) {
        let g = if decay { *p * penalty + g } else { g };
        *v = if has_old { g * keep + *v * momentum } else { g };
        *p -= *v * h.lr;
    }
}
