//! Element-wise CPU kernels for the encoder: written as branch-free loops over slices so the compiler
//! vectorises them, with accuracy checked against the standard library in the tests below.

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
    assert!(dst.len() >= (m - 1) * dst_row_stride + n, "dst too small");
    assert!(a.len() >= (m - 1) * a_row_stride + k, "a too small");
    assert!(b.len() >= (n - 1) * b_row_stride + k, "b too small");
    if m <= SMALL_M {
        return matmul_bt_small(dst, dst_row_stride, a, a_row_stride, b, b_row_stride, m, n, k, accumulate, threads);
    }
    let parallelism = if threads > 1 && m * n * k >= 1 << 18 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: the asserts above bound every element the strides reach; the slices do not overlap (one is
    // borrowed mutably).
    unsafe { gemm_raw(dst, dst_row_stride, a, a_row_stride, b, (b_row_stride, 1), (m, n, k), accumulate, parallelism) }
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
        if crate::simd::avx2() {
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
    assert!(dst.len() >= (m - 1) * dst_row_stride + n, "dst too small");
    assert!(a.len() >= (m - 1) * a_row_stride + k, "a too small");
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

/// `e^x` for f32 to about 2 ulp: range reduction by ln 2 and a degree-6 polynomial, branch-free.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // Round to nearest by adding and subtracting 1.5 * 2^23: vectorises, unlike `round()` (a libm call).
    const ROUND: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 split in two so that n * ln2 is exact enough.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_345 + r * 0.001_388_930_7)))));
    // 2^n built from t's bits, where n sits in the low mantissa bits: an `as i32` conversion instead would be
    // a saturating, NaN-checked scalar conversion per lane and keep the loop from vectorising.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(0x4b40_0000 - 127) << 23);
    p * scale
}

/// erf for f32 to within a few ulp: the rational approximation on [-4, 4] used by Eigen and XLA (erf is ±1 to
/// f32 precision beyond), branch-free so it vectorises.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_600_6e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329_5e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

/// Adds `bias` to every row of `x` and applies the exact (erf) GELU in place.
#[inline(always)]
fn bias_gelu_impl(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            let y = *v + b;
            *v = 0.5 * y * (1.0 + erf(y * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Adds `bias` to every row of `x`.
#[inline(always)]
fn add_bias_impl(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// Softmax of each row of `x` (`cols` wide) in place, with every score first multiplied by `scale`.
#[inline(always)]
fn softmax_rows_impl(x: &mut [f32], cols: usize, scale: f32) {
    for row in x.chunks_exact_mut(cols) {
        let max = max_lanes(row) * scale;
        for v in row.iter_mut() {
            *v = exp(*v * scale - max);
        }
        let inv = 1.0 / sum_lanes(row, |v| v);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// Sums `map(v)` over `x` with eight independent accumulators: floating-point additions are not reassociated
/// by the compiler, so a single running sum would keep the loop scalar.
#[inline(always)]
fn sum_lanes(x: &[f32], map: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder().iter().map(|&v| map(v)).sum::<f32>();
    for c in chunks {
        for i in 0..8 {
            acc[i] += map(c[i]);
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// The largest value of `x` (NEG_INFINITY for an empty slice), with eight accumulators.
#[inline(always)]
fn max_lanes(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for c in chunks {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().fold(rest, |m, &v| if v > m { v } else { m })
}

/// Adds `bias` to each row, then layer-normalises it (biased variance, as PyTorch does) in place.
#[inline(always)]
fn bias_layer_norm_impl(x: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = gamma.len() as f32;
    for row in x.chunks_exact_mut(gamma.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
        let mean = sum_lanes(row, |v| v) / n;
        let var = sum_lanes(row, |v| (v - mean) * (v - mean));
        let inv = 1.0 / (var / n + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// Generates a public kernel that runs its body compiled for AVX2 and FMA when `simd::level()` allows (the CPU
/// has them and `EMBEDDING_SERVICE_SIMD` does not cap them off), else compiled for the baseline target.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $imp:ident, $avx:ident, ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                if crate::simd::avx2() {
                    // SAFETY: the CPU supports the features the function is compiled for.
                    return unsafe { $avx($($arg),*) };
                }
            }
            $imp($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($arg: $ty),*) {
            $imp($($arg),*)
        }
    };
}

dispatch!(
    /// Adds `bias` to every row of `x` and applies the exact (erf) GELU in place.
    bias_gelu, bias_gelu_impl, bias_gelu_avx2, (x: &mut [f32], bias: &[f32])
);
dispatch!(
    /// Adds `bias` to every row of `x`.
    add_bias, add_bias_impl, add_bias_avx2, (x: &mut [f32], bias: &[f32])
);
dispatch!(
    /// Softmax of each row of `x` (`cols` wide) in place, with every score first multiplied by `scale`.
    softmax_rows, softmax_rows_impl, softmax_rows_avx2, (x: &mut [f32], cols: usize, scale: f32)
);
dispatch!(
    /// Adds `bias` to each row, then layer-normalises it (biased variance, as PyTorch does) in place.
    bias_layer_norm, bias_layer_norm_impl, bias_layer_norm_avx2,
    (x: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp(-200.0), exp(-87.3));
        assert!(exp(0.0) == 1.0);
    }

    #[test]
    fn erf_matches_the_standard_library() {
        let mut worst = 0.0f64;
        let mut x = -6.0f32;
        while x < 6.0 {
            worst = worst.max((erf(x) as f64 - libm_erf(x as f64)).abs());
            x += 0.0011;
        }
        assert!(worst < 5e-7, "worst absolute error {worst}");
    }

    // erf in f64 from its Taylor series (|x| < 3) and continued fraction (beyond): an independent reference.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut sum = 0.0;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let t = x.abs();
            let mut cf = 0.0;
            for k in (1..60).rev() {
                cf = (k as f64 / 2.0) / (t + cf);
            }
            let erfc = (-t * t).exp() / std::f64::consts::PI.sqrt() / (t + cf);
            x.signum() * (1.0 - erfc)
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_the_definition() {
        let mut x = vec![1.0, 2.0, 3.0, -1e9, 0.5, 0.5];
        softmax_rows(&mut x, 3, 1.0);
        let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        for i in 0..3 {
            assert!((x[i] as f64 - e[i] / s).abs() < 1e-6);
        }
        assert!(x[3] < 1e-30 && (x[4] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn bias_layer_norm_matches_the_definition() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        bias_layer_norm(&mut x, &[0.0, 0.0, 0.0, 1.0], &[1.0; 4], &[0.5; 4], 1e-12);
        // row + bias = [1, 2, 3, 5]: mean 2.75, variance 2.1875
        let want: Vec<f32> = [1.0f32, 2.0, 3.0, 5.0].iter().map(|v| (v - 2.75) / 2.1875f32.sqrt() + 0.5).collect();
        for (a, b) in x.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
    }

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
