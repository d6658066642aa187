//! Qwen3's CPU forward pass on the fast path's kernels, as `cpu_bert.rs` runs the BERT family: packed
//! sequences (no padding), Q/K/V from one product, the residual accumulated by the products, working buffers
//! reused, the same checkpoints for queries to run at. What differs is the architecture (see `qwen3.rs`):
//! RMSNorm before each block, per-head RMSNorm and rotary positions on queries and keys, key/value heads shared
//! by groups of query heads, causal attention, and SwiGLU (gate and up from one product).
//!
//! Attention runs in blocks of query rows: a block's scores span only the keys up to its last row, so memory
//! grows with the sequence's length, not its square (a 32k-token text needs 8 MB of scores per thread, not
//! 4 GB).
//!
//! Every linear layer is a `linear::Weight`, so f32, bf16 and int8 (with its calibration) come with it.

use rayon::prelude::*;

use super::cpu_bert::{free_scratch, packed_sequences, par_rows, record_ranges, take_buf, Checkpoint, WordTable};
use super::linear::{LowPrecision, Product, Weight, PRODUCTS};
use super::qwen3::Config;
use super::rotary::Rotary;
use super::weights_file::WeightsFile;
use super::Dtype;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{add_bias, rms_norm, silu_glu, softmax_rows};
use crate::kernels::matmul::{matmul, matmul_bt, SendPtr};

const WORD_TABLE: &str = "embed_tokens.weight";
/// Query rows per attention block: a block's scores are `BLOCK × (keys so far)`.
const BLOCK: usize = 64;

