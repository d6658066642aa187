//! The BERT-style encoder shared by BERT and XLM-RoBERTa: they differ only in how position ids are numbered
//! (`PositionScheme`), so one forward pass serves both. Other families get files of their own.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The fields of `config.json` this encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "one")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
}

fn default_act() -> String {
    "gelu".into()
}
fn one() -> usize {
    1
}
fn default_eps() -> f64 {
    1e-12
}

/// How position ids are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionScheme {
    /// BERT: 0, 1, 2, ...
    Absolute,
    /// RoBERTa and XLM-RoBERTa: padding_idx + 1, padding_idx + 2, ... (the reference implementation numbers
    /// real tokens after the padding index).
    AfterPadding(u32),
}

impl PositionScheme {
    fn first(self) -> u32 {
        match self {
            PositionScheme::Absolute => 0,
            PositionScheme::AfterPadding(pad) => pad + 1,
        }
    }
    /// How many positions the table can number.
    pub fn usable_positions(self, max_position_embeddings: usize) -> usize {
        max_position_embeddings.saturating_sub(self.first() as usize)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => return Err(Error::model_invalid(format!("config.json: unsupported hidden_act {other:?}"))),
        })
    }
    /// One value; the erf GELU has a fused fast path in `kernels` and is not meant to come through here.
    pub fn apply_scalar(self, x: f32) -> f32 {
        match self {
            Activation::GeluErf => 0.5 * x * (1.0 + crate::kernels::elementwise::erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::GeluTanh => {
                0.5 * x * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (x + 0.044_715 * x * x * x)).tanh())
            }
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

pub struct BertEncoder {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    act: Activation,
    positions: PositionScheme,
    pad_id: u32,
    device: Device,
}

impl BertConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::model_invalid(format!("config.json: {what}")));
        if self.num_hidden_layers == 0 {
            return bad("num_hidden_layers is 0; the model has no layers".into());
        }
        if self.hidden_size == 0 || self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.vocab_size == 0 || self.intermediate_size == 0 || self.max_position_embeddings == 0 {
            return bad("vocab_size, intermediate_size and max_position_embeddings must be positive".into());
        }
        // Padding and RoBERTa-style positions look this id up in the embedding tables (found by tests/fuzz.rs).
        if let Some(pad) = self.pad_token_id.filter(|&p| p as usize >= self.vocab_size) {
            return bad(format!("pad_token_id {pad} is not below vocab_size {}", self.vocab_size));
        }
        Activation::parse(&self.hidden_act).map(|_| ())
    }
}

fn candle_err(e: candle_core::Error) -> Error {
    Error::model_invalid(format!("the weights do not fit the config: {e}"))
}

/// The weights' root: names may come with or without a "bert." / "roberta." / "model." prefix.
pub fn weights_root(vb: VarBuilder) -> Result<VarBuilder> {
    ["", "bert", "roberta", "model"]
        .iter()
        .map(|p| if p.is_empty() { vb.clone() } else { vb.pp(p) })
        .find(|vb| vb.contains_tensor("embeddings.word_embeddings.weight"))
        .ok_or_else(|| {
            Error::model_invalid("model.safetensors has no embeddings.word_embeddings.weight: not a BERT-style model")
        })
}

