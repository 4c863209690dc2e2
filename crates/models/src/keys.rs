//! Parameter paths and shapes, and how they map to torchvision's state_dict keys.
//!
//! The module fields are named after torchvision's, and sequences are stored at torchvision's
//! indices, so a parameter's path differs from its state_dict key only by these rules:
//!
//! | burn | torchvision |
//! | --- | --- |
//! | `…bn.gamma` / `…bn.beta` (BatchNorm) | `…bn.weight` / `…bn.bias` |
//! | `running_mean`, `running_var` | the same names (buffers) |
//! | — | `num_batches_tracked` (not used by burn) |
//! | `Linear.weight` `[in, out]` | `weight` `[out, in]` (transposed) |
//!
//! Enum variant names (`Conv`, `Relu`, …) never appear in a path.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Every float tensor of `module` (parameters and running statistics) by dotted path, with its
/// shape. Enum variants are skipped, as `burn::store` does.
pub fn tensor_shapes<M: Module>(module: &M) -> BTreeMap<String, Vec<usize>> {
    let mut v = ShapeVisitor::default();
    module.visit(&mut v);
    v.out
}

/// The torchvision state_dict key and shape of the burn tensor at `path` with `shape`.
pub fn torchvision_key(path: &str, shape: &[usize]) -> (String, Vec<usize>) {
    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let join = |leaf: &str| {
        if parent.is_empty() {
            leaf.to_string()
        } else {
            format!("{parent}.{leaf}")
        }
    };
    match (leaf, shape.len()) {
        ("gamma", _) => (join("weight"), shape.to_vec()),
        ("beta", _) => (join("bias"), shape.to_vec()),
        ("weight", 2) => (join("weight"), vec![shape[1], shape[0]]),
        _ => (path.to_string(), shape.to_vec()),
    }
}

/// The tensors of `module` as torchvision would name and shape them.
pub fn torchvision_shapes<M: Module>(module: &M) -> BTreeMap<String, Vec<usize>> {
    tensor_shapes(module)
        .iter()
        .map(|(p, s)| torchvision_key(p, s))
        .collect()
}

#[derive(Default)]
struct ShapeVisitor {
    path: Vec<Option<String>>,
    out: BTreeMap<String, Vec<usize>>,
}

impl ModuleVisitor for ShapeVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((!container_type.starts_with("Enum:")).then(|| name.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.iter().flatten().cloned().collect::<Vec<_>>().join(".");
        self.out.insert(path, param.lazy_shape().to_vec());
    }
}

/// Learnable parameters of `module`, counted as torchvision counts them.
///
/// burn's `Module::num_params` also counts BatchNorm's running mean and variance (they are
/// stored like parameters); torchvision keeps them as buffers outside `parameters()`. This count
/// leaves them out, so it equals `sum(p.numel() for p in model.parameters())`.
pub fn param_count<M: Module>(module: &M) -> usize {
    tensor_shapes(module)
        .iter()
        .filter(|(path, _)| !is_running_stat(path))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum()
}

/// Whether `path` names a BatchNorm running statistic rather than a learnable parameter.
pub fn is_running_stat(path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    leaf == "running_mean" || leaf == "running_var"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules() {
        assert_eq!(torchvision_key("bn1.gamma", &[64]), ("bn1.weight".into(), vec![64]));
        assert_eq!(
            torchvision_key("fc.weight", &[512, 10]),
            ("fc.weight".into(), vec![10, 512])
        );
        assert_eq!(
            torchvision_key("conv1.weight", &[64, 3, 7, 7]),
            ("conv1.weight".into(), vec![64, 3, 7, 7])
        );
        assert_eq!(
            torchvision_key("layer1.0.bn1.running_var", &[64]),
            ("layer1.0.bn1.running_var".into(), vec![64])
        );
    }
}