/// The model's sizes, as the products need them.
#[derive(Clone, Copy)]
struct Sizes {
    hidden: usize,
    inter: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Sizes {
    /// Width of the fused Q/K/V rows: query heads, then key heads, then value heads.
    fn qkv(self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
    fn q(self) -> usize {
        self.heads * self.head_dim
    }

    /// `[out × in]` of each product.
    fn shape(self, product: Product) -> (usize, usize) {
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

struct Layer {
    input_norm: Vec<f32>,
    qkv_w: Weight,
    /// Present when the config says `attention_bias`.
    qkv_b: Option<Vec<f32>>,
    o_w: Weight,
    o_b: Option<Vec<f32>>,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_norm: Vec<f32>,
    gate_up_w: Weight,
    down_w: Weight,
}

impl Layer {
    fn weights(&mut self) -> [&mut Weight; 4] {
        [&mut self.qkv_w, &mut self.o_w, &mut self.gate_up_w, &mut self.down_w]
    }
}

#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inter: Vec<f32>,
    low: LowPrecision,
}

pub struct CpuQwen3 {
    /// As in `CpuBert`: the first set for the batch in progress, the second for a query run at a checkpoint.
    scratch: [parking_lot::Mutex<Scratch>; 2],
    word: WordTable,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    rope: Rotary,
    sizes: Sizes,
    vocab: usize,
    /// Rows of the rotary tables: the longest sequence this encoder takes.
    positions: usize,
    eps: f32,
}

impl CpuQwen3 {
    /// Loads the weights `config` describes, in `dtype`, with rotary tables for `positions` tokens (the
    /// model's `max_seq_length`).
    pub fn load(file: WeightsFile, config: &Config, dtype: Dtype, positions: usize) -> Result<Self> {
        let sizes = Sizes {
            hidden: config.hidden_size,
            inter: config.intermediate_size,
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        };
        let (h, d) = (sizes.hidden, sizes.head_dim);
        let vector = |name: &str, len: usize| file.floats(name, &[len]).map(|f| f.to_vec());
        // Grown layer by layer, as in `CpuBert::load`: a huge num_hidden_layers fails at the first missing layer.
        let mut layers = Vec::new();
        for n in 0..config.num_hidden_layers {
            let weight = |product: Product| -> Result<Weight> {
                let (out, inp) = sizes.shape(product);
                let get = product_weight(&file, n, product, sizes)?;
                Ok(Weight::new(out, inp, dtype, get))
            };
            let l = |name: &str| format!("layers.{n}.{name}");
            let bias = |product: Product| -> Result<Option<Vec<f32>>> {
                if !config.attention_bias {
                    return Ok(None);
                }
                let mut b = Vec::new();
                for (name, rows) in sizes.parts(product) {
                    b.extend(vector(&l(&format!("{name}.bias")), rows)?);
                }
                Ok(Some(b))
            };
            layers.push(Layer {
                input_norm: vector(&l("input_layernorm.weight"), h)?,
                qkv_w: weight(Product::Qkv)?,
                qkv_b: bias(Product::Qkv)?,
                o_w: weight(Product::AttnOut)?,
                o_b: bias(Product::AttnOut)?,
                q_norm: vector(&l("self_attn.q_norm.weight"), d)?,
                k_norm: vector(&l("self_attn.k_norm.weight"), d)?,
                post_norm: vector(&l("post_attention_layernorm.weight"), h)?,
                gate_up_w: weight(Product::Inter)?,
                down_w: weight(Product::Out)?,
            });
        }
        let final_norm = vector("norm.weight", h)?;
        let word = WordTable::load(file, WORD_TABLE, [config.vocab_size, h])?;
        let positions = positions.min(config.max_position_embeddings);
        Ok(CpuQwen3 {
            scratch: Default::default(),
            word,
            layers,
            final_norm,
            rope: Rotary::new(config.rope_theta, d, positions),
            sizes,
            vocab: config.vocab_size,
            positions,
            eps: config.rms_norm_eps as f32,
        })
    }

    /// As `CpuBert::weight_bytes`.
    pub fn weight_bytes(&self) -> super::WeightMemory {
        let floats = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, Vec::len);
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.qkv_w, &l.o_w, &l.gate_up_w, &l.down_w].iter().map(|w| w.bytes()).sum::<usize>()
                    + (l.input_norm.len() + l.q_norm.len() + l.k_norm.len() + l.post_norm.len() + floats(&l.qkv_b) + floats(&l.o_b)) * 4
            })
            .sum();
        let tables = (self.final_norm.len() + self.rope.cos.len() * 2) * 4;
        self.word.memory(layers + tables, self.vocab * self.sizes.hidden * 4)
    }

    pub fn hidden_size(&self) -> usize {
        self.sizes.hidden
    }

    /// As `CpuBert::forward` (Qwen3 has no token types).
    pub fn forward(&self, ids: &[&[u32]], threads: usize, each: impl FnMut(usize, &[f32]), checkpoint: Option<Checkpoint>) -> Result<()> {
        self.forward_observed(ids, threads, each, checkpoint, None)
    }

    /// `forward`, recording in `ranges` (when given) each layer's largest magnitude per input channel of each of
    /// its four products (`PRODUCTS` order).
    fn forward_observed(
        &self,
        ids: &[&[u32]],
        threads: usize,
        mut each: impl FnMut(usize, &[f32]),
        mut checkpoint: Option<Checkpoint>,
        mut ranges: Option<&mut [[Vec<f32>; 4]]>,
    ) -> Result<()> {
        let s = self.sizes;
        let (h, i, wq, wqkv) = (s.hidden, s.inter, s.q(), s.qkv());
        let (seqs, total) = packed_sequences(ids);
        if total == 0 {
            (0..ids.len()).for_each(|i| each(i, &[]));
            return Ok(());
        }
        let mut scratch = free_scratch(&self.scratch)?;
        let Scratch { x, normed, qkv, ctx, inter, low } = &mut *scratch;
        let mut observe = |n: usize, product: Product, input: &[f32], stride: usize| {
            if let Some(ranges) = ranges.as_deref_mut() {
                record_ranges(&mut ranges[n][product as usize], input, stride);
            }
        };
        let mut pause = || checkpoint.as_mut().map_or(Ok(()), |c| c());
        let (x, normed) = (take_buf(x, total * h), take_buf(normed, total * h));
        let (qkv, ctx, inter) = (take_buf(qkv, total * wqkv), take_buf(ctx, total * wq), take_buf(inter, total * 2 * i));
        self.embed(x, ids)?;
        let norm = |dst: &mut [f32], gamma: &[f32]| par_rows(dst, h, |rows| rms_norm(rows, gamma, self.eps, 0.0));

        // The same five checkpoints per layer as `CpuBert`.
        for (n, layer) in self.layers.iter().enumerate() {
            if n > 0 {
                pause()?;
            }
            normed.copy_from_slice(x);
            norm(normed, &layer.input_norm);
            observe(n, Product::Qkv, normed, h);
            layer.qkv_w.apply(qkv, wqkv, normed, h, total, (wqkv, h), false, threads, low);
            if let Some(b) = &layer.qkv_b {
                par_rows(qkv, wqkv, |rows| add_bias(rows, b));
            }
            self.norm_and_rotate(qkv, &seqs, layer);
            pause()?;
            attention(qkv, ctx, &seqs, s);
            pause()?;
            observe(n, Product::AttnOut, ctx, wq);
            layer.o_w.apply(x, h, ctx, wq, total, (h, wq), true, threads, low);
            if let Some(b) = &layer.o_b {
                par_rows(x, h, |rows| add_bias(rows, b));
            }
            pause()?;
            normed.copy_from_slice(x);
            norm(normed, &layer.post_norm);
            observe(n, Product::Inter, normed, h);
            layer.gate_up_w.apply(inter, 2 * i, normed, h, total, (2 * i, h), false, threads, low);
            // SwiGLU into the first half of each row, which the next product reads with the row's full stride.
            par_rows(inter, 2 * i, |rows| silu_glu(rows, i));
            pause()?;
            observe(n, Product::Out, inter, 2 * i);
            layer.down_w.apply(x, h, inter, 2 * i, total, (h, i), true, threads, low);
        }
        norm(x, &self.final_norm);
        seqs.iter().enumerate().for_each(|(i, &(o, len))| each(i, &x[o * h..(o + len) * h]));
        Ok(())
    }

    /// Normalises every query and key head (RMSNorm over the head) and rotates it by its token's position in
    /// its own sequence.
    fn norm_and_rotate(&self, qkv: &mut [f32], seqs: &[(usize, usize)], layer: &Layer) {
        let s = self.sizes;
        let (d, wq, wk) = (s.head_dim, s.q(), s.kv_heads * s.head_dim);
        let position: Vec<usize> = seqs.iter().flat_map(|&(_, len)| 0..len).collect();
        let rotate = |(row, &p): (&mut [f32], &usize)| {
            let (q, rest) = row.split_at_mut(wq);
            for (heads, gamma) in [(q, &layer.q_norm), (&mut rest[..wk], &layer.k_norm)] {
                rms_norm(heads, gamma, self.eps, 0.0);
                heads.chunks_exact_mut(d).for_each(|head| self.rope.apply(head, p));
            }
        };
        if position.len() >= 64 {
            qkv.par_chunks_mut(s.qkv()).zip(position.par_iter()).for_each(rotate);
        } else {
            qkv.chunks_mut(s.qkv()).zip(position.iter()).for_each(rotate);
        }
    }

    fn embed(&self, x: &mut [f32], ids: &[&[u32]]) -> Result<()> {
        let h = self.sizes.hidden;
        let word = self.word.rows()?;
        for (row, (p, &id)) in ids.iter().flat_map(|s| s.iter().enumerate()).enumerate() {
            if id as usize >= self.vocab || p >= self.positions {
                return Err(Error::internal(format!("token {id} at position {p} is outside the model's tables")));
            }
            word.read(id as usize, &mut x[row * h..(row + 1) * h]);
        }
        Ok(())
    }

    /// As `CpuBert::release_file_pages`.
    pub fn release_file_pages(&mut self) {
        for n in 0..self.layers.len() {
            for product in PRODUCTS {
                for (name, _) in self.sizes.parts(product) {
                    self.word.file_mut().release(&format!("layers.{n}.{name}.weight"));
                }
            }
        }
    }

    /// As `CpuBert::calibrate`: for int8 weights, moves each product's outlier inputs into f32.
    pub fn calibrate(&mut self, ids: &[&[u32]], threads: usize) -> Result<()> {
        if !matches!(self.layers.first().map(|l| &l.qkv_w), Some(Weight::Int8(_))) {
            return Ok(());
        }
        let s = self.sizes;
        let mut ranges: Vec<[Vec<f32>; 4]> = (0..self.layers.len()).map(|_| [s.hidden, s.q(), s.hidden, s.inter].map(|w| vec![0f32; w])).collect();
        self.forward_observed(ids, threads, |_, _| {}, None, Some(&mut ranges))?;
        let file = self.word.file();
        for (n, (layer, ranges)) in self.layers.iter_mut().zip(&ranges).enumerate() {
            for ((product, weight), range) in PRODUCTS.into_iter().zip(layer.weights()).zip(ranges) {
                let Weight::Int8(w) = weight else { continue };
                let inputs = super::calibration::outliers(range);
                if inputs.is_empty() {
                    continue;
                }
                w.move_to_f32(&inputs, product_weight(file, n, product, s)?);
            }
        }
        Ok(())
    }
}