impl BertEncoder {
    /// Loads the weights for candle's generic path (any device).
    pub fn load(vb: VarBuilder, config: &BertConfig, positions: PositionScheme) -> Result<Self> {
        config.validate()?;
        let vb = weights_root(vb)?;
        let h = config.hidden_size;
        let eps = config.layer_norm_eps;
        let load = || -> candle_core::Result<BertEncoder> {
            let emb = vb.pp("embeddings");
            let layers = (0..config.num_hidden_layers)
                .map(|i| {
                    let l = vb.pp(format!("encoder.layer.{i}"));
                    Ok(Layer {
                        query: candle_nn::linear(h, h, l.pp("attention.self.query"))?,
                        key: candle_nn::linear(h, h, l.pp("attention.self.key"))?,
                        value: candle_nn::linear(h, h, l.pp("attention.self.value"))?,
                        attn_out: candle_nn::linear(h, h, l.pp("attention.output.dense"))?,
                        attn_norm: candle_nn::layer_norm(h, eps, l.pp("attention.output.LayerNorm"))?,
                        intermediate: candle_nn::linear(h, config.intermediate_size, l.pp("intermediate.dense"))?,
                        output: candle_nn::linear(config.intermediate_size, h, l.pp("output.dense"))?,
                        out_norm: candle_nn::layer_norm(h, eps, l.pp("output.LayerNorm"))?,
                    })
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(BertEncoder {
                word: candle_nn::embedding(config.vocab_size, h, emb.pp("word_embeddings"))?,
                position: candle_nn::embedding(config.max_position_embeddings, h, emb.pp("position_embeddings"))?,
                token_type: candle_nn::embedding(config.type_vocab_size, h, emb.pp("token_type_embeddings"))?,
                emb_norm: candle_nn::layer_norm(h, eps, emb.pp("LayerNorm"))?,
                layers,
                heads: config.num_attention_heads,
                head_dim: h / config.num_attention_heads,
                hidden: h,
                act: Activation::parse(&config.hidden_act).expect("validated above"),
                positions,
                pad_id: config.pad_token_id.unwrap_or(0),
                device: vb.device().clone(),
            })
        };
        load().map_err(candle_err)
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Runs a batch of unpadded sequences and returns each sequence's token embeddings (`len * hidden` values,
    /// padding stripped). Sequences are right-padded to the longest; padded keys are masked out of attention.
    pub fn forward(&self, ids: &[&[u32]], type_ids: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = ids.len();
        let max_len = ids.iter().map(|s| s.len()).max().unwrap_or(0);
        if b == 0 || max_len == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let mut flat_ids = Vec::with_capacity(b * max_len);
        let mut flat_types = Vec::with_capacity(b * max_len);
        let mut flat_pos = Vec::with_capacity(b * max_len);
        let mut mask = Vec::with_capacity(b * max_len);
        let first = self.positions.first();
        for (seq, types) in ids.iter().zip(type_ids) {
            for i in 0..max_len {
                let real = i < seq.len();
                flat_ids.push(if real { seq[i] } else { self.pad_id });
                flat_types.push(if real { types[i] } else { 0 });
                // Padding gets the padding index as its position, as the reference implementation does; it is
                // masked out either way.
                flat_pos.push(match (real, self.positions) {
                    (true, _) => first + i as u32,
                    (false, PositionScheme::AfterPadding(pad)) => pad,
                    (false, PositionScheme::Absolute) => 0,
                });
                mask.push(if real { 0f32 } else { f32::NEG_INFINITY });
            }
        }
        let dev = &self.device;
        let ids_t = Tensor::from_vec(flat_ids, (b, max_len), dev)?;
        let types_t = Tensor::from_vec(flat_types, (b, max_len), dev)?;
        let pos_t = Tensor::from_vec(flat_pos, (b, max_len), dev)?;
        // No mask at all when nothing in the batch is padded: saves a broadcast add per layer.
        let padded = ids.iter().any(|s| s.len() != max_len);
        let bias = if padded {
            Some(Tensor::from_vec(mask, (b, 1, 1, max_len), dev)?.to_dtype(self.word.embeddings().dtype())?)
        } else {
            None
        };

        let x = self.word.forward(&ids_t)?;
        let x = (x + self.token_type.forward(&types_t)?)?;
        let x = (x + self.position.forward(&pos_t)?)?;
        let mut x = self.emb_norm.forward(&x)?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, bias.as_ref())?;
        }
        let x = x.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let all: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let h = self.hidden;
        Ok(ids
            .iter()
            .enumerate()
            .map(|(i, seq)| all[i * max_len * h..(i * max_len + seq.len()) * h].to_vec())
            .collect())
    }

    fn layer_forward(&self, l: &Layer, x: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (b, len, h) = x.dims3()?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, len, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let q = split((l.query.forward(x)? * scale)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, len, h))?;
        let attn = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + x)?)?;
        let inter = self.act.apply(&l.intermediate.forward(&attn)?)?;
        l.out_norm.forward(&(l.output.forward(&inter)? + &attn)?)
    }
}
