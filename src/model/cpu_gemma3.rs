//! Gemma 3's CPU forward pass on the fast path's kernels (see `gemma3.rs` for the architecture), built like
//! `cpu_qwen3.rs` from the pieces the two share (`gqa.rs`): packed sequences, Q/K/V and gate/up each from one
//! product, per-head q/k RMSNorm and rotary positions in place, grouped-query attention in blocks of query
//! rows. What is Gemma's own: the embeddings scaled by √hidden; every RMSNorm in the `(1 + weight)` form;
//! the post-norms between each block's output and the residual (so the products cannot accumulate into the
//! residual as Qwen3's do: each block's output is normalised and added by one kernel, `add_rms_normed`);
//! bidirectional attention, within a window on local layers, each kind of layer with its rotary base; and
//! GeGLU with the tanh GELU.
//!
//! Every linear layer is a `linear::Weight`, so f32, bf16 and int8 (with its calibration) come with it.

use rayon::prelude::*;

use super::cpu_bert::{free_scratch, packed_sequences, par_rows, Checkpoint, WordTable};
use super::gemma3::Config;
use super::gqa::{self, Buffers, Observer, Products, Scratch, Sizes, Tables, Visible};
use super::linear::Product;
use super::rotary::Rotary;
use super::weights_file::WeightsFile;
use super::Dtype;
use crate::error::Result;
use crate::kernels::elementwise::{add_bias, add_rms_normed, gelu_tanh_glu, rms_norm};

const WORD_TABLE: &str = "embed_tokens.weight";
/// Gemma's RMSNorm scales by `1 + weight`.
const NORM_OFFSET: f32 = 1.0;

struct Layer {
    input_norm: Vec<f32>,
    products: Products,
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    post_attention_norm: Vec<f32>,
    pre_feedforward_norm: Vec<f32>,
    post_feedforward_norm: Vec<f32>,
    /// `Some(w)`: a local layer (keys fewer than `w` positions away, the local rotary base).
    window: Option<usize>,
}

pub struct CpuGemma3 {
    /// As in `CpuBert`: the first set for the batch in progress, the second for a query run at a checkpoint.
    scratch: [parking_lot::Mutex<Scratch>; 2],
    tables: Tables,
    /// √hidden in f32, as transformers holds it.
    embed_scale: f32,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    global_rope: Rotary,
    local_rope: Rotary,
    eps: f32,
    /// `query_pre_attn_scalar^-½`.
    scale: f32,
}

impl CpuGemma3 {
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
        for (n, &window) in config.windows.iter().enumerate() {
            let l = |name: &str| format!("layers.{n}.{name}");
            layers.push(Layer {
                input_norm: vector(&l("input_layernorm.weight"), h)?,
                products: Products::load(&file, n, sizes, dtype, config.attention_bias)?,
                q_norm: vector(&l("self_attn.q_norm.weight"), d)?,
                k_norm: vector(&l("self_attn.k_norm.weight"), d)?,
                post_attention_norm: vector(&l("post_attention_layernorm.weight"), h)?,
                pre_feedforward_norm: vector(&l("pre_feedforward_layernorm.weight"), h)?,
                post_feedforward_norm: vector(&l("post_feedforward_layernorm.weight"), h)?,
                window,
            });
        }
        let final_norm = vector("norm.weight", h)?;
        let word = WordTable::load(file, WORD_TABLE, [config.vocab_size, h])?;
        let positions = positions.min(config.max_position_embeddings);
        Ok(CpuGemma3 {
            scratch: Default::default(),
            tables: Tables { word, sizes, vocab: config.vocab_size, positions },
            embed_scale: (h as f32).sqrt(),
            layers,
            final_norm,
            global_rope: Rotary::new(config.rope_theta, d, positions),
            local_rope: Rotary::new(config.rope_local_theta, d, positions),
            eps: config.rms_norm_eps as f32,
            scale: config.query_pre_attn_scalar.powf(-0.5) as f32,
        })
    }

    /// As `CpuBert::weight_bytes`.
    pub fn weight_bytes(&self) -> super::WeightMemory {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                let norms = [&l.input_norm, &l.q_norm, &l.k_norm, &l.post_attention_norm, &l.pre_feedforward_norm, &l.post_feedforward_norm];
                l.products.bytes() + norms.iter().map(|v| v.len()).sum::<usize>() * 4
            })
            .sum();
        let tables = (self.final_norm.len() + (self.global_rope.cos.len() + self.local_rope.cos.len()) * 2) * 4;
        self.tables.memory(layers + tables)
    }

    pub fn hidden_size(&self) -> usize {
        self.tables.sizes.hidden
    }

    /// As `CpuBert::forward` (Gemma has no token types).
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
        self.tables.embed(x, ids, self.embed_scale)?;
        let positions = gqa::positions(&seqs);
        let eps = self.eps;
        let norm = |dst: &mut [f32], gamma: &[f32]| par_rows(dst, h, |rows| rms_norm(rows, gamma, eps, NORM_OFFSET));
        // x += RMSNorm(block output), row by row in parallel.
        let add_normed = |x: &mut [f32], y: &[f32], gamma: &[f32]| {
            let per_task = (total / (rayon::current_num_threads() * 4)).max(16) * h;
            x.par_chunks_mut(per_task).zip(y.par_chunks(per_task)).for_each(|(x, y)| add_rms_normed(x, y, gamma, eps, NORM_OFFSET));
        };

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
            let (rope, visible) = match layer.window {
                Some(w) => (&self.local_rope, Visible::Within(w)),
                None => (&self.global_rope, Visible::All),
            };
            gqa::norm_and_rotate(qkv, &positions, s, (&layer.q_norm, &layer.k_norm), eps, NORM_OFFSET, rope);
            pause()?;
            gqa::attention(qkv, ctx, &seqs, s, visible, self.scale);
            pause()?;
            observe.see(n, Product::AttnOut, ctx, wq);
            p.o_w.apply(normed, h, ctx, wq, total, (h, wq), false, threads, low);
            if let Some(b) = &p.o_b {
                par_rows(normed, h, |rows| add_bias(rows, b));
            }
            add_normed(x, normed, &layer.post_attention_norm);
            pause()?;
            normed.copy_from_slice(x);
            norm(normed, &layer.pre_feedforward_norm);
            observe.see(n, Product::Inter, normed, h);
            p.gate_up_w.apply(inter, 2 * i, normed, h, total, (2 * i, h), false, threads, low);
            // GeGLU into the first half of each row, which the next product reads with the row's full stride.
            par_rows(inter, 2 * i, |rows| gelu_tanh_glu(rows, i));
            pause()?;
            observe.see(n, Product::Out, inter, 2 * i);
            p.down_w.apply(normed, h, inter, 2 * i, total, (h, i), false, threads, low);
            add_normed(x, normed, &layer.post_feedforward_norm);
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
