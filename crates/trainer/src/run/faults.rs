//! Fault injection for the crash-safety tests. The faults exist only in builds with the
//! `fault-injection` feature, which `cargo xtask test` turns on; elsewhere these functions do
//! nothing and read no environment variable, so a user's `cnn` carries none of it.
//!
//! - `CNN_FAULT_KILL_AT=[rank:]epoch:batch`: the process (of that MPI rank; any rank when left
//!   out) sends itself SIGKILL once that batch is trained, as the OOM killer or `kill -9` would.
//! - `CNN_FAULT_KILL_IN_CHECKPOINT=N`: SIGKILL in the middle of writing epoch N's checkpoint
//!   (weights written, optimiser state not), where a power cut would hurt most.

/// The variable of [`after_batch`].
pub const KILL_AT_VAR: &str = "CNN_FAULT_KILL_AT";
/// The variable of [`in_checkpoint`].
pub const KILL_IN_CHECKPOINT_VAR: &str = "CNN_FAULT_KILL_IN_CHECKPOINT";

/// Called by the trainer's callers after batch `batch` of epoch `epoch` (both 1-based) of the
/// process of rank `rank` (0 outside MPI).
pub fn after_batch(rank: usize, epoch: usize, batch: usize) {
    #[cfg(feature = "fault-injection")]
    if let Ok(spec) = std::env::var(KILL_AT_VAR) {
        let parts: Vec<usize> = spec
            .split(':')
            .map(|p| p.trim().parse().unwrap_or(usize::MAX))
            .collect();
        let target = match parts[..] {
            [e, b] if e != usize::MAX && b != usize::MAX => (None, e, b),
            [r, e, b] if r != usize::MAX && e != usize::MAX && b != usize::MAX => (Some(r), e, b),
            _ => panic!("{KILL_AT_VAR}={spec}: expected [rank:]epoch:batch"),
        };
        if target.0.is_none_or(|r| r == rank) && (target.1, target.2) == (epoch, batch) {
            kill();
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = (rank, epoch, batch);
}

/// Called while a checkpoint of epoch `epoch` is being written, between its weights and its
/// optimiser state.
pub fn in_checkpoint(epoch: usize) {
    #[cfg(feature = "fault-injection")]
    if std::env::var(KILL_IN_CHECKPOINT_VAR).ok().and_then(|v| v.parse().ok()) == Some(epoch) {
        kill();
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = epoch;
}

/// Ends the process without a word, as SIGKILL does.
#[cfg(feature = "fault-injection")]
fn kill() -> ! {
    #[cfg(unix)]
    // SAFETY: raising a signal on this process has no preconditions.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
    std::process::abort()
}
