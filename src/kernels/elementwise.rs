//! Element-wise CPU kernels for the encoder (bias, GELU, softmax, layer norm, exp, erf): each written once as a
//! branch-free loop over slices that the compiler vectorises, and compiled once per SIMD level (AVX-512,
//! AVX2+FMA, and the baseline, which on aarch64 is NEON), chosen at run time by `level`. Accuracy is checked
//! against the standard library and f64 definitions in the tests below.

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

/// GeGLU on rows of `2 × width` values: the first half becomes `GELU(first) × second` (exact GELU).
#[inline(always)]
fn gelu_glu_impl(x: &mut [f32], width: usize) {
    for row in x.chunks_exact_mut(2 * width) {
        let (a, gate) = row.split_at_mut(width);
        for (v, g) in a.iter_mut().zip(gate.iter()) {
            let y = *v;
            *v = 0.5 * y * (1.0 + erf(y * std::f32::consts::FRAC_1_SQRT_2)) * g;
        }
    }
}

/// SwiGLU on rows of `2 × width` values: the first half (the gate) becomes `SiLU(gate) × up`, `up` being the
/// second half.
#[inline(always)]
fn silu_glu_impl(x: &mut [f32], width: usize) {
    for row in x.chunks_exact_mut(2 * width) {
        let (gate, up) = row.split_at_mut(width);
        for (v, u) in gate.iter_mut().zip(up.iter()) {
            let g = *v;
            *v = g / (1.0 + exp(-g)) * u;
        }
    }
}

/// GeGLU with the tanh GELU (PyTorch's `gelu(approximate="tanh")`, Gemma's `gelu_pytorch_tanh`) on rows of
/// `2 × width` values: the first half (the gate) becomes `GELU_tanh(gate) × up`. `0.5·(1 + tanh(u))` is
/// `sigmoid(2u)`, so it is computed as `g / (1 + e^(−2u))`, one exp and no cancellation.
#[inline(always)]
fn gelu_tanh_glu_impl(x: &mut [f32], width: usize) {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    for row in x.chunks_exact_mut(2 * width) {
        let (gate, up) = row.split_at_mut(width);
        for (v, u) in gate.iter_mut().zip(up.iter()) {
            let g = *v;
            let inner = SQRT_2_OVER_PI * (g + 0.044_715 * g * g * g);
            *v = g / (1.0 + exp(-2.0 * inner)) * u;
        }
    }
}

