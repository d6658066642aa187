//! Matrix products with the weights packed, once at load, in panels of 32 output columns: for each input, the
//! panel's 32 weights side by side, so a register tile of R rows × 32 columns streams each weight once per R
//! rows with its accumulators in registers for the whole inner loop. A short query is bound by reading the
//! weights; this reads each of them once per tile at full speed, where `gemm` would spend most of its time
//! packing them.
//!
//! - f32 (`PackedF32`, the default at every SIMD level but scalar): the file's own numbers, laid out for the
//!   tile. One tile written once over `pulp`'s portable SIMD types and compiled per level: AVX-512 (16 lanes,
//!   8-row tiles), AVX2+FMA (8 lanes, 3-row tiles), NEON (4 lanes, 3-row tiles); the row count is what fits the
//!   level's register file.
//! - bf16 (`PackedBf16`, the opt-in `dtype: 'bf16'` mode): weights rounded to bf16 and stored as pairs of
//!   inputs, half the bytes to stream. With AVX512_BF16, `vdpbf16ps` multiplies pairs with the activations
//!   rounded too (the one hand-written tile, `avx512_bf16`: no portable crate has the instruction). Elsewhere
//!   each panel is widened to f32 once per block of rows, into a per-thread buffer that stays in L2, and the
//!   f32 tile multiplies the activations as they are.
//!
//! At the scalar level (`EMBEDDING_SERVICE_SIMD=scalar`) nothing here runs: the model keeps plain f32 weights
//! for `matmul::matmul_bt`, the reference these kernels are tested against.

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

use super::level::{self, Level};
use super::matmul::{check_rows, SendPtr};

/// Output columns per panel: two AVX-512 registers, four AVX2 or eight NEON registers.
const NR: usize = 32;
/// Inputs per chunk of a panel product: 128 × 32 f32 weights are 16 KB, half of a typical L1 data cache.
const KC: usize = 128;
/// Rows per task: their activations stay in L2 while every weight panel streams past them.
const ROWS_PER_TASK: usize = 64;

/// Whether the panel kernels run at this process's SIMD level: all but scalar, where `pulp` agrees the CPU has
/// that level (its AVX2 level also wants F16C, BMI1/2 and LZCNT, which a VM can hide while showing AVX2).
pub fn supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(simd_token_exists)
}

fn simd_token_exists() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        level::avx2() && (pulp::x86::V3::try_new().is_some() || (level::avx512() && pulp::x86::V4::try_new().is_some()))
    }
    #[cfg(target_arch = "aarch64")]
    {
        level::level() == Level::Neon && pulp::aarch64::Neon::try_new().is_some()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Whether `dtype: 'bf16'` can run on this CPU: at every level with a panel kernel.
pub fn bf16_supported() -> bool {
    supported()
}

/// Whether bf16 products run on the CPU's own bf16 instructions (AVX512_BF16), activations rounded too.
pub fn bf16_native() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        level::avx512() && std::arch::is_x86_feature_detected!("avx512bf16")
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

/// Reads a row-major `[n × k]` matrix as `get(column, input)`, for the `pack_with`s.
pub fn row_major(w: &[f32], n: usize, k: usize) -> impl Fn(usize, usize) -> f32 + '_ {
    assert_eq!(w.len(), n * k, "weight shape");
    move |j, i| w[j * k + i]
}

/// A `[n × k]` weight matrix (a PyTorch Linear weight), rounded to bf16 and packed in panels.
pub struct PackedBf16 {
    data: Vec<u16>,
    n: usize,
    k: usize,
}

impl PackedBf16 {
    /// Packs `[n × k]` values read through `get(column, input)`: straight from a weights file, no copy first.
    pub fn pack_with(n: usize, k: usize, get: impl Fn(usize, usize) -> f32) -> Self {
        let mut packed = Self::empty();
        packed.repack(n, k, get);
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

    /// Bytes held, padding included.
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }

    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(NR)
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
    /// Packs `[n × k]` values read through `get(column, input)`: straight from a weights file, no copy first.
    pub fn pack_with(n: usize, k: usize, get: impl Fn(usize, usize) -> f32) -> Self {
        let mut packed = Self::empty();
        packed.repack(n, k, get);
        packed
    }

    pub const fn empty() -> Self {
        PackedF32 { data: Vec::new(), n: 0, k: 0 }
    }

