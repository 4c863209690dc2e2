//! `cargo xtask speedrun [--seeds 1,2,3] [--preset NAME] [--out DIR] [--release] [cnn train flags…]`:
//! the README's headline result. It builds `cnn` (timed: compile), imports Fashion-MNIST into the
//! data cache (timed: import — from Debian's `dataset-fashion-mnist` in
//! `/usr/share/datasets/fashion-mnist` when installed, else downloaded with its checksums), then
//! trains the `speedrun` preset once per seed and prints each run's test accuracy and its wall
//! time from the start of training to the end of the final test (`summary.json`'s
//! `seconds_this_session`, which also counts reading the data set from the cache), against the
//! goal: 0.94 in 15 minutes.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The goal of the speedrun: test accuracy and seconds of training and testing.
const GOAL: (f64, f64) = (0.94, 15.0 * 60.0);

/// Where Debian's `dataset-fashion-mnist` puts the files.
const DEBIAN_FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// What `speedrun` was asked for.
#[derive(Debug, PartialEq)]
pub struct Options {
    /// One run per seed.
    pub seeds: Vec<u64>,
    /// The recipe.
    pub preset: String,
    /// Folder of the run folders (`<out>/seed-<seed>`).
    pub out: PathBuf,
    /// Build with the release profile.
    pub release: bool,
    /// Flags passed on to `cnn train`.
    pub train_args: Vec<String>,
}

/// Reads the options; unknown flags go to `cnn train`.
pub fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        seeds: vec![1],
        preset: "speedrun".into(),
        out: PathBuf::from(format!("runs/speedrun-{}", unix_seconds())),
        release: false,
        train_args: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seeds" | "--seed" => {
                o.seeds = value()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("--seeds: '{s}' is not a seed")))
                    .collect::<Result<_, _>>()?;
            }
            "--preset" => o.preset = value()?,
            "--out" => o.out = PathBuf::from(value()?),
            "--release" => o.release = true,
            _ => o.train_args.push(arg.clone()),
        }
    }
    Ok(o)
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `"key": number` from a JSON object written by `cnn train` (xtask has no JSON parser).
pub fn json_number(text: &str, key: &str) -> Option<f64> {
    let start = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// One line of the report: the run's figures against the goal.
pub fn verdict(seed: u64, accuracy: f64, seconds: f64) -> String {
    let met = accuracy >= GOAL.0 && seconds <= GOAL.1;
    format!(
        "seed {seed}: test accuracy {accuracy:.4} in {seconds:.1} s ({:.1} min) of training and testing: {}",
        seconds / 60.0,
        if met { "goal met (>= 0.94 in <= 15 min)" } else { "goal MISSED (>= 0.94 in <= 15 min)" }
    )
}

fn cargo_cnn(release: bool, build_only: bool) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([if build_only { "build" } else { "run" }, "--quiet", "-p", "cnn-cli", "--bin", "cnn"]);
    if release {
        cmd.arg("--release");
    }
    if !build_only {
        cmd.arg("--");
    }
    cmd
}

/// Runs `cmd` to its end: `Ok` when it succeeded, else one line naming `what`.
pub(crate) fn status(what: &str, cmd: &mut Command) -> Result<(), String> {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("cannot start {what}: {e}")),
    }
}

/// Runs the speedrun.
pub fn run(args: &[String]) -> ExitCode {
    match speedrun(args) {
        Ok(all_met) if all_met => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn speedrun(args: &[String]) -> Result<bool, String> {
    let o = options(args)?;
    let clock = Instant::now();
    eprintln!("xtask: building cnn (a first build compiles burn: about 6 min on 2 cores)");
    status("the build", &mut cargo_cnn(o.release, true))?;
    let compile = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let mut import = cargo_cnn(o.release, false);
    import.args(["download", "fashion-mnist"]);
    if Path::new(DEBIAN_FASHION).join("train-images-idx3-ubyte.gz").is_file() {
        import.args(["--from", DEBIAN_FASHION]);
    }
    status("importing Fashion-MNIST", &mut import)?;
    let import = clock.elapsed().as_secs_f64();
    println!("compile {compile:.1} s, data import {import:.1} s (neither counts below)");
    let mut lines = Vec::new();
    let mut all_met = true;
    for &seed in &o.seeds {
        let dir = o.out.join(format!("seed-{seed}"));
        let mut train = cargo_cnn(o.release, false);
        train.args(["train", "--preset", &o.preset, "--seed", &seed.to_string(), "--out"]);
        train.arg(&dir).args(&o.train_args);
        status(&format!("the run of seed {seed}"), &mut train)?;
        let summary = std::fs::read_to_string(dir.join("summary.json"))
            .map_err(|e| format!("reading {}: {e}", dir.join("summary.json").display()))?;
        let figure = |key| json_number(&summary, key).ok_or_else(|| format!("summary.json has no {key}"));
        let (accuracy, seconds) = (figure("test_accuracy")?, figure("seconds_this_session")?);
        all_met &= accuracy >= GOAL.0 && seconds <= GOAL.1;
        lines.push(verdict(seed, accuracy, seconds));
    }
    println!("speedrun ({} preset, run folders in {}):", o.preset, o.out.display());
    for line in lines {
        println!("  {line}");
    }
    Ok(all_met)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn seeds_preset_and_out_are_read_and_other_flags_go_to_cnn_train() {
        let o = options(&s(&["--seeds", "1,2,3", "--out", "x", "--workers", "2", "--release"])).unwrap();
        assert_eq!(o.seeds, vec![1, 2, 3]);
        assert_eq!((o.out, o.release, o.preset.as_str()), (PathBuf::from("x"), true, "speedrun"));
        assert_eq!(o.train_args, s(&["--workers", "2"]));
        assert!(options(&s(&["--seeds", "1,x"])).unwrap_err().contains("'x'"));
        assert!(options(&s(&["--out"])).unwrap_err().contains("needs a value"));
        assert_eq!(options(&[]).unwrap().seeds, vec![1]);
    }

    #[test]
    fn figures_are_read_from_the_summary_and_judged_against_the_goal() {
        let summary = "{\n  \"epochs\": 10,\n  \"seconds_this_session\": 801.25,\n  \"test_accuracy\": 0.9431\n}";
        assert_eq!(json_number(summary, "test_accuracy"), Some(0.9431));
        assert_eq!(json_number(summary, "seconds_this_session"), Some(801.25));
        assert_eq!(json_number(summary, "test_loss"), None);
        assert!(verdict(1, 0.9431, 801.25).contains("goal met"));
        assert!(verdict(2, 0.9399, 801.25).contains("MISSED"));
        assert!(verdict(3, 0.95, 901.0).contains("MISSED"));
    }
}
