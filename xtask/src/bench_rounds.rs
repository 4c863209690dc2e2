//! `cargo xtask bench --rounds N [--python PY] [--references eager,channels_last,compile,ort]
//! [cnn bench flags…]`: ours and each reference, round after round on the same cores, then
//! `cnn bench-compare` on every file: per case, the median over the rounds and its range, ours
//! against the fastest reference. Alternating keeps one noisy minute from deciding a figure.
//!
//! The references are `scripts/bench_pytorch.py --variant eager|channels_last|compile` and
//! `scripts/bench_onnxruntime.py` (`ort`, inference only), run by `--python` (a virtual
//! environment with torch, torchvision, onnx, onnxscript and onnxruntime). `--model`, `--phase`,
//! `--size` and `--batch` go to them as well (with `--model`, `--size` and `--batch` are needed:
//! `cnn bench --model` and the scripts default to different cases); files land in
//! `target/bench/rounds/`. With `--precision bf16` ours runs bf16 and the PyTorch references
//! run under bf16 autocast (`--bf16`); ONNX Runtime, which has no such mode, is left out.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::speedrun::status;

/// The references a round runs by default.
const ALL: [&str; 4] = ["eager", "channels_last", "compile", "ort"];

/// What `--rounds` asks for.
#[derive(Debug, PartialEq)]
pub struct Rounds {
    /// Rounds of ours and of every reference.
    pub rounds: usize,
    /// The Python that runs the reference scripts.
    pub python: String,
    /// Which references: `eager`, `channels_last`, `compile`, `ort`.
    pub references: Vec<String>,
}

/// Takes `--rounds`, `--python` and `--references` out of `args`; `None` without `--rounds`.
pub fn take(args: &mut Vec<String>) -> Result<Option<Rounds>, String> {
    let mut rounds = None;
    let mut python = "python3".to_string();
    let mut references: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    let mut rest = Vec::new();
    let mut it = std::mem::take(args).into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if !["--rounds", "--python", "--references"].contains(&flag.as_str()) {
            rest.push(arg);
            continue;
        }
        let value = inline
            .or_else(|| it.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => rounds = Some(n),
                _ => return Err(format!("--rounds must be a whole number of at least 1, got {value}")),
            },
            "--python" => python = value,
            _ => {
                references = value.split(',').filter(|v| !v.is_empty()).map(str::to_string).collect();
                if let Some(bad) = references.iter().find(|r| !ALL.contains(&r.as_str())) {
                    return Err(format!("--references: unknown {bad} (choose from {})", ALL.join(", ")));
                }
            }
        }
    }
    *args = rest;
    Ok(rounds.map(|rounds| Rounds {
        rounds,
        python,
        references,
    }))
}

/// The values of `flag` among `cnn bench`'s flags (`--model a --model=b` → `[a, b]`).
fn values_of(args: &[String], flag: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == flag {
            out.extend(it.next().cloned());
        } else if let Some(v) = arg.strip_prefix(&format!("{flag}=")) {
            out.push(v.to_string());
        }
    }
    out
}

/// Refuses a plan whose references would measure other cases than ours.
pub fn check_cases(bench_args: &[String]) -> Result<(), String> {
    let given = |flag| !values_of(bench_args, flag).is_empty();
    if given("--model") && !(given("--size") && given("--batch")) {
        return Err(
            "--rounds with --model needs --size and --batch, so that the references measure the same case".into(),
        );
    }
    Ok(())
}

/// Whether `cnn bench` is asked for bf16 products.
fn bf16(bench_args: &[String]) -> bool {
    values_of(bench_args, "--precision").pop().as_deref() == Some("bf16")
}

/// The command line of one reference run writing `out`, or `None` when it has nothing to measure
/// (ONNX Runtime for `--phase train` or in bf16).
pub fn reference_args(reference: &str, out: &Path, bench_args: &[String]) -> Option<Vec<String>> {
    let phase = values_of(bench_args, "--phase").pop();
    let mut args = match reference {
        "ort" if phase.as_deref() == Some("train") || bf16(bench_args) => return None,
        "ort" => vec!["scripts/bench_onnxruntime.py".to_string()],
        variant => {
            let mut a = vec![
                "scripts/bench_pytorch.py".to_string(),
                "--variant".into(),
                variant.into(),
            ];
            a.extend(phase.into_iter().flat_map(|p| ["--phase".to_string(), p]));
            a.extend(bf16(bench_args).then(|| "--bf16".to_string()));
            a
        }
    };
    args.extend(["--out".to_string(), out.display().to_string()]);
    for flag in ["--model", "--size", "--batch"] {
        for value in values_of(bench_args, flag) {
            args.extend([flag.to_string(), value]);
        }
    }
    Some(args)
}

