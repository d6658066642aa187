//! ModernBERT (`model_type: modernbert`) through candle-transformers' implementation: rotary positions, GeGLU,
//! no biases, and alternating global and sliding-window attention. This file maps the two `config.json`
//! dialects onto candle's config (transformers 4 writes `global_rope_theta` / `local_rope_theta`, transformers 5
//! writes `rope_parameters` per layer type) and runs padded batches with a mask.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::modernbert::{Config, ModernBert};
use serde_json::Value;

use crate::error::{Error, Result};

pub struct ModernBertEncoder {
    model: ModernBert,
    hidden: usize,
    pad_id: u32,
    device: Device,
}

fn field<'a>(raw: &'a Value, key: &str) -> Option<&'a Value> {
    raw.get(key).filter(|v| !v.is_null())
}

fn number(raw: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| field(raw, k).and_then(Value::as_f64))
}

fn count(raw: &Value, key: &str) -> Result<usize> {
    field(raw, key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::model_invalid(format!("config.json: {key} is missing or not a whole number")))
}

/// candle's ModernBERT config from either dialect of `config.json`; anything the implementation does not
/// compute (biases, another activation) is refused rather than silently ignored.
/// Above any released ModernBERT's context (8,192): a guard for the rotary tables' size.
const MAX_POSITIONS: usize = 131_072;

pub fn config(raw: &Value) -> Result<Config> {
    let rope = |layer_type: &str, legacy: &str, default: f64| {
        raw.pointer(&format!("/rope_parameters/{layer_type}/rope_theta")).and_then(Value::as_f64).or_else(|| number(raw, &[legacy])).unwrap_or(default)
    };
    for flag in ["attention_bias", "mlp_bias", "norm_bias"] {
        if field(raw, flag).and_then(Value::as_bool) == Some(true) {
            return Err(Error::model_invalid(format!("config.json: ModernBERT with {flag} = true is not supported")));
        }
    }
    let act = field(raw, "hidden_activation").and_then(Value::as_str).unwrap_or("gelu");
    if act != "gelu" {
        return Err(Error::model_invalid(format!("config.json: ModernBERT hidden_activation {act:?} is not supported (only \"gelu\")")));
    }
    let config = Config {
        vocab_size: count(raw, "vocab_size")?,
        hidden_size: count(raw, "hidden_size")?,
        num_hidden_layers: count(raw, "num_hidden_layers")?,
        num_attention_heads: count(raw, "num_attention_heads")?,
        intermediate_size: count(raw, "intermediate_size")?,
        max_position_embeddings: count(raw, "max_position_embeddings")?,
        layer_norm_eps: number(raw, &["norm_eps", "layer_norm_eps"]).unwrap_or(1e-5),
        pad_token_id: field(raw, "pad_token_id").and_then(Value::as_u64).unwrap_or(0) as u32,
        global_attn_every_n_layers: field(raw, "global_attn_every_n_layers").and_then(Value::as_u64).unwrap_or(3) as usize,
        global_rope_theta: rope("full_attention", "global_rope_theta", 160_000.0),
        local_attention: field(raw, "local_attention").and_then(Value::as_u64).unwrap_or(128) as usize,
        local_rope_theta: rope("sliding_attention", "local_rope_theta", 10_000.0),
        classifier_config: None,
    };
    // Rotary tables are sized from max_position_embeddings before any weight is read: refuse sizes no
    // ModernBERT has, rather than abort on an impossible allocation (found by tests/fuzz.rs).
    if config.max_position_embeddings > MAX_POSITIONS {
        return Err(Error::model_invalid(format!(
            "config.json: max_position_embeddings {} is above {MAX_POSITIONS}",
            config.max_position_embeddings
        )));
    }
    let heads = config.num_attention_heads;
    if config.hidden_size == 0 || heads == 0 || !config.hidden_size.is_multiple_of(heads) || config.global_attn_every_n_layers == 0 {
        return Err(Error::model_invalid(format!(
            "config.json: hidden_size {} must be a positive multiple of num_attention_heads {heads}, and \
             global_attn_every_n_layers positive",
            config.hidden_size
        )));
    }
    Ok(config)
}

