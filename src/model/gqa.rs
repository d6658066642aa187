//! The pieces of the fast CPU path that the decoder-style families (Qwen3, Gemma 3) share: their layers'
//! four products over the same tensor names (Q/K/V stacked into one, attention output, gate/up stacked into
//! one, down), per-head RMSNorm and rotary positions on queries and keys, and grouped-query attention in
//! blocks of query rows, with the visibility each family's layers need (causal, all, or a window).
//!
//! Attention runs in blocks of `BLOCK` query rows: a block's scores span only the keys its rows can see, so
//! memory grows with the sequence's length, not its square (a 32k-token text needs 8 MB of scores per thread,
//! not 4 GB).

use rayon::prelude::*;

use super::cpu_bert::{record_ranges, take_buf, WordTable};
use super::linear::{LowPrecision, Product, Weight, PRODUCTS};
use super::rotary::Rotary;
use super::weights_file::WeightsFile;
use super::Dtype;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{rms_norm, softmax_rows};
use crate::kernels::matmul::{matmul, matmul_bt, SendPtr};

/// Query rows per attention block: a block's scores are `BLOCK × (keys it sees)`.
const BLOCK: usize = 64;

/// The model's sizes, as the products need them.
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    pub hidden: usize,
    pub inter: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Sizes {
    /// Width of the fused Q/K/V rows: query heads, then key heads, then value heads.
    pub fn qkv(self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }

    pub fn q(self) -> usize {
        self.heads * self.head_dim
    }

    /// `[out × in]` of each product.
    pub fn shape(self, product: Product) -> (usize, usize) {
        let (h, i) = (self.hidden, self.inter);
        match product {
            Product::Qkv => (self.qkv(), h),
            Product::AttnOut => (h, self.q()),
            Product::Inter => (2 * i, h),
            Product::Out => (h, i),
        }
    }

    /// The file's tensors each product stacks, with the rows each gives.
    fn parts(self, product: Product) -> Vec<(&'static str, usize)> {
        let kv = self.kv_heads * self.head_dim;
        match product {
            Product::Qkv => vec![("self_attn.q_proj", self.q()), ("self_attn.k_proj", kv), ("self_attn.v_proj", kv)],
            Product::AttnOut => vec![("self_attn.o_proj", self.hidden)],
            Product::Inter => vec![("mlp.gate_proj", self.inter), ("mlp.up_proj", self.inter)],
            Product::Out => vec![("mlp.down_proj", self.hidden)],
        }
    }

    /// The widths of the four products' inputs (`PRODUCTS` order), for the calibration's ranges.
    pub fn inputs(self) -> [usize; 4] {
        [self.hidden, self.q(), self.hidden, self.inter]
    }
}

/// Product `product` of layer `n` read from the file, through `get(row, input)` over its stacked tensors.
#[allow(clippy::type_complexity)]
fn product_weight<'f>(file: &'f WeightsFile, n: usize, product: Product, sizes: Sizes) -> Result<Box<dyn Fn(usize, usize) -> f32 + Sync + 'f>> {
    let (_, inp) = sizes.shape(product);
    let mut parts = Vec::new();
    let mut first = 0;
    for (name, rows) in sizes.parts(product) {
        parts.push((first, file.floats(&format!("layers.{n}.{name}.weight"), &[rows, inp])?));
        first += rows;
    }
    Ok(Box::new(move |r, x| {
        let (start, w) = parts.iter().rev().find(|(start, _)| *start <= r).expect("row 0 starts the first part");
        w.at((r - start) * inp + x)
    }))
}

/// A layer's four products, with the attention products' biases where the config has them.
pub(super) struct Products {
    pub qkv_w: Weight,
    pub qkv_b: Option<Vec<f32>>,
    pub o_w: Weight,
    pub o_b: Option<Vec<f32>>,
    /// Gate rows, then up rows: one product feeds the gated activation.
    pub gate_up_w: Weight,
    pub down_w: Weight,
}

