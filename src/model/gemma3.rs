//! Gemma 3 text (`model_type: gemma3_text`) with bidirectional attention, as EmbeddingGemma uses it: embeddings
//! scaled by √hidden, RMSNorm in its `(1 + weight)` form before and after each block (the post-norms sit
//! between a block's output and the residual), per-head RMSNorm and rotary positions on queries and keys,
//! grouped-query attention scaled by `query_pre_attn_scalar^-½`, local layers that see keys within a window
//! with their own rotary base beside global layers that see everything, and a GeGLU feed-forward block with
//! the tanh GELU.
//!
//! This file reads the config (refusing what neither path computes) and runs the model through candle's
//! operations: the GPU path, and the reference the fast CPU path (`cpu_gemma3.rs`) is tested against.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, RmsNorm, VarBuilder};
use serde_json::Value;

use super::qwen3::{count, field, linear, repeat_kv, rotary_tables, MAX_POSITIONS};
use crate::error::{Error, Result};

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
    /// The global layers' rotary base.
    pub rope_theta: f64,
    /// The local (sliding-window) layers' rotary base.
    pub rope_local_theta: f64,
    pub rms_norm_eps: f64,
    pub attention_bias: bool,
    /// Attention scores are scaled by `query_pre_attn_scalar^-½` (not `head_dim^-½`).
    pub query_pre_attn_scalar: f64,
    /// Per layer: `Some(w)` for a local layer, whose queries see keys fewer than `w` positions away on either
    /// side; `None` for a global layer.
    pub windows: Vec<Option<usize>>,
}

/// The rotary base of one kind of layer, in either transformers dialect: 5.x keeps a `rope_parameters` entry
/// per layer type; 4.x has `rope_theta` (global, with `rope_scaling`) and `rope_local_base_freq` (local).
fn rope_base(raw: &Value, layer_type: &str, legacy_key: &str, default: f64) -> Result<f64> {
    let params = field(raw, "rope_parameters");
    let entry = params.and_then(|p| p.get(layer_type)).or(if layer_type == "full_attention" { params.filter(|p| p.get("rope_theta").is_some()) } else { None });
    let scaling = entry.or(if layer_type == "full_attention" { field(raw, "rope_scaling") } else { None });
    if let Some(kind) = scaling.and_then(|r| r.get("rope_type").or_else(|| r.get("type"))).and_then(Value::as_str) {
        if kind != "default" {
            return Err(Error::model_invalid(format!("config.json: Gemma 3 with rope scaling {kind:?} is not supported")));
        }
    }
    Ok(entry
        .and_then(|e| e.get("rope_theta"))
        .and_then(Value::as_f64)
        .or_else(|| field(raw, legacy_key).and_then(Value::as_f64))
        .unwrap_or(default))
}

