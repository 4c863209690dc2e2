//! The learning-rate finder (Smith 2017; fastai's `lr_find`): train from the run's starting
//! point while the rate grows exponentially from very small to very large, one batch per rate,
//! and watch the loss. It falls slowly at first, fast over the useful range, then blows up; a
//! good peak rate is where it falls fastest. `lr-find.csv` and `lr-find.png` record the sweep.

use std::path::Path;

use burn::tensor::Device;

use super::data::RunData;
use super::start::build_model;
use crate::atomic::write_file;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::fit::step::{OneDevice, Step};
use crate::fit::{Progress, TrainBatches, build_optimizer};
use crate::report::plot::{Series, line_chart};

/// How the rate is swept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSweep {
    /// Updates (one batch each), at most.
    pub steps: usize,
    /// The first rate.
    pub start: f64,
    /// The last rate.
    pub end: f64,
}

impl Default for LrSweep {
    /// 200 updates from 1e-7 to 10, as fastai's default.
    fn default() -> Self {
        Self {
            steps: 200,
            start: 1e-7,
            end: 10.0,
        }
    }
}

impl LrSweep {
    /// The rate of update `step`: `start·(end/start)^(step/(steps − 1))`.
    pub fn rate(&self, step: usize) -> f64 {
        let t = step as f64 / (self.steps.max(2) - 1) as f64;
        self.start * (self.end / self.start).powf(t)
    }

    fn check(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(TrainError::InvalidOption {
                option: "steps",
                reason,
            })
        };
        if self.steps < 10 {
            return bad(format!("must be at least 10 to see a trend, not {}", self.steps));
        }
        if !(self.start > 0.0 && self.start < self.end && self.end.is_finite()) {
            return bad(format!("need 0 < start < end, got {} to {}", self.start, self.end));
        }
        Ok(())
    }
}

/// One update of the sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrPoint {
    /// Its rate.
    pub lr: f64,
    /// The batch's loss.
    pub loss: f64,
    /// The loss smoothed over the updates so far (exponential average, bias-corrected).
    pub smoothed: f64,
}

/// What a sweep found.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFinding {
    /// Every update, in order.
    pub points: Vec<LrPoint>,
    /// The rate where the smoothed loss falls fastest against the logarithm of the rate, when
    /// the loss fell at all.
    pub suggested: Option<f64>,
    /// The sweep stopped early because the loss exploded (past 4× its lowest).
    pub exploded: bool,
}

/// How much of each new loss the smoothed loss takes: fastai's 0.02 (β = 0.98).
const SMOOTHING: f64 = 0.02;

/// Sweeps `sweep` on `cfg`'s model and data on `device` (from its initial weights, frozen stages
/// frozen, the run's optimiser, augmentation and loss), reporting every batch to `progress`.
pub fn lr_find(
    cfg: &TrainConfig,
    sweep: &LrSweep,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<LrFinding> {
    cnn_models::precision::with(cfg.task.precision, || sweep_rates(cfg, sweep, device, progress))
}

/// [`lr_find`] in the run's precision.
fn sweep_rates(
    cfg: &TrainConfig,
    sweep: &LrSweep,
    device: &Device,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<LrFinding> {
    cfg.validate()?;
    sweep.check()?;
    let data = RunData::load(cfg, progress)?;
    let autodiff = device.clone().autodiff();
    let (model, frozen, rates) = build_model(cfg, &data, &autodiff, progress)?;
    let mut model = cnn_transfer::freeze(model, &frozen)?;
    let mut optimizer = build_optimizer(cfg);
    let step = OneDevice::new(&autodiff, cfg.optim.label_smoothing);
    let batches = TrainBatches::new(cfg, data.train.clone(), &data.pre)?;
    let (mut points, mut average, mut lowest) = (Vec::new(), 0.0, f64::INFINITY);
    let mut epoch = 1;
    while points.len() < sweep.steps {
        for batch in batches.epoch(epoch, (0, 1), &autodiff) {
            let k = points.len();
            if k == sweep.steps {
                break;
            }
            let lr = sweep.rate(k);
            let result = step.step(&model, batch?, 1.0)?;
            let loss = f64::from(result.loss);
            average = (1.0 - SMOOTHING) * average + SMOOTHING * loss;
            let smoothed = average / (1.0 - (1.0 - SMOOTHING).powi(k as i32 + 1));
            points.push(LrPoint { lr, loss, smoothed });
            progress(Progress::Batch {
                epoch,
                batch: k + 1,
                batches: sweep.steps,
                loss: result.loss,
                lr,
            });
            if !smoothed.is_finite() || smoothed > 4.0 * lowest {
                return Ok(finding(points, true));
            }
            lowest = lowest.min(smoothed);
            model = optimizer.step(rates.at(lr), model, result.grads);
        }
        epoch += 1;
    }
    Ok(finding(points, false))
}

fn finding(points: Vec<LrPoint>, exploded: bool) -> LrFinding {
    LrFinding {
        suggested: steepest(&points),
        points,
        exploded,
    }
}

/// The rate at the steepest fall of the smoothed loss per decade of rate, up to its lowest
/// point (past it the loss climbs; the first tenth of the sweep is left out as noise of the
/// average's start).
pub fn steepest(points: &[LrPoint]) -> Option<f64> {
    let lowest = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.smoothed.is_finite())
        .min_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed))?
        .0;
    let skip = points.len() / 10;
    let slopes = points[..=lowest].windows(2).enumerate().skip(skip).map(|(i, w)| {
        let slope = (w[1].smoothed - w[0].smoothed) / (w[1].lr.log10() - w[0].lr.log10());
        (i, slope)
    });
    let (i, slope) = slopes.min_by(|a, b| a.1.total_cmp(&b.1))?;
    (slope < 0.0).then(|| points[i].lr)
}

