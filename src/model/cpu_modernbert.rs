//! ModernBERT's CPU forward pass on the fast path's kernels, as `cpu_bert.rs` runs the BERT family: packed
//! sequences (no padding), fused Q/K/V, the residual accumulated by the products, working buffers reused. What
//! differs is the architecture: no biases, pre-norm layers (layer 0 without its attention norm), rotary
//! positions applied to Q and K in place, local layers attending within a window, and a GeGLU feed-forward block.
//! Every linear layer is a `linear::Weight`, so f32, bf16 and int8 (with its calibration) come with it.
//!
//! `modernbert.rs` (candle's implementation) stays the reference and the GPU path; a test checks the two agree.

use super::cpu_bert::{attention, free_scratch, packed_sequences, par_rows, record_ranges, take_buf, Checkpoint, WordTable};
use super::linear::{LowPrecision, Product, Weight, PRODUCTS};
use super::rotary::Rotary;
use super::weights_file::WeightsFile;
use super::Dtype;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{bias_layer_norm, gelu_glu};
use candle_transformers::models::modernbert::Config;

const WORD_TABLE: &str = "embeddings.tok_embeddings.weight";

/// ModernBERT's names and shapes for the four products.
trait ModernBertProduct {
    fn tensor(self, n: usize) -> String;
    fn shape(self, sizes: (usize, usize)) -> (usize, usize);
}

impl ModernBertProduct for Product {
    fn tensor(self, n: usize) -> String {
        let name = match self {
            Product::Qkv => "attn.Wqkv",
            Product::AttnOut => "attn.Wo",
            Product::Inter => "mlp.Wi",
            Product::Out => "mlp.Wo",
        };
        format!("layers.{n}.{name}.weight")
    }

    /// `[out × in]` for hidden size `h` and intermediate size `i` (Wi holds GeGLU's input and gate halves).
    fn shape(self, (h, i): (usize, usize)) -> (usize, usize) {
        match self {
            Product::Qkv => (3 * h, h),
            Product::AttnOut => (h, h),
            Product::Inter => (2 * i, h),
            Product::Out => (h, i),
        }
    }
}

struct Layer {
    /// Layer 0 has none: the embeddings' norm precedes it.
    attn_norm: Option<Vec<f32>>,
    qkv_w: Weight,
    attn_out_w: Weight,
    mlp_norm: Vec<f32>,
    inter_w: Weight,
    out_w: Weight,
    /// Local layers attend within `window` positions either side, with the local rotary base.
    window: Option<usize>,
}