impl Products {
    pub fn load(file: &WeightsFile, n: usize, sizes: Sizes, dtype: Dtype, attention_bias: bool) -> Result<Self> {
        let weight = |product: Product| -> Result<Weight> {
            let (out, inp) = sizes.shape(product);
            Ok(Weight::new(out, inp, dtype, product_weight(file, n, product, sizes)?))
        };
        let bias = |product: Product| -> Result<Option<Vec<f32>>> {
            if !attention_bias {
                return Ok(None);
            }
            let mut b = Vec::new();
            for (name, rows) in sizes.parts(product) {
                b.extend(file.floats(&format!("layers.{n}.{name}.bias"), &[rows])?.to_vec());
            }
            Ok(Some(b))
        };
        Ok(Products {
            qkv_w: weight(Product::Qkv)?,
            qkv_b: bias(Product::Qkv)?,
            o_w: weight(Product::AttnOut)?,
            o_b: bias(Product::AttnOut)?,
            gate_up_w: weight(Product::Inter)?,
            down_w: weight(Product::Out)?,
        })
    }

    fn weights(&mut self) -> [&mut Weight; 4] {
        [&mut self.qkv_w, &mut self.o_w, &mut self.gate_up_w, &mut self.down_w]
    }

    pub fn is_int8(&self) -> bool {
        matches!(self.qkv_w, Weight::Int8(_))
    }

    /// Bytes held: the four weights and the biases.
    pub fn bytes(&self) -> usize {
        let floats = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, Vec::len);
        [&self.qkv_w, &self.o_w, &self.gate_up_w, &self.down_w].iter().map(|w| w.bytes()).sum::<usize>()
            + (floats(&self.qkv_b) + floats(&self.o_b)) * 4
    }

    /// For int8 weights: moves each product's outlier inputs (from `ranges`, the largest magnitude seen per
    /// input channel, `PRODUCTS` order) into f32, as `CpuBert::calibrate` does.
    pub fn calibrate(&mut self, file: &WeightsFile, n: usize, sizes: Sizes, ranges: &[Vec<f32>; 4]) -> Result<()> {
        for ((product, weight), range) in PRODUCTS.into_iter().zip(self.weights()).zip(ranges) {
            let Weight::Int8(w) = weight else { continue };
            let inputs = super::calibration::outliers(range);
            if !inputs.is_empty() {
                w.move_to_f32(&inputs, product_weight(file, n, product, sizes)?);
            }
        }
        Ok(())
    }
}

/// The names of a layer's product tensors in the file, so that their pages can be released once packed.
pub(super) fn product_tensors(n: usize, sizes: Sizes) -> Vec<String> {
    PRODUCTS.into_iter().flat_map(|p| sizes.parts(p)).map(|(name, _)| format!("layers.{n}.{name}.weight")).collect()
}

/// What the decoder families' CPU encoders hold beside their layers: the word table (and through it the
/// weights file), the sizes, and the bounds every token must be inside.
pub(super) struct Tables {
    pub word: WordTable,
    pub sizes: Sizes,
    pub vocab: usize,
    /// Rows of the rotary tables: the longest sequence the encoder takes.
    pub positions: usize,
}

impl Tables {
    /// Each token's row of the word table, times `scale`, into the rows of `x`.
    pub fn embed(&self, x: &mut [f32], ids: &[&[u32]], scale: f32) -> Result<()> {
        let h = self.sizes.hidden;
        let word = self.word.rows()?;
        for (row, (p, &id)) in ids.iter().flat_map(|s| s.iter().enumerate()).enumerate() {
            if id as usize >= self.vocab || p >= self.positions {
                return Err(Error::internal(format!("token {id} at position {p} is outside the model's tables")));
            }
            let dst = &mut x[row * h..(row + 1) * h];
            word.read(id as usize, dst);
            if scale != 1.0 {
                dst.iter_mut().for_each(|v| *v *= scale);
            }
        }
        Ok(())
    }

    /// As `CpuBert::weight_bytes`: `owned` bytes besides the word table.
    pub fn memory(&self, owned: usize) -> super::WeightMemory {
        self.word.memory(owned, self.vocab * self.sizes.hidden * 4)
    }

    /// As `CpuBert::release_file_pages`, for `layers` layers' products.
    pub fn release_file_pages(&mut self, layers: usize) {
        for n in 0..layers {
            for name in product_tensors(n, self.sizes) {
                self.word.file_mut().release(&name);
            }
        }
    }

