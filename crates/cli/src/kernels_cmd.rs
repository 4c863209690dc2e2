//! `cnn kernels`: our CPU kernels' switches, and which of them run on this CPU.

use cnn_models::Kernel;

/// Why `kernel` runs here or not, in a few words.
fn status(kernel: Kernel) -> String {
    if !kernel.enabled() {
        return format!("off ({}=0)", kernel.var());
    }
    if let Some(parent) = kernel.part_of().filter(|p| !p.enabled()) {
        return format!("off ({}=0)", parent.var());
    }
    match kernel.needs() {
        Some(feature) if !kernel.cpu_supports() => format!("off (needs {feature})"),
        _ => "on".into(),
    }
}

/// Prints one line per switch: variable, state, what it does (paths indented under their
/// kernel).
pub fn run() {
    println!("Our kernels on the flex backend; NAME=0 in the environment turns one off.");
    for kernel in Kernel::ALL {
        let indent = if kernel.part_of().is_some() { "  " } else { "" };
        let name = format!("{indent}{}", kernel.var());
        println!("{name:<20} {:<24} {}", status(kernel), kernel.summary());
    }
}
