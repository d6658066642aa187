//! Qwen3 (`model_type: qwen3`), as Qwen3-Embedding uses it: a decoder read as an encoder. RMSNorm before each
//! block, per-head RMSNorm on queries and keys, rotary positions, grouped-query attention (fewer key/value heads
//! than query heads), causal attention, a SwiGLU feed-forward block, and a final RMSNorm; the sentence vector is
//! the last token's state (the folder's `lasttoken` pooling).
//!
//! This file reads the config (refusing what neither path computes) and runs the model through candle's
//! operations: the GPU path, and the reference the fast CPU path (`cpu_qwen3.rs`) is tested against.
//! candle-transformers' own Qwen3 keeps a key/value cache for generation that its public API cannot clear, so
//! the layers are composed here from candle-nn's pieces.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, RmsNorm, VarBuilder};
use serde_json::Value;

use crate::error::{Error, Result};

/// Above any released Qwen3's context (40,960): a guard for the rotary tables' size.
pub(super) const MAX_POSITIONS: usize = 131_072;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// Biases on the query, key, value and output products.
    pub attention_bias: bool,
}

pub(super) fn field<'a>(raw: &'a Value, key: &str) -> Option<&'a Value> {
    raw.get(key).filter(|v| !v.is_null())
}

pub(super) fn count(raw: &Value, key: &str) -> Result<usize> {
    field(raw, key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::model_invalid(format!("config.json: {key} is missing or not a whole number")))
}

/// The config from `config.json` in either transformers dialect (4.x: `rope_theta` and `rope_scaling`; 5.x:
/// `rope_parameters`). Rotary scaling, sliding-window layers and activations other than SiLU are refused
/// with the setting named, never run as if absent.
pub fn config(raw: &Value) -> Result<Config> {
    let refuse = |what: String| Err(Error::model_invalid(format!("config.json: Qwen3 with {what} is not supported")));
    let rope = field(raw, "rope_parameters").or_else(|| field(raw, "rope_scaling"));
    if let Some(kind) = rope.and_then(|r| r.get("rope_type").or_else(|| r.get("type"))).and_then(Value::as_str) {
        if kind != "default" {
            return refuse(format!("rope scaling {kind:?}"));
        }
    }
    if field(raw, "use_sliding_window").and_then(Value::as_bool) == Some(true) {
        return refuse("use_sliding_window = true".into());
    }
    if let Some(kind) = field(raw, "layer_types").and_then(Value::as_array).and_then(|t| t.iter().find(|t| t.as_str() != Some("full_attention"))) {
        return refuse(format!("a layer of type {kind}"));
    }
    let act = field(raw, "hidden_act").and_then(Value::as_str).unwrap_or("silu");
    if act != "silu" {
        return refuse(format!("hidden_act {act:?} (only \"silu\")"));
    }
    let heads = count(raw, "num_attention_heads")?;
    let hidden = count(raw, "hidden_size")?;
    let config = Config {
        vocab_size: count(raw, "vocab_size")?,
        hidden_size: hidden,
        num_hidden_layers: count(raw, "num_hidden_layers")?,
        num_attention_heads: heads,
        num_key_value_heads: field(raw, "num_key_value_heads").and_then(Value::as_u64).map_or(heads, |v| v as usize),
        head_dim: field(raw, "head_dim").and_then(Value::as_u64).map_or(hidden.checked_div(heads).unwrap_or(0), |v| v as usize),
        intermediate_size: count(raw, "intermediate_size")?,
        max_position_embeddings: count(raw, "max_position_embeddings")?,
        rope_theta: rope
            .and_then(|r| r.get("rope_theta"))
            .and_then(Value::as_f64)
            .or_else(|| field(raw, "rope_theta").and_then(Value::as_f64))
            .unwrap_or(1_000_000.0),
        rms_norm_eps: field(raw, "rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        attention_bias: field(raw, "attention_bias").and_then(Value::as_bool).unwrap_or(false),
    };
    let bad = |what: String| Err(Error::model_invalid(format!("config.json: {what}")));
    if config.num_hidden_layers == 0 || config.vocab_size == 0 || config.intermediate_size == 0 || hidden == 0 {
        return bad("num_hidden_layers, vocab_size, intermediate_size and hidden_size must be positive".into());
    }
    let kv = config.num_key_value_heads;
    if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) || config.head_dim == 0 || !config.head_dim.is_multiple_of(2) {
        return bad(format!(
            "num_attention_heads {heads} must be a positive multiple of num_key_value_heads {kv}, and head_dim {} positive and even",
            config.head_dim
        ));
    }
    if config.max_position_embeddings == 0 || config.max_position_embeddings > MAX_POSITIONS {
        return bad(format!("max_position_embeddings {} is not in 1..={MAX_POSITIONS}", config.max_position_embeddings));
    }
    let finite = config.rope_theta.is_finite() && config.rope_theta > 0.0 && config.rms_norm_eps.is_finite() && config.rms_norm_eps >= 0.0;
    if !finite {
        return bad("rope_theta must be positive and rms_norm_eps not negative".into());
    }
    Ok(config)
}