impl Layer {
    fn weights(&mut self) -> [&mut Weight; 4] {
        [&mut self.qkv_w, &mut self.attn_out_w, &mut self.inter_w, &mut self.out_w]
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

pub struct CpuModernBert {
    /// As in `CpuBert`: the first set for the batch in progress, the second for a query run at a checkpoint.
    scratch: [parking_lot::Mutex<Scratch>; 2],
    word: WordTable,
    emb_norm: Vec<f32>,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    /// Zeros, the bias of every layer norm (ModernBERT's have none).
    zeros: Vec<f32>,
    global_rope: Rotary,
    local_rope: Rotary,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
}

impl CpuModernBert {
    /// Loads the weights `config` (from `modernbert::config`) describes, in `dtype`.
    pub fn load(file: WeightsFile, config: &Config, dtype: Dtype) -> Result<Self> {
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let vector = |name: &str| file.floats(name, &[h]).map(|f| f.to_vec());
        // Grown layer by layer, as in `CpuBert::load`: a huge num_hidden_layers fails at the first missing layer.
        let mut layers = Vec::new();
        for n in 0..config.num_hidden_layers {
            let weight = |product: Product| -> Result<Weight> {
                let (out, inp) = product.shape((h, i));
                let w = file.floats(&product.tensor(n), &[out, inp])?;
                Ok(Weight::new(out, inp, dtype, |r, x| w.at(r * inp + x)))
            };
            let attn_norm = format!("layers.{n}.attn_norm.weight");
            layers.push(Layer {
                attn_norm: if file.contains(&attn_norm) { Some(vector(&attn_norm)?) } else { None },
                qkv_w: weight(Product::Qkv)?,
                attn_out_w: weight(Product::AttnOut)?,
                mlp_norm: vector(&format!("layers.{n}.mlp_norm.weight"))?,
                inter_w: weight(Product::Inter)?,
                out_w: weight(Product::Out)?,
                window: (n % config.global_attn_every_n_layers != 0).then_some(config.local_attention / 2),
            });
        }
        let (emb_norm, final_norm) = (vector("embeddings.norm.weight")?, vector("final_norm.weight")?);
        let word = WordTable::load(file, WORD_TABLE, [config.vocab_size, h])?;
        let (d, positions) = (h / config.num_attention_heads, config.max_position_embeddings);
        Ok(CpuModernBert {
            scratch: Default::default(),
            word,
            emb_norm,
            layers,
            final_norm,
            zeros: vec![0.0; h],
            global_rope: Rotary::new(config.global_rope_theta, d, positions),
            local_rope: Rotary::new(config.local_rope_theta, d, positions),
            hidden: h,
            heads: config.num_attention_heads,
            intermediate: i,
            vocab: config.vocab_size,
            max_positions: positions,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// As `CpuBert::weight_bytes`.
    pub fn weight_bytes(&self) -> super::WeightMemory {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.qkv_w, &l.attn_out_w, &l.inter_w, &l.out_w].iter().map(|w| w.bytes()).sum::<usize>()
                    + (l.attn_norm.as_ref().map_or(0, Vec::len) + l.mlp_norm.len()) * 4
            })
            .sum();
        let tables = (self.emb_norm.len() + self.final_norm.len() + self.global_rope.cos.len() * 4) * 4;
        self.word.memory(layers + tables, self.vocab * self.hidden * 4)
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// As `CpuBert::forward` (ModernBERT has no token types).
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
        let (h, i) = (self.hidden, self.intermediate);
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
        let (qkv, ctx, inter) = (take_buf(qkv, total * 3 * h), take_buf(ctx, total * h), take_buf(inter, total * 2 * i));
        self.embed(x, ids)?;
        let norm = |dst: &mut [f32], gamma: &[f32]| par_rows(dst, h, |rows| bias_layer_norm(rows, &self.zeros, gamma, &self.zeros, self.eps));

        // The same five checkpoints per layer as `CpuBert`.
        for (n, layer) in self.layers.iter().enumerate() {
            if n > 0 {
                pause()?;
            }
            let input: &[f32] = match &layer.attn_norm {
                Some(gamma) => {
                    normed.copy_from_slice(x);
                    norm(normed, gamma);
                    normed
                }
                None => x,
            };
            observe(n, Product::Qkv, input, h);
            layer.qkv_w.apply(qkv, 3 * h, input, h, total, (3 * h, h), false, threads, low);
            self.rotate(qkv, &seqs, if layer.window.is_some() { &self.local_rope } else { &self.global_rope });
            pause()?;
            attention(qkv, ctx, &seqs, h, self.heads, layer.window);
            pause()?;
            observe(n, Product::AttnOut, ctx, h);
            layer.attn_out_w.apply(x, h, ctx, h, total, (h, h), true, threads, low);
            pause()?;
            normed.copy_from_slice(x);
            norm(normed, &layer.mlp_norm);
            observe(n, Product::Inter, normed, h);
            layer.inter_w.apply(inter, 2 * i, normed, h, total, (2 * i, h), false, threads, low);
            // GeGLU into the first half of each row, which the next product reads with the row's full stride.
            par_rows(inter, 2 * i, |rows| gelu_glu(rows, i));
            pause()?;
            observe(n, Product::Out, inter, 2 * i);
            layer.out_w.apply(x, h, inter, 2 * i, total, (h, i), true, threads, low);
        }
        norm(x, &self.final_norm);
        seqs.iter().enumerate().for_each(|(i, &(o, len))| each(i, &x[o * h..(o + len) * h]));
        Ok(())
    }

    /// Rotates every head's query and key in `qkv` by its token's position in its own sequence.
    fn rotate(&self, qkv: &mut [f32], seqs: &[(usize, usize)], rope: &Rotary) {
        let (h, d) = (self.hidden, self.hidden / self.heads);
        for &(o, len) in seqs {
            for p in 0..len {
                let row = &mut qkv[(o + p) * 3 * h..][..2 * h];
                row.chunks_exact_mut(d).for_each(|head| rope.apply(head, p));
            }
        }
    }

    fn embed(&self, x: &mut [f32], ids: &[&[u32]]) -> Result<()> {
        let h = self.hidden;
        let word = self.word.rows()?;
        for (row, (p, &id)) in ids.iter().flat_map(|s| s.iter().enumerate()).enumerate() {
            if id as usize >= self.vocab || p >= self.max_positions {
                return Err(Error::internal(format!("token {id} at position {p} is outside the model's tables")));
            }
            word.read(id as usize, &mut x[row * h..(row + 1) * h]);
        }
        par_rows(x, h, |rows| bias_layer_norm(rows, &self.zeros, &self.emb_norm, &self.zeros, self.eps));
        Ok(())
    }

    /// As `CpuBert::release_file_pages`.
    pub fn release_file_pages(&mut self) {
        for n in 0..self.layers.len() {
            PRODUCTS.iter().for_each(|p| self.word.file_mut().release(&p.tensor(n)));
        }
    }

    /// As `CpuBert::calibrate`: for int8 weights, moves each product's outlier inputs into f32.
    pub fn calibrate(&mut self, ids: &[&[u32]], threads: usize) -> Result<()> {
        if !matches!(self.layers.first().map(|l| &l.qkv_w), Some(Weight::Int8(_))) {
            return Ok(());
        }
        let (h, i) = (self.hidden, self.intermediate);
        let mut ranges: Vec<[Vec<f32>; 4]> = (0..self.layers.len()).map(|_| [h, h, h, i].map(|w| vec![0f32; w])).collect();
        self.forward_observed(ids, threads, |_, _| {}, None, Some(&mut ranges))?;
        let file = self.word.file();
        for (n, (layer, ranges)) in self.layers.iter_mut().zip(&ranges).enumerate() {
            for ((product, weight), range) in PRODUCTS.into_iter().zip(layer.weights()).zip(ranges) {
                let Weight::Int8(w) = weight else { continue };
                let inputs = super::calibration::outliers(range);
                if inputs.is_empty() {
                    continue;
                }
                let (out, inp) = product.shape((h, i));
                let values = file.floats(&product.tensor(n), &[out, inp])?;
                w.move_to_f32(&inputs, |r, x| values.at(r * inp + x));
            }
        }
        Ok(())
    }
}
