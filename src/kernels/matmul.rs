//! The matrix products that take a plain (unpacked) right-hand side: `gemm` for many rows, a direct kernel for
//! a few, and the products inside attention (Q·Kᵀ and scores·V). This is the reference the packed panel
//! kernels (`panel.rs`) are tested against, and the path at `EMBEDDING_SERVICE_SIMD=scalar`. `gemm` picks its
//! own SIMD kernels and is not capped by the level.

use gemm::Parallelism;

/// `dst[m×n] (+)= a[m×k] · b`, where `b` is given as a row-major `[n×k]` matrix (a PyTorch Linear weight), read
/// transposed in place. Strides are in elements; `accumulate` adds to what `dst` holds (a residual).
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: &[f32],
    a_row_stride: usize,
    b: &[f32],
    b_row_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    check_rows(dst, dst_row_stride, a, a_row_stride, (m, n, k));
    assert!(b.len() >= (n - 1) * b_row_stride + k, "b too small");
    if m <= SMALL_M {
        return matmul_bt_small(dst, dst_row_stride, a, a_row_stride, b, b_row_stride, m, n, k, accumulate, threads);
    }
    let parallelism = if threads > 1 && m * n * k >= 1 << 18 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: the asserts above bound every element the strides reach; the slices do not overlap (one is
    // borrowed mutably).
    unsafe { gemm_raw(dst, dst_row_stride, a, a_row_stride, b, (b_row_stride, 1), (m, n, k), accumulate, parallelism) }
}

/// Panics unless `dst` holds `m` rows of `n` values and `a` holds `m` rows of `k` values at their row strides
/// (m ≥ 1): the bounds every product's unsafe inner loop relies on.
pub(crate) fn check_rows(dst: &[f32], dst_row_stride: usize, a: &[f32], a_row_stride: usize, (m, n, k): (usize, usize, usize)) {
    assert!(dst.len() >= (m - 1) * dst_row_stride + n, "dst too small");
    assert!(a.len() >= (m - 1) * a_row_stride + k, "a too small");
}

/// Up to this many rows, a product with a weight matrix is bound by reading the weights: `gemm` would spend
/// most of its time packing them. A short query (a dozen tokens) goes through the direct kernel instead.
const SMALL_M: usize = 16;

/// The few-rows product: each weight row is read once, contiguously, and dotted with every input row.
#[allow(clippy::too_many_arguments)]
fn matmul_bt_small(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: &[f32],
    a_row_stride: usize,
    b: &[f32],
    b_row_stride: usize,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
    threads: usize,
) {
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let columns = |range: std::ops::Range<usize>| {
        for j in range {
            let w = &b[j * b_row_stride..j * b_row_stride + k];
            for t in 0..m {
                let v = dot(w, &a[t * a_row_stride..t * a_row_stride + k]);
                // SAFETY: (t, j) is inside dst (asserted by the caller) and each j belongs to one range only.
                let out = unsafe { &mut *dst_ptr.get().add(t * dst_row_stride + j) };
                *out = if accumulate { *out + v } else { v };
            }
        }
    };
    let chunk = 64;
    if threads > 1 && n * k * m >= 1 << 16 {
        use rayon::prelude::*;
        (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| columns(c * chunk..((c + 1) * chunk).min(n)));
    } else {
        columns(0..n);
    }
}

/// A raw pointer that may cross into rayon tasks, to hand disjoint parts of one buffer to parallel tasks;
/// each use says why its parts are disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: see above: users only write disjoint elements, and the buffer outlives the parallel loop.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Dot product with sixteen accumulators, compiled for AVX2+FMA where the CPU has it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if super::level::avx2() {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_impl(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_impl(a, b)
}

#[inline(always)]
fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `dst[m×n] = a[m×k] · b[k×n]`, all row-major with the given row strides.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: &[f32],
    a_row_stride: usize,
    b: &[f32],
    b_row_stride: usize,
    m: usize,
    n: usize,
    k: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    check_rows(dst, dst_row_stride, a, a_row_stride, (m, n, k));
    assert!(k == 0 || b.len() >= (k - 1) * b_row_stride + n, "b too small");
    // SAFETY: bounds asserted above; no overlap.
    unsafe { gemm_raw(dst, dst_row_stride, a, a_row_stride, b, (1, b_row_stride), (m, n, k), false, Parallelism::None) }
}

/// `gemm` on row-major `dst` and `a`, and `b` with the given (column, row) strides.
///
/// # Safety
/// Every element the strides reach for the given shape must lie inside the slices.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: &[f32],
    a_row_stride: usize,
    b: &[f32],
    (b_col_stride, b_row_stride): (usize, usize),
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
    parallelism: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.as_mut_ptr(),
        1,
        dst_row_stride as isize,
        accumulate,
        a.as_ptr(),
        1,
        a_row_stride as isize,
        b.as_ptr(),
        b_col_stride as isize,
        b_row_stride as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gemm::Parallelism;

    #[test]
    fn the_few_rows_kernel_agrees_with_gemm() {
        let (m, n, k) = (5, 70, 37);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 97) as f32 / 48.0 - 1.0).collect();
        let mut small = vec![1.0; m * n];
        matmul_bt_small(&mut small, n, &a, k, &b, k, m, n, k, true, 2);
        let mut big = vec![1.0; m * n];
        // SAFETY: sizes match the slices.
        unsafe {
            gemm::gemm(m, n, k, big.as_mut_ptr(), 1, n as isize, true, a.as_ptr(), 1, k as isize, b.as_ptr(), k as isize, 1, 1.0, 1.0, false, false, false, Parallelism::None)
        };
        for (x, y) in small.iter().zip(&big) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn matmul_bt_reads_the_weight_transposed_and_accumulates() {
        // a = [[1, 2]], w = [[1, 0], [0, 1], [1, 1]] (3 outputs of 2 inputs) -> [1, 2, 3], plus residual 10
        let mut dst = vec![10.0; 3];
        matmul_bt(&mut dst, 3, &[1.0, 2.0], 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2, 1, 3, 2, true, 1);
        assert_eq!(dst, vec![11.0, 12.0, 13.0]);
    }
}
