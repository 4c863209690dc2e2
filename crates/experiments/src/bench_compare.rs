//! Our benchmark against references: other runs' files (`scripts/bench_pytorch.py --variant …`,
//! `scripts/bench_onnxruntime.py`, `cnn bench --json`), one ratio per case against each, against
//! the fastest of them, and over several alternating rounds the median and spread of each
//! backend (`cnn bench-compare`, which `cargo xtask bench --rounds N` runs).

use serde::Deserialize;

use crate::bench::{BenchCase, BenchResult};

/// One case of a reference run (e.g. `scripts/bench_pytorch.py`): only what a comparison needs.
#[derive(Clone, Debug, Deserialize)]
pub struct ReferenceResult {
    /// What was measured.
    pub case: BenchCase,
    /// Median images per second.
    pub median_img_s: f64,
}

/// A benchmark file: `{"backend": …, "results": [...]}` as `cnn bench --json` and
/// `scripts/bench_pytorch.py --out` write it.
#[derive(Clone, Debug, Deserialize)]
pub struct ReferenceFile {
    /// Who measured (`flex`, `pytorch-cpu`, …).
    pub backend: String,
    /// The cases.
    pub results: Vec<ReferenceResult>,
}

/// One line per case of `ours` that `reference` also measured, e.g.
/// `resnet18 train 74.0 img/s vs 260.0 img/s = 0.28x`; cases the reference lacks are named too.
pub fn compare_lines(ours: &[BenchResult], reference: &ReferenceFile) -> Vec<String> {
    ours.iter()
        .map(
            |r| match reference.results.iter().find(|x| x.case.key() == r.case.key()) {
                Some(x) => ratio_line(r, x.median_img_s, ""),
                None => format!("{} {}: not in {}", r.case.model, phase_name(r), reference.backend),
            },
        )
        .collect()
}