struct Layer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct Qwen3Encoder {
    embed: candle_nn::Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// `[positions × head_dim/2]`, at the compute dtype.
    cos: Tensor,
    sin: Tensor,
    config: Config,
    device: Device,
}

pub(super) fn linear(vb: &VarBuilder, (out, inp): (usize, usize), bias: bool) -> candle_core::Result<Linear> {
    let w = vb.get((out, inp), "weight")?;
    let b = if bias { Some(vb.get(out, "bias")?) } else { None };
    Ok(Linear::new(w, b))
}

impl Qwen3Encoder {
    /// `positions`: the rotary tables' length (the model's `max_seq_length`).
    pub fn load(vb: VarBuilder, config: &Config, positions: usize) -> Result<Self> {
        let config = config.clone();
        // A sentence-transformers folder saves the bare Qwen3Model ("layers..."); a causal-LM checkpoint
        // prefixes "model.".
        let vb = if vb.contains_tensor("model.embed_tokens.weight") { vb.pp("model") } else { vb };
        let last = config.num_hidden_layers - 1;
        if !vb.contains_tensor(&format!("layers.{last}.self_attn.q_proj.weight")) {
            return Err(Error::model_invalid(format!(
                "config.json: num_hidden_layers is {}, but the weights have no layer {last}",
                config.num_hidden_layers
            )));
        }
        let fit = |e: candle_core::Error| Error::model_invalid(format!("the weights do not fit the Qwen3 config: {e}"));
        let (h, d, i) = (config.hidden_size, config.head_dim, config.intermediate_size);
        let (q_out, kv_out) = (config.num_attention_heads * d, config.num_key_value_heads * d);
        let eps = config.rms_norm_eps;
        let mut layers = Vec::new();
        for n in 0..config.num_hidden_layers {
            let l = vb.pp(format!("layers.{n}"));
            let (a, m) = (l.pp("self_attn"), l.pp("mlp"));
            let bias = config.attention_bias;
            layers.push(Layer {
                input_norm: candle_nn::rms_norm(h, eps, l.pp("input_layernorm")).map_err(fit)?,
                q: linear(&a.pp("q_proj"), (q_out, h), bias).map_err(fit)?,
                k: linear(&a.pp("k_proj"), (kv_out, h), bias).map_err(fit)?,
                v: linear(&a.pp("v_proj"), (kv_out, h), bias).map_err(fit)?,
                o: linear(&a.pp("o_proj"), (h, q_out), bias).map_err(fit)?,
                q_norm: candle_nn::rms_norm(d, eps, a.pp("q_norm")).map_err(fit)?,
                k_norm: candle_nn::rms_norm(d, eps, a.pp("k_norm")).map_err(fit)?,
                post_norm: candle_nn::rms_norm(h, eps, l.pp("post_attention_layernorm")).map_err(fit)?,
                gate: linear(&m.pp("gate_proj"), (i, h), false).map_err(fit)?,
                up: linear(&m.pp("up_proj"), (i, h), false).map_err(fit)?,
                down: linear(&m.pp("down_proj"), (h, i), false).map_err(fit)?,
            });
        }
        let embed = candle_nn::embedding(config.vocab_size, h, vb.pp("embed_tokens")).map_err(fit)?;
        let norm = candle_nn::rms_norm(h, eps, vb.pp("norm")).map_err(fit)?;
        let device = vb.device().clone();
        let positions = positions.min(config.max_position_embeddings);
        let (cos, sin) = rotary_tables(config.rope_theta, d, positions, vb.dtype(), &device).map_err(fit)?;
        Ok(Qwen3Encoder { embed, layers, norm, cos, sin, config, device })
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Each sequence's token states (`len * hidden` values), from one right-padded batch: attention is causal,
    /// so no real token ever attends to the padding after it.
    pub fn forward(&self, ids: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = ids.len();
        let len = ids.iter().map(|s| s.len()).max().unwrap_or(0);
        if b == 0 || len == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let flat: Vec<u32> = ids.iter().flat_map(|s| (0..len).map(|i| s.get(i).copied().unwrap_or(0))).collect();
        let input = Tensor::from_vec(flat, (b, len), &self.device)?;
        let mut x = self.embed.forward(&input)?;
        let dtype = x.dtype();
        let mask: Vec<f32> = (0..len).flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (1, 1, len, len), &self.device)?.to_dtype(dtype)?;
        let (cos, sin) = (self.cos.narrow(0, 0, len)?, self.sin.narrow(0, 0, len)?);
        let c = &self.config;
        let (nq, nkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let scale = 1.0 / (d as f64).sqrt();
        for layer in &self.layers {
            let h = layer.input_norm.forward(&x)?;
            let heads = |t: Tensor, n: usize, norm: Option<&RmsNorm>| -> candle_core::Result<Tensor> {
                let t = t.reshape((b, len, n, d))?;
                let t = match norm {
                    Some(norm) => norm.forward(&t)?,
                    None => t,
                };
                t.transpose(1, 2)?.contiguous()
            };
            let q = heads(layer.q.forward(&h)?, nq, Some(&layer.q_norm))?;
            let k = heads(layer.k.forward(&h)?, nkv, Some(&layer.k_norm))?;
            let v = heads(layer.v.forward(&h)?, nkv, None)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            let (k, v) = (repeat_kv(k, nq / nkv)?, repeat_kv(v, nq / nkv)?);
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let weights = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
            let ctx = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, len, nq * d))?;
            x = (x + layer.o.forward(&ctx)?)?;
            let h = layer.post_norm.forward(&x)?;
            let glu = (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            x = (x + layer.down.forward(&glu)?)?;
        }
        let x = self.norm.forward(&x)?.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let all: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let hs = c.hidden_size;
        Ok(ids.iter().enumerate().map(|(i, s)| all[i * len * hs..(i * len + s.len()) * hs].to_vec()).collect())
    }
}

