//! The on/off switch of each of our kernels ([`Kernel`]): an environment variable read once
//! (`NAME=0` turns the kernel off), a process-wide setting for benchmarks, a per-thread override
//! so tests can run the same model both ways side by side, and a count of the kernel's runs.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Every kernel and sub-path with a switch, in one place: its environment variable, what it
/// does, which kernel it is part of and what it needs of the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// The fast 2-D convolution (`fast_conv`); off, flex runs burn's own.
    FastConv,
    /// Our own matrix product inside the convolution; off, the `gemm` crate's (process-wide: the
    /// products run on the pool's threads).
    OwnGemm,
    /// 3×3 stride-1 convolutions of small maps as Winograd F(2×2, 3×3); off, as the others.
    Winograd,
    /// The weight gradient in broadcast form on AVX-512; off, the dot-product tile.
    RowsKernel,
    /// The input gradient of small-map stride-1 convolutions as the forward pass of the turned
    /// convolution; off, a product with the transposed weight and col2im.
    TurnedDx,
    /// The implicit forward pass with output channels along the vectors and input pixels
    /// broadcast, on AVX-512 where the output channels are a multiple of 32; off, the
    /// channel-row tile.
    PixelsKernel,
    /// Convolutions of small maps whose kernel mostly reads padding (ResNet-18's 2×2 maps) as one
    /// product per tap; off, on column matrices.
    Tapwise,
    /// Batch norm in training mode fused with the residual add and ReLU after it (`fused_bn`).
    FusedBn,
    /// 2-D max pooling (`fast_pool`).
    FastPool,
    /// Vectorised tanh, forward and backward (`fast_tanh`).
    FastTanh,
    /// A dense layer's three products at small batches, the weight read once in place
    /// (`fast_linear`, AVX-512).
    FastLinear,
    /// SGD with momentum as one in-place pass per parameter (`fused_sgd`).
    FusedSgd,
}

/// How many switches there are.
const COUNT: usize = Kernel::ALL.len();

thread_local! {
    static OVERRIDES: Cell<[Option<bool>; COUNT]> = const { Cell::new([None; COUNT]) };
}

/// 0: not read yet, 1: on, 2: off.
static STATES: [AtomicU8; COUNT] = [const { AtomicU8::new(0) }; COUNT];
/// Forward and backward runs of each kernel, so tests can tell the fast path was taken.
static CALLS: [[AtomicUsize; 2]; COUNT] = [const { [AtomicUsize::new(0), AtomicUsize::new(0)] }; COUNT];

impl Kernel {
    /// Every switch, kernels first, each followed by its sub-paths.
    pub const ALL: [Kernel; 12] = [
        Kernel::FastConv,
        Kernel::OwnGemm,
        Kernel::Winograd,
        Kernel::RowsKernel,
        Kernel::TurnedDx,
        Kernel::PixelsKernel,
        Kernel::Tapwise,
        Kernel::FusedBn,
        Kernel::FastPool,
        Kernel::FastTanh,
        Kernel::FastLinear,
        Kernel::FusedSgd,
    ];

    /// The environment variable that turns it off when `0`.
    pub const fn var(self) -> &'static str {
        match self {
            Kernel::FastConv => "CNN_FAST_CONV",
            Kernel::OwnGemm => "CNN_OWN_GEMM",
            Kernel::Winograd => "CNN_WINOGRAD",
            Kernel::RowsKernel => "CNN_ROWS_KERNEL",
            Kernel::TurnedDx => "CNN_TURNED_DX",
            Kernel::PixelsKernel => "CNN_PIXELS_KERNEL",
            Kernel::Tapwise => "CNN_TAPWISE",
            Kernel::FusedBn => "CNN_FUSED_BN",
            Kernel::FastPool => "CNN_FAST_POOL",
            Kernel::FastTanh => "CNN_FAST_TANH",
            Kernel::FastLinear => "CNN_FAST_LINEAR",
            Kernel::FusedSgd => "CNN_FUSED_SGD",
        }
    }

    /// One line on what it does, for `cnn kernels`.
    pub const fn summary(self) -> &'static str {
        match self {
            Kernel::FastConv => "2-D convolution, forward and both gradients",
            Kernel::OwnGemm => "our own matrix product inside the convolution",
            Kernel::Winograd => "Winograd F(2x2, 3x3) for small 3x3 maps",
            Kernel::RowsKernel => "weight gradient in broadcast form",
            Kernel::TurnedDx => "input gradient of small maps as a turned convolution",
            Kernel::PixelsKernel => "forward with output channels along the vectors",
            Kernel::Tapwise => "small maps that mostly read padding, tap by tap",
            Kernel::FusedBn => "batch norm fused with the residual add and ReLU",
            Kernel::FastPool => "2-D max pooling",
            Kernel::FastTanh => "vectorised tanh",
            Kernel::FastLinear => "dense layers at small batches",
            Kernel::FusedSgd => "SGD with momentum in one pass",
        }
    }

    /// The kernel this is a path of (its switch turns this one off too).
    pub const fn part_of(self) -> Option<Kernel> {
        match self {
            Kernel::OwnGemm
            | Kernel::Winograd
            | Kernel::RowsKernel
            | Kernel::TurnedDx
            | Kernel::PixelsKernel
            | Kernel::Tapwise => Some(Kernel::FastConv),
            _ => None,
        }
    }

    /// The CPU feature it needs beyond what flex needs (`None`: any CPU).
    pub const fn needs(self) -> Option<&'static str> {
        match self {
            Kernel::RowsKernel | Kernel::PixelsKernel | Kernel::FastLinear => Some("avx512f"),
            _ => None,
        }
    }

    /// Whether this CPU has what it needs.
    pub fn cpu_supports(self) -> bool {
        match self.needs() {
            None => true,
            #[cfg(target_arch = "x86_64")]
            Some(_) => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            Some(_) => false,
        }
    }

    /// Whether it runs here: switched on, its kernel switched on, and the CPU able.
    pub fn active(self) -> bool {
        self.enabled() && self.part_of().is_none_or(Kernel::enabled) && self.cpu_supports()
    }

    /// On unless its variable is `0`, or [`Self::set`] or [`Self::with`] say otherwise.
    pub fn enabled(self) -> bool {
        let slot = self as usize;
        if let Some(on) = OVERRIDES.with(Cell::get)[slot] {
            return on;
        }
        match STATES[slot].load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                let on = std::env::var(self.var()).map_or(true, |v| v.trim() != "0");
                STATES[slot].store(if on { 1 } else { 2 }, Ordering::Relaxed);
                on
            }
        }
    }

    /// Sets the switch for the whole process.
    pub fn set(self, on: bool) {
        STATES[self as usize].store(if on { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// Runs `f` with the switch set to `on` on this thread only.
    pub fn with<R>(self, on: bool, f: impl FnOnce() -> R) -> R {
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
        let slot = self as usize;
        let previous = OVERRIDES.with(|o| {
            let mut all = o.get();
            let previous = all[slot];
            all[slot] = Some(on);
            o.set(all);
            previous
        });
        let _restore = Restore(slot, previous);
        f()
    }

    /// Counts one run of the kernel's forward (`backward: false`) or backward pass.
    pub(crate) fn record(self, backward: bool) {
        CALLS[self as usize][usize::from(backward)].fetch_add(1, Ordering::Relaxed);
    }

    /// `[forward, backward]` runs of the kernel in this process so far.
    pub fn calls(self) -> [usize; 2] {
        let calls = &CALLS[self as usize];
        [calls[0].load(Ordering::Relaxed), calls[1].load(Ordering::Relaxed)]
    }
}