    /// Bytes held, padding included.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
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


/// Runs `op` compiled for this process's SIMD level. Panics at the scalar level (callers check `supported`).
fn vectorize<Op: WithSimd>(op: Op) -> Op::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if level::avx512() {
            if let Some(simd) = pulp::x86::V4::try_new() {
                return Simd::vectorize(simd, op);
            }
        }
        // Checked by `supported` too: pulp's V3 also wants F16C, BMI and LZCNT.
        if let Some(simd) = pulp::x86::V3::try_new().filter(|_| level::avx2()) {
            return Simd::vectorize(simd, op);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if let Some(simd) = pulp::aarch64::Neon::try_new().filter(|_| level::level() == Level::Neon) {
            return Simd::vectorize(simd, op);
        }
    }
    panic!("the panel kernels need a SIMD level (see supported())")
}

/// A register tile's (columns, rows) at this level: the accumulators (rows × columns / lanes registers), the
/// weight registers and the broadcast activations must fit the register file. AVX-512: 8 rows × 2 registers
/// of its 32. AVX2: 3 rows × 4 registers of its 16 (6 rows × 2, half a panel, measured 10-15% slower on a
/// 13-token query on Zen 3). NEON: 3 rows × 8 registers of its 32. Any shape is correct (the tests run each
/// level); these are what fit.
fn tile_shape() -> (usize, usize) {
    match level::level() {
        Level::Avx512 => (32, 8),
        _ => (32, 3),
    }
}

/// Where `panel_product` asks the cache for what its caller reads next: chunk `j` of the product fetches
/// `bytes_per_chunk` bytes from `start + j × bytes_per_chunk` into L2.
#[derive(Clone, Copy)]
struct Ahead {
    start: *const u8,
    bytes_per_chunk: usize,
}

/// `out[rows × cols] (+)= a[rows × k] · panel` for one panel (`cols` ≤ NR of its columns used), tile by tile:
/// each tile of columns stays in L1 while every row tile passes over it.
///
/// # Safety
/// `a` holds `rows` rows of `k` values at `a_row_stride`; `panel` holds k × NR values; `out` addresses `rows`
/// rows of `cols` writable values at `out_row_stride`, which no other thread writes. `ahead` may point
/// anywhere: prefetches never fault.
#[allow(clippy::too_many_arguments)]
unsafe fn panel_product(a: *const f32, a_row_stride: usize, panel: *const f32, k: usize, rows: usize, out: *mut f32, out_row_stride: usize, cols: usize, accumulate: bool, ahead: Ahead) {
    let (tile_cols, mr) = tile_shape();
    // Every row tile carries a share of the prefetches, so the next chunk's weights arrive from memory while
    // this chunk is computed (from L1 after the first tile) and the next chunk's first tile does not wait on
    // DRAM. A short query reads every weight once: without this, a 13-token query spent a quarter of its
    // time in that wait (measured on Zen 3: 6.9 -> 5.3 ms at 1 thread), a 3-token query an eighth.
    let helpers = rows.div_ceil(mr);
    let lines = ahead.bytes_per_chunk / 64;
    for c in (0..cols).step_by(tile_cols) {
        // The inputs in chunks of KC, so the chunk of weights (16 KB) is read from L2 once and from L1 by every
        // row tile after the first; each chunk after the first adds to what the one before stored.
        for i in (0..k).step_by(KC) {
            let fetch = ahead.start.wrapping_add(i / KC * ahead.bytes_per_chunk);
            let mut index = 0;
            tiles(0..rows, mr, |t, r| {
                // Tile `index` fetches its share of the lines (none on a second pass over a panel's columns).
                let (from, to) = match index {
                    _ if c > 0 => (0, 0),
                    _ => (lines * index / helpers, lines * (index + 1) / helpers),
                };
                index += 1;
                vectorize(Tile {
                    prefetch: fetch.wrapping_add(from * 64),
                    prefetch_lines: to - from,
                    a: a.add(t * a_row_stride + i),
                    a_row_stride,
                    panel: panel.add(i * NR + c),
                    k: KC.min(k - i),
                    rows: r,
                    out: out.add(t * out_row_stride + c),
                    out_row_stride,
                    tile_cols,
                    cols: tile_cols.min(cols - c),
                    accumulate: accumulate || i > 0,
                })
            });
        }
    }
}

