//! The transfer experiment's outputs: one CSV row per run, the mean ± standard deviation
//! table, and the plot of test accuracy against labelled images per class.

use std::path::Path;

use super::method::{Method, TransferRow};
use cnn_trainer::atomic::write_file;
use cnn_trainer::error::Result;
use cnn_trainer::report::plot::{Series, line_chart};

/// One cell of the table: a method at one size, over its seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// Labelled images per class.
    pub per_class: usize,
    /// The method.
    pub method: Method,
    /// Mean test accuracy over the seeds.
    pub mean: f64,
    /// Sample standard deviation over the seeds (0 with one seed).
    pub std: f64,
    /// Runs in the cell.
    pub runs: usize,
    /// Mean training seconds of a run.
    pub seconds: f64,
}

/// The cells of `rows`, by size (ascending), then in `methods`' order.
pub fn summarise(methods: &[Method], rows: &[TransferRow]) -> Vec<Cell> {
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.per_class).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut cells = Vec::new();
    for n in sizes {
        for &method in methods {
            let runs: Vec<&TransferRow> = rows.iter().filter(|r| r.per_class == n && r.method == method).collect();
            if runs.is_empty() {
                continue;
            }
            let k = runs.len() as f64;
            let mean = runs.iter().map(|r| r.test_accuracy).sum::<f64>() / k;
            let var = if runs.len() > 1 {
                runs.iter().map(|r| (r.test_accuracy - mean).powi(2)).sum::<f64>() / (k - 1.0)
            } else {
                0.0
            };
            cells.push(Cell {
                per_class: n,
                method,
                mean,
                std: var.sqrt(),
                runs: runs.len(),
                seconds: runs.iter().map(|r| r.train_seconds).sum::<f64>() / k,
            });
        }
    }
    cells
}

/// `transfer.csv` (one row per run), `transfer.md` (mean ± std per cell, the best of each size
/// in bold, with the mean seconds of a run) and `transfer.png` in `out`.
pub fn write_outputs(out: &Path, methods: &[Method], rows: &[TransferRow]) -> Result<()> {
    let mut csv = String::from("per_class,method,seed,test_accuracy,train_seconds\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{:.6},{:.3}\n",
            r.per_class,
            r.method.name(),
            r.seed,
            r.test_accuracy,
            r.train_seconds
        ));
    }
    write_file(&out.join("transfer.csv"), csv.as_bytes())?;
    let cells = summarise(methods, rows);
    write_file(&out.join("transfer.md"), markdown(methods, &cells).as_bytes())?;
    let series: Vec<Series> = methods
        .iter()
        .map(|&m| {
            let mine: Vec<&Cell> = cells.iter().filter(|c| c.method == m).collect();
            Series {
                spread: mine.iter().map(|c| c.std).collect(),
                ..Series::new(m.heading(), mine.iter().map(|c| (c.per_class as f64, c.mean)).collect())
            }
        })
        .collect();
    line_chart(
        &out.join("transfer.png"),
        "transfer with few labels: test accuracy (mean ± std over seeds)",
        "labelled images per class",
        "test accuracy",
        &series,
    )
}

/// The mean ± std table, one row per size, the best mean of each row in bold.
pub fn markdown(methods: &[Method], cells: &[Cell]) -> String {
    let mut md = format!(
        "| labelled images per class | {} |\n| ---: |{}\n",
        methods.iter().map(|m| m.heading()).collect::<Vec<_>>().join(" | "),
        " ---: |".repeat(methods.len())
    );
    let mut sizes: Vec<usize> = cells.iter().map(|c| c.per_class).collect();
    sizes.dedup();
    for n in sizes {
        let row: Vec<&Cell> = cells.iter().filter(|c| c.per_class == n).collect();
        let best = row.iter().map(|c| c.mean).fold(f64::MIN, f64::max);
        let text: Vec<String> = methods
            .iter()
            .map(|&m| match row.iter().find(|c| c.method == m) {
                Some(c) => {
                    let value = format!("{:.4} ± {:.4}", c.mean, c.std);
                    let value = if c.mean == best { format!("**{value}**") } else { value };
                    format!("{value} ({} s)", seconds(c.seconds))
                }
                None => "-".into(),
            })
            .collect();
        md.push_str(&format!("| {n} | {} |\n", text.join(" | ")));
    }
    md
}

/// Seconds, to two significant figures below 10 and whole above.
fn seconds(s: f64) -> String {
    if s < 10.0 { format!("{s:.1}") } else { format!("{s:.0}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(per_class: usize, method: Method, seed: u64, test_accuracy: f64) -> TransferRow {
        TransferRow {
            per_class,
            method,
            seed,
            test_accuracy,
            train_seconds: 2.0,
        }
    }

    #[test]
    fn cells_are_mean_and_sample_std_over_seeds_and_the_best_is_bold() {
        let methods = [Method::Scratch, Method::FinetuneAll];
        let rows = [
            row(10, Method::Scratch, 1, 0.5),
            row(10, Method::Scratch, 2, 0.7),
            row(10, Method::FinetuneAll, 1, 0.8),
            row(10, Method::FinetuneAll, 2, 0.9),
            row(5, Method::Scratch, 1, 0.4),
        ];
        let cells = summarise(&methods, &rows);
        assert_eq!(cells[0].per_class, 5);
        assert_eq!((cells[0].runs, cells[0].std), (1, 0.0));
        let scratch = &cells[1];
        assert!((scratch.mean - 0.6).abs() < 1e-12);
        assert!((scratch.std - 0.02f64.sqrt()).abs() < 1e-12, "{}", scratch.std);
        let md = markdown(&methods, &cells);
        assert!(
            md.contains("| 10 | 0.6000 ± 0.1414 (2.0 s) | **0.8500 ± 0.0707** (2.0 s) |"),
            "{md}"
        );
        assert!(md.contains("| 5 | **0.4000 ± 0.0000** (2.0 s) | - |"), "{md}");
    }

    #[test]
    fn outputs_are_written_with_one_csv_row_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            row(10, Method::Scratch, 42, 0.5),
            row(10, Method::Discriminative, 42, 0.75),
        ];
        write_outputs(dir.path(), &Method::ALL, &rows).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("transfer.csv")).unwrap();
        assert_eq!(
            csv,
            "per_class,method,seed,test_accuracy,train_seconds\n10,scratch,42,0.500000,2.000\n10,discriminative,42,0.750000,2.000\n"
        );
        assert!(image::open(dir.path().join("transfer.png")).is_ok());
    }
}