/// One line per case of `ours` against the fastest of `references` that measured it, naming it,
/// e.g. `resnet18 train 74.0 img/s vs 260.0 img/s (pytorch-cpu-channels_last) = 0.28x`: the
/// bar is the best a user can pick, not one way of running PyTorch.
pub fn best_lines(ours: &[BenchResult], references: &[ReferenceFile]) -> Vec<String> {
    ours.iter()
        .map(|r| {
            let fastest = references
                .iter()
                .filter_map(|f| {
                    let x = f.results.iter().find(|x| x.case.key() == r.case.key())?;
                    Some((x.median_img_s, f.backend.as_str()))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            match fastest {
                Some((img_s, backend)) => ratio_line(r, img_s, &format!(" ({backend})")),
                None => format!("{} {}: in no reference", r.case.model, phase_name(r)),
            }
        })
        .collect()
}

fn phase_name(r: &BenchResult) -> String {
    format!("{:?}", r.case.phase).to_lowercase()
}

/// `model phase OURS img/s vs THEIRS img/s{who} = RATIOx`.
fn ratio_line(r: &BenchResult, theirs: f64, who: &str) -> String {
    let ratio = r.median_img_s / theirs.max(1e-12);
    // Small ratios keep two significant digits (0.0046x, not 0.00x).
    let digits = if ratio >= 0.1 {
        2
    } else {
        (1.0 - ratio.log10().floor()).min(6.0) as usize
    };
    format!(
        "{} {} {:.1} img/s vs {theirs:.1} img/s{who} = {ratio:.digits$}x",
        r.case.model,
        phase_name(r),
        r.median_img_s
    )
}

/// One backend's rounds of one case: the median of the rounds' medians and their range.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundsOfCase {
    /// The case.
    pub case: BenchCase,
    /// The median over rounds of each round's median images per second.
    pub median_img_s: f64,
    /// The slowest round's median.
    pub min_img_s: f64,
    /// The fastest round's median.
    pub max_img_s: f64,
    /// How many rounds measured it.
    pub rounds: usize,
}

/// Files of several rounds merged per backend (files with the same `backend` are rounds of it),
/// each case as [`RoundsOfCase`]; backends in the order they first appear.
pub fn merge_rounds(files: &[ReferenceFile]) -> Vec<(String, Vec<RoundsOfCase>)> {
    // Per backend, in order of appearance: each case with every round's median.
    let mut backends: Vec<(&str, Vec<(BenchCase, Vec<f64>)>)> = Vec::new();
    for file in files {
        let at = match backends.iter().position(|(b, _)| *b == file.backend) {
            Some(at) => at,
            None => {
                backends.push((&file.backend, Vec::new()));
                backends.len() - 1
            }
        };
        let cases = &mut backends[at].1;
        for r in &file.results {
            match cases.iter_mut().find(|(c, _)| c.key() == r.case.key()) {
                Some((_, values)) => values.push(r.median_img_s),
                None => cases.push((r.case.clone(), vec![r.median_img_s])),
            }
        }
    }
    backends
        .into_iter()
        .map(|(backend, cases)| {
            let merged = cases.into_iter().map(|(case, values)| of_rounds(case, values)).collect();
            (backend.to_string(), merged)
        })
        .collect()
}

fn of_rounds(case: BenchCase, mut values: Vec<f64>) -> RoundsOfCase {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    // An even count takes the mean of the middle two, as `statistics.median`.
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    RoundsOfCase {
        case,
        median_img_s: median,
        min_img_s: values[0],
        max_img_s: values[n - 1],
        rounds: n,
    }
}

/// The rounds' table: per case of `ours`, our median and range, the fastest other backend's
/// (by median, named) and the ratio of the medians, e.g.
/// `resnet18 train 210.0 (205.0–214.0, 3 rounds) vs 264.0 (250.0–270.0, 3 rounds)
/// pytorch-cpu-compile = 0.80x`.
pub fn rounds_lines(merged: &[(String, Vec<RoundsOfCase>)], ours: &str) -> Vec<String> {
    let Some((_, our_cases)) = merged.iter().find(|(b, _)| b == ours) else {
        return vec![format!("no results of {ours} among the files")];
    };
    let range = |r: &RoundsOfCase| {
        let plural = if r.rounds == 1 { "" } else { "s" };
        format!(
            "{:.1} ({:.1}–{:.1}, {} round{plural})",
            r.median_img_s, r.min_img_s, r.max_img_s, r.rounds
        )
    };
    our_cases
        .iter()
        .map(|o| {
            let phase = format!("{:?}", o.case.phase).to_lowercase();
            let best = merged
                .iter()
                .filter(|(b, _)| b != ours)
                .filter_map(|(b, cases)| cases.iter().find(|c| c.case.key() == o.case.key()).map(|c| (b, c)))
                .max_by(|x, y| x.1.median_img_s.total_cmp(&y.1.median_img_s));
            match best {
                Some((backend, theirs)) => format!(
                    "{} {phase} {} vs {} {backend} = {:.2}x",
                    o.case.model,
                    range(o),
                    range(theirs),
                    o.median_img_s / theirs.median_img_s.max(1e-12)
                ),
                None => format!("{} {phase} {}: in no reference", o.case.model, range(o)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchPhase, perf_suite, report_json};

    fn result(model: &str, phase: BenchPhase, img_s: f64) -> BenchResult {
        let case = perf_suite(&[phase]).into_iter().find(|c| c.model == model).unwrap();
        BenchResult {
            case,
            median_img_s: img_s,
            min_img_s: img_s,
            max_img_s: img_s,
            repetitions: 1,
            mult_adds_per_image: 1,
            gflops: 0.0,
        }
    }

    #[test]
    fn comparison_pairs_cases_and_states_the_ratio() {
        let reference: ReferenceFile = serde_json::from_str(
            r#"{"backend": "pytorch-cpu", "results": [
                {"case": {"model": "resnet18", "size": 64, "batch": 32, "num_classes": 10,
                          "phase": "train", "part": "whole"}, "median_img_s": 260.0},
                {"case": {"model": "resnet18", "size": 64, "batch": 32, "num_classes": 10,
                          "phase": "infer"}, "median_img_s": 938.0},
                {"case": {"model": "resnet20", "size": 32, "batch": 128, "num_classes": 10,
                          "phase": "train"}, "median_img_s": 150.0}]}"#,
        )
        .unwrap();
        let lines = compare_lines(
            &[
                result("resnet18", BenchPhase::Train, 74.0),
                result("resnet18", BenchPhase::Infer, 266.0),
                result("vgg16", BenchPhase::Train, 10.0),
                result("resnet20", BenchPhase::Train, 0.7),
            ],
            &reference,
        );
        assert_eq!(lines[0], "resnet18 train 74.0 img/s vs 260.0 img/s = 0.28x");
        assert_eq!(lines[1], "resnet18 infer 266.0 img/s vs 938.0 img/s = 0.28x");
        assert_eq!(lines[2], "vgg16 train: not in pytorch-cpu");
        assert_eq!(lines[3], "resnet20 train 0.7 img/s vs 150.0 img/s = 0.0047x");
    }

    #[test]
    fn the_fastest_reference_per_case_is_the_bar_and_is_named() {
        let file = |backend: &str, train: f64, infer: Option<f64>| -> ReferenceFile {
            let case = |phase: &str, img_s: f64| {
                serde_json::json!({"case": {"model": "resnet18", "size": 64, "batch": 32,
                    "num_classes": 10, "phase": phase, "part": "whole"}, "median_img_s": img_s})
            };
            let mut results = vec![case("train", train)];
            results.extend(infer.map(|i| case("infer", i)));
            serde_json::from_value(serde_json::json!({"backend": backend, "results": results})).unwrap()
        };
        let references = [
            file("pytorch-cpu", 200.0, Some(700.0)),
            file("pytorch-cpu-channels_last", 250.0, Some(650.0)),
            file("pytorch-cpu-compile", 220.0, None),
        ];
        let lines = best_lines(
            &[
                result("resnet18", BenchPhase::Train, 200.0),
                result("resnet18", BenchPhase::Infer, 1400.0),
                result("vgg16", BenchPhase::Train, 10.0),
            ],
            &references,
        );
        assert_eq!(
            lines[0],
            "resnet18 train 200.0 img/s vs 250.0 img/s (pytorch-cpu-channels_last) = 0.80x"
        );
        assert_eq!(
            lines[1],
            "resnet18 infer 1400.0 img/s vs 700.0 img/s (pytorch-cpu) = 2.00x"
        );
        assert_eq!(lines[2], "vgg16 train: in no reference");
    }

    #[test]
    fn rounds_merge_per_backend_into_median_and_range_against_the_fastest_other() {
        let file = |backend: &str, train: f64| -> ReferenceFile {
            serde_json::from_value(serde_json::json!({"backend": backend, "results": [
                {"case": {"model": "resnet20", "size": 32, "batch": 128, "num_classes": 10,
                          "phase": "train", "part": "whole"}, "median_img_s": train}]}))
            .unwrap()
        };
        let files = [
            file("flex", 600.0),
            file("pytorch-cpu", 620.0),
            file("pytorch-cpu-compile", 800.0),
            file("flex", 580.0),
            file("pytorch-cpu", 630.0),
            file("pytorch-cpu-compile", 790.0),
            file("flex", 640.0),
            file("pytorch-cpu", 500.0),
            file("pytorch-cpu-compile", 700.0),
        ];
        let merged = merge_rounds(&files);
        let names: Vec<&str> = merged.iter().map(|(b, _)| b.as_str()).collect();
        assert_eq!(names, ["flex", "pytorch-cpu", "pytorch-cpu-compile"]);
        let flex = &merged[0].1[0];
        assert_eq!(
            (flex.median_img_s, flex.min_img_s, flex.max_img_s, flex.rounds),
            (600.0, 580.0, 640.0, 3)
        );
        let lines = rounds_lines(&merged, "flex");
        assert_eq!(
            lines,
            [
                "resnet20 train 600.0 (580.0–640.0, 3 rounds) vs 790.0 (700.0–800.0, 3 rounds) pytorch-cpu-compile = 0.76x"
            ]
        );
        // Two rounds: the mean of the two.
        assert_eq!(merge_rounds(&files[..4])[0].1[0].median_img_s, 590.0);
        assert!(rounds_lines(&merge_rounds(&files[..2]), "flex")[0].contains("600.0 (600.0–600.0, 1 round) vs"));
        assert_eq!(
            rounds_lines(&merged, "ndarray"),
            ["no results of ndarray among the files"]
        );
    }

    #[test]
    fn a_report_of_one_backend_reads_back_as_a_reference() {
        let ours = [result("resnet18", BenchPhase::Train, 74.0)];
        let doc = report_json(&[("flex", &ours)]);
        assert!(doc["cpu"].as_str().is_some_and(|c| !c.is_empty()));
        let back: ReferenceFile = serde_json::from_value(doc).unwrap();
        assert_eq!(back.backend, "flex");
        assert_eq!(
            compare_lines(&ours, &back),
            ["resnet18 train 74.0 img/s vs 74.0 img/s = 1.00x"]
        );
        let two = report_json(&[("flex", &ours), ("ndarray", &ours)]);
        assert_eq!(two["runs"].as_array().map(Vec::len), Some(2));
    }
}
