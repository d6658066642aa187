//! Matrix products with int8 weights and int8 activations (`dtype: 'int8'`), summed exactly in i32.
//!
//! - Weights are quantized once at load, symmetric, one scale per output column (`PackedI8`): each column's
//!   largest magnitude maps to 127. They are packed in panels of 32 columns, and within a panel in groups of
//!   4 inputs, column by column (`[c0 i0..3][c1 i0..3]…`): the layout every dot-product instruction wants, a
//!   32-bit lane per column holding 4 of its inputs.
//! - Activations are quantized as they enter each product, one scale per row (a token), largest magnitude to
//!   127 (`QuantizedRows`). Per-token scales follow the few large activations of each token instead of
//!   flattening every token to the largest in the batch.
//! - `out = Σ a·w` over int8 is exact in i32 at every level, then `out × (row scale × column scale)` in f32,
//!   added to what `dst` holds when accumulating: the same operations in the same order at every level, so
//!   every level gives the same bits.
//!
//! The kernels, one per instruction set, all of the same sums:
//! - AVX-512 VNNI: `vpdpbusd` multiplies unsigned by signed bytes, four to a lane. The activations are stored
//!   offset by 128 (unsigned), and `128 × Σ w` of each column, computed at pack time, is subtracted after.
//! - 256-bit VNNI (AVX-VNNI, or AVX-512 VNNI's EVEX form): the same on half the width.
//! - AVX2: `vpmaddubsw` adds two u8 × i8 products into an i16 with saturation, which an offset activation
//!   (up to 255) times a weight (up to 127) would overflow. Instead the sign of each activation moves onto
//!   its weight (`vpsignb`) and its magnitude (at most 127) is the unsigned side: two products are then at most
//!   2 × 127 × 127 = 32,258, below i16's 32,767, so nothing saturates; `vpmaddwd` by ones widens to i32.
//! - NEON with the dot-product extension: `sdot`, signed by signed, four to a lane (inline assembly: the
//!   intrinsic is not stable in Rust).
//! - NEON (ARMv8.0): `smull` makes i16 products (at most 16,129), `sadalp` adds their pairs into i32.
//! - Scalar: i32 loops, the reference definition the tests compare every kernel with (besides i64).

use rayon::prelude::*;

use super::level::{self, Int8Kernel};
use super::matmul::{check_rows, SendPtr};
use super::panel::{for_each_block, tiles};

/// Output columns per panel.
pub const NR: usize = 32;
/// Inputs per 32-bit lane.
const GROUP: usize = 4;
/// Bytes of one group of a panel: 32 columns × 4 inputs.
const GROUP_BYTES: usize = NR * GROUP;

/// A `[n × k]` weight matrix (a PyTorch Linear weight) quantized to int8 with a scale per row (output column
/// of the product), packed in panels; optionally a few inputs kept in f32 (`move_to_f32`).
pub struct PackedI8 {
    data: Vec<i8>,
    /// Per column, padded with zeros to whole panels.
    scales: Vec<f32>,
    /// `128 × Σ w` per column, for the kernels whose activations are offset to unsigned.
    offsets: Vec<i32>,
    /// The inputs multiplied in f32, and their weights, per panel: `[panel][input][32 columns]`.
    f32_inputs: Vec<usize>,
    f32_weights: Vec<f32>,
    /// Per input, 0 for the inputs moved to f32 and 1 for the rest: the activations are multiplied by it as
    /// they are quantized. `None` when every input is quantized.
    kept: Option<Vec<f32>>,
    n: usize,
    k: usize,
}

impl PackedI8 {
    /// Quantizes and packs `[n × k]` values read through `get(column, input)`, straight from a weights file.
    pub fn quantize_with(n: usize, k: usize, get: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        let groups = k.div_ceil(GROUP);
        let panels = n.div_ceil(NR);
        let mut data = vec![0i8; panels * groups * GROUP_BYTES];
        let mut scales = vec![0f32; panels * NR];
        let mut offsets = vec![0i32; panels * NR];
        // Panel by panel in parallel: a 4096 × 1024 layer is 4M reads and roundings.
        data.par_chunks_mut(groups * GROUP_BYTES)
            .zip(scales.par_chunks_mut(NR).zip(offsets.par_chunks_mut(NR)))
            .enumerate()
            .for_each(|(p, (panel, (scales, offsets)))| {
                let mut column = vec![0f32; k];
                let mut q = vec![0i8; k];
                for c in 0..NR.min(n - p * NR) {
                    column.iter_mut().enumerate().for_each(|(i, v)| *v = get(p * NR + c, i));
                    scales[c] = quantize_row(&column, &mut q);
                    offsets[c] = 128 * q.iter().map(|&v| v as i32).sum::<i32>();
                    for (i, &v) in q.iter().enumerate() {
                        panel[(i / GROUP) * GROUP_BYTES + c * GROUP + i % GROUP] = v;
                    }
                }
            });
        PackedI8 { data, scales, offsets, f32_inputs: Vec::new(), f32_weights: Vec::new(), kept: None, n, k }
    }

