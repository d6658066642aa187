//! The BERT-style encoder's CPU forward pass, written for throughput rather than generality:
//! - sequences are packed end to end (no padding, no mask): the linear layers run once over every real token
//!   of the batch, and attention runs per sequence and head on its own rows, so a text's vector cannot depend
//!   on its batch;
//! - Q, K and V come from one fused matrix multiply; attention reads them in place through strides and writes
//!   its output in place, with no transposed copies;
//! - bias, GELU, residual and layer norm are fused into the passes over the matmul outputs, and the residual is
//!   accumulated by the matmul itself;
//! - working buffers live as long as the model and only ever grow, so a batch allocates nothing large (fresh
//!   multi-megabyte buffers cost page faults on every batch).
//!
//! Weights are the same safetensors tensors the candle path loads, read in place from the mapped file
//! (`weights_file.rs`); `bert.rs` stays the reference (and the GPU path), and a test checks the two agree.

use rayon::prelude::*;

use super::Dtype;
use super::bert::{Activation, BertConfig, PositionScheme};
use super::weights_file::{Floats, WeightsFile, WordRows};
use crate::kernels::elementwise::{add_bias, bias_gelu, bias_layer_norm, softmax_rows};
use crate::kernels::matmul::{matmul, matmul_bt, SendPtr};
use crate::kernels::panel::{self as packed, PackedBf16};
use super::linear::{LowPrecision, Product, Weight, PRODUCTS};
use crate::error::{Error, Result};


/// A product's weight of layer `n` read from the file, `[out × in]` through `get(row, input)`: query, key and
/// value stacked into one `[3H × H]` matrix (row r is row r % H of one of them).
#[allow(clippy::type_complexity)]
fn product_weight<'f>(
    file: &'f WeightsFile,
    n: usize,
    product: Product,
    (h, i): (usize, usize),
) -> Result<((usize, usize), Box<dyn Fn(usize, usize) -> f32 + Sync + 'f>)> {
    let l = |name: &str| format!("encoder.layer.{n}.{name}");
    let single = |name: &str, (out, inp): (usize, usize)| -> Result<((usize, usize), Box<dyn Fn(usize, usize) -> f32 + Sync + 'f>)> {
        let w = file.floats(&l(name), &[out, inp])?;
        Ok(((out, inp), Box::new(move |r, x| w.at(r * inp + x))))
    };
    match product {
        Product::Qkv => {
            let parts: Vec<Floats> = ["query", "key", "value"]
                .iter()
                .map(|part| file.floats(&l(&format!("attention.self.{part}.weight")), &[h, h]))
                .collect::<Result<_>>()?;
            Ok(((3 * h, h), Box::new(move |r, x| parts[r / h].at((r % h) * h + x))))
        }
        Product::AttnOut => single("attention.output.dense.weight", (h, h)),
        Product::Inter => single("intermediate.dense.weight", (i, h)),
        Product::Out => single("output.dense.weight", (h, i)),
    }
}

struct Layer {
    /// [3H × H]: query, key and value weights stacked.
    qkv_w: Weight,
    qkv_b: Vec<f32>,
    attn_out_w: Weight,
    attn_out_b: Vec<f32>,
    attn_ln_g: Vec<f32>,
    attn_ln_b: Vec<f32>,
    inter_w: Weight,
    inter_b: Vec<f32>,
    out_w: Weight,
    out_b: Vec<f32>,
    out_ln_g: Vec<f32>,
    out_ln_b: Vec<f32>,
}

/// Working buffers, reused from batch to batch.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    inter: Vec<f32>,
    /// Activations in bf16 or int8 (those modes only).
    low: LowPrecision,
}

