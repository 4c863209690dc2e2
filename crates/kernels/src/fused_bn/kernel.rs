//! The passes of batch normalisation in training mode over `[batch, channels, plane]` f32
//! slices (NCHW with `plane = H·W`): statistics in one parallel region (two reads per channel),
//! normalise + affine (+ residual) (+ ReLU) in one more; backward in two. Every per-channel sum
//! runs in a fixed order (16 f32 lanes per run of a plane, runs added in f64), so results do not
//! depend on the number of threads.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// The shape of an NCHW tensor as the kernel sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Pixels per channel and image (`H·W`).
    pub plane: usize,
}

impl Dims {
    /// Values per channel over the batch: the count the statistics average over.
    pub fn per_channel(&self) -> usize {
        self.batch * self.plane
    }

    fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Channel `c`'s plane of each image, in order.
    fn runs<'a>(&self, values: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (channels, plane) = (self.channels, self.plane);
        (0..self.batch).map(move |n| &values[(n * channels + c) * plane..][..plane])
    }
}

/// Below this many values a pass runs on the calling thread (no pool wake-up).
const SERIAL_BELOW: usize = 1 << 15;

const LANES: usize = 16;

/// `Σ f(a[i], b[i])` over one run in 16 f32 lanes, returned in f64.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    lane_sum3(a, b, a, |x, y, _| f(x, y))
}

/// `Σ f(a[i], b[i], c[i])` over one run in 16 f32 lanes (a fixed order), returned in f64.
#[inline(always)]
fn lane_sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f64 {
    let mut acc = [0f32; LANES];
    let (ca, cb, cc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    let (ra, rb, rc) = (ca.remainder(), cb.remainder(), cc.remainder());
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for i in 0..LANES {
            acc[i] += f(x[i], y[i], z[i]);
        }
    }
    let tail: f64 = ra.iter().zip(rb).zip(rc).map(|((&x, &y), &z)| f64::from(f(x, y, z))).sum();
    acc.iter().map(|&v| f64::from(v)).sum::<f64>() + tail
}

/// Runs `per_channel(c)` for every channel, in parallel when the tensor is large.
fn map_channels<T: Send>(d: Dims, per_channel: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if d.len() < SERIAL_BELOW {
        (0..d.channels).map(per_channel).collect()
    } else {
        (0..d.channels).into_par_iter().map(per_channel).collect()
    }
}

/// A new `[batch, channels, plane]` vector, every image's slice written by
/// `per_image(n, image)` (in parallel when large). The memory is not zeroed first: every
/// caller writes each element, and a zero fill would be one more pass over the tensor.
fn new_by_images(d: Dims, per_image: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send) -> Vec<f32> {
    let mut out = Vec::with_capacity(d.len());
    let image = d.channels * d.plane;
    if image > 0 {
        let spare = &mut out.spare_capacity_mut()[..d.len()];
        if d.len() < SERIAL_BELOW {
            spare.chunks_mut(image).enumerate().for_each(|(n, o)| per_image(n, o));
        } else {
            spare.par_chunks_mut(image).enumerate().for_each(|(n, o)| per_image(n, o));
        }
    }
    // SAFETY: `per_image` wrote all `image` values of each of the `batch` images.
    unsafe { out.set_len(d.len()) };
    out
}

/// ReLU's backward on one value: the gradient where the ReLU's output was positive (or NaN),
/// zero where it was cut — burn's `relu_backward`, value for value.
#[inline(always)]
fn relu_mask(g: f32, out: f32) -> f32 {
    if out <= 0.0 { 0.0 } else { g }
}

/// Per-channel mean and biased variance: the mean in a first read, the squared deviations
/// from it in a second (no cancellation, unlike `E[x²] − E[x]²`).
pub fn statistics(x: &[f32], d: Dims) -> (Vec<f32>, Vec<f32>) {
    let count = d.per_channel().max(1) as f64;
    map_channels(d, |c| {
        let mean = d.runs(x, c).map(|r| lane_sum(r, r, |v, _| v)).sum::<f64>() / count;
        let m = mean as f32;
        let var = d
            .runs(x, c)
            .map(|r| lane_sum(r, r, |v, _| (v - m) * (v - m)))
            .sum::<f64>()
            / count;
        (m, var as f32)
    })
    .into_iter()
    .unzip()
}

/// `1 / sqrt(var + eps)` per channel.
pub fn inverse_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
        .collect()
}

/// The batch norm as one affine map per channel: `scale = γ / σ`, `shift = β − mean · scale`.
fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], inv_std: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, i)| g * i).collect();
    let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

