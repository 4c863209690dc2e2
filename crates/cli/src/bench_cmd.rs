//! `cnn bench`: images/s of inference and training steps, per backend, with GFLOP/s, JSON output
//! and a comparison against reference runs (`scripts/bench_pytorch.py`, `bench_onnxruntime.py`);
//! `cnn bench-compare`: several rounds of such files, median and spread per backend.

use std::path::PathBuf;

use anyhow::{Context, Result};
use cnn_experiments::{BenchCase, BenchPhase, ReferenceFile};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model to measure (repeat for several) instead of a suite.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Suite to run without --model: `perf` (the CPU performance suite, each model at its own
    /// size and batch) or `families` (one model per family, batch --batch).
    #[arg(long, default_value = "perf", value_parser = ["perf", "families"])]
    suite: String,
    /// Input size in pixels (with --model) [default: the model's own, at most 64].
    #[arg(long)]
    size: Option<usize>,
    /// Images per step (with --model or --suite families).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// infer, train or both.
    #[arg(long, default_value = "both", value_parser = ["infer", "train", "both"])]
    phase: String,
    /// Backends to measure, comma-separated (default: --device, or the build's default).
    #[arg(long, value_delimiter = ',')]
    backends: Vec<String>,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A reference run's JSON (scripts/bench_pytorch.py --variant …, scripts/bench_onnxruntime.py,
    /// or cnn bench --json): print ours vs theirs per case. Repeat it for several references:
    /// each case is then also compared with the fastest of them, named.
    #[arg(long)]
    compare: Vec<PathBuf>,
    #[command(flatten)]
    precision: crate::precision_arg::PrecisionArg,
}

pub fn run(device: Option<&str>, args: BenchArgs) -> Result<()> {
    let phases: Vec<BenchPhase> = match args.phase.as_str() {
        "both" => vec![BenchPhase::Infer, BenchPhase::Train],
        one => vec![one.parse().map_err(anyhow::Error::msg)?],
    };
    let cases = cases(&args, &phases)?;
    // Read the reference first: a wrong path should not cost a whole benchmark run.
    let references = args.compare.iter().map(|path| read_reference(path)).collect::<Result<Vec<_>>>()?;
    let backends: Vec<Option<&str>> = if args.backends.is_empty() {
        vec![device]
    } else {
        args.backends.iter().map(|b| Some(b.as_str())).collect()
    };
    let mut runs = Vec::new();
    for requested in backends {
        let (backend, device) = crate::open_device(requested)?;
        let precision = args.precision.apply(backend, cnn_models::precision::Precision::F32);
        println!(
            "{:<10} {:<6} {:>5} {:>6} {:>10} {:>10} {:>10} {:>9}  ({backend}, {precision}, {} warm-up + {} timed steps)",
            "model", "phase", "px", "batch", "median", "min", "max", "GFLOP/s", args.warmup, args.reps
        );
        let mut results = Vec::new();
        for case in &cases {
            let r = cnn_experiments::run_bench(case, &device, args.warmup, args.reps)
                .with_context(|| format!("benchmarking {}", case.model))?;
            println!(
                "{:<10} {:<6} {:>5} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>9.1}",
                case.model,
                format!("{:?}", case.phase).to_lowercase(),
                case.size,
                case.batch,
                r.median_img_s,
                r.min_img_s,
                r.max_img_s,
                r.gflops
            );
            results.push(r);
        }
        for reference in &references {
            println!("{backend} vs {}:", reference.backend);
            for line in cnn_experiments::compare_lines(&results, reference) {
                println!("  {line}");
            }
        }
        if references.len() > 1 {
            println!("{backend} vs the fastest reference per case:");
            for line in cnn_experiments::best_lines(&results, &references) {
                println!("  {line}");
            }
        }
        // bf16 figures are their own backend in the JSON, so rounds and comparisons keep them apart.
        let name = match precision {
            cnn_models::precision::Precision::F32 => backend.name().to_string(),
            other => format!("{backend}-{other}"),
        };
        runs.push((name, results));
    }
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&cnn_experiments::bench::report_json(
                &runs.iter().map(|(b, r)| (b.as_str(), r.as_slice())).collect::<Vec<_>>(),
            ))?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn cases(args: &BenchArgs, phases: &[BenchPhase]) -> Result<Vec<BenchCase>> {
    if args.models.is_empty() {
        return Ok(match args.suite.as_str() {
            "perf" => cnn_experiments::perf_suite(phases),
            _ => cnn_experiments::bench::family_suite_at(args.batch, phases),
        });
    }
    Ok(cnn_experiments::bench::model_cases(
        &args.models,
        args.size,
        args.batch,
        phases,
    )?)
}

/// A reference benchmark file, read before any measuring: a wrong path should not cost a whole
/// benchmark run.
fn read_reference(path: &std::path::Path) -> Result<ReferenceFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a benchmark file (cnn bench --json, bench_pytorch.py or bench_onnxruntime.py --out)",
            path.display()
        )
    })
}

/// `cnn bench-compare`: benchmark files of several alternating rounds (`cnn bench --json`, the
/// reference scripts' `--out`), merged per backend.
#[derive(clap::Args)]
pub struct BenchCompareArgs {
    /// The files: every round of ours and of each reference (files naming the same backend are
    /// rounds of it).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Which backend is ours [default: flex].
    #[arg(long, default_value = "flex")]
    ours: String,
}

/// Prints, per case, our median over the rounds and its range against the fastest reference's.
pub fn compare_rounds(args: BenchCompareArgs) -> Result<()> {
    let files = args.files.iter().map(|path| read_reference(path)).collect::<Result<Vec<_>>>()?;
    let merged = cnn_experiments::merge_rounds(&files);
    let backends: Vec<&str> = merged.iter().map(|(b, _)| b.as_str()).collect();
    if !backends.contains(&args.ours.as_str()) {
        anyhow::bail!("no file is of --ours {} (the files are of: {})", args.ours, backends.join(", "));
    }
    println!("{} vs the fastest other per case, img/s: median (range over rounds)", args.ours);
    for line in cnn_experiments::rounds_lines(&merged, &args.ours) {
        println!("  {line}");
    }
    Ok(())
}