/// The first `len` values of `buf`, growing it if needed. Contents are stale: every user overwrites them.
pub(super) fn take_buf(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// Called by `forward` between the products of each layer (five times per layer): the worker lets waiting queries run here, on the second set of buffers, and stops the batch (by
/// returning an error) when it was aborted or the service closed. The batch's state stays in its own buffers,
/// so resuming gives the same bits as never pausing.
pub type Checkpoint<'a> = &'a mut dyn FnMut() -> Result<()>;

pub struct CpuBert {
    /// The working buffers: the first set for the batch in progress, the second for a query run while that
    /// batch is paused at a checkpoint (the second set stays as small as the queries).
    scratch: [parking_lot::Mutex<Scratch>; 2],
    word: WordTable,
    position: Vec<f32>,
    token_type: Vec<f32>,
    emb_ln_g: Vec<f32>,
    emb_ln_b: Vec<f32>,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    type_vocab: usize,
    eps: f32,
    /// Attention products in bf16 too (`dtype: 'bf16'` on AVX512_BF16; elsewhere attention stays f32, where
    /// repacking K and V per head for the widening kernel would cost more than it saves).
    bf16_attention: bool,
    act: Activation,
    positions: PositionScheme,
}

/// The word-embedding table (vocabulary × hidden), as little-endian f32 bytes: read in place from the mapped
/// file when it stores f32 (the usual case), converted once at load otherwise.
pub(super) struct WordTable {
    file: WeightsFile,
    /// The table's name in the file (root prefix included), resolved once at load.
    name: String,
    converted: Option<Vec<u8>>,
}

const WORD_TABLE: &str = "embeddings.word_embeddings.weight";

impl WordTable {
    /// The table `name` (`[rows × hidden]`) of `file`, which it keeps open for the layers to read too.
    pub(super) fn load(file: WeightsFile, name: &str, shape: [usize; 2]) -> Result<Self> {
        let full = file.full_name(name);
        // A quantized table (from an ONNX file) is read quantized, row by row.
        if matches!(file.rows(&full), Some(WordRows::Quantized(_))) {
            file.check_shape(name, &shape)?;
            return Ok(WordTable { name: full, file, converted: None });
        }
        let word = file.floats(name, &shape)?;
        let converted = (!word.is_borrowed()).then(|| word.into_bytes());
        Ok(WordTable { name: full, file, converted })
    }

    pub(super) fn file(&self) -> &WeightsFile {
        &self.file
    }

    pub(super) fn file_mut(&mut self) -> &mut WeightsFile {
        &mut self.file
    }

    /// The encoder's weight memory: `owned` bytes of its own, and this table's `bytes`, read in place from the
    /// mapped file when the file stores f32, else converted into the heap.
    pub(super) fn memory(&self, owned: usize, bytes: usize) -> super::WeightMemory {
        match (&self.converted, self.file.rows(&self.name)) {
            (None, Some(WordRows::Quantized(q))) => super::WeightMemory { owned: owned + q.bytes.len(), mapped: 0 },
            (None, _) if self.file.is_mapped() => super::WeightMemory { owned, mapped: bytes },
            _ => super::WeightMemory { owned: owned + bytes, mapped: 0 },
        }
    }

    pub(super) fn rows(&self) -> Result<WordRows<'_>> {
        match &self.converted {
            Some(bytes) => Ok(WordRows::F32(bytes)),
            None => self.file.rows(&self.name).ok_or_else(|| Error::internal("the word embeddings left the weights file")),
        }
    }
}

