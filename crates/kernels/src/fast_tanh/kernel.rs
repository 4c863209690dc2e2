//! The f32 kernels behind [`super`]: a tanh the compiler vectorises, and its backward.
//!
//! The approximation is Eigen's (`generic_fast_tanh_float`, what TensorFlow and XLA use on the
//! CPU): an odd degree-13 over even degree-6 rational function on `[−7.905, 7.905]`, the input
//! clamped there (tanh is ±1 in f32 beyond), and `x` itself below `|x| < 4e-4` (where
//! `tanh(x) = x` to within f32's precision). Checked against f64's tanh: within 1e-6
//! absolute everywhere and 3e-6 relative (see the tests). libm's `tanhf`, which burn-flex calls
//! once per value, cannot be vectorised and took half of a LeNet-5 training step.

use rayon::prelude::*;

/// Values per parallel task (and the size below which one thread does it all).
const CHUNK: usize = 1 << 15;

const CLAMP: f32 = 7.905_311;
const TINY: f32 = 4e-4;
const ALPHA: [f32; 7] = [
    4.893_524_6e-3,
    6.372_619_3e-4,
    1.485_722_4e-5,
    5.122_297e-8,
    -8.604_671_5e-11,
    2.000_187_9e-13,
    -2.760_768_5e-16,
];
const BETA: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347_1e-4, 1.198_258_4e-6];

/// tanh of one value (see the module docs); NaN stays NaN.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let c = x.clamp(-CLAMP, CLAMP);
    let x2 = c * c;
    let p = ALPHA.iter().rev().fold(0.0f32, |acc, &a| acc * x2 + a) * c;
    let q = BETA.iter().rev().fold(0.0f32, |acc, &b| acc * x2 + b);
    let y = p / q;
    if x.abs() < TINY { x } else { y }
}

/// `tanh` of every value, in parallel chunks.
pub fn forward(x: &[f32]) -> Vec<f32> {
    crate::Kernel::FastTanh.record(false);
    let mut out = vec![0.0f32; x.len()];
    let run = |(o, x): (&mut [f32], &[f32])| o.iter_mut().zip(x).for_each(|(o, &v)| *o = tanh(v));
    if x.len() <= CHUNK {
        run((&mut out, x));
    } else {
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(run);
    }
    out
}

/// `grad · (1 − y²)` with `y` the forward's output.
pub fn backward(y: &[f32], grad: &[f32]) -> Vec<f32> {
    crate::Kernel::FastTanh.record(true);
    assert_eq!(y.len(), grad.len(), "tanh backward: output and gradient differ in size");
    let mut out = vec![0.0f32; y.len()];
    let run = |((o, y), g): ((&mut [f32], &[f32]), &[f32])| {
        o.iter_mut()
            .zip(y)
            .zip(g)
            .for_each(|((o, &y), &g)| *o = g * (1.0 - y * y));
    };
    if y.len() <= CHUNK {
        run(((&mut out, y), grad));
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(y.par_chunks(CHUNK))
            .zip(grad.par_chunks(CHUNK))
            .for_each(run);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_within_a_few_ulp_of_f64() {
        let (mut worst_abs, mut worst_rel) = (0.0f64, 0.0f64);
        // Dense near 0, then out to where tanh is ±1 in f32, both signs.
        let mut x = 1e-8f32;
        while x < 20.0 {
            for v in [x, -x] {
                let want = (v as f64).tanh();
                let got = tanh(v) as f64;
                worst_abs = worst_abs.max((got - want).abs());
                worst_rel = worst_rel.max(((got - want) / want).abs());
            }
            x *= 1.0007;
        }
        assert!(worst_abs < 1e-6, "absolute error {worst_abs:e}");
        assert!(worst_rel < 3e-6, "relative error {worst_rel:e}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn large_inputs_split_into_chunks_give_the_same_values() {
        let x: Vec<f32> = (0..3 * CHUNK + 17).map(|i| (i as f32 - 50_000.0) / 7_000.0).collect();
        let y = forward(&x);
        assert!(x.iter().zip(&y).all(|(&x, &y)| y == tanh(x)));
        let g: Vec<f32> = (0..x.len()).map(|i| (i % 13) as f32 - 6.0).collect();
        let dx = backward(&y, &g);
        assert!(
            dx.iter()
                .zip(y.iter().zip(&g))
                .all(|(&d, (&y, &g))| d == g * (1.0 - y * y))
        );
    }
}