/// `dst[m×n] (+)= a[m×k] · wᵀ` with packed f32 weights: the same sums as `matmul::matmul_bt` in another
/// order. Panics unless `supported()`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bt_f32(dst: &mut [f32], dst_row_stride: usize, a: &[f32], a_row_stride: usize, w: &PackedF32, m: usize, accumulate: bool, threads: usize) {
    assert!(supported(), "the panel kernels need a SIMD level");
    let (n, k) = (w.n, w.k);
    if m == 0 || n == 0 {
        return;
    }
    check_rows(dst, dst_row_stride, a, a_row_stride, (m, n, k));
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    for_each_block(m, n.div_ceil(NR), threads, m * n * k, |rows, p| {
        // SAFETY: the block's rows of a hold k values at the stride (asserted); the panel holds k × NR values;
        // the block's rows and the panel's columns are inside dst (asserted) and no other task writes them.
        unsafe {
            let (a, panel) = (a.as_ptr().add(rows.start * a_row_stride), w.data[p * k * NR..][..k * NR].as_ptr());
            let out = dst_ptr.get().add(rows.start * dst_row_stride + p * NR);
            // This panel's next chunk, and after its last the next panel's first (exactly when k is a multiple
            // of KC, as in the BERT sizes).
            let ahead = Ahead { start: panel.add(KC.min(k) * NR) as *const u8, bytes_per_chunk: KC * NR * 4 };
            panel_product(a, a_row_stride, panel, k, rows.len(), out, dst_row_stride, NR.min(n - p * NR), accumulate, ahead)
        }
    });
}

/// `dst[m×n] (+)= a[m×k] · wᵀ` with packed bf16 weights. `a16` is a reusable buffer for the rounded
/// activations (AVX512_BF16 only). Panics unless `bf16_supported()`.
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
    assert!(bf16_supported(), "the bf16 kernels need a SIMD level");
    let (n, k, pairs) = (w.n, w.k, w.pairs());
    if m == 0 || n == 0 {
        return;
    }
    check_rows(dst, dst_row_stride, a, a_row_stride, (m, n, k));
    if bf16_native() {
        return native_bf16(dst, dst_row_stride, a, a_row_stride, w, m, accumulate, threads, a16);
    }
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    for_each_block(m, w.panels(), threads, m * n * k, |rows, p| {
        WIDENED.with_borrow_mut(|widened| {
            // The panel widened to f32 once per block of rows, so the widening costs a few percent of the
            // block's multiply-adds: the weights come from memory at half the bytes and from L2 as f32.
            if widened.len() < k * NR {
                widened.resize(k * NR, 0.0);
            }
            vectorize(Widen { panel: &w.data[p * pairs * NR * 2..][..pairs * NR * 2], out: &mut widened[..k * NR] });
            // SAFETY: as in `matmul_bt_f32`, with the widened panel of k × NR values.
            unsafe {
                let out = dst_ptr.get().add(rows.start * dst_row_stride + p * NR);
                let a = a.as_ptr().add(rows.start * a_row_stride);
                // The widened panel is already in L2; what comes next from memory is the next bf16 panel.
                let next = w.data.as_ptr().wrapping_add((p + 1) * pairs * NR * 2) as *const u8;
                let ahead = Ahead { start: next, bytes_per_chunk: KC * NR * 2 };
                panel_product(a, a_row_stride, widened.as_ptr(), k, rows.len(), out, dst_row_stride, NR.min(n - p * NR), accumulate, ahead)
            }
        })
    });
}

