//! Matrix multiplies with the weights packed, once at load, in panels of 32 output columns, for AVX-512
//! register tiles of 8 rows × 32 columns whose accumulators stay in registers for the whole inner loop.
//!
//! - f32 (`PackedF32`, the default where AVX-512F is present): the file's own numbers, laid out so each weight
//!   is read once per 8 rows. A short query, bound by streaming the weights, runs about twice as fast as on
//!   `gemm`, and batches are no slower.
//! - bf16 (`PackedBf16`, the opt-in `dtype: 'bf16'` mode, AVX512_BF16): weights rounded to bf16 and stored as
//!   pairs of inputs for `vdpbf16ps`, which multiplies pairs and accumulates in f32; activations are rounded
//!   per call. Half the bytes to stream and twice the multiply-adds per instruction.
//!
//! Both are chosen at run time from what the CPU reports; other CPUs use `kernels::matmul_bt` (`gemm`).

use rayon::prelude::*;

use super::kernels::SendPtr;

/// Output columns per panel: two 16-lane f32 registers.
const NR: usize = 32;
/// Input rows per register tile: 8 rows × 2 registers = 16 accumulators, within the 32 registers.
const MR: usize = 8;
/// Rows per task: their bf16 activations stay in L2 while every weight panel streams past them.
const ROWS_PER_TASK: usize = 64;

/// Whether this CPU can run the bf16 kernels.
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::simd::avx512() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 to bf16, rounding to nearest even (as `vcvtne2ps2bf16` and PyTorch do); NaN stays NaN.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    let quiet_nan = ((bits >> 16) | 0x40) as u16;
    // A select rather than an early return, so loops over this vectorise.
    if x.is_nan() { quiet_nan } else { rounded }
}

pub fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// A `[n × k]` weight matrix (a PyTorch Linear weight), rounded to bf16 and packed in panels.
pub struct PackedBf16 {
    data: Vec<u16>,
    n: usize,
    k: usize,
}

impl PackedBf16 {
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight shape");
        let mut packed = PackedBf16 { data: Vec::new(), n: 0, k: 0 };
        packed.repack(n, k, |j, i| w[j * k + i]);
        packed
    }

    /// Packs `[n × k]` values read through `get(column, input)` (a strided or transposed view), reusing this
    /// buffer: attention packs K and V per sequence and head this way.
    pub fn repack(&mut self, n: usize, k: usize, get: impl Fn(usize, usize) -> f32) {
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        // Columns past n and the odd input past k are zeros, so the kernel never needs an edge case in k.
        // Everything else is overwritten, so the buffer is only zeroed where it grows.
        let len = panels * pairs * NR * 2;
        if self.data.len() < len {
            self.data.resize(len, 0);
        }
        (self.n, self.k) = (n, k);
        let data = &mut self.data[..len];
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            for q in 0..pairs {
                let out = &mut data[(p * pairs + q) * NR * 2..][..NR * 2];
                let second = 2 * q + 1 < k;
                for c in 0..cols {
                    out[2 * c] = to_bf16(get(p * NR + c, 2 * q));
                    out[2 * c + 1] = if second { to_bf16(get(p * NR + c, 2 * q + 1)) } else { 0 };
                }
                out[2 * cols..].fill(0);
            }
        }
    }

    pub const fn empty() -> Self {
        PackedBf16 { data: Vec::new(), n: 0, k: 0 }
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// `dst[m×n] (+)= a[m×k] · wᵀ`, like `kernels::matmul_bt` with packed bf16 weights. `a16` is a reusable buffer
/// for the rounded activations. Panics unless `bf16_supported()`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt_bf16(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: &[f32],
    a_row_stride: usize,
    w: &PackedBf16,
    m: usize,
    accumulate: bool,
    threads: usize,
    a16: &mut Vec<u16>,
) {
    assert!(bf16_supported(), "bf16 kernels need AVX512_BF16");
    let (n, k, pairs) = (w.n, w.k, w.pairs());
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_row_stride + n, "dst too small");
    assert!(a.len() >= (m - 1) * a_row_stride + k, "a too small");

    // Activations rounded to bf16, each row padded to an even length.
    let row16 = pairs * 2;
    if a16.len() < m * row16 {
        a16.resize(m * row16, 0);
    }
    let a16 = &mut a16[..m * row16];
    let convert = |(t, out): (usize, &mut [u16])| {
        let src = &a[t * a_row_stride..][..k];
        out[..k].iter_mut().zip(src).for_each(|(o, &x)| *o = to_bf16(x));
        if k < row16 {
            out[k] = 0;
        }
    };
    if threads > 1 && m * k >= 1 << 16 {
        a16.par_chunks_mut(row16).enumerate().for_each(convert);
    } else {
        a16.chunks_mut(row16).enumerate().for_each(convert);
    }
    let a16: &[u16] = a16;

    let dst_ptr = SendPtr(dst.as_mut_ptr());
    for_each_tile(m, w.panels(), threads, m * n * k, |t, r, p| {
        let panel = &w.data[p * pairs * NR * 2..][..pairs * NR * 2];
        // SAFETY: rows t..t+r and columns of panel p are inside dst (asserted above) and visited by one tile
        // only; the CPU has the features (asserted).
        unsafe {
            let out = dst_ptr.get().add(t * dst_row_stride + p * NR);
            tile(&a16[t * row16..], row16, panel, pairs, r, out, dst_row_stride, NR.min(n - p * NR), accumulate);
        }
    });
}