impl ModernBertEncoder {
    pub fn load(vb: VarBuilder, raw: &Value) -> Result<Self> {
        let config = config(raw)?;
        // candle names the weights as a masked-LM checkpoint does ("model.layers..."); a sentence-transformers
        // folder saves the bare ModernBertModel ("layers...").
        let vb = if vb.contains_tensor("model.embeddings.tok_embeddings.weight") {
            vb
        } else {
            vb.rename_f(|name: &str| name.strip_prefix("model.").unwrap_or(name).to_string())
        };
        // candle sizes its layer list from the config before reading weights: check the last layer is there.
        let last = config.num_hidden_layers.saturating_sub(1);
        if !vb.contains_tensor(&format!("model.layers.{last}.attn.Wqkv.weight")) {
            return Err(Error::model_invalid(format!(
                "config.json: num_hidden_layers is {}, but model.safetensors has no layer {last}",
                config.num_hidden_layers
            )));
        }
        let device = vb.device().clone();
        let model = ModernBert::load(vb, &config)
            .map_err(|e| Error::model_invalid(format!("the weights do not fit the ModernBERT config: {e}")))?;
        Ok(ModernBertEncoder { model, hidden: config.hidden_size, pad_id: config.pad_token_id, device })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Each sequence's token embeddings (`len * hidden` values), from one right-padded, masked batch.
    pub fn forward(&self, ids: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let b = ids.len();
        let max_len = ids.iter().map(|s| s.len()).max().unwrap_or(0);
        if b == 0 || max_len == 0 {
            return Ok(vec![Vec::new(); b]);
        }
        let mut flat = Vec::with_capacity(b * max_len);
        let mut mask = Vec::with_capacity(b * max_len);
        for seq in ids {
            for i in 0..max_len {
                flat.push(seq.get(i).copied().unwrap_or(self.pad_id));
                mask.push(if i < seq.len() { 1f32 } else { 0.0 });
            }
        }
        let input = Tensor::from_vec(flat, (b, max_len), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, max_len), &self.device)?;
        let x = self.model.forward(&input, &mask)?.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let all: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let h = self.hidden;
        Ok(ids.iter().enumerate().map(|(i, s)| all[i * max_len * h..(i * max_len + s.len()) * h].to_vec()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::config;

    #[test]
    fn both_config_dialects_map_to_the_same_rope_settings() {
        let v4 = serde_json::json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2,
            "intermediate_size": 12, "max_position_embeddings": 64, "norm_eps": 1e-5,
            "global_rope_theta": 160000.0, "local_rope_theta": 10000.0, "local_attention": 8,
            "global_attn_every_n_layers": 3, "pad_token_id": 0
        });
        let mut v5 = v4.clone();
        let o = v5.as_object_mut().unwrap();
        o.remove("global_rope_theta");
        o.remove("local_rope_theta");
        o.insert("rope_parameters".into(), serde_json::json!({
            "full_attention": {"rope_theta": 160000.0}, "sliding_attention": {"rope_theta": 10000.0}
        }));
        assert_eq!(config(&v4).unwrap(), config(&v5).unwrap());
        assert_eq!(config(&v4).unwrap().global_rope_theta, 160000.0);
    }

    #[test]
    fn unsupported_variants_are_refused() {
        let mut c = serde_json::json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 3,
            "intermediate_size": 12, "max_position_embeddings": 64
        });
        assert!(config(&c).unwrap_err().message.contains("multiple"));
        c["num_attention_heads"] = 2.into();
        c["mlp_bias"] = true.into();
        assert!(config(&c).unwrap_err().message.contains("mlp_bias"));
    }
}
