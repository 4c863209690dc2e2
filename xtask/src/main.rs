//! `cargo xtask …`: thin project automation. It builds and runs the `cnn` binary with cargo;
//! it has no dependencies, so it compiles in about a second.
//!
//! ```text
//! cargo xtask train [--device flex|ndarray|wgpu] [--features F] [--release] [cnn train flags…]
//! cargo xtask bench [--device flex|ndarray|wgpu] [--features F] [--release] [cnn bench flags…]
//! cargo xtask download <mnist|fashion-mnist|cifar10|cifar100> [--from DIR] [--data-dir DIR]
//! cargo xtask test [cargo test arguments…]
//! cargo xtask speedrun [--seeds 1,2,3] [--preset NAME] [--out DIR] [--release] [cnn train flags…]
//! cargo xtask cycles [WORKSPACE]
//! cargo xtask experiment degradation [--release] [--subset N] [--epochs N] [--out DIR] …
//! ```
//!
//! `test` is the README's test command (see [`test_cmd`]): system packages, then
//! `cargo test --workspace --features wgpu,mpi,fault-injection` (the last turns on the crash-safety tests' fault points), then the list of tests that could not run.
//!
//! `speedrun` trains the `speedrun` preset on Fashion-MNIST per seed and judges each run against
//! the goal, 0.94 test accuracy in 15 minutes (see [`speedrun`]).
//!
//! `cycles` lists the files of any crate that import each other in a circle (see [`cycles`]).
//!
//! `train --preset NAME` runs a recipe from `crates/trainer/presets/*.toml` (`lenet5-mnist5k`,
//! `lenet5-fashion`, `resnet20-fashion`); `experiment degradation` trains plain-20/56 and
//! ResNet-20/56 on Fashion-MNIST and writes `degradation.png` and `.csv` (about 30 min on
//! 2 cores with the defaults).
//!
//! `train` runs `cnn train --model lenet5 --dataset mnist-5k` unless the flags say otherwise;
//! `bench` runs `cnn bench`: the CPU performance suite (LeNet-5, ResNet-20, ResNet-18, VGG-16,
//! GoogLeNet, AlexNet's convolutional part; training and inference) on flex and ndarray, or on
//! `--device` only, and writes `target/bench.json` (`target/bench-<device>.json`) unless `--json`
//! is given; `--compare FILE` (repeatable) adds ours-vs-reference ratios from
//! `scripts/bench_pytorch.py --variant eager|channels_last|compile --out` or
//! `scripts/bench_onnxruntime.py --out`, and with several, against the fastest of them per case.
//! `download` runs `cnn download`:
//! checksums, a progress bar, atomic placement; `--from DIR` imports local copies.
//! `--device ndarray|wgpu` also enables that cargo feature for the build. The build uses the
//! dev profile, whose dependencies are fully optimised (see the workspace `Cargo.toml`), so it
//! shares burn's build with `cargo test`; `--release` uses the release profile instead.

mod bench_rounds;
mod cycles;
mod speedrun;
mod test_cmd;

use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask train [--device flex|ndarray|wgpu] [--features F] [--release] \
[--preset NAME] [--model NAME] [--dataset NAME] [--epochs N] [--resume DIR] [cnn train flags…]
       cargo xtask bench [--device flex|ndarray|wgpu] [--features F] [--release] \
[--model NAME]... [--suite perf|families] [--size N] [--batch N] [--phase infer|train|both] [--warmup N] [--reps N] \
[--json FILE] [--compare REFERENCE.json]... \
[--rounds N [--python PY] [--references eager,channels_last,compile,ort]]
       cargo xtask download <mnist|fashion-mnist|cifar10|cifar100> [--from DIR] [--data-dir DIR]
       cargo xtask test [cargo test arguments…]
       cargo xtask speedrun [--seeds 1,2,3] [--preset NAME] [--out DIR] [--release] [cnn train flags…]
       cargo xtask cycles [WORKSPACE]
       cargo xtask experiment degradation [--subset N] [--epochs N] [--batch-size N] [--lr F] [--nets a,b] [--out DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("train") => run_cnn("train", &args[1..]),
        Some("bench") => run_cnn("bench", &args[1..]),
        Some("download") => run_cnn("download", &args[1..]),
        Some("experiment") => run_cnn("experiment", &args[1..]),
        Some("test") => test_cmd::run(&args[1..]),
        Some("speedrun") => speedrun::run(&args[1..]),
        Some("cycles") => {
            let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(std::path::Path::new("."));
            cycles::run(args.get(1).map_or(workspace, std::path::Path::new))
        }
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("error: unknown xtask '{other}'\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

/// Splits xtask's own flags (build options) from the flags passed on to `cnn train`.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    features: Vec<String>,
    release: bool,
    device: Option<String>,
    cnn_args: Vec<String>,
}

fn plan(args: &[String]) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--release" => plan.release = true,
            "--features" => plan
                .features
                .extend(value()?.split(',').filter(|f| !f.is_empty()).map(str::to_string)),
            "--device" => plan.device = Some(value()?),
            _ => plan.cnn_args.push(arg.clone()),
        }
    }
    if let Some(d) = &plan.device
        && (d == "ndarray" || d == "wgpu")
        && !plan.features.contains(d)
    {
        plan.features.push(d.clone());
    }
    Ok(plan)
}