impl CpuBert {
    pub fn load(file: WeightsFile, config: &BertConfig, positions: PositionScheme, dtype: Dtype) -> Result<Self> {
        config.validate()?;
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let vector = |name: &str, len: usize| file.floats(name, &[len]).map(|f| f.to_vec());
        // Grown layer by layer, not sized from config.json: a huge num_hidden_layers must fail at the first
        // missing layer's weights, not abort the process on an impossible allocation (found by tests/fuzz.rs).
        let mut layers = Vec::new();
        for n in 0..config.num_hidden_layers {
            let l = |name: &str| format!("encoder.layer.{n}.{name}");
            let weight = |product| product_weight(&file, n, product, (h, i)).map(|((out, inp), get)| Weight::new(out, inp, dtype, get));
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_b.extend(vector(&l(&format!("attention.self.{part}.bias")), h)?);
            }
            layers.push(Layer {
                qkv_w: weight(Product::Qkv)?,
                qkv_b,
                attn_out_w: weight(Product::AttnOut)?,
                attn_out_b: vector(&l("attention.output.dense.bias"), h)?,
                attn_ln_g: vector(&l("attention.output.LayerNorm.weight"), h)?,
                attn_ln_b: vector(&l("attention.output.LayerNorm.bias"), h)?,
                inter_w: weight(Product::Inter)?,
                inter_b: vector(&l("intermediate.dense.bias"), i)?,
                out_w: weight(Product::Out)?,
                out_b: vector(&l("output.dense.bias"), h)?,
                out_ln_g: vector(&l("output.LayerNorm.weight"), h)?,
                out_ln_b: vector(&l("output.LayerNorm.bias"), h)?,
            });
        }
        let table = |name: &str, rows: usize| file.floats(&format!("embeddings.{name}"), &[rows, h]).map(|f| f.to_vec());
        let (position, token_type) = (
            table("position_embeddings.weight", config.max_position_embeddings)?,
            table("token_type_embeddings.weight", config.type_vocab_size)?,
        );
        let (emb_ln_g, emb_ln_b) = (vector("embeddings.LayerNorm.weight", h)?, vector("embeddings.LayerNorm.bias", h)?);
        let word = WordTable::load(file, WORD_TABLE, [config.vocab_size, h])?;
        Ok(CpuBert {
            scratch: Default::default(),
            word,
            position,
            token_type,
            emb_ln_g,
            emb_ln_b,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            intermediate: i,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            type_vocab: config.type_vocab_size,
            eps: config.layer_norm_eps as f32,
            bf16_attention: dtype == Dtype::Bf16 && packed::bf16_native(),
            act: Activation::parse(&config.hidden_act)?,
            positions,
        })
    }

    /// Bytes of weights this encoder holds in its own memory, and bytes it reads in place from the mapped file
    /// (resident only as far as they are read: the rows of tokens seen).
    pub fn weight_bytes(&self) -> super::WeightMemory {
        let floats = |vs: &[&Vec<f32>]| vs.iter().map(|v| v.len() * 4).sum::<usize>();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.qkv_w, &l.attn_out_w, &l.inter_w, &l.out_w].iter().map(|w| w.bytes()).sum::<usize>()
                    + floats(&[&l.qkv_b, &l.attn_out_b, &l.attn_ln_g, &l.attn_ln_b, &l.inter_b, &l.out_b, &l.out_ln_g, &l.out_ln_b])
            })
            .sum();
        let tables = floats(&[&self.position, &self.token_type, &self.emb_ln_g, &self.emb_ln_b]);
        self.word.memory(layers + tables, self.vocab * self.hidden * 4)
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Computes token embeddings and hands each sequence's (`len * hidden` values) to `each`, in order, while
    /// they are still in the working buffer. `threads` bounds the matmuls' parallelism; run inside the
    /// service's rayon pool. `checkpoint`, when given, runs between the steps of every layer (see
    /// `Checkpoint`); a pass started from a checkpoint takes none.
    pub fn forward(
        &self,
        ids: &[&[u32]],
        type_ids: &[&[u32]],
        threads: usize,
        each: impl FnMut(usize, &[f32]),
        checkpoint: Option<Checkpoint>,
    ) -> Result<()> {
        self.forward_observed(ids, type_ids, threads, each, checkpoint, None)
    }

    /// `forward`, recording in `ranges` (when given) each layer's largest magnitude per input channel of each
    /// of its four products (`PRODUCTS` order).
    fn forward_observed(
        &self,
        ids: &[&[u32]],
        type_ids: &[&[u32]],
        threads: usize,
        mut each: impl FnMut(usize, &[f32]),
        mut checkpoint: Option<Checkpoint>,
        mut ranges: Option<&mut [[Vec<f32>; 4]]>,
    ) -> Result<()> {
        let h = self.hidden;
        let (seqs, total) = packed_sequences(ids);
        if total == 0 {
            (0..ids.len()).for_each(|i| each(i, &[]));
            return Ok(());
        }
        let mut scratch = free_scratch(&self.scratch)?;
        let Scratch { x, qkv, ctx, inter, low } = &mut *scratch;
        let mut observe = |n: usize, product: Product, input: &[f32]| {
            if let Some(ranges) = ranges.as_deref_mut() {
                let seen = &mut ranges[n][product as usize];
                let stride = seen.len();
                record_ranges(seen, input, stride);
            }
        };
        let mut pause = || checkpoint.as_mut().map_or(Ok(()), |c| c());
        let (x, qkv) = (take_buf(x, total * h), take_buf(qkv, total * 3 * h));
        let (ctx, inter) = (take_buf(ctx, total * h), take_buf(inter, total * self.intermediate));
        self.embed(x, ids, type_ids)?;

        // Checkpoints split each layer at its five products (QKV, attention, attention output, and the two
        // halves of the feed-forward block; none more than a quarter of the layer), so a waiting query waits
        // for at most one of them.
        for (n, layer) in self.layers.iter().enumerate() {
            if n > 0 {
                pause()?;
            }
            // Q, K, V for every token in one multiply.
            observe(n, Product::Qkv, x);
            layer.qkv_w.apply(qkv, 3 * h, x, h, total, (3 * h, h), false, threads, low);
            add_bias(qkv, &layer.qkv_b);
            pause()?;
            self.attention(qkv, ctx, &seqs);
            pause()?;
            // x = LayerNorm(x + ctx·Wo + bo): the multiply accumulates onto the residual already in x.
            observe(n, Product::AttnOut, ctx);
            layer.attn_out_w.apply(x, h, ctx, h, total, (h, h), true, threads, low);
            par_rows(x, h, |rows| bias_layer_norm(rows, &layer.attn_out_b, &layer.attn_ln_g, &layer.attn_ln_b, self.eps));
            pause()?;
            observe(n, Product::Inter, x);
            layer.inter_w.apply(inter, self.intermediate, x, h, total, (self.intermediate, h), false, threads, low);
            match self.act {
                Activation::GeluErf => par_rows(inter, self.intermediate, |rows| bias_gelu(rows, &layer.inter_b)),
                other => par_rows(inter, self.intermediate, |rows| {
                    add_bias(rows, &layer.inter_b);
                    rows.iter_mut().for_each(|v| *v = other.apply_scalar(*v));
                }),
            }
            pause()?;
            observe(n, Product::Out, inter);
            layer.out_w.apply(x, h, inter, self.intermediate, total, (h, self.intermediate), true, threads, low);
            par_rows(x, h, |rows| bias_layer_norm(rows, &layer.out_b, &layer.out_ln_g, &layer.out_ln_b, self.eps));
        }
        seqs.iter().enumerate().for_each(|(i, &(o, len))| each(i, &x[o * h..(o + len) * h]));
        Ok(())
    }

    /// Drops the layers' weight tensors from resident memory (`WeightsFile::release`): the model holds its own
    /// packed copy. Called once loading (and calibration, which reads some of them again) is done.
    pub fn release_file_pages(&mut self) {
        for n in 0..self.layers.len() {
            for name in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"] {
                self.word.file.release(&format!("encoder.layer.{n}.{name}.weight"));
            }
        }
    }

    /// For int8 weights: runs `ids` (calibration texts) through the model, finds each product's outlier inputs
    /// (`calibration::outliers`) from the ranges its activations reached, and moves them out of the int8
    /// product into an f32 product beside it, read from the weights file. Nothing for other formats.
    pub fn calibrate(&mut self, ids: &[&[u32]], type_ids: &[&[u32]], threads: usize) -> Result<()> {
        if !matches!(self.layers.first().map(|l| &l.qkv_w), Some(Weight::Int8(_))) {
            return Ok(());
        }
        let (h, i) = (self.hidden, self.intermediate);
        let widths = [h, h, h, i];
        let mut ranges: Vec<[Vec<f32>; 4]> = (0..self.layers.len()).map(|_| widths.map(|w| vec![0f32; w])).collect();
        self.forward_observed(ids, type_ids, threads, |_, _| {}, None, Some(&mut ranges))?;
        let file = &self.word.file;
        for (n, (layer, ranges)) in self.layers.iter_mut().zip(&ranges).enumerate() {
            let weights = [&mut layer.qkv_w, &mut layer.attn_out_w, &mut layer.inter_w, &mut layer.out_w];
            for ((product, weight), range) in PRODUCTS.into_iter().zip(weights).zip(ranges) {
                let Weight::Int8(w) = weight else { continue };
                let inputs = super::calibration::outliers(range);
                if inputs.is_empty() {
                    continue;
                }
                let (_, get) = product_weight(file, n, product, (h, i))?;
                w.move_to_f32(&inputs, get);
            }
        }
        Ok(())
    }

    fn embed(&self, x: &mut [f32], ids: &[&[u32]], type_ids: &[&[u32]]) -> Result<()> {
        let h = self.hidden;
        let first = match self.positions {
            PositionScheme::Absolute => 0,
            PositionScheme::AfterPadding(pad) => pad as usize + 1,
        };
        let word = self.word.rows()?;
        let mut row = 0;
        for (seq, types) in ids.iter().zip(type_ids) {
            for (p, (&id, &t)) in seq.iter().zip(types.iter()).enumerate() {
                let (id, t, pos) = (id as usize, t as usize, first + p);
                if id >= self.vocab || t >= self.type_vocab || pos >= self.max_positions {
                    return Err(Error::internal(format!(
                        "token {id} (type {t}) at position {pos} is outside the model's tables"
                    )));
                }
                let out = &mut x[row * h..(row + 1) * h];
                word.read(id, out);
                let (ps, ty) = (&self.position[pos * h..][..h], &self.token_type[t * h..][..h]);
                for j in 0..h {
                    out[j] = out[j] + ty[j] + ps[j]; // (word + type) + position, as candle's path sums
                }
                row += 1;
            }
        }
        let zeros = vec![0f32; h];
        par_rows(x, h, |rows| bias_layer_norm(rows, &zeros, &self.emb_ln_g, &self.emb_ln_b, self.eps));
        Ok(())
    }

    /// Self-attention per sequence and head (`attention`), in bf16 where `bf16_attention` says so.
    fn attention(&self, qkv: &[f32], ctx: &mut [f32], seqs: &[(usize, usize)]) {
        if self.bf16_attention {
            let tasks: Vec<(usize, usize, usize)> =
                seqs.iter().flat_map(|&(o, len)| (0..self.heads).map(move |head| (o, len, head))).collect();
            return self.attention_bf16(qkv, ctx, &tasks);
        }
        attention(qkv, ctx, seqs, self.hidden, self.heads, None);
    }
}