/// Calls `f(first_row, rows, panel)` for every register tile of an `m`-row product over `panels` panels, in
/// parallel tasks of a block of rows × a range of panels; few rows (a query) split the panels among threads.
fn for_each_tile(m: usize, panels: usize, threads: usize, work: usize, f: impl Fn(usize, usize, usize) + Sync) {
    let row_blocks = m.div_ceil(ROWS_PER_TASK);
    let panel_groups = if threads > 1 && row_blocks < 4 * threads {
        panels.min((4 * threads).div_ceil(row_blocks))
    } else {
        1
    };
    let per_group = panels.div_ceil(panel_groups);
    let task = |index: usize| {
        let (rb, g) = (index / panel_groups, index % panel_groups);
        let rows = rb * ROWS_PER_TASK..((rb + 1) * ROWS_PER_TASK).min(m);
        for p in g * per_group..((g + 1) * per_group).min(panels) {
            let mut t = rows.start;
            while t < rows.end {
                let r = MR.min(rows.end - t);
                f(t, r, p);
                t += r;
            }
        }
    };
    let tasks = row_blocks * panel_groups;
    if threads > 1 && tasks > 1 && work >= 1 << 16 {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// Whether this CPU runs the f32 panel kernel (AVX-512F, unless `EMBEDDING_SERVICE_SIMD` caps it off).
pub fn f32_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::simd::avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A `[n × k]` f32 weight matrix packed in panels of 32 columns: for each input `i`, the panel's 32 values
/// `w[c][i]` side by side. Exact: the same numbers as the file, laid out for a register tile.
pub struct PackedF32 {
    data: Vec<f32>,
    n: usize,
    k: usize,
}

impl PackedF32 {
    pub fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight shape");
        let mut packed = Self::empty();
        packed.repack(n, k, |j, i| w[j * k + i]);
        packed
    }

    pub const fn empty() -> Self {
        PackedF32 { data: Vec::new(), n: 0, k: 0 }
    }

    /// Packs `[n × k]` values read through `get(column, input)`, reusing this buffer.
    fn repack(&mut self, n: usize, k: usize, get: impl Fn(usize, usize) -> f32) {
        let panels = n.div_ceil(NR);
        let len = panels * k * NR;
        if self.data.len() < len {
            self.data.resize(len, 0.0);
        }
        (self.n, self.k) = (n, k);
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            for i in 0..k {
                let out = &mut self.data[(p * k + i) * NR..][..NR];
                for (c, o) in out[..cols].iter_mut().enumerate() {
                    *o = get(p * NR + c, i);
                }
                // Columns past n are zeros (they are computed, then masked off on store).
                out[cols..].fill(0.0);
            }
        }
    }
}

