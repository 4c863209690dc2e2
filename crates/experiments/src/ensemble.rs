//! `cnn experiment ensemble`: several networks trained alike but for their seed, evaluated alone,
//! as an ensemble (averaged probabilities) and as an ensemble of ten-crop predictions.

use std::path::PathBuf;

use burn::tensor::Device;

use crate::reuse::train_or_reuse;
use cnn_trainer::RunFolder;
use cnn_trainer::atomic::write_file;
use cnn_trainer::config::TrainConfig;
use cnn_trainer::error::{Result, TrainError};
use cnn_trainer::eval::ensemble::{EnsembleEvaluation, evaluate_runs};
use cnn_trainer::fit::Progress;

/// What the ensemble experiment trains.
#[derive(Clone, Debug)]
pub struct EnsembleOptions {
    /// The preset every member is trained with ([`cnn_trainer::config::presets`]).
    pub preset: String,
    /// Number of members; member k (from 0) is trained with seed `seed + k`.
    pub members: usize,
    /// The first member's seed.
    pub seed: u64,
    /// Epochs per member [default: the preset's].
    pub epochs: Option<usize>,
    /// Training images per member (stratified sample) [default: all].
    pub subset: Option<usize>,
    /// Folder holding the data sets.
    pub data_dir: Option<PathBuf>,
    /// Data workers.
    pub workers: usize,
    /// Input size in pixels [default: the preset's rule].
    pub input_size: Option<usize>,
    /// Also evaluate with ten crops.
    pub ten_crop: bool,
    /// Output folder: one run folder per member (`member-1`, …), `ensemble.csv`, `ensemble.md`.
    pub out: PathBuf,
}

impl EnsembleOptions {
    /// `members` members of `preset` with seeds 42, 43, …, ten crops included, into
    /// `runs/ensemble-<preset>`.
    pub fn new(preset: &str, members: usize) -> Self {
        Self {
            preset: preset.to_string(),
            members,
            seed: 42,
            epochs: None,
            subset: None,
            data_dir: None,
            workers: TrainConfig::new("x", "y").loader.workers,
            input_size: None,
            ten_crop: true,
            out: PathBuf::from(format!("runs/ensemble-{preset}")),
        }
    }

    /// The training config of member `k` (from 0).
    pub fn config(&self, k: usize) -> Result<TrainConfig> {
        let mut cfg = cnn_trainer::config::presets::preset(&self.preset)?;
        cfg.task.seed = self.seed + k as u64;
        cfg.task.subset = self.subset.or(cfg.task.subset);
        cfg.task.data_dir = self.data_dir.clone();
        cfg.task.input_size = self.input_size.or(cfg.task.input_size);
        cfg.optim.epochs = self.epochs.unwrap_or(cfg.optim.epochs);
        cfg.loader.workers = self.workers;
        Ok(cfg)
    }

    /// Checks the member count and every member's config before any training starts.
    pub fn validate(&self) -> Result<()> {
        if self.members < 2 {
            return Err(TrainError::InvalidOption {
                option: "members",
                reason: format!("must be at least 2 for an ensemble, not {}", self.members),
            });
        }
        (0..self.members).try_for_each(|k| self.config(k)?.validate())
    }
}

/// Trains the members (finished ones are reused, interrupted ones resumed), evaluates them and
/// writes `ensemble.csv` and `ensemble.md` (members, ensemble, ensemble + ten crops).
pub fn ensemble(
    opts: &EnsembleOptions,
    device: &Device,
    progress: &mut dyn FnMut(&str, Progress<'_>),
) -> Result<EnsembleEvaluation> {
    opts.validate()?;
    let _lock = cnn_trainer::FolderLock::acquire(&opts.out)?;
    let mut runs = Vec::new();
    for k in 0..opts.members {
        let name = format!("member-{}", k + 1);
        let dir = opts.out.join(&name);
        train_or_reuse(&name, &opts.config(k)?, &dir, device, &mut |p| progress(&name, p))?;
        runs.push(RunFolder::open(&dir)?);
    }
    progress(
        "ensemble",
        Progress::Note("evaluating the members and the ensemble".into()),
    );
    let result = evaluate_runs(&runs, None, None, opts.ten_crop, device)?;
    write_file(&opts.out.join("ensemble.csv"), table_csv(&result).as_bytes())?;
    write_file(&opts.out.join("ensemble.md"), table_markdown(&result).as_bytes())?;
    Ok(result)
}

/// `(name, top-1, top-5, ten-crop top-1, ten-crop top-5)` for each member, then the ensemble.
fn table_rows(result: &EnsembleEvaluation) -> Vec<(String, [Option<f64>; 4])> {
    let crop = |e: Option<&cnn_trainer::Evaluation>| [e.map(|e| e.accuracy), e.map(|e| e.top5)];
    let mut rows: Vec<(String, [Option<f64>; 4])> = result
        .members
        .iter()
        .map(|m| {
            let name = m
                .run
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            let [c1, c5] = crop(m.ten_crop.as_ref());
            (name, [Some(m.single.accuracy), Some(m.single.top5), c1, c5])
        })
        .collect();
    let s = &result.single.summary;
    let [c1, c5] = crop(result.ten_crop.as_ref().map(|e| &e.summary));
    rows.push((
        format!("ensemble of {}", result.members.len()),
        [Some(s.accuracy), Some(s.top5), c1, c5],
    ));
    rows
}

fn table_csv(result: &EnsembleEvaluation) -> String {
    let mut csv = String::from("member,top1,top5,ten_crop_top1,ten_crop_top5\n");
    for (name, cells) in table_rows(result) {
        let cells: Vec<String> = cells
            .iter()
            .map(|c| c.map_or(String::new(), |v| format!("{v:.6}")))
            .collect();
        csv.push_str(&format!("{name},{}\n", cells.join(",")));
    }
    csv
}

/// The table as Markdown, ready for the README.
pub fn table_markdown(result: &EnsembleEvaluation) -> String {
    let mut md = String::from(
        "| network | top-1 | top-5 | 10-crop top-1 | 10-crop top-5 |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for (name, cells) in table_rows(result) {
        let cells: Vec<String> = cells
            .iter()
            .map(|c| c.map_or("-".into(), |v| format!("{v:.4}")))
            .collect();
        md.push_str(&format!("| {name} | {} |\n", cells.join(" | ")));
    }
    md
}
