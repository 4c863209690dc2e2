//! The precision of the convolutions' products: f32 (the default) or bf16 products with f32 sums
//! ([`crate::bf16`]). Process-wide ([`set`], what `--precision` of the inference commands sets),
//! with a per-thread override ([`with`]: what a training run uses, so that runs and tests side by
//! side in one process each keep their own).
//!
//! In bf16 the convolutions on flex run [`crate::fast_conv::kernel::forward_bf16`] and, in
//! training, [`crate::fast_conv::kernel::backward_bf16`] (where each pays); dense layers, batch
//! norm, pooling and the weight updates stay f32.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// How the convolutions multiply (`"f32"` or `"bf16"` in a run's `config.json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 operands and sums.
    #[default]
    F32,
    /// bf16 operands (rounded to nearest even), f32 sums.
    Bf16,
}

impl Precision {
    /// Every precision, by name.
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::Bf16];

    /// The name `--precision` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this CPU runs it at speed (bf16 needs AVX512-BF16; elsewhere it runs, slowly).
    pub fn fast_here(self) -> bool {
        match self {
            Precision::F32 => true,
            #[cfg(feature = "flex")]
            Precision::Bf16 => crate::bf16::supported(),
            #[cfg(not(feature = "flex"))]
            Precision::Bf16 => false,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown precision '{s}' (f32 or bf16)"))
    }
}

static BF16: AtomicBool = AtomicBool::new(false);

thread_local! {
    static OVERRIDE: Cell<Option<Precision>> = const { Cell::new(None) };
}

/// The precision in force on this thread.
pub fn current() -> Precision {
    OVERRIDE.with(Cell::get).unwrap_or(if BF16.load(Ordering::Relaxed) {
        Precision::Bf16
    } else {
        Precision::F32
    })
}

/// Sets the precision for the whole process.
pub fn set(precision: Precision) {
    BF16.store(precision == Precision::Bf16, Ordering::Relaxed);
}

/// Runs `f` with `precision` on this thread only.
pub fn with<R>(precision: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Precision>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(precision))));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_a_thread_override_ends_with_its_closure() {
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("f32".parse::<Precision>(), Ok(Precision::F32));
        assert!("fp16".parse::<Precision>().unwrap_err().contains("f32 or bf16"));
        assert_eq!(current(), Precision::F32);
        let inside = with(Precision::Bf16, || {
            (current(), with(Precision::F32, current), current())
        });
        assert_eq!(inside, (Precision::Bf16, Precision::F32, Precision::Bf16));
        assert_eq!(current(), Precision::F32);
    }
}