/// ReLU that lets NaN through (as burn's and PyTorch's do), so a diverging run still shows it.
#[inline(always)]
fn relu(v: f32) -> f32 {
    if v <= 0.0 { 0.0 } else { v }
}

/// `out = x·scale + shift (+ residual)`, then ReLU when `apply_relu`; `scale` and `shift` are
/// per channel.
pub fn normalize(
    x: &[f32],
    residual: Option<&[f32]>,
    scale: &[f32],
    shift: &[f32],
    apply_relu: bool,
    d: Dims,
) -> Vec<f32> {
    let image = d.channels * d.plane;
    new_by_images(d, |n, out| {
        for c in 0..d.channels {
            let at = n * image + c * d.plane;
            let (s, t) = (scale[c], shift[c]);
            let o = &mut out[c * d.plane..][..d.plane];
            let xs = &x[at..][..d.plane];
            match (residual, apply_relu) {
                (Some(r), true) => {
                    let rs = &r[at..][..d.plane];
                    o.iter_mut().zip(xs).zip(rs).for_each(|((o, &v), &r)| _ = o.write(relu(v * s + t + r)));
                }
                (Some(r), false) => {
                    let rs = &r[at..][..d.plane];
                    o.iter_mut().zip(xs).zip(rs).for_each(|((o, &v), &r)| _ = o.write(v * s + t + r));
                }
                (None, true) => o.iter_mut().zip(xs).for_each(|(o, &v)| _ = o.write(relu(v * s + t))),
                (None, false) => o.iter_mut().zip(xs).for_each(|(o, &v)| _ = o.write(v * s + t)),
            }
        }
    })
}

static EVAL_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Inference: `relu?(x·scale + shift (+ residual))` with `scale = γ / sqrt(running var + ε)` and
/// `shift = β − running mean · scale` — one pass, where burn's default runs five (sub, div,
/// mul, add, then the add and ReLU); the same affine form PyTorch's inference kernel uses, so
/// it differs from burn's `(x − mean) / std · γ + β` by rounding only.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    x: &[f32],
    residual: Option<&[f32]>,
    [gamma, beta, mean, var]: [&[f32]; 4],
    epsilon: f64,
    apply_relu: bool,
    d: Dims,
) -> Vec<f32> {
    EVAL_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let inv_std = inverse_std(var, epsilon);
    let (scale, shift) = affine(gamma, beta, mean, &inv_std);
    normalize(x, residual, &scale, &shift, apply_relu, d)
}