/// Self-attention per sequence and head, in parallel; each task reads Q, K, V in place from `qkv` (`[tokens ×
/// 3 × hidden]`, rows of packed sequences) and writes its head's columns of `ctx`. With `window`, a token
/// attends only to those at most `window` positions away (ModernBERT's local layers), the others weighted 0.
pub(super) fn attention(qkv: &[f32], ctx: &mut [f32], seqs: &[(usize, usize)], h: usize, heads: usize, window: Option<usize>) {
    let d = h / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let tasks: Vec<(usize, usize, usize)> =
        seqs.iter().flat_map(|&(o, len)| (0..heads).map(move |head| (o, len, head))).collect();
    let ctx_ptr = SendPtr(ctx.as_mut_ptr());
    let ctx_len = ctx.len();
    let head_attention = |&(o, len, head): &(usize, usize, usize)| SCORES.with_borrow_mut(|scores| {
        let scores = take_buf(scores, len * len);
        let q = &qkv[o * 3 * h + head * d..];
        let k = &qkv[o * 3 * h + h + head * d..];
        let v = &qkv[o * 3 * h + 2 * h + head * d..];
        // scores = Q·Kᵀ (K read transposed in place), then the scaled softmax.
        matmul_bt(scores, len, q, 3 * h, k, 3 * h, len, len, d, false, 1);
        match window {
            Some(w) if w + 1 < len => {
                for (i, row) in scores.chunks_exact_mut(len).enumerate() {
                    let (lo, hi) = (i.saturating_sub(w), (i + w + 1).min(len));
                    softmax_rows(&mut row[lo..hi], hi - lo, scale);
                    row[..lo].fill(0.0);
                    row[hi..].fill(0.0);
                }
            }
            _ => softmax_rows(scores, len, scale),
        }
        // SAFETY: each task writes only rows o..o+len, columns head*d..(head+1)*d of ctx; tasks never
        // share a (sequence, head) pair, so their writes are disjoint, and ctx outlives the parallel loop.
        let out = unsafe { std::slice::from_raw_parts_mut(ctx_ptr.get().add(o * h + head * d), ctx_len - o * h - head * d) };
        matmul(out, h, scores, len, v, 3 * h, len, d, len);
    });
    // A short query's heads are a few thousand multiply-adds each: waking the pool would cost more.
    let work: usize = seqs.iter().map(|&(_, len)| len * len * h).sum();
    if work >= 1 << 16 {
        tasks.par_iter().for_each(head_attention);
    } else {
        tasks.iter().for_each(head_attention);
    }
}

