//! A polite stop: [`request_stop`] (e.g. from a Ctrl-C handler) asks the training loop to end
//! after the batch in progress; the run then returns [`TrainError::Interrupted`] with its last
//! checkpoint intact, ready for `--resume`.
//!
//! [`TrainError::Interrupted`]: crate::TrainError::Interrupted

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every training loop of this process to stop after its current batch. Only an atomic
/// store, so it may be called from a signal handler.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Forgets a request (for a library user who starts another run in the same process).
pub fn clear() {
    STOP.store(false, Ordering::SeqCst);
}