/// Adds each row of `y` to the same row of `x` after RMS-normalising it (`offset + gamma`, as `rms_norm`):
/// Gemma's post-norms, which sit between a block's output and the residual.
#[inline(always)]
fn add_rms_normed_impl(x: &mut [f32], y: &[f32], gamma: &[f32], eps: f32, offset: f32) {
    let n = gamma.len() as f32;
    for (row, src) in x.chunks_exact_mut(gamma.len()).zip(y.chunks_exact(gamma.len())) {
        let inv = 1.0 / (sum_lanes(src, |v| v * v) / n + eps).sqrt();
        for ((v, s), g) in row.iter_mut().zip(src).zip(gamma) {
            *v += *s * inv * (offset + g);
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

/// RMS-normalises each row of `x` in place and scales it by `offset + gamma` (offset 0 for Llama-style norms,
/// 1 for Gemma's `(1 + weight)` form), as transformers does in f32: `x / sqrt(mean(x²) + eps) × (offset + g)`.
#[inline(always)]
fn rms_norm_impl(x: &mut [f32], gamma: &[f32], eps: f32, offset: f32) {
    let n = gamma.len() as f32;
    for row in x.chunks_exact_mut(gamma.len()) {
        let inv = 1.0 / (sum_lanes(row, |v| v * v) / n + eps).sqrt();
        for (v, g) in row.iter_mut().zip(gamma) {
            *v = *v * inv * (offset + g);
        }
    }
}

/// Generates a public kernel that runs its body compiled for the best level `level::level()` allows (the CPU
/// has it and `EMBEDDING_SERVICE_SIMD` does not cap it off): AVX-512F, AVX2+FMA, or the baseline target (SSE2
/// on x86-64, NEON on aarch64). The body is the same loop every time; only the instructions differ.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $imp:ident, ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                // SAFETY: each branch runs only where the CPU has the features its function is compiled for.
                match super::level::level() {
                    super::level::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    super::level::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            $imp($($arg),*)
        }
    };
}

dispatch!(
    /// Adds `bias` to every row of `x` and applies the exact (erf) GELU in place.
    bias_gelu, bias_gelu_impl, (x: &mut [f32], bias: &[f32])
);
dispatch!(
    /// GeGLU on rows of `2 × width` values: the first half of each becomes `GELU(first) × second`.
    gelu_glu, gelu_glu_impl, (x: &mut [f32], width: usize)
);
dispatch!(
    /// SwiGLU on rows of `2 × width` values: the first half of each becomes `SiLU(first) × second`.
    silu_glu, silu_glu_impl, (x: &mut [f32], width: usize)
);
dispatch!(
    /// GeGLU with the tanh GELU on rows of `2 × width` values: the first half becomes `GELU_tanh(first) × second`.
    gelu_tanh_glu, gelu_tanh_glu_impl, (x: &mut [f32], width: usize)
);
dispatch!(
    /// Adds each row of `y`, RMS-normalised and scaled by `offset + gamma`, to the same row of `x`.
    add_rms_normed, add_rms_normed_impl, (x: &mut [f32], y: &[f32], gamma: &[f32], eps: f32, offset: f32)
);
dispatch!(
    /// RMS-normalises each row of `x` (`gamma.len()` wide) and scales it by `offset + gamma`.
    rms_norm, rms_norm_impl, (x: &mut [f32], gamma: &[f32], eps: f32, offset: f32)
);
dispatch!(
    /// Adds `bias` to every row of `x`.
    add_bias, add_bias_impl, (x: &mut [f32], bias: &[f32])
);
dispatch!(
    /// Softmax of each row of `x` (`cols` wide) in place, with every score first multiplied by `scale`.
    softmax_rows, softmax_rows_impl, (x: &mut [f32], cols: usize, scale: f32)
);
dispatch!(
    /// Adds `bias` to each row, then layer-normalises it (biased variance, as PyTorch does) in place.
    bias_layer_norm, bias_layer_norm_impl,
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
    fn rms_norm_matches_the_definition_in_both_forms() {
        for offset in [0.0f32, 1.0] {
            let mut x = vec![1.0, -2.0, 3.0, 0.5, 2.0, 2.0, 2.0, 2.0];
            let gamma = [0.5, 1.0, -1.0, 2.0];
            rms_norm(&mut x, &gamma, 1e-6, offset);
            for (r, row) in [[1.0f64, -2.0, 3.0, 0.5], [2.0; 4]].iter().enumerate() {
                let rms = (row.iter().map(|v| v * v).sum::<f64>() / 4.0 + 1e-6).sqrt();
                for j in 0..4 {
                    let want = row[j] / rms * (offset as f64 + gamma[j] as f64);
                    assert!((x[r * 4 + j] as f64 - want).abs() < 1e-6, "offset {offset}, row {r}, {j}");
                }
            }
        }
    }

    #[test]
    fn gelu_tanh_glu_matches_the_tanh_definition() {
        // Across the range, including where the exp saturates on either side.
        let gates: Vec<f32> = (-120..=120).map(|k| k as f32 * 0.125).collect();
        let w = gates.len();
        let mut x: Vec<f32> = gates.iter().copied().chain((0..w).map(|k| 1.0 - k as f32 * 0.01)).collect();
        gelu_tanh_glu(&mut x, w);
        for (j, &g) in gates.iter().enumerate() {
            let (g, u) = (g as f64, 1.0 - j as f64 * 0.01);
            let want = 0.5 * g * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g * g * g)).tanh()) * u;
            assert!((x[j] as f64 - want).abs() < 2e-6 * want.abs().max(1.0), "{g}: {} vs {want}", x[j]);
        }
    }

    #[test]
    fn add_rms_normed_adds_the_normed_rows() {
        for offset in [0.0f32, 1.0] {
            let y = [1.0f32, -2.0, 3.0, 0.5, 2.0, 2.0, 2.0, 2.0];
            let mut x = vec![0.25f32; 8];
            let gamma = [0.5, 1.0, -1.0, 2.0];
            add_rms_normed(&mut x, &y, &gamma, 1e-6, offset);
            let mut normed = y.to_vec();
            rms_norm(&mut normed, &gamma, 1e-6, offset);
            for j in 0..8 {
                assert!((x[j] - (0.25 + normed[j])).abs() < 1e-6, "offset {offset}, {j}");
            }
        }
    }

    #[test]
    fn silu_glu_matches_the_definition() {
        let mut x = vec![-3.0, 0.0, 2.5, 1.5, -2.0, 4.0];
        silu_glu(&mut x, 3);
        for (j, (g, u)) in [(-3.0f64, 1.5), (0.0, -2.0), (2.5, 4.0)].into_iter().enumerate() {
            let want = g / (1.0 + (-g).exp()) * u;
            assert!((x[j] as f64 - want).abs() < 1e-6, "{j}: {} vs {want}", x[j]);
        }
    }
}