impl CpuBert {
    /// `attention` with both products in bf16 (the `dtype: 'bf16'` mode): K and V^T are packed per sequence
    /// and head like weights, and the scores and softmax stay f32.
    fn attention_bf16(&self, qkv: &[f32], ctx: &mut [f32], tasks: &[(usize, usize, usize)]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let ctx_ptr = SendPtr(ctx.as_mut_ptr());
        let ctx_len = ctx.len();
        tasks.par_iter().for_each(|&(o, len, head)| {
            SCORES.with_borrow_mut(|scores| {
                BF16_ATTENTION.with_borrow_mut(|(packed, a16)| {
                    let scores = take_buf(scores, len * len);
                    let q = &qkv[o * 3 * h + head * d..];
                    let (k, v) = (o * 3 * h + h + head * d, o * 3 * h + 2 * h + head * d);
                    packed.repack(len, d, |j, i| qkv[k + j * 3 * h + i]);
                    packed::matmul_bt_bf16(scores, len, q, 3 * h, packed, len, false, 1, a16);
                    softmax_rows(scores, len, scale);
                    packed.repack(d, len, |j, i| qkv[v + i * 3 * h + j]);
                    // SAFETY: as in `attention`: each task writes only its own sequence's rows and head's columns.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(ctx_ptr.get().add(o * h + head * d), ctx_len - o * h - head * d)
                    };
                    packed::matmul_bt_bf16(out, h, scores, len, packed, len, false, 1, a16);
                })
            })
        });
    }
}