thread_local! {
    /// Each compute thread's widened bf16 panel, reused; freed by `release_thread_scratch`.
    static WIDENED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frees this thread's widened panel (called on every compute thread when a model unloads).
pub fn release_thread_scratch() {
    WIDENED.with_borrow_mut(|w| *w = Vec::new());
}

/// The AVX512_BF16 product: activations rounded to bf16 once per call, then `vdpbf16ps` tiles.
#[allow(clippy::too_many_arguments)]
fn native_bf16(dst: &mut [f32], dst_row_stride: usize, a: &[f32], a_row_stride: usize, w: &PackedBf16, m: usize, accumulate: bool, threads: usize, a16: &mut Vec<u16>) {
    let (n, k, pairs) = (w.n, w.k, w.pairs());
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
    for_each_block(m, w.panels(), threads, m * n * k, |rows, p| tiles(rows, 8, |t, r| {
        let panel = &w.data[p * pairs * NR * 2..][..pairs * NR * 2];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: rows t..t+r and the panel's columns are in dst (asserted by the caller) and visited by one
        // tile only; a16 holds r rows of row16 values; the CPU has AVX512F and AVX512_BF16 (bf16_native).
        unsafe {
            let out = dst_ptr.get().add(t * dst_row_stride + p * NR);
            let args = (a16[t * row16..].as_ptr(), row16, panel.as_ptr(), pairs, out, dst_row_stride, NR.min(n - p * NR), accumulate);
            match r {
                8 => avx512_bf16::tile::<8>(args),
                7 => avx512_bf16::tile::<7>(args),
                6 => avx512_bf16::tile::<6>(args),
                5 => avx512_bf16::tile::<5>(args),
                4 => avx512_bf16::tile::<4>(args),
                3 => avx512_bf16::tile::<3>(args),
                2 => avx512_bf16::tile::<2>(args),
                _ => avx512_bf16::tile::<1>(args),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (t, r, panel, accumulate, dst_ptr, a16, row16, dst_row_stride, n);
    }));
}

/// Calls `f(rows, panel)` for every block of rows × panel of an `m`-row product over `panels` panels, in
/// parallel tasks of a block of rows × a range of panels; few rows (a query) split the panels among threads.
pub(super) fn for_each_block(m: usize, panels: usize, threads: usize, work: usize, f: impl Fn(std::ops::Range<usize>, usize) + Sync) {
    let row_blocks = m.div_ceil(ROWS_PER_TASK);
    let panel_groups = if threads > 1 && row_blocks < 4 * threads {
        panels.min((4 * threads).div_ceil(row_blocks))
    } else {
        1
    };
    let per_group = panels.div_ceil(panel_groups);
    let task = |index: usize| {
        let (rb, g) = (index / panel_groups, index % panel_groups);
        for p in g * per_group..((g + 1) * per_group).min(panels) {
            f(rb * ROWS_PER_TASK..((rb + 1) * ROWS_PER_TASK).min(m), p);
        }
    };
    let tasks = row_blocks * panel_groups;
    if threads > 1 && tasks > 1 && work >= PARALLEL_WORK {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// Calls `f(first_row, rows)` for each register tile of at most `mr` rows in `rows`, the rows shared out as
/// evenly as the tile count allows: a 1-row tail tile has too few accumulators to hide the FMA latency, so 13
/// rows in tiles of 6 run as 5, 4, 4 rather than 6, 6, 1.
pub(super) fn tiles(rows: std::ops::Range<usize>, mr: usize, mut f: impl FnMut(usize, usize)) {
    let count = rows.len().div_ceil(mr);
    let mut t = rows.start;
    for i in 0..count {
        let r = (rows.end - t).div_ceil(count - i);
        f(t, r);
        t += r;
    }
}

/// Multiply-adds below which a product runs on the calling thread: waking the pool costs more than it saves.
const PARALLEL_WORK: usize = 1 << 16;

/// Widens a bf16 panel (pairs of inputs) to k rows of NR f32 values.
struct Widen<'a> {
    panel: &'a [u16],
    out: &'a mut [f32],
}

impl WithSimd for Widen<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        let (high, sixteen) = (s.splat_u32s(0xffff_0000), s.splat_u32s(16));
        let lanes = S::F32_LANES;
        for (q, out) in self.out.chunks_mut(2 * NR).enumerate() {
            let pairs = &self.panel[q * NR * 2..][..NR * 2];
            for j in 0..NR / lanes {
                // SAFETY: `pairs` holds NR u32 pairs; j × lanes + lanes ≤ NR.
                let pair = unsafe { (pairs.as_ptr().add(2 * j * lanes) as *const S::u32s).read_unaligned() };
                // A bf16 is the top half of an f32: the pair's first input shifted up, its second masked.
                let first = s.transmute_f32s_u32s(s.wrapping_dyn_shl_u32s(pair, sixteen));
                let second = s.transmute_f32s_u32s(s.and_u32s(pair, high));
                let (row0, row1) = out.split_at_mut(NR.min(out.len()));
                // SAFETY: row0 holds NR values; row1 holds NR values unless k is odd and this is the last pair.
                unsafe { (row0.as_mut_ptr().add(j * lanes) as *mut S::f32s).write_unaligned(first) };
                if !row1.is_empty() {
                    unsafe { (row1.as_mut_ptr().add(j * lanes) as *mut S::f32s).write_unaligned(second) };
                }
            }
        }
    }
}

/// One register tile: `out[rows × cols] (+)= a[rows × k] · panel`. Built by the callers above, which check
/// every pointer's extent; run through `vectorize`.
struct Tile {
    a: *const f32,
    a_row_stride: usize,
    /// k rows of NR f32 weights.
    panel: *const f32,
    k: usize,
    rows: usize,
    out: *mut f32,
    out_row_stride: usize,
    /// Columns the tile computes (a multiple of the lane count), of which the first `cols` are stored.
    tile_cols: usize,
    cols: usize,
    accumulate: bool,
    /// Cache lines this tile asks to be fetched into L2 (two per step of its loop), starting at `prefetch`.
    prefetch: *const u8,
    prefetch_lines: usize,
}

/// Asks for the cache line at `p` to be brought into L2 (a hint: never faults, whatever the address).
#[inline(always)]
fn prefetch_l2(p: *const u8) {
    // SAFETY: prefetch instructions only hint the cache; they do not access memory architecturally.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p as *const i8)
    }
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("prfm pldl2keep, [{0}]", in(reg) p, options(nostack, readonly, preserves_flags))
    }
}

