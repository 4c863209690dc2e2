//! The one training loop. Every way of training — one device, several devices in this process,
//! a head on cached features — runs its epochs here, and differs only in its [`Step`] and in
//! where its batches come from ([`Batches`]).

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::optim::{GradientsAccumulator, ModuleOptimizer};
use burn::tensor::Device;
use cnn_data_augment::seed::{derive, stream};

use super::ema::Ema;
use super::metrics::{EpochHook, EpochMetrics, Fitted, Progress, early_stop};
use super::schedule::learning_rate;
use super::step::Step;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::eval::Evaluation;

/// One epoch's batches, each ready for a step (which reports how many images it covered).
pub(crate) trait Batches: Iterator<Item = Result<Self::Input>> {
    /// One batch as the step takes it.
    type Input;

    /// Batches in the epoch.
    fn total(&self) -> usize;

    /// Time spent waiting for batches so far.
    fn waited(&self) -> Duration {
        Duration::ZERO
    }
}

/// A model, its optimiser and the epochs already trained: where training starts (empty
/// history) or resumes.
pub struct TrainState<M> {
    /// The model, on the autodiff device.
    pub model: M,
    /// Its optimiser, with its state.
    pub optimizer: ModuleOptimizer,
    /// Metrics of the epochs already trained.
    pub history: Vec<EpochMetrics>,
    /// The learning rate of each part of the model, relative to the scheduled rate
    /// (`--backbone-lr-scale`, `--stage-lr-decay`; uniform by default).
    pub rates: cnn_transfer::LayerRates,
    /// With `ema`: the average of the model's weights so far.
    pub ema: Option<Ema<M>>,
}

/// Who hears of a run's progress: `progress` after every batch and epoch, `after_epoch` (e.g. to
/// write a checkpoint; an error stops training) after every epoch.
pub struct Hooks<'a, M> {
    /// Batch and epoch reports.
    pub progress: &'a mut dyn FnMut(Progress<'_>),
    /// Called with the model, the optimiser and the history after each epoch.
    pub after_epoch: &'a mut EpochHook<'a, M>,
}

/// The loop's parts: the configuration, the main device, the step, each epoch's batches and the
/// evaluation after each epoch.
pub(crate) struct EpochLoop<'a, S, B, E> {
    pub cfg: &'a TrainConfig,
    pub device: &'a Device,
    pub step: S,
    /// The batches of an epoch (1-based).
    pub batches: B,
    /// Validation of the model after an epoch.
    pub evaluate: E,
}

