//! `cnn`: train, evaluate and inspect the classic convolutional networks.
//!
//! Every command parses its flags, opens the device and calls a library function; errors are
//! printed on one line and the process exits with status 1.

mod augment_cmd;
mod bench_cmd;
mod bench_head_cmd;
mod device;
mod download_cmd;
mod eval_cmd;
mod experiment_cmd;
mod explain_cmd;
mod kernels_cmd;
mod lr_find_cmd;
mod precision_arg;
mod train_cmd;
mod weights_cmd;

use std::process::ExitCode;

use crate::device as backend;
use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cnn",
    version,
    about = "Train, evaluate and inspect classic CNNs (LeNet-5 … ResNet) on burn"
)]
struct Cli {
    /// Backend to run on: flex, ndarray or wgpu (default: the first compiled into this build).
    #[arg(long, global = true)]
    device: Option<String>,
    /// Log what the libraries do on stderr: -v decisions and epochs, -vv checkpoints, -vvv every
    /// batch (`RUST_LOG`, when set, decides instead, e.g. `RUST_LOG=cnn_trainer=debug`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No log lines at all, not even errors the libraries log (the command's own output stays).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a data set and write a run folder.
    Train(train_cmd::TrainArgs),
    /// Sweep the learning rate over a few hundred updates and suggest one (lr-find.csv, .png).
    LrFind(lr_find_cmd::LrFindArgs),
    /// Download a data set (mnist, fashion-mnist, cifar10, cifar100) with checksums, or import
    /// local copies with --from.
    Download(download_cmd::DownloadArgs),
    /// Evaluate a trained run: accuracy, top-5, per-class accuracy, confusion matrix
    /// (printed and written to <run>/confusion.png).
    Eval(eval_cmd::EvalArgs),
    /// Classify image files with a trained run, optionally averaging ten crops (--tta).
    Predict(eval_cmd::PredictArgs),
    /// Grad-CAM heat maps: where in each image the run's network finds evidence for a class.
    Explain(explain_cmd::ExplainArgs),
    /// The course's experiments (degradation: plain vs residual networks as depth grows).
    #[command(subcommand)]
    Experiment(experiment_cmd::ExperimentCommand),
    /// torchvision weights: import (.pth/.safetensors → .bpk) and verify against reference logits.
    #[command(subcommand)]
    Weights(weights_cmd::WeightsCommand),
    /// List the models with their parameter counts.
    Models,
    /// Print a model's layers with output shapes, parameters and multiply-adds.
    Summary(SummaryArgs),
    /// Measure images/s of inference or training steps (one model, or the per-family suite).
    Bench(bench_cmd::BenchArgs),
    /// Merge several rounds of benchmark files (ours and references): median and range per
    /// backend, ours against the fastest reference per case (`cargo xtask bench --rounds N`).
    BenchCompare(bench_cmd::BenchCompareArgs),
    /// Time one epoch of the data pipeline: loading only, compute only, 0 and N workers.
    BenchLoader(BenchLoaderArgs),
    /// Time one head-training epoch through the frozen backbone and from cached features.
    BenchHead(bench_head_cmd::BenchHeadArgs),
    /// Augmentation tools: preview a pipeline on an image, fit PCA colour statistics.
    #[command(subcommand)]
    Augment(augment_cmd::AugmentCommand),
    /// Cost calculators from the course.
    #[command(subcommand)]
    Cost(CostCommand),
    /// List the backends compiled into this build.
    Devices,
    /// List our CPU kernels' switches (environment variables) and which are active on this CPU.
    Kernels,
}

#[derive(clap::Args)]
struct SummaryArgs {
    /// Model name (see `cnn models`).
    #[arg(long)]
    model: String,
    /// Input shape CxHxW (default: the model's own, e.g. 3x224x224).
    #[arg(long, value_parser = parse_dims::<3>)]
    input: Option<[usize; 3]>,
    /// Number of classes [default: 1000 for ImageNet models, 10 otherwise].
    #[arg(long)]
    num_classes: Option<usize>,
}

