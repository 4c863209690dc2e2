//! `--precision`: how the convolutions multiply, one flag shared by the inference commands
//! (`cnn bench`, `cnn eval`, `cnn predict`); `cnn train` takes it as a training setting, and
//! [`bf16_training_notice`] says where a run's bf16 will not be what it seems.

use cnn_models::precision::{self, Precision};

use crate::device::Backend;

/// The flag, flattened into each command that takes it.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct PrecisionArg {
    /// Products of the convolutions: f32, or bf16 operands with f32 sums (on flex and CPUs with
    /// AVX512-BF16 — elsewhere f32, with a notice) [default: f32; `cnn eval` and `cnn predict`:
    /// bf16 when every run named trained in bf16, as their own tests ran].
    #[arg(long, value_parser = |s: &str| s.parse::<Precision>())]
    pub precision: Option<Precision>,
}

impl PrecisionArg {
    /// Sets the precision for the process — the flag's, else `default` — and returns the one in
    /// force: bf16 where `backend` is flex and the CPU has AVX512-BF16, else f32 with one line on
    /// stderr saying why.
    pub fn apply(self, backend: Backend, default: Precision) -> Precision {
        let effective = match self.precision.unwrap_or(default) {
            Precision::Bf16 if backend != Backend::Flex => {
                eprintln!("note: --precision bf16 runs on flex only; {backend} runs f32");
                Precision::F32
            }
            Precision::Bf16 if !Precision::Bf16.fast_here() => {
                eprintln!("note: this CPU has no AVX512-BF16; running f32");
                Precision::F32
            }
            asked => asked,
        };
        precision::set(effective);
        effective
    }
}

/// Why a training run asking for bf16 on `backend` (as `cnn train` names it) does not get fast
/// bf16 products: `None` on flex with AVX512-BF16. The run keeps its setting (a resume on a
/// machine that has them multiplies the same way).
pub fn bf16_training_notice(backend: &str) -> Option<String> {
    if !backend.split(" + ").all(|b| b.starts_with("flex")) {
        Some(format!("bf16 products are flex's own: on {backend} the convolutions multiply in f32"))
    } else if !Precision::Bf16.fast_here() {
        Some("this CPU has no AVX512-BF16: the bf16 products run in software, slower than f32".into())
    } else {
        None
    }
}
