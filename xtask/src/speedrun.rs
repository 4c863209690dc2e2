//! `cargo xtask speedrun [--seeds 1,2,3] [--preset NAME] [--out DIR] [--release] [cnn train flags…]`:
//! the README's headline result. It builds `cnn` (timed: compile), imports Fashion-MNIST into the
//! data cache (timed: import — from Debian's `dataset-fashion-mnist` in
//! `/usr/share/datasets/fashion-mnist` when installed, else downloaded with its checksums), then
//! trains the `speedrun` preset (or `--preset`) once per seed and prints each run's test accuracy
//! and its wall time from the start of training to the end of the final test (`summary.json`'s
//! `seconds_this_session`, which also counts reading the data set from the cache), against the
//! preset's goal: 0.94 in 15 minutes for `speedrun`, 0.95 in an hour for `speedrun-hour`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The goals, by preset: test accuracy and seconds of training and testing. Other presets run
/// and report without a verdict.
const GOALS: &[(&str, Goal)] = &[
    ("speedrun", Goal { accuracy: 0.94, seconds: 15.0 * 60.0 }),
    ("speedrun-hour", Goal { accuracy: 0.95, seconds: 60.0 * 60.0 }),
];

/// A speedrun's goal: at least this test accuracy within this many seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goal {
    /// The least test accuracy.
    pub accuracy: f64,
    /// The most seconds of training and testing.
    pub seconds: f64,
}

impl Goal {
    /// The goal of a built-in preset, if it has one.
    pub fn of(preset: &str) -> Option<Goal> {
        GOALS.iter().find(|(name, _)| *name == preset).map(|(_, goal)| *goal)
    }

    fn met(&self, accuracy: f64, seconds: f64) -> bool {
        accuracy >= self.accuracy && seconds <= self.seconds
    }
}

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

/// One line of the report: the run's figures against the goal, if there is one.
pub fn verdict(seed: u64, accuracy: f64, seconds: f64, goal: Option<Goal>) -> String {
    let judged = match goal {
        Some(g) => format!(
            ": goal {} (>= {} in <= {} min)",
            if g.met(accuracy, seconds) { "met" } else { "MISSED" },
            g.accuracy,
            g.seconds / 60.0
        ),
        None => String::new(),
    };
    format!(
        "seed {seed}: test accuracy {accuracy:.4} in {seconds:.1} s ({:.1} min) of training and testing{judged}",
        seconds / 60.0
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
    let goal = Goal::of(&o.preset);
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
        all_met &= goal.is_none_or(|g| g.met(accuracy, seconds));
        lines.push(verdict(seed, accuracy, seconds, goal));
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
        let speedrun = Goal::of("speedrun");
        assert!(verdict(1, 0.9431, 801.25, speedrun).contains("goal met (>= 0.94 in <= 15 min)"));
        assert!(verdict(2, 0.9399, 801.25, speedrun).contains("MISSED"));
        assert!(verdict(3, 0.95, 901.0, speedrun).contains("MISSED"));
        let hour = Goal::of("speedrun-hour");
        assert!(verdict(1, 0.9431, 801.25, hour).contains("goal MISSED (>= 0.95 in <= 60 min)"));
        assert!(verdict(1, 0.9502, 3590.0, hour).contains("goal met"));
        assert!(verdict(1, 0.9502, 3601.0, hour).contains("MISSED"));
        let other = verdict(1, 0.93, 2000.0, Goal::of("resnet20-fashion"));
        assert!(!other.contains("goal"), "{other}");
    }
}
