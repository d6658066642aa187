//! Qwen3's CPU forward pass on the fast path's kernels, as `cpu_bert.rs` runs the BERT family: packed
//! sequences (no padding), Q/K/V from one product, the residual accumulated by the products, working buffers
//! reused, the same checkpoints for queries to run at. What differs is the architecture (see `qwen3.rs`):
//! RMSNorm before each block, per-head RMSNorm and rotary positions on queries and keys, key/value heads shared
//! by groups of query heads, causal attention, and SwiGLU (gate and up from one product).
//!
//! Attention runs in blocks of query rows (`gqa::attention`), so memory grows with the sequence's length, not
//! its square.
//!
//! Every linear layer is a `linear::Weight`, so f32, bf16 and int8 (with its calibration) come with it.

use super::cpu_bert::{free_scratch, packed_sequences, par_rows, Checkpoint, WordTable};
use super::gqa::{self, Buffers, Observer, Products, Scratch, Sizes, Tables, Visible};
use super::linear::Product;
use super::qwen3::Config;
use super::rotary::Rotary;
use super::weights_file::WeightsFile;
use super::Dtype;
use crate::error::Result;
use crate::kernels::elementwise::{add_bias, rms_norm, silu_glu};

const WORD_TABLE: &str = "embed_tokens.weight";

struct Layer {
    input_norm: Vec<f32>,
    products: Products,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_norm: Vec<f32>,
}

pub struct CpuQwen3 {
    /// As in `CpuBert`: the first set for the batch in progress, the second for a query run at a checkpoint.
    scratch: [parking_lot::Mutex<Scratch>; 2],
    tables: Tables,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    rope: Rotary,
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
            let l = |name: &str| format!("layers.{n}.{name}");
            layers.push(Layer {
                input_norm: vector(&l("input_layernorm.weight"), h)?,
                products: Products::load(&file, n, sizes, dtype, config.attention_bias)?,
                q_norm: vector(&l("self_attn.q_norm.weight"), d)?,
                k_norm: vector(&l("self_attn.k_norm.weight"), d)?,
                post_norm: vector(&l("post_attention_layernorm.weight"), h)?,
            });
        }
        let final_norm = vector("norm.weight", h)?;
        let word = WordTable::load(file, WORD_TABLE, [config.vocab_size, h])?;
        let positions = positions.min(config.max_position_embeddings);
        Ok(CpuQwen3 {
            scratch: Default::default(),
            tables: Tables { word, sizes, vocab: config.vocab_size, positions },
            layers,
            final_norm,
            rope: Rotary::new(config.rope_theta, d, positions),
            eps: config.rms_norm_eps as f32,
        })
    }

    /// As `CpuBert::weight_bytes`.
    pub fn weight_bytes(&self) -> super::WeightMemory {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.products.bytes() + (l.input_norm.len() + l.q_norm.len() + l.k_norm.len() + l.post_norm.len()) * 4)
            .sum();
        let tables = (self.final_norm.len() + self.rope.cos.len() * 2) * 4;
        self.tables.memory(layers + tables)
    }

    pub fn hidden_size(&self) -> usize {
        self.tables.sizes.hidden
    }

    /// As `CpuBert::forward` (Qwen3 has no token types).
    pub fn forward(&self, ids: &[&[u32]], threads: usize, each: impl FnMut(usize, &[f32]), checkpoint: Option<Checkpoint>) -> Result<()> {
        self.forward_observed(ids, threads, each, checkpoint, Observer(None))
    }

    /// `forward`, recording in `observe` (in a calibration pass) each layer's largest magnitude per input
    /// channel of each of its four products.
    fn forward_observed(
        &self,
        ids: &[&[u32]],
        threads: usize,
        mut each: impl FnMut(usize, &[f32]),
        mut checkpoint: Option<Checkpoint>,
        mut observe: Observer,
    ) -> Result<()> {
        let s = self.tables.sizes;
        let (h, i, wq, wqkv) = (s.hidden, s.inter, s.q(), s.qkv());
        let (seqs, total) = packed_sequences(ids);
        if total == 0 {
            (0..ids.len()).for_each(|i| each(i, &[]));
            return Ok(());
        }
        let mut scratch = free_scratch(&self.scratch)?;
        let Buffers { x, normed, qkv, ctx, inter, low } = scratch.take(total, s);
        let mut pause = || checkpoint.as_mut().map_or(Ok(()), |c| c());
        self.tables.embed(x, ids, 1.0)?;
        let positions = gqa::positions(&seqs);
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let norm = |dst: &mut [f32], gamma: &[f32]| par_rows(dst, h, |rows| rms_norm(rows, gamma, self.eps, 0.0));

        // The same five checkpoints per layer as `CpuBert`.
        for (n, layer) in self.layers.iter().enumerate() {
            let p = &layer.products;
            if n > 0 {
                pause()?;
            }
            normed.copy_from_slice(x);
            norm(normed, &layer.input_norm);
            observe.see(n, Product::Qkv, normed, h);
            p.qkv_w.apply(qkv, wqkv, normed, h, total, (wqkv, h), false, threads, low);
            if let Some(b) = &p.qkv_b {
                par_rows(qkv, wqkv, |rows| add_bias(rows, b));
            }
            gqa::norm_and_rotate(qkv, &positions, s, (&layer.q_norm, &layer.k_norm), self.eps, 0.0, &self.rope);
            pause()?;
            gqa::attention(qkv, ctx, &seqs, s, Visible::Causal, scale);
            pause()?;
            observe.see(n, Product::AttnOut, ctx, wq);
            p.o_w.apply(x, h, ctx, wq, total, (h, wq), true, threads, low);
            if let Some(b) = &p.o_b {
                par_rows(x, h, |rows| add_bias(rows, b));
            }
            pause()?;
            normed.copy_from_slice(x);
            norm(normed, &layer.post_norm);
            observe.see(n, Product::Inter, normed, h);
            p.gate_up_w.apply(inter, 2 * i, normed, h, total, (2 * i, h), false, threads, low);
            // SwiGLU into the first half of each row, which the next product reads with the row's full stride.
            par_rows(inter, 2 * i, |rows| silu_glu(rows, i));
            pause()?;
            observe.see(n, Product::Out, inter, 2 * i);
            p.down_w.apply(x, h, inter, 2 * i, total, (h, i), true, threads, low);
        }
        norm(x, &self.final_norm);
        seqs.iter().enumerate().for_each(|(i, &(o, len))| each(i, &x[o * h..(o + len) * h]));
        Ok(())
    }

    /// As `CpuBert::release_file_pages`.
    pub fn release_file_pages(&mut self) {
        self.tables.release_file_pages(self.layers.len());
    }

    /// As `CpuBert::calibrate`: for int8 weights, moves each product's outlier inputs into f32.
    pub fn calibrate(&mut self, ids: &[&[u32]], threads: usize) -> Result<()> {
        if !self.layers.first().is_some_and(|l| l.products.is_int8()) {
            return Ok(());
        }
        let mut ranges = self.tables.ranges(self.layers.len());
        self.forward_observed(ids, threads, |_, _| {}, None, Observer(Some(&mut ranges)))?;
        let (file, s) = (self.tables.word.file(), self.tables.sizes);
        for (n, (layer, ranges)) in self.layers.iter_mut().zip(&ranges).enumerate() {
            layer.products.calibrate(file, n, s, ranges)?;
        }
        Ok(())
    }
}