impl<S, B, E> EpochLoop<'_, S, B, E> {
    /// Trains from `state` until `cfg.epochs` or early stopping.
    ///
    /// Every source of randomness is a function of `(cfg.seed, epoch)`: batch order and
    /// augmentation by construction, and the backend's generator (dropout) is re-seeded at the
    /// start of every epoch. So a run resumed from a checkpoint repeats an uninterrupted run
    /// exactly.
    pub fn run<M, D>(mut self, state: TrainState<M>, hooks: Hooks<'_, M>) -> Result<Fitted<M>>
    where
        M: Module,
        S: Step<M, Input = D::Input>,
        D: Batches,
        B: FnMut(usize) -> Result<D>,
        E: FnMut(&M) -> Result<Evaluation>,
    {
        let TrainState {
            mut model,
            mut optimizer,
            mut history,
            rates,
            mut ema,
        } = state;
        for epoch in history.len() + 1..=self.cfg.optim.epochs {
            if early_stop(&history, self.cfg.optim.early_stop).is_some() {
                break;
            }
            let (trained, metrics) =
                self.run_epoch(model, (&mut optimizer, &rates, &mut ema), epoch, hooks.progress)?;
            tracing::info!(
                epoch,
                train_loss = metrics.train_loss,
                valid_loss = metrics.valid_loss,
                valid_accuracy = metrics.valid_accuracy,
                images_per_second = metrics.images_per_second,
                "epoch finished"
            );
            model = trained;
            history.push(metrics);
            (hooks.after_epoch)(&model, ema.as_ref().map(|e| &e.model), &optimizer, &history)?;
            (hooks.progress)(Progress::Epoch(history.last().expect("just pushed")));
        }
        Ok(Fitted::new((model, ema.map(|e| e.model)), optimizer, history, self.cfg))
    }

    /// One epoch (1-based `epoch`, after `epoch − 1` trained ones): every batch through the step
    /// and the optimiser, then the evaluation.
    fn run_epoch<M, D>(
        &mut self,
        mut model: M,
        (optimizer, rates, ema): (&mut ModuleOptimizer, &cnn_transfer::LayerRates, &mut Option<Ema<M>>),
        epoch: usize,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(M, EpochMetrics)>
    where
        M: Module,
        S: Step<M, Input = D::Input>,
        D: Batches,
        B: FnMut(usize) -> Result<D>,
        E: FnMut(&M) -> Result<Evaluation>,
    {
        let cfg = self.cfg;
        self.device
            .seed(derive(cfg.task.seed, &[stream::BACKEND, epoch as u64]));
        let started = Instant::now();
        let mut batches = (self.batches)(epoch)?;
        let total = batches.total();
        // With accumulation, every `k` batches (the epoch's last group perhaps fewer) make one
        // update; each batch's loss is weighted by its share of the group, so the update is
        // that of one batch of the group's images.
        let k = cfg.optim.accumulate.max(1);
        let updates_before = (epoch - 1) * total.div_ceil(k);
        let mut accumulated = GradientsAccumulator::new();
        let (mut loss_sum, mut correct, mut top5, mut images, mut lr) = (0f64, 0usize, 0usize, 0usize, cfg.optim.lr);
        for (b, batch) in batches.by_ref().enumerate() {
            if crate::run::interrupt::stop_requested() {
                tracing::info!(epoch, batches = b, "stopped on request");
                return Err(interrupted(epoch, b));
            }
            let group = k.min(total.max(b + 1) - (b - b % k));
            // The step's own count: across processes, the batch is more than this slice.
            let step = self.step.step(&model, batch?, 1.0 / group as f32)?;
            let n = step.images;
            if !step.loss.is_finite() {
                tracing::warn!(epoch, batch = b + 1, loss = step.loss, "training diverged");
                return Err(TrainError::Diverged {
                    epoch,
                    batch: b + 1,
                    loss: step.loss,
                });
            }
            lr = learning_rate(cfg, epoch, b / k, total.div_ceil(k));
            tracing::trace!(epoch, batch = b + 1, loss = step.loss, lr, "batch");
            let update = if k == 1 {
                Some(step.grads)
            } else {
                accumulated.accumulate(&model, step.grads);
                ((b + 1) % k == 0 || b + 1 >= total).then(|| accumulated.grads())
            };
            if let Some(grads) = update {
                model = optimizer.step(rates.at(lr), model, grads);
                if let Some(average) = ema.take() {
                    *ema = Some(average.after_update(&model, updates_before + b / k + 1));
                }
            }
            (loss_sum, correct, top5, images) = (
                loss_sum + f64::from(step.loss) * n as f64,
                correct + step.correct,
                top5 + step.top5,
                images + n,
            );
            progress(Progress::Batch {
                epoch,
                batch: b + 1,
                batches: total,
                loss: step.loss,
                lr,
            });
        }
        let train_seconds = started.elapsed().as_secs_f64();
        let waited = batches.waited().as_secs_f64();
        drop(batches);
        let eval = (self.evaluate)(&model)?;
        let ema_eval = ema.as_ref().map(|e| (self.evaluate)(&e.model)).transpose()?;
        let seen = images.max(1) as f64;
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen,
            train_accuracy: correct as f64 / seen,
            train_top5: top5 as f64 / seen,
            valid_loss: eval.loss,
            valid_accuracy: eval.accuracy,
            valid_top5: eval.top5,
            lr,
            train_seconds,
            images_per_second: images as f64 / train_seconds.max(1e-9),
            data_wait_share: waited / train_seconds.max(1e-9),
            ema_valid_loss: ema_eval.as_ref().map(|e| e.loss),
            ema_valid_accuracy: ema_eval.as_ref().map(|e| e.accuracy),
        };
        Ok((model, metrics))
    }
}

/// The error that ends a loop stopped by [`crate::run::interrupt`] before batch `batches + 1` of
/// `epoch` (the checkpoint of epoch `epoch − 1` is the last); the caller that knows the run
/// folder fills in `dir`.
fn interrupted(epoch: usize, batches: usize) -> TrainError {
    TrainError::Interrupted {
        dir: std::path::PathBuf::new(),
        epoch,
        batches,
        checkpoint_epoch: epoch - 1,
    }
}