/// Writes `lr-find.csv` (rate, loss, smoothed loss) and `lr-find.png` (the smoothed loss against
/// log10 of the rate, the suggestion marked) into `dir`.
pub fn write_finding(dir: &Path, finding: &LrFinding, title: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut csv = String::from("lr,loss,smoothed_loss\n");
    for p in &finding.points {
        csv.push_str(&format!("{:.6e},{:.6},{:.6}\n", p.lr, p.loss, p.smoothed));
    }
    write_file(&dir.join("lr-find.csv"), csv.as_bytes())?;
    let curve: Vec<(f64, f64)> = finding.points.iter().map(|p| (p.lr.log10(), p.smoothed)).collect();
    let mut series = vec![Series::new("smoothed loss", curve)];
    if let Some(lr) = finding.suggested {
        let at = finding
            .points
            .iter()
            .find(|p| p.lr == lr)
            .map_or(f64::NAN, |p| p.smoothed);
        series.push(Series::new(format!("suggested {lr:.1e}"), vec![(lr.log10(), at)]));
    }
    line_chart(
        &dir.join("lr-find.png"),
        title,
        "learning rate (log10: -3 is 0.001)",
        "training loss",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_is_exponential_from_start_to_end() {
        let sweep = LrSweep {
            steps: 5,
            start: 1e-4,
            end: 1.0,
        };
        let rates: Vec<f64> = (0..5).map(|k| sweep.rate(k)).collect();
        for (got, want) in rates.iter().zip([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) {
            assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        }
        assert!(LrSweep { steps: 3, ..sweep }.check().is_err());
        assert!(
            LrSweep {
                start: 1.0,
                end: 0.1,
                ..LrSweep::default()
            }
            .check()
            .is_err()
        );
        assert!(LrSweep::default().check().is_ok());
    }

    #[test]
    fn the_suggestion_is_the_steepest_fall_before_the_lowest_loss() {
        // Flat, a fall that is steepest between 1e-3 and 1e-2, the bottom at 1e-1, then a climb.
        let sweep = LrSweep {
            steps: 61,
            start: 1e-6,
            end: 1e2,
        };
        let points: Vec<LrPoint> = (0..61)
            .map(|k| {
                let lr = sweep.rate(k);
                let x = lr.log10();
                let smoothed =
                    2.0 - 1.5 / (1.0 + (-(x + 2.5) * 3.0).exp()) + if x > -1.0 { (x + 1.0).powi(2) } else { 0.0 };
                LrPoint {
                    lr,
                    loss: smoothed,
                    smoothed,
                }
            })
            .collect();
        let lr = steepest(&points).unwrap();
        assert!((1e-3..=1e-2).contains(&lr), "{lr}");
        // A loss that only climbs suggests nothing.
        let rising: Vec<LrPoint> = points.iter().map(|p| LrPoint { smoothed: p.lr, ..*p }).collect();
        assert_eq!(steepest(&rising), None);
    }
}