/// Runs of [`forward_eval`] in this process so far.
pub fn eval_calls() -> usize {
    EVAL_CALLS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `[forward, backward]` runs of this kernel in this process so far.
pub fn calls() -> [usize; 2] {
    crate::Kernel::FusedBn.calls()
}

/// The forward pass: `(out, mean, biased variance)`.
pub fn forward_train(
    x: &[f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    apply_relu: bool,
    d: Dims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    crate::Kernel::FusedBn.record(false);
    let (mean, var) = statistics(x, d);
    let inv_std = inverse_std(&var, epsilon);
    let (scale, shift) = affine(gamma, beta, &mean, &inv_std);
    (normalize(x, residual, &scale, &shift, apply_relu, d), mean, var)
}

/// Gradients with respect to `x`, `gamma` and `beta`.
pub struct Gradients {
    /// `dL/dx`, like `x`.
    pub x: Vec<f32>,
    /// `dL/dgamma`, per channel.
    pub gamma: Vec<f32>,
    /// `dL/dbeta`, per channel.
    pub beta: Vec<f32>,
}

/// The backward pass given `grad = dL/d(output)`: per channel `Σg` and `Σg·(x − mean)` in one
/// read, then `dx = γ·σ⁻¹·(g − Σg/M − (x − mean)·σ⁻²·Σg(x − mean)/M)` in a second. With
/// `relu_output` (the forward's output when a ReLU ended it) `g` is ReLU's backward of `grad`,
/// applied on the fly in both reads instead of as a pass of its own; without it `grad` is
/// `dL/d(bn output)` as is.
pub fn backward_train(
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    grad: &[f32],
    relu_output: Option<&[f32]>,
    epsilon: f64,
    d: Dims,
) -> Gradients {
    crate::Kernel::FusedBn.record(true);
    let count = d.per_channel().max(1) as f64;
    let inv_std = inverse_std(var, epsilon);
    let sums: Vec<(f64, f64)> = map_channels(d, |c| {
        let m = mean[c];
        let runs = d.runs(grad, c).zip(d.runs(x, c));
        match relu_output {
            None => runs.fold((0.0, 0.0), |(sg, sgx), (g, xs)| {
                (sg + lane_sum(g, g, |v, _| v), sgx + lane_sum(g, xs, |g, v| g * (v - m)))
            }),
            Some(out) => runs.zip(d.runs(out, c)).fold((0.0, 0.0), |(sg, sgx), ((g, xs), o)| {
                (
                    sg + lane_sum(g, o, relu_mask),
                    sgx + lane_sum3(g, o, xs, |g, o, v| relu_mask(g, o) * (v - m)),
                )
            }),
        }
    });
    // dx = k1·g + k2·(x − mean) + k3, per channel.
    let k: Vec<[f32; 3]> = (0..d.channels)
        .map(|c| {
            let (sg, sgx) = sums[c];
            let i = f64::from(inv_std[c]);
            let k1 = f64::from(gamma[c]) * i;
            [k1 as f32, (-k1 * i * i * sgx / count) as f32, (-k1 * sg / count) as f32]
        })
        .collect();
    let image = d.channels * d.plane;
    let dx = new_by_images(d, |n, out| {
        for c in 0..d.channels {
            let at = n * image + c * d.plane;
            let ([k1, k2, k3], m) = (k[c], mean[c]);
            let o = &mut out[c * d.plane..][..d.plane];
            let (gs, xs) = (&grad[at..][..d.plane], &x[at..][..d.plane]);
            match relu_output {
                None => o.iter_mut().zip(gs).zip(xs).for_each(|((o, &g), &v)| _ = o.write(k1 * g + k2 * (v - m) + k3)),
                Some(out) => {
                    let os = &out[at..][..d.plane];
                    o.iter_mut().zip(gs).zip(xs).zip(os).for_each(|(((o, &g), &v), &r)| {
                        o.write(k1 * relu_mask(g, r) + k2 * (v - m) + k3);
                    });
                }
            }
        }
    });
    Gradients {
        x: dx,
        gamma: sums
            .iter()
            .zip(&inv_std)
            .map(|(&(_, sgx), &i)| (sgx * f64::from(i)) as f32)
            .collect(),
        beta: sums.iter().map(|&(sg, _)| sg as f32).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward f64 batch norm, for reference.
    fn reference(x: &[f32], gamma: &[f32], beta: &[f32], eps: f64, d: Dims) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let m = d.per_channel() as f64;
        let at = |n: usize, c: usize, i: usize| (n * d.channels + c) * d.plane + i;
        let (mut mean, mut var) = (vec![0f64; d.channels], vec![0f64; d.channels]);
        let mut out = vec![0f64; d.len()];
        for c in 0..d.channels {
            let values: Vec<f64> = (0..d.batch)
                .flat_map(|n| (0..d.plane).map(move |i| (n, i)))
                .map(|(n, i)| f64::from(x[at(n, c, i)]))
                .collect();
            mean[c] = values.iter().sum::<f64>() / m;
            var[c] = values.iter().map(|v| (v - mean[c]).powi(2)).sum::<f64>() / m;
            for n in 0..d.batch {
                for i in 0..d.plane {
                    let v = f64::from(x[at(n, c, i)]);
                    out[at(n, c, i)] = (v - mean[c]) / (var[c] + eps).sqrt() * f64::from(gamma[c]) + f64::from(beta[c]);
                }
            }
        }
        (out, mean, var)
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // Offset and spread like post-ReLU activations, deterministic.
        (0..len)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                3.0 + (h % 10_007) as f32 / 2_000.0
            })
            .collect()
    }

    #[test]
    fn forward_matches_an_f64_reference_serial_and_parallel() {
        for d in [
            Dims {
                batch: 3,
                channels: 4,
                plane: 5,
            },
            Dims {
                batch: 8,
                channels: 16,
                plane: 17 * 17,
            },
        ] {
            let x = values(d.len(), 1);
            let gamma: Vec<f32> = (0..d.channels).map(|c| 0.5 + c as f32 * 0.1).collect();
            let beta: Vec<f32> = (0..d.channels).map(|c| c as f32 * 0.01 - 0.05).collect();
            let (out, mean, var) = forward_train(&x, None, &gamma, &beta, 1e-5, false, d);
            let (want, want_mean, want_var) = reference(&x, &gamma, &beta, 1e-5, d);
            for c in 0..d.channels {
                assert!(
                    (f64::from(mean[c]) - want_mean[c]).abs() < 1e-6 * want_mean[c].abs(),
                    "{d:?}"
                );
                assert!((f64::from(var[c]) - want_var[c]).abs() < 1e-5 * want_var[c], "{d:?}");
            }
            let worst = out
                .iter()
                .zip(&want)
                .map(|(&a, b)| (f64::from(a) - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "{d:?}: {worst}");
            // Residual and ReLU are applied after the affine map.
            let r = values(d.len(), 2).iter().map(|v| v - 5.5).collect::<Vec<_>>();
            let (fused, _, _) = forward_train(&x, Some(&r), &gamma, &beta, 1e-5, true, d);
            for ((f, o), r) in fused.iter().zip(&out).zip(&r) {
                assert_eq!(*f, (o + r).max(0.0));
            }
        }
    }

    #[test]
    fn relu_mask_in_the_backward_equals_masking_first_bit_for_bit() {
        for d in [
            Dims {
                batch: 2,
                channels: 3,
                plane: 37,
            },
            Dims {
                batch: 8,
                channels: 16,
                plane: 17 * 17,
            },
        ] {
            let x: Vec<f32> = values(d.len(), 5).iter().map(|v| v - 5.5).collect();
            let gamma: Vec<f32> = (0..d.channels).map(|c| 0.5 + c as f32 * 0.1).collect();
            let beta: Vec<f32> = (0..d.channels).map(|c| c as f32 * 0.02 - 0.1).collect();
            let (out, mean, var) = forward_train(&x, None, &gamma, &beta, 1e-5, true, d);
            assert!(out.iter().any(|&v| v == 0.0) && out.iter().any(|&v| v > 0.0), "{d:?}");
            let grad: Vec<f32> = values(d.len(), 6).iter().map(|v| v - 5.0).collect();
            let masked: Vec<f32> = grad.iter().zip(&out).map(|(&g, &o)| relu_mask(g, o)).collect();
            let fused = backward_train(&x, &gamma, &mean, &var, &grad, Some(&out), 1e-5, d);
            let first = backward_train(&x, &gamma, &mean, &var, &masked, None, 1e-5, d);
            assert_eq!(fused.x, first.x, "{d:?}");
            assert_eq!(fused.gamma, first.gamma, "{d:?}");
            assert_eq!(fused.beta, first.beta, "{d:?}");
            let unmasked = backward_train(&x, &gamma, &mean, &var, &grad, None, 1e-5, d);
            assert_ne!(fused.beta, unmasked.beta, "{d:?}: the mask must matter here");
        }
    }

    #[test]
    fn relu_keeps_nan() {
        assert!(relu(f32::NAN).is_nan());
        assert_eq!((relu(-1.0), relu(2.0)), (0.0, 2.0));
    }

    #[test]
    fn backward_matches_finite_differences_of_the_forward() {
        let d = Dims {
            batch: 2,
            channels: 3,
            plane: 4,
        };
        let x: Vec<f32> = values(d.len(), 3).iter().map(|v| v - 5.0).collect();
        let gamma = [0.7f32, 1.3, -0.4];
        let beta = [0.1f32, -0.2, 0.3];
        let weights = values(d.len(), 4); // the loss is Σ w·out
        let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
            let (out, ..) = reference(x, gamma, beta, 1e-5, d);
            out.iter().zip(&weights).map(|(o, &w)| o * f64::from(w)).sum()
        };
        let (_, mean, var) = forward_train(&x, None, &gamma, &beta, 1e-5, false, d);
        let g = backward_train(&x, &gamma, &mean, &var, &weights, None, 1e-5, d);
        let h = 1e-3f32;
        let numeric = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * f64::from(h));
        for i in 0..d.len() {
            let n = numeric(&|e| {
                let mut x2 = x.clone();
                x2[i] += e;
                loss(&x2, &gamma, &beta)
            });
            assert!(
                (f64::from(g.x[i]) - n).abs() < 2e-2 * n.abs().max(1.0),
                "dx[{i}] {} vs {n}",
                g.x[i]
            );
        }
        for c in 0..d.channels {
            let n = numeric(&|e| {
                let mut g2 = gamma;
                g2[c] += e;
                loss(&x, &g2, &beta)
            });
            assert!(
                (f64::from(g.gamma[c]) - n).abs() < 1e-2 * n.abs().max(1.0),
                "dgamma[{c}]"
            );
            let n = numeric(&|e| {
                let mut b2 = beta;
                b2[c] += e;
                loss(&x, &gamma, &b2)
            });
            assert!((f64::from(g.beta[c]) - n).abs() < 1e-2 * n.abs().max(1.0), "dbeta[{c}]");
        }
    }
}