impl WithSimd for Tile {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        // The accumulators' shape must be constant for them to live in registers: rows from the runtime count,
        // registers per tile from its columns and the lane count (a constant of S).
        macro_rules! rows {
            ($v:literal) => {
                // SAFETY: the tile's pointers were checked by the caller that built it.
                unsafe {
                    match self.rows {
                        8 => self.run::<S, 8, $v>(s),
                        7 => self.run::<S, 7, $v>(s),
                        6 => self.run::<S, 6, $v>(s),
                        5 => self.run::<S, 5, $v>(s),
                        4 => self.run::<S, 4, $v>(s),
                        3 => self.run::<S, 3, $v>(s),
                        2 => self.run::<S, 2, $v>(s),
                        _ => self.run::<S, 1, $v>(s),
                    }
                }
            };
        }
        match self.tile_cols / S::F32_LANES {
            2 => rows!(2),
            4 => rows!(4),
            8 => rows!(8),
            v => unreachable!("no panel tile of {v} registers"),
        }
    }
}

impl Tile {
    /// # Safety
    /// `a` holds `R` rows of `k` values at `a_row_stride`; `panel` holds `k` × NR values; `out`
    /// addresses `R` rows of `cols` writable values at `out_row_stride`; `V` × lanes = `tile_cols` ≤ NR.
    #[inline(always)]
    unsafe fn run<S: Simd, const R: usize, const V: usize>(&self, s: S) {
        debug_assert_eq!(V * S::F32_LANES, self.tile_cols);
        let mut acc = [[s.splat_f32s(0.0); V]; R];
        let a = |r: usize, i: usize| s.splat_f32s(*self.a.add(r * self.a_row_stride + i));
        // Live registers: the accumulators, plus either every weight register of the step and one broadcast at
        // a time (AVX-512's 2-register tile) or every row's broadcast and one weight register at a time (AVX2's
        // 4 and NEON's 8): whichever is fewer, so nothing spills.
        for i in 0..self.k {
            if 2 * i < self.prefetch_lines {
                prefetch_l2(self.prefetch.wrapping_add(2 * i * 64));
                prefetch_l2(self.prefetch.wrapping_add((2 * i + 1) * 64));
            }
            let b = self.panel.add(i * NR);
            let load = |j: usize| (b.add(j * S::F32_LANES) as *const S::f32s).read_unaligned();
            if V <= R {
                let bv: [S::f32s; V] = std::array::from_fn(load);
                for r in 0..R {
                    let ar = a(r, i);
                    for j in 0..V {
                        acc[r][j] = s.mul_add_f32s(ar, bv[j], acc[r][j]);
                    }
                }
            } else {
                let av: [S::f32s; R] = std::array::from_fn(|r| a(r, i));
                for j in 0..V {
                    let bj = load(j);
                    for r in 0..R {
                        acc[r][j] = s.mul_add_f32s(av[r], bj, acc[r][j]);
                    }
                }
            }
        }
        for (r, row_acc) in acc.iter().enumerate() {
            let row = self.out.add(r * self.out_row_stride);
            if self.cols == self.tile_cols {
                for (j, &v) in row_acc.iter().enumerate() {
                    let dst = row.add(j * S::F32_LANES) as *mut S::f32s;
                    let v = if self.accumulate { s.add_f32s(v, dst.read_unaligned()) } else { v };
                    dst.write_unaligned(v);
                }
            } else {
                // A partial panel (n not a multiple of 32): the zero-padded columns are dropped here.
                let mut full = [0f32; NR];
                for (j, &v) in row_acc.iter().enumerate() {
                    (full.as_mut_ptr().add(j * S::F32_LANES) as *mut S::f32s).write_unaligned(v);
                }
                for (c, &v) in full[..self.cols].iter().enumerate() {
                    let dst = row.add(c);
                    *dst = if self.accumulate { *dst + v } else { v };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512_bf16 {
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

    /// Shapes that hit every edge (odd k, partial panels, partial and balanced row tiles, k across several
    /// chunks, several tasks, accumulation), each with pseudo-random inputs in [-1, 1) and a padded row stride.
    struct Case {
        m: usize,
        n: usize,
        k: usize,
        accumulate: bool,
        threads: usize,
        stride: usize,
        a: Vec<f32>,
        w: Vec<f32>,
        start: Vec<f32>,
    }

    fn cases(mut seed: u64) -> Vec<Case> {
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let shapes = [(1, 1, 1, false, 1), (3, 33, 7, true, 2), (9, 64, 384, false, 2), (130, 70, 101, true, 2), (17, 1536, 384, false, 1), (13, 40, 300, true, 2)];
        shapes
            .into_iter()
            .map(|(m, n, k, accumulate, threads)| {
                let stride = k + 3;
                let a = (0..m * stride).map(|_| next()).collect();
                let w = (0..n * k).map(|_| next()).collect();
                let start = (0..m * n).map(|_| next()).collect();
                Case { m, n, k, accumulate, threads, stride, a, w, start }
            })
            .collect()
    }

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

    /// Checks the packed product against an f64 product of the same bf16-rounded weights (and activations, on
    /// AVX512_BF16, which rounds them), over shapes that hit every edge: odd k, partial panels, partial row
    /// tiles, several tasks, accumulation.
    #[test]
    fn packed_product_matches_a_reference_on_rounded_inputs() {
        if !bf16_supported() {
            // At the scalar level the kernel must refuse loudly rather than compute anything.
            let packed = PackedBf16::pack_with(1, 1, row_major(&[1.0], 1, 1));
            let refused = std::panic::catch_unwind(|| matmul_bt_bf16(&mut [0.0], 1, &[1.0], 1, &packed, 1, false, 1, &mut Vec::new()));
            assert!(refused.is_err());
            return;
        }
        for Case { m, n, k, accumulate, threads, stride, a, w, start } in cases(7) {
            let mut dst = start.clone();
            let packed = PackedBf16::pack_with(n, k, row_major(&w, n, k));
            matmul_bt_bf16(&mut dst, n, &a, stride, &packed, m, accumulate, threads, &mut Vec::new());
            for t in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|i| {
                            let x = a[t * stride + i];
                            let x = if bf16_native() { from_bf16(to_bf16(x)) } else { x };
                            x as f64 * from_bf16(to_bf16(w[j * k + i])) as f64
                        })
                        .sum::<f64>()
                        + if accumulate { start[t * n + j] as f64 } else { 0.0 };
                    let got = dst[t * n + j] as f64;
                    assert!((got - exact).abs() <= 1e-4 * (1.0 + exact.abs()), "m{m} n{n} k{k} ({t},{j}): {got} vs {exact}");
                }
            }
        }
    }

    /// The f32 panel kernel against `matmul::matmul_bt` (gemm) and an f64 product on the same edge-case shapes
    /// (partial panels and row tiles, k across several chunks, accumulation): the same sums in another order.
    #[test]
    fn f32_panels_match_gemm_and_the_f64_definition() {
        if !supported() {
            let packed = PackedF32::pack_with(1, 1, row_major(&[1.0], 1, 1));
            assert!(std::panic::catch_unwind(|| matmul_bt_f32(&mut [0.0], 1, &[1.0], 1, &packed, 1, false, 1)).is_err());
            return;
        }
        for Case { m, n, k, accumulate, threads, stride, a, w, start } in cases(11) {
            let (mut got, mut want) = (start.clone(), start.clone());
            matmul_bt_f32(&mut got, n, &a, stride, &PackedF32::pack_with(n, k, row_major(&w, n, k)), m, accumulate, threads);
            super::super::matmul::matmul_bt(&mut want, n, &a, stride, &w, k, m, n, k, accumulate, 1);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "m{m} n{n} k{k} [{i}]: {g} vs {w}");
            }
            // And against the f64 definition: the error stays at f32 rounding over k terms of size ~1.
            for t in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k).map(|i| a[t * stride + i] as f64 * w[j * k + i] as f64).sum::<f64>()
                        + if accumulate { start[t * n + j] as f64 } else { 0.0 };
                    let g = got[t * n + j] as f64;
                    assert!((g - exact).abs() <= 1e-6 * k as f64, "m{m} n{n} k{k} ({t},{j}): {g} vs {exact}");
                }
            }
        }
    }
}