thread_local! {
    /// Each compute thread's attention scores, reused: a fresh buffer per (sequence, head) cost page faults and
    /// zeroing. Freed by `release_thread_scratch` when the model unloads.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The bf16 mode's packed K or V and rounded activations, reused the same way.
    static BF16_ATTENTION: std::cell::RefCell<(PackedBf16, Vec<u16>)> =
        const { std::cell::RefCell::new((PackedBf16::empty(), Vec::new())) };
}

/// Frees this thread's attention buffer (called on every compute thread when a model unloads).
pub fn release_thread_scratch() {
    SCORES.with_borrow_mut(|s| *s = Vec::new());
    BF16_ATTENTION.with_borrow_mut(|b| *b = (PackedBf16::empty(), Vec::new()));
    packed::release_thread_scratch();
}

/// Each sequence's (first row, length) when `ids` are packed end to end, and the total rows.
pub(super) fn packed_sequences(ids: &[&[u32]]) -> (Vec<(usize, usize)>, usize) {
    let mut total = 0;
    let seqs = ids
        .iter()
        .map(|s| {
            total += s.len();
            (total - s.len(), s.len())
        })
        .collect();
    (seqs, total)
}

/// The free one of an encoder's two sets of working buffers. The first is held by a batch paused at a
/// checkpoint on this thread; a pass started there takes the second. Only one pass can be paused, so one of
/// the two is always free.
pub(super) fn free_scratch<T>(sets: &[parking_lot::Mutex<T>; 2]) -> Result<parking_lot::MutexGuard<'_, T>> {
    sets[0].try_lock().or_else(|| sets[1].try_lock()).ok_or_else(|| Error::internal("both encoder buffer sets are in use"))
}

/// Raises `seen` (one value per input channel) to each channel's largest magnitude over the rows of `input`
/// (`stride` apart; the first `seen.len()` values of each row are the product's inputs).
pub(super) fn record_ranges(seen: &mut [f32], input: &[f32], stride: usize) {
    for row in input.chunks(stride) {
        seen.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
    }
}

/// Runs `f` over whole rows of `x` in parallel chunks (serially when small).
pub(super) fn par_rows(x: &mut [f32], cols: usize, f: impl Fn(&mut [f32]) + Send + Sync) {
    let rows = x.len() / cols;
    let per_task = (rows / (rayon::current_num_threads() * 4)).max(16);
    if rows <= per_task {
        return f(x);
    }
    x.par_chunks_mut(per_task * cols).for_each(f);
}
