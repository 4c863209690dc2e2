//! The training loss: cross-entropy against a batch's targets — its labels, or after mixup and
//! cutmix a blend of two label sets — with optional label smoothing, plus the auxiliary
//! classifiers' (GoogLeNet). Cross-entropy is linear in the target distribution, so the loss
//! against a blended (and smoothed) target is the same blend of the losses against each label
//! set: what torchvision's reference recipe computes with soft targets.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use cnn_data_augment::augment::Mixed;
use cnn_models::TrainOutput;

/// Weight of each auxiliary classifier's loss (Szegedy et al. 2015).
pub const AUX_LOSS_WEIGHT: f32 = 0.3;

/// What the images of a batch are trained to predict.
#[derive(Clone, Debug)]
pub struct Targets {
    /// Each image's own label (what accuracy is counted against).
    pub labels: Tensor<1, Int>,
    /// After mixup or cutmix: the label blended into each image, and the weight `λ` of the
    /// image's own label in its target.
    pub mixed: Option<(Tensor<1, Int>, f32)>,
}

impl Targets {
    /// Each image's own label, nothing blended.
    pub fn plain(labels: Tensor<1, Int>) -> Self {
        Self { labels, mixed: None }
    }

    /// The targets of a batch that `mixed` says how it was blended (if it was), on `device`.
    pub fn new(labels: Tensor<1, Int>, mixed: Option<Mixed>, device: &Device) -> Self {
        let mixed = mixed.map(|m| {
            let n = m.partner.len();
            (Tensor::from_data(TensorData::new(m.partner, [n]), device), m.lambda)
        });
        Self { labels, mixed }
    }

    /// Images `start..start + len` of the batch (a device's or a process's shard).
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        Self {
            labels: self.labels.clone().narrow(0, start, len),
            mixed: self.mixed.as_ref().map(|(p, l)| (p.clone().narrow(0, start, len), *l)),
        }
    }

    /// The same targets on `device`.
    pub fn to_device(self, device: &Device) -> Self {
        Self {
            labels: self.labels.to_device(device),
            mixed: self.mixed.map(|(p, l)| (p.to_device(device), l)),
        }
    }
}

/// The loss a training step minimises.
#[derive(Clone, Debug)]
pub struct Loss {
    cross_entropy: CrossEntropyLoss,
}

impl Loss {
    /// Cross-entropy on `device` with targets smoothed by `smoothing` (0: none): `1 − s` on the
    /// label plus `s` spread evenly over all classes, as PyTorch's `label_smoothing`.
    pub fn new(smoothing: f64, device: &Device) -> Self {
        let smoothing = (smoothing > 0.0).then_some(smoothing as f32);
        Self {
            cross_entropy: CrossEntropyLossConfig::new().with_smoothing(smoothing).init(device),
        }
    }

    /// The mean loss of `logits` against `targets`.
    pub fn of(&self, logits: Tensor<2>, targets: &Targets) -> Tensor<1> {
        let own = self.cross_entropy.forward(logits.clone(), targets.labels.clone());
        match &targets.mixed {
            None => own,
            Some((partner, lambda)) => {
                let other = self.cross_entropy.forward(logits, partner.clone());
                own.mul_scalar(*lambda) + other.mul_scalar(1.0 - lambda)
            }
        }
    }

    /// The loss of a model's training outputs: the logits', plus each auxiliary classifier's
    /// weighted by [`AUX_LOSS_WEIGHT`].
    pub fn of_outputs(&self, out: TrainOutput, targets: &Targets) -> Tensor<1> {
        let mut loss = self.of(out.logits, targets);
        for aux in out.aux {
            loss = loss + self.of(aux, targets).mul_scalar(AUX_LOSS_WEIGHT);
        }
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(loss: Tensor<1>) -> f32 {
        loss.into_scalar::<f32>()
    }

    /// Two images, three classes; labels 0 and 2.
    fn case(device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let logits = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.5, -1.0, 0.0, 1.0, 3.0], [2, 3]), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), device);
        (logits, labels)
    }

    /// −Σ t·log softmax, averaged over the rows, by hand.
    fn by_hand(logits: &[[f64; 3]; 2], targets: &[[f64; 3]; 2]) -> f64 {
        let row = |z: &[f64; 3], t: &[f64; 3]| {
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            -z.iter().zip(t).map(|(z, t)| t * (z - lse)).sum::<f64>()
        };
        (row(&logits[0], &targets[0]) + row(&logits[1], &targets[1])) / 2.0
    }

    const LOGITS: [[f64; 3]; 2] = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]];

    #[test]
    fn smoothing_puts_one_minus_s_on_the_label_and_s_over_all_classes() {
        let device = Device::flex();
        let (logits, labels) = case(&device);
        let s = 0.1;
        let loss = value(Loss::new(s, &device).of(logits.clone(), &Targets::plain(labels.clone())));
        let t = |label: usize| std::array::from_fn(|c| if c == label { 1.0 - s + s / 3.0 } else { s / 3.0 });
        let want = by_hand(&LOGITS, &[t(0), t(2)]);
        assert!((f64::from(loss) - want).abs() < 1e-6, "{loss} vs {want}");
        // PyTorch: F.cross_entropy(logits, [0, 2], label_smoothing=0.1) = 0.3639120.
        assert!((loss - 0.363_912_0).abs() < 1e-6, "{loss}");
        let plain = value(Loss::new(0.0, &device).of(logits, &Targets::plain(labels)));
        let one_hot = by_hand(&LOGITS, &[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]);
        assert!((f64::from(plain) - one_hot).abs() < 1e-6, "{plain} vs {one_hot}");
    }

    #[test]
    fn a_mixed_target_is_the_blend_of_the_two_labels() {
        let device = Device::flex();
        let (logits, labels) = case(&device);
        let mixed = Some(Mixed {
            partner: vec![2, 0],
            lambda: 0.7,
        });
        let targets = Targets::new(labels, mixed, &device);
        let loss = value(Loss::new(0.0, &device).of(logits.clone(), &targets));
        let want = by_hand(&LOGITS, &[[0.7, 0.0, 0.3], [0.3, 0.0, 0.7]]);
        assert!((f64::from(loss) - want).abs() < 1e-6, "{loss} vs {want}");
        // With smoothing on top: the blend of the smoothed one-hots.
        let s = 0.2;
        let smoothed = value(Loss::new(s, &device).of(logits, &targets));
        let blend = |a: usize, b: usize| {
            std::array::from_fn(|c| {
                let hot = |l: usize| if c == l { 1.0 } else { 0.0 };
                (0.7 * hot(a) + 0.3 * hot(b)) * (1.0 - s) + s / 3.0
            })
        };
        let want = by_hand(&LOGITS, &[blend(0, 2), blend(2, 0)]);
        assert!((f64::from(smoothed) - want).abs() < 1e-6, "{smoothed} vs {want}");
    }

    #[test]
    fn shards_of_the_targets_keep_their_partners() {
        let device = Device::flex();
        let (_, labels) = case(&device);
        let targets = Targets::new(
            labels,
            Some(Mixed {
                partner: vec![2, 0],
                lambda: 0.7,
            }),
            &device,
        );
        let second = targets.narrow(1, 1);
        let ints = |t: Tensor<1, Int>| t.into_data().convert::<i64>().try_into_vec::<i64>().unwrap();
        assert_eq!(ints(second.labels), [2]);
        let (partner, lambda) = second.mixed.unwrap();
        assert_eq!((ints(partner), lambda), (vec![0], 0.7));
    }
}
