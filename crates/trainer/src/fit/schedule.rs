//! Learning-rate schedules. The rate is a pure function of the position in training (epoch and
//! batch), so a resumed run needs no scheduler state beyond the epoch it resumes at.

use crate::config::TrainConfig;

pub use crate::config::Schedule;

/// The learning rate for batch `batch` (0-based) of epoch `epoch` (1-based), with `batches`
/// batches per epoch.
///
/// Warm-up: during the first `cfg.warmup` epochs the rate rises linearly per batch from
/// `lr / warm-up batches` to `lr`. Afterwards `cfg.schedule` applies, counted from the end of
/// the warm-up.
pub fn learning_rate(cfg: &TrainConfig, epoch: usize, batch: usize, batches: usize) -> f64 {
    let batches = batches.max(1);
    let step = (epoch - 1) * batches + batch;
    let warmup_steps = cfg.optim.warmup * batches;
    if step < warmup_steps {
        return cfg.optim.lr * (step + 1) as f64 / warmup_steps as f64;
    }
    match cfg.optim.schedule {
        Schedule::Constant => cfg.optim.lr,
        Schedule::Step => {
            let done = (epoch - 1) as f64 / cfg.optim.epochs as f64;
            let drops = [0.5, 0.75].iter().filter(|&&at| done >= at).count();
            cfg.optim.lr * 0.1f64.powi(drops as i32)
        }
        Schedule::Cosine => {
            let total = (cfg.optim.epochs * batches).saturating_sub(warmup_steps).max(1);
            let t = (step - warmup_steps) as f64 / total as f64;
            0.5 * cfg.optim.lr * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(schedule: Schedule, warmup: usize) -> TrainConfig {
        TrainConfig::new("lenet5", "mnist-5k")
            .with_epochs(8)
            .with_lr(0.1)
            .with_schedule(schedule)
            .with_warmup(warmup)
    }

    #[test]
    fn warmup_rises_linearly_then_the_schedule_applies() {
        let c = cfg(Schedule::Constant, 2);
        // 2 warm-up epochs of 5 batches: 0.01, 0.02, … 0.1.
        assert!((learning_rate(&c, 1, 0, 5) - 0.01).abs() < 1e-12);
        assert!((learning_rate(&c, 2, 4, 5) - 0.1).abs() < 1e-12);
        assert_eq!(learning_rate(&c, 3, 0, 5), 0.1);
        assert_eq!(learning_rate(&c, 8, 4, 5), 0.1);
    }

    #[test]
    fn step_drops_tenfold_at_half_and_three_quarters() {
        let c = cfg(Schedule::Step, 0);
        let at = |e| learning_rate(&c, e, 0, 10);
        assert_eq!([at(1), at(4)], [0.1, 0.1]);
        assert!((at(5) - 0.01).abs() < 1e-12 && (at(6) - 0.01).abs() < 1e-12);
        assert!((at(7) - 0.001).abs() < 1e-12 && (at(8) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_starts_at_the_rate_halves_midway_and_ends_near_zero() {
        let c = cfg(Schedule::Cosine, 0);
        assert!((learning_rate(&c, 1, 0, 10) - 0.1).abs() < 1e-12);
        assert!((learning_rate(&c, 5, 0, 10) - 0.05).abs() < 1e-12);
        let last = learning_rate(&c, 8, 9, 10);
        assert!(last > 0.0 && last < 0.001, "{last}");
        assert_eq!("Cosine".parse::<Schedule>(), Ok(Schedule::Cosine));
        assert!(
            "linear"
                .parse::<Schedule>()
                .unwrap_err()
                .contains("constant, step or cosine")
        );
    }
}