    /// Empty input ranges for a calibration pass over `layers` layers.
    pub fn ranges(&self, layers: usize) -> Vec<[Vec<f32>; 4]> {
        (0..layers).map(|_| self.sizes.inputs().map(|w| vec![0f32; w])).collect()
    }
}

/// One forward pass's working buffers, reused from batch to batch.
#[derive(Default)]
pub(super) struct Scratch {
    x: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inter: Vec<f32>,
    low: LowPrecision,
}

/// The buffers of a pass over `total` packed tokens: hidden states, a normed (or block output) copy of them,
/// Q/K/V rows, attention context rows, gate/up rows, and the low-precision products' own.
pub(super) struct Buffers<'s> {
    pub x: &'s mut [f32],
    pub normed: &'s mut [f32],
    pub qkv: &'s mut [f32],
    pub ctx: &'s mut [f32],
    pub inter: &'s mut [f32],
    pub low: &'s mut LowPrecision,
}

impl Scratch {
    pub fn take(&mut self, total: usize, s: Sizes) -> Buffers<'_> {
        let Scratch { x, normed, qkv, ctx, inter, low } = self;
        Buffers {
            x: take_buf(x, total * s.hidden),
            normed: take_buf(normed, total * s.hidden),
            qkv: take_buf(qkv, total * s.qkv()),
            ctx: take_buf(ctx, total * s.q()),
            inter: take_buf(inter, total * 2 * s.inter),
            low,
        }
    }
}

/// Records each product's input ranges during a calibration pass (no-op outside one).
pub(super) struct Observer<'r>(pub Option<&'r mut [[Vec<f32>; 4]]>);

impl Observer<'_> {
    pub fn see(&mut self, n: usize, product: Product, input: &[f32], stride: usize) {
        if let Some(ranges) = self.0.as_deref_mut() {
            record_ranges(&mut ranges[n][product as usize], input, stride);
        }
    }
}

/// Which keys a query row sees, by position in its own sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Visible {
    /// Keys at or before the query (decoders).
    Causal,
    /// Every key (bidirectional).
    All,
    /// Keys fewer than `w` positions away on either side: `|q − k| < w` (bidirectional local layers).
    Within(usize),
}

impl Visible {
    /// The keys query `q` of a `len`-token sequence sees: a range, never empty.
    fn keys(self, q: usize, len: usize) -> (usize, usize) {
        match self {
            Visible::Causal => (0, q + 1),
            Visible::All => (0, len),
            Visible::Within(w) => (q.saturating_sub(w.saturating_sub(1)), (q + w).min(len)),
        }
    }
}

/// RMS-normalises every query and key head of each `qkv` row (`offset + gamma`, see `rms_norm`) and rotates it
/// by the row's position in its own sequence (`positions`, one per row).
#[allow(clippy::too_many_arguments)]
pub(super) fn norm_and_rotate(
    qkv: &mut [f32],
    positions: &[usize],
    sizes: Sizes,
    (q_norm, k_norm): (&[f32], &[f32]),
    eps: f32,
    offset: f32,
    rope: &Rotary,
) {
    let (d, wq, wk) = (sizes.head_dim, sizes.q(), sizes.kv_heads * sizes.head_dim);
    let rotate = |(row, &p): (&mut [f32], &usize)| {
        let (q, rest) = row.split_at_mut(wq);
        for (heads, gamma) in [(q, q_norm), (&mut rest[..wk], k_norm)] {
            rms_norm(heads, gamma, eps, offset);
            heads.chunks_exact_mut(d).for_each(|head| rope.apply(head, p));
        }
    };
    if positions.len() >= 64 {
        qkv.par_chunks_mut(sizes.qkv()).zip(positions.par_iter()).for_each(rotate);
    } else {
        qkv.chunks_mut(sizes.qkv()).zip(positions.iter()).for_each(rotate);
    }
}

/// Each row's position in its own sequence, for packed `seqs`.
pub(super) fn positions(seqs: &[(usize, usize)]) -> Vec<usize> {
    seqs.iter().flat_map(|&(_, len)| 0..len).collect()
}

