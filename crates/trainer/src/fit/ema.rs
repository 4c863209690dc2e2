//! An exponential moving average of the weights (Polyak averaging; torchvision's reference
//! `--model-ema`, timm's `ModelEmaV2`): after every `every`-th update, each weight and batch-norm
//! statistic of the average becomes `decay·average + (1 − decay)·current`.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// The average of a model's weights over its updates.
#[derive(Clone, Debug)]
pub struct Ema<M> {
    /// The averaged model: an evaluation copy (no autodiff), with batch-norm statistics of its
    /// own (a plain clone would share them with the trained model).
    pub model: M,
    /// The weight of the average itself at each update.
    pub decay: f64,
    /// Average after every this many updates.
    pub every: usize,
}

impl<M: Module> Ema<M> {
    /// An average that starts at `model`'s weights.
    pub fn new(model: &M, decay: f64, every: usize) -> Self {
        Self {
            model: model.valid(),
            decay,
            every: every.max(1),
        }
    }

    /// The average after update number `update` (1-based, counted over the run) left `model`:
    /// blended in when `update` is a multiple of `every`, unchanged otherwise.
    pub fn after_update(self, model: &M, update: usize) -> Self {
        if update % self.every != 0 {
            return self;
        }
        // `valid` brings the batch-norm statistics up to date and drops autodiff.
        let mut blend = Blend {
            current: flat_values(&model.valid()),
            decay: self.decay,
        };
        Self {
            model: self.model.map(&mut blend),
            ..self
        }
    }
}

/// Every float tensor of `model` (weights and batch-norm statistics), detached and flattened,
/// by parameter id.
fn flat_values<M: Module>(model: &M) -> HashMap<ParamId, Tensor<1>> {
    struct Collect(HashMap<ParamId, Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val().without_autodiff();
            let len = value.shape().num_elements();
            self.0.insert(param.id, value.reshape([len]));
        }
    }
    let mut collect = Collect(HashMap::new());
    model.visit(&mut collect);
    collect.0
}

/// Blends each tensor of the average with the current model's of the same id.
struct Blend {
    current: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(current) = self.current.remove(&param.id) else {
            return param;
        };
        let decay = self.decay;
        param.map(|average| {
            let shape = average.shape();
            average.mul_scalar(decay) + current.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn the_average_moves_one_minus_decay_of_the_way_on_its_updates_only() {
        // Every tensor's values, in the order of their ids.
        fn parameter_values<M: Module>(model: &M) -> Vec<Vec<f32>> {
            let mut values: Vec<_> = flat_values(model).into_iter().collect();
            values.sort_by_key(|(id, _)| id.to_string());
            values
                .into_iter()
                .map(|(_, t)| t.into_data().convert::<f32>().try_into_vec().unwrap())
                .collect()
        }
        let device = Device::flex().autodiff();
        device.seed(1);
        let model = cnn_models::resnet20(10, &device);
        let ema = Ema::new(&model, 0.9, 2);
        let start = parameter_values(&ema.model);
        assert_eq!(start, parameter_values(&model));
        // Every tensor (weights and batch-norm statistics) one higher, in a copy of its own.
        struct AddOne;
        impl ModuleMapper for AddOne {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                param.map(|t| t.add_scalar(1.0))
            }
        }
        let moved = model.valid().map(&mut AddOne);
        let ema = ema.after_update(&moved, 1);
        assert_eq!(parameter_values(&ema.model), start, "update 1 of every 2");
        let ema = ema.after_update(&moved, 2);
        for (got, was) in parameter_values(&ema.model)
            .iter()
            .flatten()
            .zip(start.iter().flatten())
        {
            assert!((got - (was + 0.1)).abs() < 1e-5, "{got} vs {was} + 0.1");
        }
        // The trained model's batch-norm statistics are its own: averaging left them alone.
        assert_eq!(parameter_values(&model), start);
    }
}