    /// Moves `inputs` out of the int8 product into f32, their weights read through `get(column, input)` as
    /// for `quantize_with`: a few inputs whose activations run far larger than the rest would otherwise set
    /// their token's quantization step for every input. Their int8 weights become 0, their activations are
    /// left out of each row's quantization, and each tile adds `a[input] × w[column][input]` in f32 to its
    /// sums. Replaces any earlier choice.
    pub fn move_to_f32(&mut self, inputs: &[usize], get: impl Fn(usize, usize) -> f32) {
        let groups = self.groups();
        let panels = self.n.div_ceil(NR);
        let mut kept = vec![1.0; self.k];
        for &i in inputs {
            assert!(i < self.k, "input {i} of {}", self.k);
            kept[i] = 0.0;
            for p in 0..panels {
                for c in 0..NR {
                    let at = (p * groups + i / GROUP) * GROUP_BYTES + c * GROUP + i % GROUP;
                    self.offsets[p * NR + c] -= 128 * self.data[at] as i32;
                    self.data[at] = 0;
                }
            }
        }
        let mut weights = vec![0f32; panels * inputs.len() * NR];
        for p in 0..panels {
            for (x, &i) in inputs.iter().enumerate() {
                for c in 0..NR.min(self.n - p * NR) {
                    weights[(p * inputs.len() + x) * NR + c] = get(p * NR + c, i);
                }
            }
        }
        self.kept = (!inputs.is_empty()).then_some(kept);
        self.f32_inputs = inputs.to_vec();
        self.f32_weights = weights;
    }

    /// Bytes held: the int8 weights (padding included), their scales and offsets, the f32 inputs' weights.
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * (self.scales.len() + self.offsets.len() + self.f32_weights.len())
    }

    pub fn rows(&self) -> usize {
        self.n
    }

    /// The inputs multiplied in f32.
    pub fn f32_inputs(&self) -> &[usize] {
        &self.f32_inputs
    }

    fn groups(&self) -> usize {
        self.k.div_ceil(GROUP)
    }
}

/// Adding 1.5 × 2^23 to a float of magnitude below 2^22 rounds it to an integer, ties to even (the default
/// rounding), which then sits in the low bits of the sum's representation.
const ROUNDER: f32 = 12_582_912.0;

/// Quantizes `x` (times `kept`, when given) to int8 in `q` (same length), symmetric: the largest magnitude
/// maps to ±127, values round to the nearest integer, ties to even; with `offset`, each is stored plus 128 (as
/// the VNNI kernels want). Returns the scale (`x ≈ q × scale`); 0 for a row of zeros. Written so that it
/// vectorises (no float-to-integer conversion, which is scalar and saturating in Rust), and compiled per SIMD
/// level; the same operations at every level give the same bytes.
#[inline(always)]
fn quantize_impl(x: &[f32], kept: Option<&[f32]>, q: &mut [u8], offset: bool) -> f32 {
    let amax = match kept {
        None => max_magnitude(x, |c, l| c[l]),
        Some(kept) => {
            let mut m = max_magnitude_pairs(x, kept);
            for (v, k) in x.iter().zip(kept).skip(x.len() / 16 * 16) {
                let v = (v * k).abs();
                m = if v > m { v } else { m };
            }
            m
        }
    };
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let bias = if offset { 128 } else { 0 };
    let one = |v: f32| {
        let t = v * inv + ROUNDER;
        let n = (t.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32).clamp(-127, 127);
        (n + bias) as u8
    };
    match kept {
        None => q.iter_mut().zip(x).for_each(|(o, &v)| *o = one(v)),
        Some(kept) => q.iter_mut().zip(x).zip(kept).for_each(|((o, &v), k)| *o = one(v * k)),
    }
    amax / 127.0
}