/// Self-attention with grouped key/value heads, per sequence, query head and block of `BLOCK` query rows, in
/// parallel. Each task reads Q, K, V in place from `qkv` (rows of `sizes.qkv()`: query heads, key heads, value
/// heads) and writes its head's columns of its rows of `ctx` (rows of `sizes.q()`). Query head `head` reads
/// key/value head `head / (heads / kv_heads)`; each query sees the keys `visible` gives it, the others
/// weighted 0; scores are multiplied by `scale` before the softmax.
pub(super) fn attention(qkv: &[f32], ctx: &mut [f32], seqs: &[(usize, usize)], sizes: Sizes, visible: Visible, scale: f32) {
    let (d, wq, wqkv) = (sizes.head_dim, sizes.q(), sizes.qkv());
    let group = sizes.heads / sizes.kv_heads;
    let tasks: Vec<(usize, usize, usize, usize)> = seqs
        .iter()
        .flat_map(|&(o, len)| (0..sizes.heads).flat_map(move |head| (0..len).step_by(BLOCK).map(move |r| (o, len, head, r))))
        .collect();
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let ctx_len = ctx.len();
    let block_attention = |&(o, len, head, r0): &(usize, usize, usize, usize)| {
        SCORES.with_borrow_mut(|scores| {
            let rows = BLOCK.min(len - r0);
            // The block's keys: from what its first row sees to what its last row sees (both bounds grow
            // with the row for every kind of visibility).
            let (k0, _) = visible.keys(r0, len);
            let (_, k1) = visible.keys(r0 + rows - 1, len);
            let keys = k1 - k0;
            let scores = take_buf(scores, rows * keys);
            let kv = head / group;
            let q = &qkv[(o + r0) * wqkv + head * d..];
            let k = &qkv[(o + k0) * wqkv + wq + kv * d..];
            let v = &qkv[(o + k0) * wqkv + wq + sizes.kv_heads * d + kv * d..];
            matmul_bt(scores, keys, q, wqkv, k, wqkv, rows, keys, d, false, 1);
            for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                let (lo, hi) = visible.keys(r0 + i, len);
                let (lo, hi) = (lo - k0, hi - k0);
                softmax_rows(&mut row[lo..hi], hi - lo, scale);
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
            }
            // SAFETY: each task writes only rows o+r0..o+r0+rows, columns head*d..(head+1)*d of ctx; no two tasks
            // share a (sequence, head, block), so their writes are disjoint, and ctx outlives the parallel loop.
            let start = (o + r0) * wq + head * d;
            let out = unsafe { std::slice::from_raw_parts_mut(ctx_ptr.get().add(start), ctx_len - start) };
            matmul(out, wq, scores, keys, v, wqkv, rows, d, keys);
        })
    };
    // As in `cpu_bert::attention`: a short query's heads are too little work to wake the pool for.
    let work: usize = seqs.iter().map(|&(_, len)| len * len * wq).sum();
    if work >= 1 << 16 {
        tasks.par_iter().for_each(block_attention);
    } else {
        tasks.iter().for_each(block_attention);
    }
}

thread_local! {
    /// Each compute thread's block of attention scores, reused (freed with the model's scratch: see
    /// `release_thread_scratch`).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frees this thread's attention buffer (called on every compute thread when a model unloads).
pub fn release_thread_scratch() {
    SCORES.with_borrow_mut(|s| *s = Vec::new());
}

#[cfg(test)]
mod tests {
    use super::Visible;

    #[test]
    fn each_visibility_gives_the_keys_it_names() {
        assert_eq!(Visible::Causal.keys(5, 10), (0, 6));
        assert_eq!(Visible::All.keys(5, 10), (0, 10));
        // |q - k| < 3: 3..=7 around 5, clipped at both ends.
        assert_eq!(Visible::Within(3).keys(5, 10), (3, 8));
        assert_eq!(Visible::Within(3).keys(0, 10), (0, 3));
        assert_eq!(Visible::Within(3).keys(9, 10), (7, 10));
        assert_eq!(Visible::Within(1).keys(4, 10), (4, 5));
    }
}