/// Calls the const-generic tile kernel `$kernel::<R>` for a runtime row count `r` in 1..=MR: the row count must
/// be a constant so each tile's accumulators stay in registers.
#[cfg(target_arch = "x86_64")]
macro_rules! with_rows {
    ($r:expr, $kernel:ident, $args:expr) => {
        match $r {
            8 => x86::$kernel::<8>($args),
            7 => x86::$kernel::<7>($args),
            6 => x86::$kernel::<6>($args),
            5 => x86::$kernel::<5>($args),
            4 => x86::$kernel::<4>($args),
            3 => x86::$kernel::<3>($args),
            2 => x86::$kernel::<2>($args),
            _ => x86::$kernel::<1>($args),
        }
    };
}

/// `dst[m×n] (+)= a[m×k] · wᵀ` with packed f32 weights: the same sums as `kernels::matmul_bt` in another
/// order. Each weight is read once per 8 rows, so a short query streams the weights at full speed instead of
/// re-reading its activations for every weight row. Panics unless `f32_supported()`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt_f32(
    dst: &mut [f32],
    dst_row_stride: usize,
    a: &[f32],
    a_row_stride: usize,
    w: &PackedF32,
    m: usize,
    accumulate: bool,
    threads: usize,
) {
    assert!(f32_supported(), "the f32 panel kernel needs AVX-512F");
    let (n, k) = (w.n, w.k);
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_row_stride + n, "dst too small");
    assert!(a.len() >= (m - 1) * a_row_stride + k, "a too small");
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    for_each_tile(m, n.div_ceil(NR), threads, m * n * k, |t, r, p| {
        let panel = &w.data[p * k * NR..][..k * NR];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `matmul_bt_bf16`: the tile's rows and panel columns are in dst and visited once; a holds
        // r rows of k values at the stride (asserted); the CPU has AVX-512F (asserted).
        unsafe {
            let out = dst_ptr.get().add(t * dst_row_stride + p * NR);
            let args = (a[t * a_row_stride..].as_ptr(), a_row_stride, panel.as_ptr(), k, out, dst_row_stride, NR.min(n - p * NR), accumulate);
            with_rows!(r, tile_f32, args)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (t, r, panel, accumulate, dst_ptr);
    });
}