#[derive(clap::Args)]
struct BenchLoaderArgs {
    #[command(flatten)]
    train: train_cmd::TrainArgs,
    /// Use only the first N training images.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Subcommand)]
enum CostCommand {
    /// Multiplications of a "same" convolution, with and without a 1x1 bottleneck.
    Conv(ConvCostArgs),
}

#[derive(clap::Args)]
struct ConvCostArgs {
    /// Input volume HxWxC, e.g. 28x28x192.
    #[arg(long, value_parser = parse_dims::<3>)]
    input: [usize; 3],
    /// Square kernel size.
    #[arg(long)]
    kernel: usize,
    /// Number of filters (output channels).
    #[arg(long)]
    filters: usize,
    /// Channels of a 1x1 bottleneck convolution placed before it.
    #[arg(long)]
    bottleneck: Option<usize>,
}

/// Parses `AxBxC` (or `A,B,C`) into N positive integers.
fn parse_dims<const N: usize>(s: &str) -> Result<[usize; N], String> {
    let parts: Vec<&str> = s.split(['x', 'X', ',']).collect();
    let values: Vec<usize> = parts
        .iter()
        .map(|p| p.trim().parse::<usize>().ok().filter(|v| *v > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("'{s}' is not {N} positive integers separated by 'x'"))?;
    values
        .try_into()
        .map_err(|_| format!("'{s}' has {} numbers, expected {N}", parts.len()))
}

/// Keeps glibc from handing large freed blocks back to the kernel. A training step frees and
/// allocates the same tensors (hundreds of KiB to hundreds of MiB each) every time; by default
/// each block over 128 KiB–32 MiB is its own `mmap`, so every step paid page faults and zeroing
/// for memory it had just released (`exc_page_fault`, `clear_page`: ~10% of a ResNet-20 step,
/// ~20% of a VGG-16 step on flex). With `mmap` off and trimming held back, freed blocks stay
/// in the heap and are reused. (jemalloc, tried instead, took 10× more page faults here.)
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator settings; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// The `tracing` subscriber: our crates at the level `-v`/`-q` ask for (errors only by default:
/// what a command reports it prints itself), other crates (burn, wgpu) at warnings with `-v`;
/// `RUST_LOG` overrides.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let ours = match (quiet, verbose) {
        (true, _) => "off",
        (false, 0) => "error",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let crates = [
        "cnn_cli",
        "cnn_trainer",
        "cnn_transfer",
        "cnn_data_augment",
        "cnn_models",
        "cnn_kernels",
    ];
    let default = crates
        .iter()
        .fold(String::from(if verbose > 0 { "warn" } else { ours }), |filter, name| {
            format!("{filter},{name}={ours}")
        });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log piped to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    // `cnn models | head` should end quietly like any Unix tool, not panic on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    install_interrupt_handler();
    keep_freed_memory();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's first line says what is wrong; keep errors on one line like every other.
            let text = e.render().to_string();
            eprintln!("{} (see --help)", text.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    init_logging(cli.verbose, cli.quiet);
    // burn creates some tensors on its *default* device (e.g. the optimiser state of a resumed
    // run); make that the device this command runs on, so a build with wgpu compiled in does not
    // route CPU training through the GPU. Done before any thread starts.
    if let Ok(backend) = backend::resolve(cli.device.as_deref(), &backend::compiled()) {
        backend::make_default(backend);
    }
    // A panic (a bug here, or a backend failing deep inside, e.g. a GPU allocation) still ends as
    // one error line rather than a backtrace; RUST_BACKTRACE=1 keeps the default report.
    let first_panic = install_panic_hook();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            match e.downcast_ref() {
                Some(stop @ cnn_trainer::TrainError::Interrupted { .. }) => {
                    // Asked for, not a failure: say how to go on, with the shell's Ctrl-C status.
                    eprintln!("{}", with_flags(&stop.to_string()));
                    return ExitCode::from(130);
                }
                Some(busy @ cnn_trainer::TrainError::InUse { .. }) => {
                    // The folder is the whole story; what this process was about to do is not.
                    eprintln!("error: {}", with_flags(&busy.to_string()));
                    return ExitCode::FAILURE;
                }
                _ => {}
            }
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
        Err(_) => {
            let message = backend::recorded_panic(&first_panic);
            let hint = if message.contains("wgpu") || message.contains("allocate buffer") {
                "; the GPU adapter refused the work: a layer may exceed its buffer limits (software Vulkan binds at most 128 MiB, less than AlexNet's and VGG's first fully connected layers), try --device flex"
            } else {
                " (please report it; RUST_BACKTRACE=1 shows where)"
            };
            eprintln!("error: internal error: {message}{hint}");
            ExitCode::from(101)
        }
    }
}

/// An error as the user reads it: one line, the chain of causes joined, no backtrace, and each
/// training setting the libraries name in backticks (`` `batch_size` ``) written as the flag
/// that sets it (`--batch-size`).
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    with_flags(&format!("{e:#}").replace('\n', " "))
}

