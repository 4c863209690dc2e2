//! The settings that are one of a few named choices: the optimiser and the schedule.

use serde::{Deserialize, Serialize};

/// How the learning rate changes after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// ×0.1 after half of the epochs and again after three quarters (He et al. 2016's recipe,
    /// scaled to the run's length).
    Step,
    /// Cosine annealing from the rate to 0 over the epochs after the warm-up (per batch).
    Cosine,
    /// One cycle (Smith and Topin 2019), as PyTorch's `OneCycleLR` with its defaults: from
    /// `lr`/25 up to `lr` over the first 30% of the updates, then down to `lr`/250,000, both
    /// halves cosine-shaped (per batch; it warms up by itself).
    #[serde(rename = "onecycle")]
    OneCycle,
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "constant" => Ok(Schedule::Constant),
            "step" => Ok(Schedule::Step),
            "cosine" => Ok(Schedule::Cosine),
            "onecycle" => Ok(Schedule::OneCycle),
            other => Err(format!(
                "unknown schedule '{other}' (expected constant, step, cosine or onecycle)"
            )),
        }
    }
}

/// The optimiser used for training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (PyTorch-style, undampened) momentum.
    Sgd,
    /// Adam (Kingma & Ba 2015); `--weight-decay` adds L2 to the gradient.
    Adam,
    /// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay.
    AdamW,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::AdamW),
            other => Err(format!("unknown optimizer '{other}' (expected sgd, adam or adamw)")),
        }
    }
}
