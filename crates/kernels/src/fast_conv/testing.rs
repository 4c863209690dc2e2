//! Helpers of the kernels' tests: deterministic inputs, and the check that a path gives the
//! same bits on any number of threads.

use super::geometry::ConvGeometry;

/// Deterministic values in [−1, 1] for the kernels' tests, different for each seed.
pub(crate) fn test_values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// A path's three passes: forward (`x`, weight, bias → output), input gradient (weight, dY →
/// dX) and weight gradient (`x`, dY → dW, zeros on entry).
pub(crate) type Passes = (
    fn(&ConvGeometry, &[f32], &[f32], Option<&[f32]>, &mut [f32]),
    fn(&ConvGeometry, &[f32], &[f32], &mut [f32]),
    fn(&ConvGeometry, &[f32], &[f32], &mut [f32]),
);

/// Asserts that a path's three passes give the same bits at `g` on 1 and on 3 threads (what
/// bit-identical resume needs).
pub(crate) fn assert_same_on_any_number_of_threads(
    g: &ConvGeometry,
    (forward, input_gradient, weight_gradient): Passes,
) {
    let x = test_values(g.batch * g.channels_in * g.pixels_in(), 1);
    let w = test_values(g.channels_out * g.rows(), 2);
    let dy = test_values(g.batch * g.channels_out * g.pixels_out(), 3);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
        pool.install(|| {
            forward(g, &x, &w, None, &mut y);
            input_gradient(g, &w, &dy, &mut dx);
            weight_gradient(g, &x, &dy, &mut dw);
        });
        (y, dx, dw)
    };
    assert!(on(1) == on(3), "{g:?}: results differ between 1 and 3 threads");
}
