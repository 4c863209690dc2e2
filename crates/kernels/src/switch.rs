//! The on/off switch of each of our kernels: an environment variable read once (`NAME=0` turns
//! the kernel off), a process-wide setting for benchmarks, a per-thread override so tests can
//! run the same model both ways side by side, and a count of the kernel's runs.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// How many kernels have a switch (each owns one slot of the per-thread overrides).
const SLOTS: usize = 16;

thread_local! {
    static OVERRIDES: Cell<[Option<bool>; SLOTS]> = const { Cell::new([None; SLOTS]) };
}

/// One kernel's switch.
pub(crate) struct Switch {
    var: &'static str,
    slot: usize,
    /// 0: not read yet, 1: on, 2: off.
    state: AtomicU8,
    /// Forward and backward runs of the kernel, so tests can tell the fast path was taken.
    calls: [AtomicUsize; 2],
}

impl Switch {
    /// The switch read from `var`, using override `slot` (unique per kernel, below [`SLOTS`]).
    pub(crate) const fn new(var: &'static str, slot: usize) -> Self {
        assert!(slot < SLOTS);
        Self {
            var,
            slot,
            state: AtomicU8::new(0),
            calls: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    /// Counts one run of the kernel's forward (`backward: false`) or backward pass.
    pub(crate) fn record(&self, backward: bool) {
        self.calls[usize::from(backward)].fetch_add(1, Ordering::Relaxed);
    }

    /// `[forward, backward]` runs of the kernel in this process so far.
    pub(crate) fn calls(&self) -> [usize; 2] {
        [
            self.calls[0].load(Ordering::Relaxed),
            self.calls[1].load(Ordering::Relaxed),
        ]
    }

    /// On unless `var=0`, [`Self::set`] or [`Self::with`] say otherwise.
    pub(crate) fn enabled(&self) -> bool {
        if let Some(on) = OVERRIDES.with(Cell::get)[self.slot] {
            return on;
        }
        match self.state.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let on = std::env::var(self.var).map_or(true, |v| v.trim() != "0");
                self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
                on
            }
        }
    }

    /// Sets the switch for the whole process.
    pub(crate) fn set(&self, on: bool) {
        self.state.store(if on { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// Runs `f` with the switch set to `on` on this thread only.
    pub(crate) fn with<R>(&self, on: bool, f: impl FnOnce() -> R) -> R {
        struct Restore(usize, Option<bool>);
        impl Drop for Restore {
            fn drop(&mut self) {
                OVERRIDES.with(|o| {
                    let mut all = o.get();
                    all[self.0] = self.1;
                    o.set(all);
                });
            }
        }
        let previous = OVERRIDES.with(|o| {
            let mut all = o.get();
            let previous = all[self.slot];
            all[self.slot] = Some(on);
            o.set(all);
            previous
        });
        let _restore = Restore(self.slot, previous);
        f()
    }
}
