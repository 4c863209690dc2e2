//! `cargo xtask test`: the README's test command, for a fresh machine as much as for CI. It
//! installs the system packages the suite reads when they are missing (apt-get, through sudo
//! when not root; elsewhere it names them and stops), runs `cargo test --workspace --features
//! wgpu,mpi,fault-injection` (extra arguments are passed on), and lists the tests that could not run.

use std::path::Path;
use std::process::{Command, ExitCode};

/// A Debian package the test suite needs.
pub struct SystemPackage {
    /// The package name.
    pub name: &'static str,
    /// What the tests use it for.
    pub why: &'static str,
    /// Whether it is installed (by the files the tests read).
    pub present: fn() -> bool,
}

/// The packages of the suite: real Fashion-MNIST for the data-set tests, a software Vulkan
/// driver for the GPU-backend tests (the GPU backend is compiled into the test build), and Open
/// MPI with libclang for the `mpi` feature (built by the `mpi` crate, run by the
/// `--distributed` tests).
pub const PACKAGES: [SystemPackage; 5] = [
    SystemPackage {
        name: "dataset-fashion-mnist",
        why: "real Fashion-MNIST for the data-set tests",
        present: || Path::new("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
    },
    SystemPackage {
        name: "mesa-vulkan-drivers",
        why: "a software Vulkan driver (llvmpipe) for the GPU-backend tests",
        present: || any_entry("/usr/share/vulkan/icd.d", |name, _| name.starts_with("lvp_icd.")),
    },
    SystemPackage {
        name: "openmpi-bin",
        why: "mpirun for the --distributed tests",
        present: || Path::new("/usr/bin/mpirun").is_file(),
    },
    SystemPackage {
        name: "libopenmpi-dev",
        why: "the MPI library the mpi feature links",
        // Debian keeps it under the multiarch folder (/usr/lib/<triplet>/openmpi/include).
        present: || any_entry("/usr/lib", |_, path| path.join("openmpi/include/mpi.h").is_file()),
    },
    SystemPackage {
        name: "libclang-dev",
        why: "libclang, with which the mpi crate reads mpi.h",
        present: || {
            any_entry("/usr/lib", |name, path| {
                name.starts_with("llvm-") && path.join("lib/libclang.so").exists()
            })
        },
    },
];

/// Whether some entry of `dir` satisfies `test(name, path)`.
fn any_entry(dir: &str, test: impl Fn(&str, &Path) -> bool) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| test(&e.file_name().to_string_lossy(), &e.path()))
    })
}

/// The features of the test build: the GPU backend (beside flex) and MPI.
pub const FEATURES: &str = "wgpu,mpi,fault-injection";

/// How this machine can install packages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Installer {
    /// Running as root.
    pub root: bool,
    /// `apt-get` exists.
    pub apt: bool,
    /// `sudo` exists.
    pub sudo: bool,
}

/// The commands that install `missing`, or why they cannot be run here (naming the packages).
pub fn install_commands(missing: &[&SystemPackage], how: Installer) -> Result<Vec<Vec<String>>, String> {
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let list = missing
        .iter()
        .map(|p| format!("{} ({})", p.name, p.why))
        .collect::<Vec<_>>()
        .join(", ");
    if !how.apt {
        return Err(format!(
            "the tests need {list}; this system has no apt-get: install their equivalents, then run `cargo xtask test` again"
        ));
    }
    if !how.root && !how.sudo {
        return Err(format!(
            "the tests need {list}: install them as root (apt-get install …), then run again"
        ));
    }
    let prefix: Vec<String> = if how.root { vec![] } else { vec!["sudo".into()] };
    let apt = |args: &[&str]| {
        let mut cmd = prefix.clone();
        cmd.push("apt-get".into());
        cmd.extend(args.iter().map(|a| a.to_string()));
        cmd
    };
    let mut install = apt(&["install", "-y", "-q"]);
    install.extend(missing.iter().map(|p| p.name.to_string()));
    Ok(vec![apt(&["update", "-q"]), install])
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs the suite; `args` go to `cargo test`.
pub fn run(args: &[String]) -> ExitCode {
    let started = std::time::Instant::now();
    let missing: Vec<&SystemPackage> = PACKAGES.iter().filter(|p| !(p.present)()).collect();
    let how = Installer {
        root: is_root(),
        apt: on_path("apt-get"),
        sudo: on_path("sudo"),
    };
    match install_commands(&missing, how) {
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::FAILURE;
        }
        Ok(commands) => {
            for cmd in commands {
                eprintln!("xtask: {}", cmd.join(" "));
                let status = Command::new(&cmd[0])
                    .args(&cmd[1..])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status();
                if !status.is_ok_and(|s| s.success()) {
                    eprintln!(
                        "error: `{}` failed; install the packages by hand and run again",
                        cmd.join(" ")
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let not_run_log = std::env::temp_dir().join(format!("cnn-not-run-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&not_run_log);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // --no-fail-fast: every failing test binary is reported, not only the first.
    cmd.args(["test", "--workspace", "--features", FEATURES, "--no-fail-fast"])
        .args(args)
        .env("CNN_NOT_RUN_LOG", &not_run_log);
    // Mesa warns on every start without a runtime folder.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("cnn-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            cmd.env("XDG_RUNTIME_DIR", dir);
        }
    }
    eprintln!(
        "xtask: cargo test --workspace --features {FEATURES} --no-fail-fast (a first build compiles burn with its CPU and GPU backends: about 25 min on 2 cores)"
    );
    let status = cmd.status();
    let not_run = std::fs::read_to_string(&not_run_log).unwrap_or_default();
    let _ = std::fs::remove_file(&not_run_log);
    let not_run: Vec<&str> = not_run.lines().collect();
    if !not_run.is_empty() {
        println!("{} test(s) did not run:", not_run.len());
        for line in &not_run {
            println!("  {}", line.trim_start_matches("not run: "));
        }
    }
    println!("xtask: tests took {} s", started.elapsed().as_secs());
    crate::exit_code(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Installer = Installer {
        root: true,
        apt: true,
        sudo: true,
    };

    #[test]
    fn missing_packages_are_installed_with_apt_through_sudo_when_not_root() {
        let missing: Vec<&SystemPackage> = PACKAGES.iter().collect();
        assert!(install_commands(&[], ALL).unwrap().is_empty());
        let as_root = install_commands(&missing, ALL).unwrap();
        assert_eq!(as_root[0], ["apt-get", "update", "-q"]);
        assert_eq!(
            as_root[1],
            [
                "apt-get",
                "install",
                "-y",
                "-q",
                "dataset-fashion-mnist",
                "mesa-vulkan-drivers",
                "openmpi-bin",
                "libopenmpi-dev",
                "libclang-dev"
            ]
        );
        let user = install_commands(&missing[1..2], Installer { root: false, ..ALL }).unwrap();
        assert_eq!(
            user[1],
            ["sudo", "apt-get", "install", "-y", "-q", "mesa-vulkan-drivers"]
        );
    }

    #[test]
    fn without_apt_or_rights_the_packages_are_named_and_nothing_runs() {
        let missing: Vec<&SystemPackage> = PACKAGES.iter().collect();
        let err = install_commands(&missing, Installer { apt: false, ..ALL }).unwrap_err();
        assert!(
            err.contains("dataset-fashion-mnist") && err.contains("no apt-get"),
            "{err}"
        );
        let err = install_commands(
            &missing,
            Installer {
                root: false,
                sudo: false,
                apt: true,
            },
        )
        .unwrap_err();
        assert!(err.contains("mesa-vulkan-drivers") && err.contains("as root"), "{err}");
    }
}
