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
        Schedule::OneCycle => one_cycle(cfg.optim.lr, step, cfg.optim.epochs * batches),
    }
}

/// PyTorch's `OneCycleLR(max_lr, total_steps)` at update `step` (0-based) with its defaults:
/// `pct_start` 0.3, `div_factor` 25, `final_div_factor` 1e4, cosine annealing.
fn one_cycle(max_lr: f64, step: usize, total: usize) -> f64 {
    let (initial, peak_at) = (max_lr / 25.0, 0.3 * total as f64 - 1.0);
    let (last, minimum) = ((total as f64 - 1.0).max(peak_at + 1.0), initial / 1e4);
    let anneal = |from: f64, to: f64, pct: f64| to + (from - to) / 2.0 * (1.0 + (std::f64::consts::PI * pct).cos());
    let step = step as f64;
    if step <= peak_at {
        anneal(initial, max_lr, step / peak_at.max(f64::MIN_POSITIVE))
    } else {
        anneal(max_lr, minimum, (step - peak_at) / (last - peak_at))
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
                .contains("constant, step, cosine or onecycle")
        );
    }

    #[test]
    fn one_cycle_is_pytorchs_one_cycle_lr() {
        let c = cfg(Schedule::OneCycle, 0);
        // 8 epochs of 10 batches; PyTorch: OneCycleLR(SGD(lr), max_lr=0.1, total_steps=80),
        // the rate of updates 0, 1, 12, 23, 24, 40, 79.
        let want = [
            (0, 0.004_000_000_000_000_003_6),
            (1, 0.004_447_074_590_256_131),
            (12, 0.055_275_635_841_504_2),
            (23, 0.1),
            (24, 0.099_921_341_065_527_83),
            (40, 0.078_933_649_074_731_06),
            (79, 4e-7),
        ];
        for (step, rate) in want {
            let got = learning_rate(&c, step / 10 + 1, step % 10, 10);
            assert!(
                (got - rate).abs() < 1e-9 * rate.max(1e-3),
                "update {step}: {got} vs {rate}"
            );
        }
        assert_eq!("OneCycle".parse::<Schedule>(), Ok(Schedule::OneCycle));
        assert_eq!(serde_json::to_string(&Schedule::OneCycle).unwrap(), "\"onecycle\"");
    }
}