/// `bench` without `--device` or `--backends` measures every CPU backend (flex and ndarray, so
/// the build gets the ndarray feature); results go to `target/bench[-DEVICE].json`.
fn bench_defaults(plan: &mut Plan) {
    let has = |args: &[String], flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    let all_cpu = plan.device.is_none() && !has(&plan.cnn_args, "--backends");
    if all_cpu {
        if !plan.features.iter().any(|f| f == "ndarray") {
            plan.features.push("ndarray".into());
        }
        plan.cnn_args.extend(["--backends".into(), "flex,ndarray".into()]);
    }
    if !has(&plan.cnn_args, "--json") {
        let file = match &plan.device {
            Some(device) => format!("target/bench-{device}.json"),
            None => "target/bench.json".into(),
        };
        plan.cnn_args.extend(["--json".into(), file]);
    }
}

/// Builds `cnn` with the planned features and runs `cnn <subcommand> …`.
fn run_cnn(subcommand: &str, args: &[String]) -> ExitCode {
    let mut args = args.to_vec();
    let rounds = if subcommand == "bench" { bench_rounds::take(&mut args) } else { Ok(None) };
    let rounds = match rounds {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let mut plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(rounds) = &rounds {
        // Rounds compare flex with the references; `--device` may name another backend.
        let ours = plan.device.get_or_insert_with(|| "flex".into()).clone();
        eprintln!("xtask: building and running cnn (a first build compiles burn: 6 min on 2 cores)");
        return bench_rounds::run(rounds, &ours, || cnn_command(&plan), &plan.cnn_args);
    }
    let mut cmd = cnn_command(&plan);
    if subcommand == "bench" {
        bench_defaults(&mut plan);
    }
    cmd.arg(subcommand).args(&plan.cnn_args);
    eprintln!("xtask: building and running cnn (a first build compiles burn: 6 min on 2 cores, 20 with wgpu)");
    exit_code(cmd.status())
}

/// `cargo run -p cnn-cli --bin cnn [--release] [--features …] -- [--device D]`.
fn cnn_command(plan: &Plan) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "-p", "cnn-cli", "--bin", "cnn"]);
    if plan.release {
        cmd.arg("--release");
    }
    if !plan.features.is_empty() {
        cmd.args(["--features", &plan.features.join(",")]);
    }
    cmd.arg("--");
    if let Some(d) = &plan.device {
        cmd.args(["--device", d]);
    }
    cmd
}

/// The exit code of a cargo run: its own, or failure with one line when it could not start.
fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> ExitCode {
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn device_implies_feature_and_flags_pass_through() {
        let p = plan(&s(&["--device", "wgpu", "--epochs", "2", "--release", "--lr=0.01"])).unwrap();
        assert_eq!(p.features, vec!["wgpu"]);
        assert_eq!(p.device.as_deref(), Some("wgpu"));
        assert!(p.release);
        assert_eq!(p.cnn_args, s(&["--epochs", "2", "--lr=0.01"]));
    }

    #[test]
    fn flex_needs_no_feature_and_missing_values_are_errors() {
        assert!(plan(&s(&["--device", "flex"])).unwrap().features.is_empty());
        assert!(plan(&s(&["--features"])).is_err());
    }

    #[test]
    fn bench_measures_both_cpu_backends_unless_a_device_is_named() {
        let mut p = plan(&s(&["--compare", "torch.json"])).unwrap();
        bench_defaults(&mut p);
        assert_eq!(p.features, vec!["ndarray"]);
        assert_eq!(
            p.cnn_args,
            s(&[
                "--compare",
                "torch.json",
                "--backends",
                "flex,ndarray",
                "--json",
                "target/bench.json"
            ])
        );
        let mut p = plan(&s(&["--device", "flex", "--json=x.json"])).unwrap();
        bench_defaults(&mut p);
        assert!(p.features.is_empty());
        assert_eq!(p.cnn_args, s(&["--json=x.json"]));
    }
}