/// Each key/value head repeated `n` times in place, so that query head `h` meets key/value head `h / n`.
pub(super) fn repeat_kv(t: Tensor, n: usize) -> candle_core::Result<Tensor> {
    if n == 1 {
        return Ok(t);
    }
    let (b, heads, len, d) = t.dims4()?;
    t.unsqueeze(2)?.expand((b, heads, n, len, d))?.reshape((b, heads * n, len, d))
}

/// cos and sin of the rotation angles, `[positions × head_dim/2]`, computed in f32 as transformers does.
pub(super) fn rotary_tables(base: f64, d: usize, positions: usize, dtype: DType, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..d / 2).map(|i| (1.0 / base.powf((2 * i) as f64 / d as f64)) as f32).collect();
    let angles: Vec<f32> = (0..positions).flat_map(|p| inv.iter().map(move |f| p as f32 * f)).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    let table = |v: Vec<f32>| Tensor::from_vec(v, (positions, d / 2), device)?.to_dtype(dtype);
    Ok((table(cos)?, table(sin)?))
}

#[cfg(test)]
mod tests {
    use super::config;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 4, "intermediate_size": 12, "max_position_embeddings": 64,
            "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu"
        })
    }

    #[test]
    fn both_dialects_give_the_same_config() {
        let v4 = base();
        let mut v5 = base();
        v5.as_object_mut().unwrap().remove("rope_theta");
        v5["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 10000.0});
        assert_eq!(config(&v4).unwrap(), config(&v5).unwrap());
        assert_eq!(config(&v4).unwrap().head_dim, 4);
    }

    #[test]
    fn what_neither_path_computes_is_refused_by_name() {
        for (key, value, named) in [
            ("rope_scaling", json!({"rope_type": "yarn", "factor": 4.0}), "yarn"),
            ("use_sliding_window", json!(true), "use_sliding_window"),
            ("hidden_act", json!("gelu"), "gelu"),
            ("num_key_value_heads", json!(3), "num_key_value_heads"),
            ("head_dim", json!(5), "head_dim"),
            ("max_position_embeddings", json!(1u64 << 40), "max_position_embeddings"),
            ("layer_types", json!(["sliding_attention"]), "sliding_attention"),
        ] {
            let mut c = base();
            c[key] = value;
            let err = config(&c).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::ModelInvalid);
            assert!(err.message.contains(named), "{key}: {}", err.message);
        }
    }
}