/// Runs the rounds of `ours` (the backend measured): `cnn` builds the `cargo run … -- --device
/// D` prefix of one `cnn` call.
pub fn run(r: &Rounds, ours: &str, cnn: impl Fn() -> Command, bench_args: &[String]) -> ExitCode {
    match rounds(r, ours, cnn, bench_args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rounds(r: &Rounds, ours: &str, cnn: impl Fn() -> Command, bench_args: &[String]) -> Result<(), String> {
    check_cases(bench_args)?;
    let dir = PathBuf::from("target/bench/rounds");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for round in 1..=r.rounds {
        eprintln!("xtask: round {round} of {}", r.rounds);
        let ours = dir.join(format!("ours-r{round}.json"));
        let mut cmd = cnn();
        cmd.arg("bench").args(bench_args).arg("--json").arg(&ours);
        status(&format!("ours, round {round}"), &mut cmd)?;
        files.push(ours);
        for reference in &r.references {
            let out = dir.join(format!("{reference}-r{round}.json"));
            let Some(args) = reference_args(reference, &out, bench_args) else {
                continue;
            };
            status(
                &format!("{reference}, round {round}"),
                Command::new(&r.python).args(&args),
            )?;
            files.push(out);
        }
    }
    // `cnn bench` names a bf16 run's backend so (`flex-bf16`).
    let ours = if bf16(bench_args) { format!("{ours}-bf16") } else { ours.to_string() };
    let mut compare = cnn();
    compare.args(["bench-compare", "--ours", &ours]).args(&files);
    status("bench-compare", &mut compare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rounds_flags_are_taken_and_the_rest_goes_to_cnn_bench() {
        let mut args = s(&[
            "--model",
            "resnet18",
            "--rounds=3",
            "--python",
            "/v/bin/python",
            "--reps",
            "7",
        ]);
        let r = take(&mut args).unwrap().unwrap();
        assert_eq!(
            (r.rounds, r.python.as_str(), r.references.len()),
            (3, "/v/bin/python", 4)
        );
        assert_eq!(args, s(&["--model", "resnet18", "--reps", "7"]));
        let mut none = s(&["--model", "lenet5"]);
        assert_eq!(take(&mut none).unwrap(), None);
        for bad in [
            &["--rounds", "0"][..],
            &["--rounds", "2", "--references", "eager,tf"],
            &["--rounds"],
        ] {
            assert!(take(&mut s(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_get_the_variant_the_models_and_the_phase() {
        let bench = s(&["--model", "resnet18", "--model=vgg16", "--phase", "train"]);
        let out = Path::new("target/bench/rounds/compile-r1.json");
        assert_eq!(
            reference_args("compile", out, &bench).unwrap(),
            s(&[
                "scripts/bench_pytorch.py",
                "--variant",
                "compile",
                "--phase",
                "train",
                "--out",
                "target/bench/rounds/compile-r1.json",
                "--model",
                "resnet18",
                "--model",
                "vgg16",
            ])
        );
        assert_eq!(reference_args("ort", out, &bench), None);
        // In bf16: PyTorch under autocast, no ONNX Runtime.
        let bf16 = s(&["--phase", "infer", "--precision", "bf16"]);
        let args = reference_args("channels_last", out, &bf16).unwrap();
        assert_eq!(args[3..6], s(&["--phase", "infer", "--bf16"]));
        assert_eq!(reference_args("ort", out, &bf16), None);
        assert!(!reference_args("eager", out, &bench).unwrap().contains(&"--bf16".to_string()));
        assert!(check_cases(&bench).unwrap_err().contains("--size and --batch"));
        let sized = s(&["--model", "lenet5", "--size", "32", "--batch=64"]);
        assert!(check_cases(&sized).is_ok() && check_cases(&[]).is_ok());
        assert_eq!(
            reference_args("eager", out, &sized).unwrap()[3..],
            s(&[
                "--out",
                "target/bench/rounds/compile-r1.json",
                "--model",
                "lenet5",
                "--size",
                "32",
                "--batch",
                "64"
            ])
        );
        assert_eq!(
            reference_args("ort", out, &s(&["--model", "lenet5"])).unwrap(),
            s(&[
                "scripts/bench_onnxruntime.py",
                "--out",
                "target/bench/rounds/compile-r1.json",
                "--model",
                "lenet5"
            ])
        );
    }
}