/// Options the libraries name (in backticks) that exist only on the command line.
const COMMAND_OPTIONS: [&str; 13] = [
    "resume",
    "out",
    "devices",
    "class",
    "num_classes",
    "from",
    "members",
    "batch",
    "reps",
    "seeds",
    "methods",
    "per_class",
    "steps",
];

/// `text` (an error, a warning or a note from the libraries) with every setting or command
/// option named in backticks written as its flag: `` `input_size` `` → `--input-size`.
pub(crate) fn with_flags(text: &str) -> String {
    let settings = cnn_trainer::config::SETTINGS.iter().map(|s| s.name);
    settings.chain(COMMAND_OPTIONS).fold(text.to_string(), |text, name| {
        text.replace(&format!("`{name}`"), &format!("--{}", name.replace('_', "-")))
    })
}

/// The first Ctrl-C asks training to stop after the current batch (the last checkpoint stays
/// valid and the run says how to resume); a second one ends the process at once.
fn install_interrupt_handler() {
    #[cfg(unix)]
    {
        extern "C" fn on_interrupt(_: libc::c_int) {
            static PRESSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if PRESSED.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(130) };
            }
            cnn_trainer::run::interrupt::request_stop();
            let note = b"\ninterrupt: stopping after the current batch (Ctrl-C again quits at once)\n";
            // SAFETY: write(2) is async-signal-safe; the buffer is static.
            unsafe { libc::write(2, note.as_ptr().cast(), note.len()) };
        }
        // SAFETY: installed before any thread starts; the handler only touches atomics and
        // async-signal-safe calls.
        unsafe {
            libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
        }
    }
}