/// The config from `config.json`, as transformers reads it. Causal attention, logit soft-capping, rotary
/// scaling and activations other than the tanh GELU are refused with the setting named.
pub fn config(raw: &Value) -> Result<Config> {
    let refuse = |what: String| Err(Error::model_invalid(format!("config.json: Gemma 3 with {what} is not supported")));
    if field(raw, "use_bidirectional_attention").and_then(Value::as_bool) != Some(true) {
        return refuse("causal attention (use_bidirectional_attention is not true; embedding models such as EmbeddingGemma set it)".into());
    }
    if let Some(cap) = field(raw, "attn_logit_softcapping") {
        return refuse(format!("attn_logit_softcapping {cap}"));
    }
    let act = field(raw, "hidden_activation").or_else(|| field(raw, "hidden_act")).and_then(Value::as_str).unwrap_or("gelu_pytorch_tanh");
    if act != "gelu_pytorch_tanh" {
        return refuse(format!("hidden_activation {act:?} (only \"gelu_pytorch_tanh\")"));
    }
    let bad = |what: String| Err(Error::model_invalid(format!("config.json: {what}")));
    let layers = count(raw, "num_hidden_layers")?;
    // transformers turns the saved window into an exclusive bound for bidirectional attention:
    // |q - k| < sliding_window / 2 + 1 (transformers 5 saves the value it converts from, so both agree).
    let window = count(raw, "sliding_window")? / 2 + 1;
    let types: Vec<String> = match field(raw, "layer_types").and_then(Value::as_array) {
        Some(types) => types.iter().map(|t| t.as_str().unwrap_or("").to_string()).collect(),
        None => {
            let pattern = field(raw, "sliding_window_pattern").and_then(Value::as_u64).unwrap_or(6).max(1) as usize;
            (0..layers).map(|i| if (i + 1) % pattern != 0 { "sliding_attention" } else { "full_attention" }.to_string()).collect()
        }
    };
    if types.len() != layers {
        return bad(format!("layer_types has {} entries for {layers} layers", types.len()));
    }
    let windows = types
        .iter()
        .map(|t| match t.as_str() {
            "sliding_attention" => Ok(Some(window)),
            "full_attention" => Ok(None),
            other => Err(Error::model_invalid(format!("config.json: Gemma 3 with a layer of type {other:?} is not supported"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let heads = count(raw, "num_attention_heads")?;
    let config = Config {
        vocab_size: count(raw, "vocab_size")?,
        hidden_size: count(raw, "hidden_size")?,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: field(raw, "num_key_value_heads").and_then(Value::as_u64).map_or(heads, |v| v as usize),
        // transformers' default, not hidden / heads.
        head_dim: field(raw, "head_dim").and_then(Value::as_u64).map_or(256, |v| v as usize),
        intermediate_size: count(raw, "intermediate_size")?,
        max_position_embeddings: count(raw, "max_position_embeddings")?,
        rope_theta: rope_base(raw, "full_attention", "rope_theta", 1_000_000.0)?,
        rope_local_theta: rope_base(raw, "sliding_attention", "rope_local_base_freq", 10_000.0)?,
        rms_norm_eps: field(raw, "rms_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        attention_bias: field(raw, "attention_bias").and_then(Value::as_bool).unwrap_or(false),
        query_pre_attn_scalar: field(raw, "query_pre_attn_scalar").and_then(Value::as_f64).unwrap_or(256.0),
        windows,
    };
    if layers == 0 || config.vocab_size == 0 || config.intermediate_size == 0 || config.hidden_size == 0 {
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
    let positive = |v: f64| v.is_finite() && v > 0.0;
    let usable = positive(config.rope_theta) && positive(config.rope_local_theta) && positive(config.query_pre_attn_scalar);
    if !(usable && config.rms_norm_eps >= 0.0 && config.rms_norm_eps.is_finite()) {
        return bad("rope_theta, rope_local_base_freq and query_pre_attn_scalar must be positive, and rms_norm_eps not negative".into());
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
    post_attention_norm: RmsNorm,
    pre_feedforward_norm: RmsNorm,
    post_feedforward_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    window: Option<usize>,
}

pub struct Gemma3Encoder {
    embed: candle_nn::Embedding,
    /// √hidden at the weights' dtype, as transformers multiplies the embeddings.
    embed_scale: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    /// Rotary tables `[positions × head_dim/2]` of the global and the local layers.
    global: (Tensor, Tensor),
    local: (Tensor, Tensor),
    config: Config,
    device: Device,
}

/// Gemma's RMSNorm scales by `1 + weight`: the stored weight plus one, folded in at load.
fn gemma_norm(size: usize, eps: f64, vb: VarBuilder) -> candle_core::Result<RmsNorm> {
    let w = (vb.get(size, "weight")? + 1.0)?;
    Ok(RmsNorm::new(w, eps))
}

impl Gemma3Encoder {
    /// `positions`: the rotary tables' length (the model's `max_seq_length`).
    pub fn load(vb: VarBuilder, config: &Config, positions: usize) -> Result<Self> {
        let config = config.clone();
        let vb = if vb.contains_tensor("model.embed_tokens.weight") { vb.pp("model") } else { vb };
        let last = config.num_hidden_layers - 1;
        if !vb.contains_tensor(&format!("layers.{last}.self_attn.q_proj.weight")) {
            return Err(Error::model_invalid(format!(
                "config.json: num_hidden_layers is {}, but the weights have no layer {last}",
                config.num_hidden_layers
            )));
        }
        let fit = |e: candle_core::Error| Error::model_invalid(format!("the weights do not fit the Gemma 3 config: {e}"));
        let (h, d, i) = (config.hidden_size, config.head_dim, config.intermediate_size);
        let (q_out, kv_out) = (config.num_attention_heads * d, config.num_key_value_heads * d);
        let eps = config.rms_norm_eps;
        let mut layers = Vec::new();
        for (n, &window) in config.windows.iter().enumerate() {
            let l = vb.pp(format!("layers.{n}"));
            let (a, m) = (l.pp("self_attn"), l.pp("mlp"));
            let bias = config.attention_bias;
            layers.push(Layer {
                input_norm: gemma_norm(h, eps, l.pp("input_layernorm")).map_err(fit)?,
                q: linear(&a.pp("q_proj"), (q_out, h), bias).map_err(fit)?,
                k: linear(&a.pp("k_proj"), (kv_out, h), bias).map_err(fit)?,
                v: linear(&a.pp("v_proj"), (kv_out, h), bias).map_err(fit)?,
                o: linear(&a.pp("o_proj"), (h, q_out), bias).map_err(fit)?,
                q_norm: gemma_norm(d, eps, a.pp("q_norm")).map_err(fit)?,
                k_norm: gemma_norm(d, eps, a.pp("k_norm")).map_err(fit)?,
                post_attention_norm: gemma_norm(h, eps, l.pp("post_attention_layernorm")).map_err(fit)?,
                pre_feedforward_norm: gemma_norm(h, eps, l.pp("pre_feedforward_layernorm")).map_err(fit)?,
                post_feedforward_norm: gemma_norm(h, eps, l.pp("post_feedforward_layernorm")).map_err(fit)?,
                gate: linear(&m.pp("gate_proj"), (i, h), false).map_err(fit)?,
                up: linear(&m.pp("up_proj"), (i, h), false).map_err(fit)?,
                down: linear(&m.pp("down_proj"), (h, i), false).map_err(fit)?,
                window,
            });
        }
        let embed = candle_nn::embedding(config.vocab_size, h, vb.pp("embed_tokens")).map_err(fit)?;
        let norm = gemma_norm(h, eps, vb.pp("norm")).map_err(fit)?;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let embed_scale = Tensor::new((h as f32).sqrt(), &device).and_then(|t| t.to_dtype(dtype)).map_err(fit)?;
        let positions = positions.min(config.max_position_embeddings);
        let global = rotary_tables(config.rope_theta, d, positions, dtype, &device).map_err(fit)?;
        let local = rotary_tables(config.rope_local_theta, d, positions, dtype, &device).map_err(fit)?;
        Ok(Gemma3Encoder { embed, embed_scale, layers, norm, global, local, config, device })
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// Additive attention mask `[b × 1 × len × len]` for a right-padded batch: real queries see the real keys
    /// their layer lets them (within `window` when it has one); padding queries see every real key, so that
    /// no row is empty and no NaN reaches a real token through the values.
    fn mask(&self, lens: &[usize], len: usize, window: Option<usize>, dtype: DType) -> candle_core::Result<Tensor> {
        let mut mask = Vec::with_capacity(lens.len() * len * len);
        for &n in lens {
            for q in 0..len {
                for k in 0..len {
                    let seen = k < n && (q >= n || window.is_none_or(|w| q.abs_diff(k) < w));
                    mask.push(if seen { 0.0f32 } else { f32::NEG_INFINITY });
                }
            }
        }
        Tensor::from_vec(mask, (lens.len(), 1, len, len), &self.device)?.to_dtype(dtype)
    }

    /// Each sequence's token states (`len * hidden` values), from one right-padded batch.
    pub fn forward(&self, ids: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = ids.len();
        let len = ids.iter().map(|s| s.len()).max().unwrap_or(0);
        if b == 0 || len == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let flat: Vec<u32> = ids.iter().flat_map(|s| (0..len).map(|i| s.get(i).copied().unwrap_or(0))).collect();
        let input = Tensor::from_vec(flat, (b, len), &self.device)?;
        let mut x = self.embed.forward(&input)?.broadcast_mul(&self.embed_scale)?;
        let dtype = x.dtype();
        let lens: Vec<usize> = ids.iter().map(|s| s.len()).collect();
        let windows: Vec<usize> = self.config.windows.iter().flatten().copied().collect();
        let local_mask = match windows.first() {
            Some(&w) => Some(self.mask(&lens, len, Some(w), dtype)?),
            None => None,
        };
        let global_mask = self.mask(&lens, len, None, dtype)?;
        let narrow = |(c, s): &(Tensor, Tensor)| -> candle_core::Result<(Tensor, Tensor)> { Ok((c.narrow(0, 0, len)?, s.narrow(0, 0, len)?)) };
        let (global, local) = (narrow(&self.global)?, narrow(&self.local)?);
        let c = &self.config;
        let (nq, nkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let scale = c.query_pre_attn_scalar.powf(-0.5);
        for layer in &self.layers {
            let ((cos, sin), mask) = match (layer.window, &local_mask) {
                (Some(_), Some(m)) => (&local, m),
                _ => (&global, &global_mask),
            };
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
            let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
            let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
            let (k, v) = (repeat_kv(k, nq / nkv)?, repeat_kv(v, nq / nkv)?);
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
            let weights = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
            let ctx = weights.matmul(&v)?.transpose(1, 2)?.reshape((b, len, nq * d))?;
            x = (x + layer.post_attention_norm.forward(&layer.o.forward(&ctx)?)?)?;
            let h = layer.pre_feedforward_norm.forward(&x)?;
            let glu = (layer.gate.forward(&h)?.gelu()? * layer.up.forward(&h)?)?;
            x = (x + layer.post_feedforward_norm.forward(&layer.down.forward(&glu)?)?)?;
        }
        let x = self.norm.forward(&x)?.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let all: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let hs = c.hidden_size;
        Ok(ids.iter().enumerate().map(|(i, s)| all[i * len * hs..(i * len + s.len()) * hs].to_vec()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::config;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "model_type": "gemma3_text", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 3,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 12,
            "max_position_embeddings": 64, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
            "rms_norm_eps": 1e-6, "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16,
            "sliding_window": 8, "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
            "use_bidirectional_attention": true, "attn_logit_softcapping": null
        })
    }

    #[test]
    fn the_window_is_transformers_exclusive_bound_and_both_dialects_agree() {
        let v4 = config(&base()).unwrap();
        assert_eq!(v4.windows, vec![Some(5), Some(5), None]);
        assert_eq!((v4.rope_theta, v4.rope_local_theta, v4.head_dim), (1e6, 1e4, 16));
        let mut v5 = base();
        let o = v5.as_object_mut().unwrap();
        o.remove("rope_theta");
        o.remove("rope_local_base_freq");
        v5["rope_parameters"] = json!({
            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}
        });
        assert_eq!(config(&v5).unwrap(), v4);
        // No layer_types: transformers' pattern of five local layers, then a global one.
        let mut old = base();
        old.as_object_mut().unwrap().remove("layer_types");
        old["num_hidden_layers"] = json!(7);
        let windows = config(&old).unwrap().windows;
        assert_eq!(windows.iter().map(Option::is_some).collect::<Vec<_>>(), [true, true, true, true, true, false, true]);
    }

    #[test]
    fn what_neither_path_computes_is_refused_by_name() {
        for (key, value, named) in [
            ("use_bidirectional_attention", json!(false), "use_bidirectional_attention"),
            ("attn_logit_softcapping", json!(50.0), "attn_logit_softcapping"),
            ("rope_scaling", json!({"rope_type": "linear", "factor": 8.0}), "linear"),
            ("hidden_activation", json!("gelu"), "gelu"),
            ("num_key_value_heads", json!(3), "num_key_value_heads"),
            ("layer_types", json!(["sliding_attention", "chunked_attention", "full_attention"]), "chunked_attention"),
            ("layer_types", json!(["full_attention"]), "layer_types"),
            ("query_pre_attn_scalar", json!(0), "query_pre_attn_scalar"),
            ("max_position_embeddings", json!(1u64 << 40), "max_position_embeddings"),
        ] {
            let mut c = base();
            c[key] = value;
            let err = config(&c).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::ModelInvalid);
            assert!(err.message.contains(named), "{key}: {}", err.message);
        }
    }
}
