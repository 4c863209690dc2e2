//! The `gemm` crate's product (what burn-flex uses), for the passes where its blocking beats
//! our own [`super::matmul`].

/// The left operand of a pass's products (its weights): `m × k`, element `(i, p)` at
/// `i·strides[0] + p·strides[1]`.
pub(super) struct Lhs<'a> {
    pub m: usize,
    pub k: usize,
    pub src: &'a [f32],
    pub strides: [usize; 2],
}

impl Lhs<'_> {
    /// `dst[m, n] (+)= self · rhs[k, n]` (`dst` row-major, rows `dst_rs` apart), through the
    /// `gemm` crate: on the column matrices of strided and small-map convolutions (hundreds to
    /// thousands of reductions) its blocking beat our own product by 10–30%.
    pub(super) fn times(
        &self,
        n: usize,
        dst: (&mut [f32], usize, bool),
        rhs: &[f32],
        rhs_strides: [usize; 2],
        parallel: bool,
    ) {
        let Lhs { m, k, src, strides } = *self;
        let (dst, dst_rs, accumulate) = dst;
        crate_gemm(
            [m, n, k],
            (dst, [dst_rs, 1], accumulate),
            (src, strides),
            (rhs, rhs_strides),
            parallel,
        )
    }
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` through the `gemm` crate (what burn-flex uses), each
/// matrix given with its `[row, column]` strides (`dst` added to when `accumulate`).
pub(super) fn crate_gemm(
    [m, n, k]: [usize; 3],
    (dst, [dst_rs, dst_cs], accumulate): (&mut [f32], [usize; 2], bool),
    (lhs, [lhs_rs, lhs_cs]): (&[f32], [usize; 2]),
    (rhs, [rhs_rs, rhs_cs]): (&[f32], [usize; 2]),
    parallel: bool,
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(dst.len() >= last(m, n, dst_rs, dst_cs), "gemm: destination too short");
    assert!(lhs.len() >= last(m, k, lhs_rs, lhs_cs), "gemm: left operand too short");
    assert!(rhs.len() >= last(k, n, rhs_rs, rhs_cs), "gemm: right operand too short");
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices,
    // and `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}