/// The largest magnitude in `x`, with sixteen independent maxima so that the loop vectorises.
#[inline(always)]
fn max_magnitude(x: &[f32], at: impl Fn(&[f32], usize) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(0f32, |m, &v| if v.abs() > m { v.abs() } else { m });
    for c in chunks {
        for (l, a) in acc.iter_mut().enumerate() {
            let v = at(c, l).abs();
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(rest, |m, &v| if v > m { v } else { m })
}

/// The largest magnitude of `x × kept` over whole chunks of sixteen (the caller takes the rest).
#[inline(always)]
fn max_magnitude_pairs(x: &[f32], kept: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (c, k) in x.chunks_exact(16).zip(kept.chunks_exact(16)) {
        for l in 0..16 {
            let v = (c[l] * k[l]).abs();
            acc[l] = if v > acc[l] { v } else { acc[l] };
        }
    }
    acc.iter().fold(0f32, |m, &v| if v > m { v } else { m })
}

/// `quantize_impl` compiled for this process's SIMD level.
fn quantize_dispatch(x: &[f32], kept: Option<&[f32]>, q: &mut [u8], offset: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
        unsafe fn avx512(x: &[f32], kept: Option<&[f32]>, q: &mut [u8], offset: bool) -> f32 {
            quantize_impl(x, kept, q, offset)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(x: &[f32], kept: Option<&[f32]>, q: &mut [u8], offset: bool) -> f32 {
            quantize_impl(x, kept, q, offset)
        }
        // SAFETY: each runs only where the level says the CPU has its features (AVX-512 implies BW here: the
        // int8 kernels above AVX2 need it, and every AVX-512 CPU with VNNI has it; the check is pulp's too).
        match level::level() {
            level::Level::Avx512 if std::arch::is_x86_feature_detected!("avx512bw") => return unsafe { avx512(x, kept, q, offset) },
            level::Level::Avx2 | level::Level::Avx512 => return unsafe { avx2(x, kept, q, offset) },
            _ => {}
        }
    }
    quantize_impl(x, kept, q, offset)
}

/// Quantizes `x` to int8 in `q` (same length) as the activations are (see `quantize_impl`). Returns the scale.
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> f32 {
    // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid in both.
    let bytes = unsafe { std::slice::from_raw_parts_mut(q.as_mut_ptr() as *mut u8, q.len()) };
    quantize_dispatch(x, None, bytes, false)
}

/// Activation rows quantized for the kernel in use: int8 bytes, or offset by 128 to unsigned for the VNNI
/// kernels, each row padded with zeros (offset: 128) to whole groups of 4; one scale per row; and the inputs
/// the weight keeps in f32, gathered per row.
#[derive(Default)]
pub struct QuantizedRows {
    bytes: Vec<u8>,
    scales: Vec<f32>,
    f32_inputs: Vec<f32>,
}

impl QuantizedRows {
    /// Quantizes `m` rows of `a` (at `a_row_stride`) for `w` into rows of `row_len` bytes.
    fn fill(&mut self, a: &[f32], a_row_stride: usize, m: usize, w: &PackedI8, row_len: usize, offset: bool, threads: usize) {
        let k = w.k;
        if self.bytes.len() < m * row_len {
            self.bytes.resize(m * row_len, 0);
        }
        if self.scales.len() < m {
            self.scales.resize(m, 0.0);
        }
        let pad = if offset { 128u8 } else { 0 };
        let row = |(t, (out, scale)): (usize, (&mut [u8], &mut f32))| {
            *scale = quantize_dispatch(&a[t * a_row_stride..][..k], w.kept.as_deref(), out, offset);
            out[k..].fill(pad);
        };
        if threads > 1 && m * k >= 1 << 16 {
            self.bytes[..m * row_len].par_chunks_mut(row_len).zip(self.scales[..m].par_iter_mut()).enumerate().for_each(row);
        } else {
            self.bytes[..m * row_len].chunks_mut(row_len).zip(self.scales[..m].iter_mut()).enumerate().for_each(row);
        }
        let extra = w.f32_inputs.len();
        if self.f32_inputs.len() < m * extra {
            self.f32_inputs.resize(m * extra, 0.0);
        }
        for (t, row) in self.f32_inputs.chunks_exact_mut(extra.max(1)).take(m).enumerate().filter(|_| extra > 0) {
            for (o, &i) in row.iter_mut().zip(&w.f32_inputs) {
                *o = a[t * a_row_stride + i];
            }
        }
    }
}

/// `dst[m×n] (+)= a[m×k] · wᵀ` with int8 weights: `a`'s rows are quantized into `q` (reused between calls),
/// then multiplied by the kernel this process runs (`level::int8_kernel`).
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt_i8(dst: &mut [f32], dst_row_stride: usize, a: &[f32], a_row_stride: usize, w: &PackedI8, m: usize, accumulate: bool, threads: usize, q: &mut QuantizedRows) {
    matmul_bt_i8_with(level::int8_kernel(), dst, dst_row_stride, a, a_row_stride, w, m, accumulate, threads, q)
}

/// `matmul_bt_i8` with a given kernel, which must be one of `Int8Kernel::available()` (the tests run each).
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt_i8_with(kernel: Int8Kernel, dst: &mut [f32], dst_row_stride: usize, a: &[f32], a_row_stride: usize, w: &PackedI8, m: usize, accumulate: bool, threads: usize, q: &mut QuantizedRows) {
    assert!(Int8Kernel::available().contains(&kernel), "{} is not available on this CPU", kernel.as_str());
    let (n, k) = (w.n, w.k);
    if m == 0 || n == 0 {
        return;
    }
    check_rows(dst, dst_row_stride, a, a_row_stride, (m, n, k));
    let groups = w.groups();
    let row_len = groups * GROUP;
    let offset = matches!(kernel, Int8Kernel::Vnni512 | Int8Kernel::Vnni256 { .. });
    q.fill(a, a_row_stride, m, w, row_len, offset, threads);
    let (qa, qs) = (&q.bytes[..m * row_len], &q.scales[..m]);
    let extra = w.f32_inputs.len();
    let (fa, fw) = (&q.f32_inputs[..m * extra], &w.f32_weights[..]);
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    for_each_block(m, w.data.len() / (groups * GROUP_BYTES), threads, m * n * k, |rows, p| {
        tiles(rows, kernel_rows(kernel), |t, r| {
            let tile = Tile {
                a: qa[t * row_len..].as_ptr(),
                a_stride: row_len,
                a_scales: qs[t..].as_ptr(),
                panel: w.data[p * groups * GROUP_BYTES..][..groups * GROUP_BYTES].as_ptr(),
                groups,
                w_scales: w.scales[p * NR..][..NR].as_ptr(),
                offsets: w.offsets[p * NR..][..NR].as_ptr(),
                extra,
                extra_a: fa[t * extra..].as_ptr(),
                extra_w: fw[p * extra * NR..][..extra * NR].as_ptr(),
                // SAFETY: rows t..t+r and the panel's columns are inside dst (check_rows) and no other task
                // writes them.
                out: unsafe { dst_ptr.get().add(t * dst_row_stride + p * NR) },
                out_stride: dst_row_stride,
                cols: NR.min(n - p * NR),
                accumulate,
            };
            // SAFETY: the tile's pointers cover r rows of quantized activations and of f32 inputs, a whole
            // panel with its scales, offsets and f32 weights, and r rows of `cols` outputs; the kernel is
            // available on this CPU (asserted above).
            unsafe { run(kernel, &tile, r) }
        })
    });
}

/// Rows per register tile for each kernel: as many accumulators as the register file holds beside the
/// weights and broadcasts.
fn kernel_rows(kernel: Int8Kernel) -> usize {
    match kernel {
        Int8Kernel::Vnni512 => 8,
        Int8Kernel::Vnni256 { .. } | Int8Kernel::Avx2 | Int8Kernel::NeonDot => 3,
        Int8Kernel::Neon => 1,
        Int8Kernel::Scalar => 4,
    }
}

/// One register tile's operands: `r` rows of quantized activations against one panel.
struct Tile {
    a: *const u8,
    a_stride: usize,
    a_scales: *const f32,
    panel: *const i8,
    groups: usize,
    w_scales: *const f32,
    /// Read by the VNNI kernels only (x86-64).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    offsets: *const i32,
    /// Inputs multiplied in f32: `extra` per row at `extra_a` (rows `extra` apart), their weights at
    /// `extra_w` (`[input][32 columns]`).
    extra: usize,
    extra_a: *const f32,
    extra_w: *const f32,
    out: *mut f32,
    out_stride: usize,
    cols: usize,
    accumulate: bool,
}

impl Tile {
    /// Stores row `r`'s 32 exact sums: `sum × (row scale × column scale)`, then each f32 input's
    /// `a × w` fused in (one rounding each), then added to `out` when accumulating; the first `cols` columns
    /// only. The SIMD kernels do the same operations lane by lane, so every kernel stores the same bits.
    ///
    /// # Safety
    /// As for the tile: row `r` of `out` holds `cols` writable values.
    #[inline(always)]
    unsafe fn store_row(&self, r: usize, sums: &[i32; NR]) {
        let sa = *self.a_scales.add(r);
        let row = self.out.add(r * self.out_stride);
        for (c, &sum) in sums.iter().enumerate().take(self.cols) {
            let mut v = sum as f32 * (sa * *self.w_scales.add(c));
            for x in 0..self.extra {
                v = (*self.extra_a.add(r * self.extra + x)).mul_add(*self.extra_w.add(x * NR + c), v);
            }
            let o = row.add(c);
            *o = if self.accumulate { *o + v } else { v };
        }
    }
}

/// Runs `kernel` on `rows` rows of the tile.
///
/// # Safety
/// The tile's pointers are valid for `rows` rows; `kernel` is available on this CPU.
unsafe fn run(kernel: Int8Kernel, tile: &Tile, rows: usize) {
    macro_rules! by_rows {
        ($m:ident::$f:ident, $($r:literal),+) => {
            match rows {
                $($r => $m::$f::<$r>(tile),)+
                _ => unreachable!("no tile of {rows} rows"),
            }
        };
    }
    match kernel {
        Int8Kernel::Scalar => scalar(tile, rows),
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Vnni512 => by_rows!(x86::vnni512, 1, 2, 3, 4, 5, 6, 7, 8),
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Vnni256 { evex: true } => by_rows!(x86::vnni256_evex, 1, 2, 3),
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Vnni256 { evex: false } => by_rows!(x86::vnni256_vex, 1, 2, 3),
        #[cfg(target_arch = "x86_64")]
        Int8Kernel::Avx2 => by_rows!(x86::avx2, 1, 2, 3),
        #[cfg(target_arch = "aarch64")]
        Int8Kernel::NeonDot => by_rows!(arm::neon_dot, 1, 2, 3),
        #[cfg(target_arch = "aarch64")]
        Int8Kernel::Neon => arm::neon(tile),
        #[allow(unreachable_patterns)]
        other => unreachable!("{} is not built for this architecture", other.as_str()),
    }
}

/// The definition, in plain i32 (the scalar kernel gets its activations without the VNNI offset).
///
/// # Safety
/// As for `run`.
unsafe fn scalar(tile: &Tile, rows: usize) {
    for r in 0..rows {
        let a = tile.a.add(r * tile.a_stride) as *const i8;
        let mut sums = [0i32; NR];
        for g in 0..tile.groups {
            let w = tile.panel.add(g * GROUP_BYTES);
            for (c, sum) in sums.iter_mut().enumerate() {
                for t in 0..GROUP {
                    *sum += *a.add(g * GROUP + t) as i32 * *w.add(c * GROUP + t) as i32;
                }
            }
        }
        tile.store_row(r, &sums);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Tile, GROUP, GROUP_BYTES, NR};

    /// `v × (row scale × column scales)`, added to `out` when accumulating, stored under `mask` (the columns
    /// of a partial panel): `Tile::store_row`'s operations on 16 lanes.
    #[inline(always)]
    unsafe fn store16(tile: &Tile, r: usize, j: usize, sums: __m512i, mask: __mmask16) {
        let scale = _mm512_mul_ps(_mm512_set1_ps(*tile.a_scales.add(r)), _mm512_loadu_ps(tile.w_scales.add(16 * j)));
        let mut v = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), scale);
        for x in 0..tile.extra {
            let a = _mm512_set1_ps(*tile.extra_a.add(r * tile.extra + x));
            v = _mm512_fmadd_ps(a, _mm512_loadu_ps(tile.extra_w.add(x * NR + 16 * j)), v);
        }
        let out = tile.out.add(r * tile.out_stride + 16 * j);
        if tile.accumulate {
            v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
        }
        _mm512_mask_storeu_ps(out, mask, v);
    }

    fn mask16(cols: usize) -> __mmask16 {
        if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as __mmask16 }
    }

    /// AVX-512 VNNI: R rows × 32 columns in 2R registers, activations offset to unsigned.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn vnni512<const R: usize>(tile: &Tile) {
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        for g in 0..tile.groups {
            let w = tile.panel.add(g * GROUP_BYTES);
            let (w0, w1) = (_mm512_loadu_si512(w as *const _), _mm512_loadu_si512(w.add(64) as *const _));
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_epi32(std::ptr::read_unaligned(tile.a.add(r * tile.a_stride + g * GROUP) as *const i32));
                acc[0] = _mm512_dpbusd_epi32(acc[0], a, w0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], a, w1);
            }
        }
        let offsets = [_mm512_loadu_si512(tile.offsets as *const _), _mm512_loadu_si512(tile.offsets.add(16) as *const _)];
        let masks = [mask16(tile.cols), mask16(tile.cols.saturating_sub(16))];
        for (r, acc) in acc.iter().enumerate() {
            for j in 0..2 {
                store16(tile, r, j, _mm512_sub_epi32(acc[j], offsets[j]), masks[j]);
            }
        }
    }

    /// `Tile::store_row`'s operations on 8 lanes, for the AVX2-encoded kernels: the partial panel's columns go
    /// through a buffer.
    #[inline(always)]
    unsafe fn store_rows256<const R: usize>(tile: &Tile, acc: &[[__m256i; 4]; R], offsets: Option<[__m256i; 4]>) {
        for (r, acc) in acc.iter().enumerate() {
            let scale_a = _mm256_set1_ps(*tile.a_scales.add(r));
            let out = tile.out.add(r * tile.out_stride);
            let mut row = [0f32; NR];
            for j in 0..4 {
                let sums = match offsets {
                    Some(o) => _mm256_sub_epi32(acc[j], o[j]),
                    None => acc[j],
                };
                let scale = _mm256_mul_ps(scale_a, _mm256_loadu_ps(tile.w_scales.add(8 * j)));
                let mut v = _mm256_mul_ps(_mm256_cvtepi32_ps(sums), scale);
                for x in 0..tile.extra {
                    let a = _mm256_set1_ps(*tile.extra_a.add(r * tile.extra + x));
                    v = _mm256_fmadd_ps(a, _mm256_loadu_ps(tile.extra_w.add(x * NR + 8 * j)), v);
                }
                if tile.cols == NR {
                    if tile.accumulate {
                        v = _mm256_add_ps(_mm256_loadu_ps(out.add(8 * j)), v);
                    }
                    _mm256_storeu_ps(out.add(8 * j), v);
                } else {
                    _mm256_storeu_ps(row.as_mut_ptr().add(8 * j), v);
                }
            }
            if tile.cols < NR {
                for (c, &v) in row.iter().enumerate().take(tile.cols) {
                    let o = out.add(c);
                    *o = if tile.accumulate { *o + v } else { v };
                }
            }
        }
    }

    /// The 256-bit VNNI kernel's body, over the encoding's `vpdpbusd`: R rows × 32 columns in 4R registers.
    #[inline(always)]
    unsafe fn vnni256_body<const R: usize>(tile: &Tile, dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i) {
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for g in 0..tile.groups {
            let w = tile.panel.add(g * GROUP_BYTES);
            let a: [__m256i; R] = std::array::from_fn(|r| {
                _mm256_set1_epi32(std::ptr::read_unaligned(tile.a.add(r * tile.a_stride + g * GROUP) as *const i32))
            });
            for j in 0..4 {
                let wj = _mm256_loadu_si256(w.add(32 * j) as *const _);
                for r in 0..R {
                    acc[r][j] = dot(acc[r][j], a[r], wj);
                }
            }
        }
        let offsets = std::array::from_fn(|j| _mm256_loadu_si256(tile.offsets.add(8 * j) as *const _));
        store_rows256(tile, &acc, Some(offsets));
    }

    /// AVX-VNNI (VEX): Alder Lake and later, Zen 5.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub(super) unsafe fn vnni256_vex<const R: usize>(tile: &Tile) {
        vnni256_body::<R>(tile, |acc, a, w| _mm256_dpbusd_avx_epi32(acc, a, w))
    }

    /// The same kernel through AVX-512 VNNI's EVEX form on 256-bit registers.
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
    pub(super) unsafe fn vnni256_evex<const R: usize>(tile: &Tile) {
        vnni256_body::<R>(tile, |acc, a, w| _mm256_dpbusd_epi32(acc, a, w))
    }

    /// AVX2: R rows × 32 columns in 4R registers, the activation's sign moved onto the weights so that
    /// `vpmaddubsw` never saturates (see the module's notes).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2<const R: usize>(tile: &Tile) {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 4]; R];
        for g in 0..tile.groups {
            let w = tile.panel.add(g * GROUP_BYTES);
            let a: [__m256i; R] = std::array::from_fn(|r| {
                _mm256_set1_epi32(std::ptr::read_unaligned(tile.a.add(r * tile.a_stride + g * GROUP) as *const i32))
            });
            let magnitude: [__m256i; R] = std::array::from_fn(|r| _mm256_abs_epi8(a[r]));
            for j in 0..4 {
                let wj = _mm256_loadu_si256(w.add(32 * j) as *const _);
                for r in 0..R {
                    let signed = _mm256_sign_epi8(wj, a[r]);
                    let pairs = _mm256_maddubs_epi16(magnitude[r], signed);
                    acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        store_rows256(tile, &acc, None);
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::{Tile, GROUP, GROUP_BYTES, NR};

    /// `Tile::store_row` from 8 registers of 4 sums (32 columns).
    #[inline(always)]
    unsafe fn store_row(tile: &Tile, r: usize, acc: &[int32x4_t; 8]) {
        let mut sums = [0i32; NR];
        for (j, v) in acc.iter().enumerate() {
            vst1q_s32(sums.as_mut_ptr().add(4 * j), *v);
        }
        tile.store_row(r, &sums);
    }

    /// `sdot acc.4s, w.16b, a.16b`: each lane of `acc` gains the dot product of its 4 bytes of `w` and `a`.
    #[inline(always)]
    unsafe fn sdot(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        std::arch::asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {a:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags)
        );
        acc
    }

    /// NEON with the dot-product extension: R rows × 32 columns in 8R registers.
    #[target_feature(enable = "neon,dotprod")]
    pub(super) unsafe fn neon_dot<const R: usize>(tile: &Tile) {
        let mut acc = [[vdupq_n_s32(0); 8]; R];
        for g in 0..tile.groups {
            let w = tile.panel.add(g * GROUP_BYTES);
            // The row's 4 inputs of this group in every lane.
            let a: [int8x16_t; R] = std::array::from_fn(|r| {
                vreinterpretq_s8_s32(vld1q_dup_s32(tile.a.add(r * tile.a_stride + g * GROUP) as *const i32))
            });
            for j in 0..8 {
                let wj = vld1q_s8(w.add(16 * j));
                for r in 0..R {
                    acc[r][j] = sdot(acc[r][j], wj, a[r]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            store_row(tile, r, acc);
        }
    }

    /// NEON (ARMv8.0): one row × 32 columns. Each register holds two columns' half sums (inputs 0-1 and 2-3
    /// of each group), folded pairwise at the end.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn neon(tile: &Tile) {
        {
            let r = 0;
            let mut halves = [vdupq_n_s32(0); 16];
            for g in 0..tile.groups {
                let w = tile.panel.add(g * GROUP_BYTES);
                let a = vreinterpretq_s8_s32(vld1q_dup_s32(tile.a.add(r * tile.a_stride + g * GROUP) as *const i32));
                for j in 0..8 {
                    let wj = vld1q_s8(w.add(16 * j));
                    halves[2 * j] = vpadalq_s16(halves[2 * j], vmull_s8(vget_low_s8(wj), vget_low_s8(a)));
                    halves[2 * j + 1] = vpadalq_s16(halves[2 * j + 1], vmull_high_s8(wj, a));
                }
            }
            let acc: [int32x4_t; 8] = std::array::from_fn(|j| vpaddq_s32(halves[2 * j], halves[2 * j + 1]));
            store_row(tile, r, &acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        }
    }

    #[test]
    fn quantizing_a_row_rounds_to_nearest_even_and_maps_the_largest_magnitude_to_127() {
        let mut q = [0i8; 5];
        let scale = quantize_row(&[1.0, -0.5, 2.54, 0.0, -2.54], &mut q);
        assert_eq!(scale, 2.54 / 127.0);
        assert_eq!(q[2], 127);
        assert_eq!(q[4], -127);
        assert_eq!(q[3], 0);
        assert_eq!(q[0], (1.0f32 * (127.0 / 2.54)).round_ties_even() as i8);
        // Ties: 0.5 and 1.5 steps round to even.
        let mut t = [0i8; 3];
        quantize_row(&[127.0, 0.5, 1.5], &mut t);
        assert_eq!(t, [127, 0, 2]);
        let mut z = [5i8; 2];
        assert_eq!(quantize_row(&[0.0, -0.0], &mut z), 0.0);
        assert_eq!(z, [0, 0]);
    }

    /// The i64 definition of the product the kernels compute: quantize both sides as they do, sum exactly,
    /// then scale as `Tile::store_row` does.
    fn definition(a: &[f32], stride: usize, w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let quantize = |x: &[f32]| {
            let mut q = vec![0i8; x.len()];
            let s = quantize_row(x, &mut q);
            (q, s)
        };
        let rows: Vec<_> = (0..m).map(|t| quantize(&a[t * stride..][..k])).collect();
        let cols: Vec<_> = (0..n).map(|j| quantize(&w[j * k..][..k])).collect();
        let mut out = vec![0f32; m * n];
        for (t, (qa, sa)) in rows.iter().enumerate() {
            for (j, (qw, sw)) in cols.iter().enumerate() {
                let exact: i64 = qa.iter().zip(qw).map(|(&x, &y)| x as i64 * y as i64).sum();
                out[t * n + j] = exact as i32 as f32 * (sa * sw);
            }
        }
        out
    }

    /// Every kernel this CPU has against the i64 definition, bit for bit, on shapes that hit every edge: k
    /// not a multiple of 4, partial panels, partial row tiles, several tasks, accumulation, a row of zeros.
    #[test]
    fn every_kernel_matches_the_i64_definition_bit_for_bit() {
        let mut next = lcg(5);
        let shapes = [(1, 1, 1, false, 1), (3, 33, 7, true, 2), (9, 64, 384, false, 2), (130, 70, 101, true, 2), (17, 96, 1536, false, 1), (13, 40, 300, true, 2)];
        for kernel in Int8Kernel::available() {
            for &(m, n, k, accumulate, threads) in &shapes {
                let stride = k + 3;
                let mut a: Vec<f32> = (0..m * stride).map(|_| next()).collect();
                a[..k].fill(0.0);
                // A few large activations, as real hidden states have.
                for t in 0..m {
                    a[t * stride + (t * 7) % k] *= 40.0;
                }
                let w: Vec<f32> = (0..n * k).map(|_| next() * 0.1).collect();
                let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
                let packed = PackedI8::quantize_with(n, k, |j, i| w[j * k + i]);
                let mut got = start.clone();
                matmul_bt_i8_with(kernel, &mut got, n, &a, stride, &packed, m, accumulate, threads, &mut QuantizedRows::default());
                let want = definition(&a, stride, &w, m, n, k);
                for t in 0..m {
                    for j in 0..n {
                        let want = if accumulate { start[t * n + j] + want[t * n + j] } else { want[t * n + j] };
                        let g = got[t * n + j];
                        assert_eq!(g.to_bits(), want.to_bits(), "{} m{m} n{n} k{k} ({t},{j}): {g} vs {want}", kernel.as_str());
                    }
                }
            }
        }
    }

    /// The extremes of int8: every product at ±127 × ±127, over a long k, where AVX2's `vpmaddubsw` would
    /// saturate if the operands were not sign-folded, and i32 must hold k × 127².
    #[test]
    fn extreme_values_do_not_saturate_at_any_level() {
        let (m, n, k) = (5, 40, 4096);
        let a: Vec<f32> = (0..m * k).map(|x| if (x / 3) % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let w: Vec<f32> = (0..n * k).map(|x| if (x / 5) % 2 == 0 { -1.0 } else { 1.0 }).collect();
        let same: Vec<f32> = a[..k].iter().cycle().take(n * k).copied().collect();
        for w in [&w, &same] {
            let packed = PackedI8::quantize_with(n, k, |j, i| w[j * k + i]);
            let want = definition(&a, k, w, m, n, k);
            for kernel in Int8Kernel::available() {
                let mut got = vec![0f32; m * n];
                matmul_bt_i8_with(kernel, &mut got, n, &a, k, &packed, m, false, 1, &mut QuantizedRows::default());
                assert_eq!(got, want, "{}", kernel.as_str());
            }
        }
    }

    /// Inputs moved to f32 leave the int8 sums and the rows' scales, and come back fused in f32, at every
    /// level, bit for bit with the definition.
    #[test]
    fn inputs_moved_to_f32_are_multiplied_in_f32_and_left_out_of_the_scales() {
        let (m, n, k) = (7, 45, 130);
        let moved = [17, 129, 3];
        let mut next = lcg(9);
        let mut a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        for t in 0..m {
            a[t * k + 17] = 90.0 * next();
        }
        let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
        let start: Vec<f32> = (0..m * n).map(|_| next()).collect();
        let mut packed = PackedI8::quantize_with(n, k, |j, i| w[j * k + i]);
        packed.move_to_f32(&moved, |j, i| w[j * k + i]);
        assert_eq!(packed.f32_inputs(), moved);
        // The weights' scales were set before the move, so the definition quantizes the original weights.
        let cols: Vec<(Vec<i8>, f32)> = (0..n)
            .map(|j| {
                let mut q = vec![0i8; k];
                let s = quantize_row(&w[j * k..][..k], &mut q);
                (q.iter().enumerate().map(|(i, &v)| if moved.contains(&i) { 0 } else { v }).collect(), s)
            })
            .collect();
        let kept: Vec<f32> = a.iter().enumerate().map(|(x, &y)| if moved.contains(&(x % k)) { 0.0 } else { y }).collect();
        for kernel in Int8Kernel::available() {
            for accumulate in [false, true] {
                let mut got = start.clone();
                matmul_bt_i8_with(kernel, &mut got, n, &a, k, &packed, m, accumulate, 2, &mut QuantizedRows::default());
                for t in 0..m {
                    let mut qa = vec![0i8; k];
                    let sa = quantize_row(&kept[t * k..][..k], &mut qa);
                    for (j, (qw, sw)) in cols.iter().enumerate() {
                        let exact: i64 = qa.iter().zip(qw).map(|(&x, &y)| x as i64 * y as i64).sum();
                        let mut v = exact as i32 as f32 * (sa * sw);
                        for &i in &moved {
                            v = a[t * k + i].mul_add(w[j * k + i], v);
                        }
                        let want = if accumulate { start[t * n + j] + v } else { v };
                        assert_eq!(got[t * n + j].to_bits(), want.to_bits(), "{} ({t},{j})", kernel.as_str());
                    }
                }
            }
        }
    }

    /// The vectorised rounding agrees with `round_ties_even` everywhere in range, ties included.
    #[test]
    fn quantization_rounds_like_round_ties_even() {
        let mut next = lcg(3);
        let mut x: Vec<f32> = (0..4099).map(|_| next() * 3.0).collect();
        x[0] = 3.0;
        // Exact ties after scaling by 127 / 3: k + 0.5 steps.
        for (i, v) in x.iter_mut().enumerate().skip(1).take(250) {
            *v = ((i as f32 - 125.0) + 0.5) * 3.0 / 127.0;
        }
        let mut q = vec![0i8; x.len()];
        let scale = quantize_row(&x, &mut q);
        let inv = 127.0 / 3.0f32;
        assert_eq!(scale, 3.0 / 127.0);
        for (i, (&v, &got)) in x.iter().zip(&q).enumerate() {
            let want = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
            assert_eq!(got, want, "[{i}] {v}");
        }
    }

    #[test]
    fn packed_weights_are_a_quarter_of_f32() {
        let packed = PackedI8::quantize_with(384, 1536, |j, i| (j * 31 + i) as f32);
        assert_eq!(packed.bytes(), 384 * 1536 + 8 * 384);
        let mut moved = packed;
        moved.move_to_f32(&[1, 2], |_, _| 1.0);
        assert_eq!(moved.bytes(), 384 * 1536 + 8 * 384 + 4 * 2 * 384);
    }
}