/// One register tile of `r` (≤ MR) rows × one panel.
///
/// # Safety
/// The CPU must support AVX512F and AVX512_BF16; `out` must address `r` rows of `cols` writable values at
/// `out_row_stride`; `a` must hold `r` rows of `row16` values.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    a: &[u16],
    row16: usize,
    panel: &[u16],
    pairs: usize,
    r: usize,
    out: *mut f32,
    out_row_stride: usize,
    cols: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert!(a.len() >= (r - 1) * row16 + 2 * pairs && panel.len() >= pairs * NR * 2);
        let args = (a.as_ptr(), row16, panel.as_ptr(), pairs, out, out_row_stride, cols, accumulate);
        with_rows!(r, tile, args)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, row16, panel, pairs, r, out, out_row_stride, cols, accumulate);
        unreachable!("bf16 kernels are x86-64 only");
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `out[R × cols] (+)= a[R rows] · panel`, with R rows of accumulators kept in registers for the whole k
    /// loop and written (or added) straight to `out` through lane masks, so partial panels need no copy.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[allow(clippy::type_complexity)]
    pub(super) unsafe fn tile<const R: usize>(
        (a, row16, panel, pairs, out, out_row_stride, cols, accumulate): (
            *const u16,
            usize,
            *const u16,
            usize,
            *mut f32,
            usize,
            usize,
            bool,
        ),
    ) {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for q in 0..pairs {
            let b = panel.add(q * NR * 2);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b as *const _));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(NR) as *const _));
            for i in 0..R {
                // Both bf16 inputs of the pair, broadcast to every lane as one 32-bit value.
                let pair = std::ptr::read_unaligned(a.add(i * row16 + 2 * q) as *const i32);
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
                c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
            }
        }
        store(c0, c1, out, out_row_stride, cols, accumulate);
    }

    /// The f32 tile: per input, two panel registers and one broadcast per row.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::type_complexity)]
    pub(super) unsafe fn tile_f32<const R: usize>(
        (a, a_row_stride, panel, k, out, out_row_stride, cols, accumulate): (
            *const f32,
            usize,
            *const f32,
            usize,
            *mut f32,
            usize,
            usize,
            bool,
        ),
    ) {
        let mut c0 = [_mm512_setzero_ps(); R];
        let mut c1 = [_mm512_setzero_ps(); R];
        for i in 0..k {
            let b = panel.add(i * NR);
            let (b0, b1) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * a_row_stride + i));
                c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
                c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
            }
        }
        store(c0, c1, out, out_row_stride, cols, accumulate);
    }

    /// Writes (or adds) R rows of two registers to `out`, masked to `cols` columns.
    #[target_feature(enable = "avx512f")]
    unsafe fn store<const R: usize>(c0: [__m512; R], c1: [__m512; R], out: *mut f32, out_row_stride: usize, cols: usize, accumulate: bool) {
        let lanes = |n: usize| -> __mmask16 { if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as __mmask16 } };
        let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
        for i in 0..R {
            let row = out.add(i * out_row_stride);
            let (mut v0, mut v1) = (c0[i], c1[i]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row.add(16)));
            }
            _mm512_mask_storeu_ps(row, m0, v0);
            _mm512_mask_storeu_ps(row.add(16), m1, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    }

    /// Checks the packed product against an f64 product of the same bf16-rounded inputs, over shapes that hit
    /// every edge: odd k, partial panels, partial row tiles, several tasks, accumulation.
    #[test]
    fn packed_product_matches_a_reference_on_rounded_inputs() {
        if !bf16_supported() {
            // Without the instructions the kernel must refuse loudly rather than compute anything.
            let packed = PackedBf16::pack(&[1.0], 1, 1);
            let refused = std::panic::catch_unwind(|| matmul_bt_bf16(&mut [0.0], 1, &[1.0], 1, &packed, 1, false, 1, &mut Vec::new()));
            assert!(refused.is_err());
            return;
        }
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        for &(m, n, k, accumulate, threads) in
            &[(1, 1, 1, false, 1), (3, 33, 7, true, 2), (9, 64, 384, false, 2), (130, 70, 101, true, 2), (17, 1536, 384, false, 1)]
        {
            let stride = k + 3;
            let a: Vec<f32> = (0..m * stride).map(|_| next()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
            let mut dst = start.clone();
            let packed = PackedBf16::pack(&w, n, k);
            matmul_bt_bf16(&mut dst, n, &a, stride, &packed, m, accumulate, threads, &mut Vec::new());
            for t in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|i| from_bf16(to_bf16(a[t * stride + i])) as f64 * from_bf16(to_bf16(w[j * k + i])) as f64)
                        .sum::<f64>()
                        + if accumulate { start[t * n + j] as f64 } else { 0.0 };
                    let got = dst[t * n + j] as f64;
                    assert!((got - exact).abs() <= 1e-4 * (1.0 + exact.abs()), "m{m} n{n} k{k} ({t},{j}): {got} vs {exact}");
                }
            }
        }
    }

    /// The f32 panel kernel against `kernels::matmul_bt` (gemm) on the same edge-case shapes: the same sums in
    /// another order, so equal to a few ulp.
    #[test]
    fn f32_panels_match_gemm() {
        if !f32_supported() {
            let packed = PackedF32::pack(&[1.0], 1, 1);
            assert!(std::panic::catch_unwind(|| matmul_bt_f32(&mut [0.0], 1, &[1.0], 1, &packed, 1, false, 1)).is_err());
            return;
        }
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        for &(m, n, k, accumulate, threads) in
            &[(1, 1, 1, false, 1), (3, 33, 7, true, 2), (9, 64, 384, false, 2), (130, 70, 101, true, 2), (17, 1536, 384, false, 1)]
        {
            let stride = k + 3;
            let a: Vec<f32> = (0..m * stride).map(|_| next()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
            let (mut got, mut want) = (start.clone(), start);
            matmul_bt_f32(&mut got, n, &a, stride, &PackedF32::pack(&w, n, k), m, accumulate, threads);
            crate::model::kernels::matmul_bt(&mut want, n, &a, stride, &w, k, m, n, k, accumulate, 1);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "m{m} n{n} k{k} [{i}]: {g} vs {w}");
            }
        }
    }
}
