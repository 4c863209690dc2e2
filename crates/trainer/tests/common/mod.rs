//! What the trainer's integration tests share: scratch folders from the test kit, and the lock
//! that keeps runs seeding burn's generator from interleaving.

#[allow(unused_imports)] // not every test file makes a scratch folder
pub use cnn_testkit::{Scratch, scratch};

/// burn's random generator is global per backend: tests that seed it and then draw from it
/// (weight initialisation, training) must not interleave with each other.
#[allow(dead_code)]
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds burn's generator for one test (a test that panicked releases it too).
#[allow(dead_code)] // not every test file seeds the generator
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