/// Causal self-attention with grouped key/value heads, per sequence, query head and block of `BLOCK` query
/// rows, in parallel. Each task reads Q, K, V in place from `qkv` (rows of `sizes.qkv()`: query heads, key
/// heads, value heads) and writes its head's columns of its rows of `ctx` (rows of `sizes.q()`). Query head
/// `head` reads key/value head `head / (heads / kv_heads)`.
fn attention(qkv: &[f32], ctx: &mut [f32], seqs: &[(usize, usize)], sizes: Sizes) {
    let (d, wq, wqkv) = (sizes.head_dim, sizes.q(), sizes.qkv());
    let group = sizes.heads / sizes.kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let tasks: Vec<(usize, usize, usize, usize)> = seqs
        .iter()
        .flat_map(|&(o, len)| (0..sizes.heads).flat_map(move |head| (0..len).step_by(BLOCK).map(move |r| (o, len, head, r))))
        .collect();
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let ctx_len = ctx.len();
    let block_attention = |&(o, len, head, r0): &(usize, usize, usize, usize)| {
        SCORES.with_borrow_mut(|scores| {
            let rows = BLOCK.min(len - r0);
            // Causal: the block's last row sees keys 0..=r0+rows-1, and no row sees further.
            let keys = r0 + rows;
            let scores = take_buf(scores, rows * keys);
            let kv = head / group;
            let q = &qkv[(o + r0) * wqkv + head * d..];
            let k = &qkv[o * wqkv + wq + kv * d..];
            let v = &qkv[o * wqkv + wq + sizes.kv_heads * d + kv * d..];
            matmul_bt(scores, keys, q, wqkv, k, wqkv, rows, keys, d, false, 1);
            for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                let seen = r0 + i + 1;
                softmax_rows(&mut row[..seen], seen, scale);
                row[seen..].fill(0.0);
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