/// Keeps the first panic message (first line) for the final error line; the default report
/// (message and backtrace) is printed only when RUST_BACKTRACE asks for it.
fn install_panic_hook() -> std::sync::Arc<std::sync::Mutex<Option<String>>> {
    let slot: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let full_report = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    let default_hook = std::panic::take_hook();
    let record = std::sync::Arc::clone(&slot);
    std::panic::set_hook(Box::new(move |info| {
        if full_report {
            default_hook(info);
        }
        backend::record_first_panic(&record, info);
    }));
    slot
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Models => {
            let device = open_device(cli.device.as_deref())?.1;
            println!("{:<18} {:>13}  {:<11}  description", "name", "params", "input");
            for m in cnn_models::registry::MODELS {
                let i = m.default_input;
                let model = cnn_models::build(m.name, cnn_models::BuildOptions::classes(m.default_classes()), &device)?;
                let input = format!("{}x{}x{}", i.channels, i.size, i.size);
                println!(
                    "{:<18} {:>13}  {:<11}  {}",
                    m.name,
                    group(cnn_models::param_count(&model) as u64),
                    input,
                    m.description()
                );
            }
            Ok(())
        }
        Command::Summary(args) => {
            let info = cnn_models::registry::lookup(&args.model)?;
            let device = open_device(cli.device.as_deref())?.1;
            let classes = args.num_classes.unwrap_or_else(|| info.default_classes());
            let input = args.input.unwrap_or(info.default_input.shape());
            let options = cnn_models::BuildOptions {
                num_classes: classes,
                in_channels: Some(input[0]),
            };
            let model = cnn_models::build(info.name, options, &device)?;
            let summary = model.summary(input);
            if input[1] == input[2] {
                model
                    .check_input_size(input[0], input[1])
                    .map_err(|e| anyhow::anyhow!("{}: {e}", info.name))?;
            } else if let Some(row) = summary.first_misfit() {
                anyhow::bail!(
                    "input {}x{}x{} does not fit {}: layer {} has no output left or takes another width",
                    input[0],
                    input[1],
                    input[2],
                    info.name,
                    row.name
                );
            }
            println!("{} ({classes} classes)", info.name);
            println!("{summary}");
            Ok(())
        }
        Command::Bench(args) => bench_cmd::run(cli.device.as_deref(), args),
        Command::BenchCompare(args) => bench_cmd::compare_rounds(args),
        Command::BenchLoader(args) => bench_loader(cli.device.as_deref(), args),
        Command::Augment(cmd) => augment_cmd::run(cmd),
        Command::BenchHead(args) => bench_head_cmd::run(cli.device.as_deref(), args),
        Command::Cost(CostCommand::Conv(a)) => {
            let [h, w, c] = a.input;
            let direct = cnn_models::summary::conv_mults(h, w, c, a.kernel, a.filters);
            println!(
                "{k}x{k} same convolution, {f} filters, on {h}x{w}x{c}: {} multiplications ({h}*{w}*{f} outputs x {k}*{k}*{c})",
                group(direct),
                k = a.kernel,
                f = a.filters
            );
            if let Some(b) = a.bottleneck {
                let reduce = cnn_models::summary::conv_mults(h, w, c, 1, b);
                let conv = cnn_models::summary::conv_mults(h, w, b, a.kernel, a.filters);
                println!(
                    "with a 1x1 bottleneck to {b} channels: {} + {} = {} multiplications",
                    group(reduce),
                    group(conv),
                    group(reduce + conv)
                );
                println!(
                    "ratio: {:.2}x fewer multiplications",
                    direct as f64 / (reduce + conv) as f64
                );
            }
            Ok(())
        }
        Command::Kernels => {
            kernels_cmd::run();
            Ok(())
        }
        Command::Devices => {
            for b in backend::ALL {
                println!(
                    "{:<8} {}",
                    b.name(),
                    if b.compiled_in() {
                        "compiled in"
                    } else {
                        "not in this build"
                    }
                );
            }
            Ok(())
        }
        Command::Train(args) => train_cmd::run(cli.device.as_deref(), args),
        Command::LrFind(args) => lr_find_cmd::run(cli.device.as_deref(), args),
        Command::Download(args) => download_cmd::run(args),
        Command::Experiment(cmd) => experiment_cmd::run(cli.device.as_deref(), cmd),
        Command::Weights(cmd) => weights_cmd::run(cli.device.as_deref(), cmd),
        Command::Eval(args) => eval_cmd::eval(cli.device.as_deref(), args),
        Command::Predict(args) => eval_cmd::predict(cli.device.as_deref(), args),
        Command::Explain(args) => explain_cmd::explain(cli.device.as_deref(), args),
    }
}

fn group(n: u64) -> String {
    cnn_models::summary::group(n)
}

pub(crate) fn open_device(requested: Option<&str>) -> Result<(backend::Backend, burn::tensor::Device)> {
    backend::open_named(requested).map_err(anyhow::Error::msg)
}

fn bench_loader(device: Option<&str>, args: BenchLoaderArgs) -> Result<()> {
    let cfg = args.train.config()?;
    cfg.validate()?;
    let info = cnn_models::registry::lookup(&cfg.task.model)?;
    let (backend, device) = open_device(device)?;
    let data = cnn_trainer::load_data(&cfg.task.dataset, cfg.task.data_dir.as_deref(), cfg.task.seed)?;
    let train: std::sync::Arc<dyn cnn_data_augment::Source> = match args.limit {
        Some(len) => std::sync::Arc::new(cnn_data_augment::Subset::prefix(data.train, len)),
        None => data.train,
    };
    let (size, _) = cnn_trainer::run::input_size(&cfg, info.default_input);
    let pre = cnn_trainer::preprocess_for(info.default_input, data.photos, size);
    println!(
        "one epoch of {} on {} images of {} ({} px, batch {}, {} augmentation ops, {} workers, prefetch {}) on {backend}",
        cfg.task.model,
        train.len(),
        cfg.task.dataset,
        pre.size,
        cfg.optim.batch_size,
        cfg.augmentation.augment.ops.len(),
        cfg.loader.workers,
        cfg.prefetch_batches()
    );
    for t in cnn_experiments::bench_pipeline(&cfg, train, data.class_names.len(), &pre, &device)? {
        match t.data_wait_share {
            Some(w) => println!("  {:<34} {:>8.2} s   data wait {:.1}%", t.what, t.seconds, 100.0 * w),
            None => println!("  {:<34} {:>8.2} s", t.what, t.seconds),
        }
    }
    Ok(())
}
