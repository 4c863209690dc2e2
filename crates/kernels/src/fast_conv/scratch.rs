//! Per-thread buffers the passes reuse from call to call: three scratch matrices and the
//! turned weight of an input-gradient pass.

use std::cell::RefCell;

use rayon::prelude::*;

use super::geometry::ConvGeometry;

thread_local! {
    /// Scratch buffers reused from call to call on this thread: a fresh 16 MiB buffer per
    /// convolution cost page faults and zeroing (measured ~5% of a ResNet-18 training step).
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
    /// The turned weight of [`with_turned`], reused likewise.
    static TURNED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with three scratch slices of `lens` elements (contents unspecified).
pub(super) fn with_scratch<R>(lens: [usize; 3], f: impl FnOnce([&mut [f32]; 3]) -> R) -> R {
    // Taken out while in use, so a nested call (none today) would allocate instead of alias.
    let mut bufs = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    for (buf, &len) in bufs.iter_mut().zip(&lens) {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
    }
    let [a, b, c] = &mut bufs;
    let result = f([&mut a[..lens[0]], &mut b[..lens[1]], &mut c[..lens[2]]]);
    SCRATCH.with(|s| *s.borrow_mut() = bufs);
    result
}

/// Runs `f` with the stride-1 convolution whose forward pass is `g`'s input gradient (for a
/// padding smaller than the kernel): dY padded by `K − 1 − pad`, convolved with the kernel
/// turned 180° and its channel axes swapped — that geometry and its weight `[C, O, KH, KW]`.
pub(super) fn with_turned<R>(g: &ConvGeometry, weight: &[f32], f: impl FnOnce(&ConvGeometry, &[f32]) -> R) -> R {
    let [kh, kw] = g.kernel;
    let (c_in, out_ch) = (g.channels_in, g.channels_out);
    let turned = g.turned();
    // turned[c][o][tap] = weight[o][c][taps − 1 − tap] (the taps reversed = turned 180°), in
    // bands of `BAND` input channels, each band writing its `BAND` rows of the result in order
    // (the bands side by side on the pool). Going filter by filter instead wrote every 36 bytes
    // to another page, and a fresh buffer per call faulted its pages in: 7 ms for ResNet-18's
    // 512×512×3×3, longer than the convolution it serves.
    const BAND: usize = 16;
    let taps = kh * kw;
    let mut buf = TURNED.with(|t| std::mem::take(&mut *t.borrow_mut()));
    if buf.len() < weight.len() {
        buf.resize(weight.len(), 0.0);
    }
    let turned_weight = &mut buf[..weight.len()];
    let bands = turned_weight.par_chunks_mut((BAND * out_ch * taps).max(1));
    bands.enumerate().for_each(|(band, dst)| {
        let first = band * BAND;
        let channels = dst.len() / (out_ch * taps);
        for o in 0..out_ch {
            for c in 0..channels {
                let filter = &weight[(o * c_in + first + c) * taps..][..taps];
                let dst = &mut dst[(c * out_ch + o) * taps..][..taps];
                dst.iter_mut().zip(filter.iter().rev()).for_each(|(d, w)| *d = *w);
            }
        }
    });
    let result = f(&turned, turned_weight);
    TURNED.with(|t| *t.borrow_mut() = buf);
    result
}
