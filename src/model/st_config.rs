//! Reading a sentence-transformers model folder the way sentence-transformers does: `modules.json` names the
//! pipeline (Transformer, Pooling, Dense, Normalize), `1_Pooling/config.json` the pooling (old boolean flags or the
//! newer `pooling_mode`), `sentence_bert_config.json` or `tokenizer_config.json` the maximum sequence length,
//! and `config_sentence_transformers.json` the named prompts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::pooling::PoolingMode;
use crate::error::{Error, Result};

/// Everything about a model folder that is not the transformer's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceConfig {
    /// Pooling modes in the order sentence-transformers concatenates them.
    pub pooling: Vec<PoolingMode>,
    /// Whether prompt tokens take part in pooling.
    pub pooling_include_prompt: bool,
    pub normalize: bool,
    /// Tokens per text, special tokens included; longer texts are truncated.
    pub max_seq_length: usize,
    pub do_lower_case: bool,
    pub prompts: BTreeMap<String, String>,
    pub default_prompt_name: Option<String>,
    /// The `Dense` modules after pooling, in order (EmbeddingGemma's projections, LaBSE's, ...).
    pub dense: Vec<DenseModule>,
}

/// A sentence-transformers `Dense` module: `activation(W·x + b)` on the pooled vector. Its weights
/// (`linear.weight`, `linear.bias`) are in `dir/model.safetensors`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseModule {
    pub dir: PathBuf,
    pub in_features: usize,
    pub out_features: usize,
    pub bias: bool,
    pub activation: DenseActivation,
}

/// The activations a `Dense` module's config names (`activation_function`, a torch class path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    Identity,
    Tanh,
}

impl DenseModule {
    fn read(dir: PathBuf) -> Result<Self> {
        let path = dir.join("config.json");
        let cfg = read_json_opt(&path)?.ok_or_else(|| Error::model_invalid(format!("the Dense module's config {} is missing", path.display())))?;
        let size = |key: &str| {
            cfg.get(key).and_then(Value::as_u64).filter(|&n| n > 0 && n <= 1 << 20).map(|n| n as usize).ok_or_else(|| {
                Error::model_invalid(format!("{}: {key} is missing or not a size in 1..=1048576", path.display()))
            })
        };
        let name = cfg.get("activation_function").and_then(Value::as_str).unwrap_or("torch.nn.modules.activation.Tanh");
        let activation = match class_name(name) {
            "Identity" => DenseActivation::Identity,
            "Tanh" => DenseActivation::Tanh,
            _ => {
                return Err(Error::model_invalid(format!(
                    "{}: the Dense activation {name:?} is not supported (Identity and Tanh are)",
                    path.display()
                )))
            }
        };
        Ok(DenseModule {
            in_features: size("in_features")?,
            out_features: size("out_features")?,
            bias: cfg.get("bias").and_then(Value::as_bool).unwrap_or(true),
            activation,
            dir,
        })
    }
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Reads a JSON file that may be absent; a present file that does not parse is an error naming it.
pub fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::model_invalid(format!("{} is not valid JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::model_invalid(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The last part of a dotted Python class path: "sentence_transformers.models.Pooling" -> "Pooling".
fn class_name(kind: &str) -> &str {
    kind.rsplit('.').next().unwrap_or(kind)
}

impl SentenceConfig {
    /// Reads the folder's sentence-transformers files. `max_position_embeddings` caps the sequence length when
    /// no sentence-transformers file sets one, as sentence-transformers does.
    pub fn read(dir: &Path, max_position_embeddings: usize) -> Result<Self> {
        let (pooling_dir, dense, normalize) = read_modules(dir)?;
        // sentence-transformers falls back to mean pooling for a plain transformer folder.
        let (pooling, pooling_include_prompt) = match pooling_dir {
            Some(p) => read_pooling(&p.join("config.json"))?,
            None => (vec![PoolingMode::Mean], true),
        };
        let st = read_json_opt(&dir.join("sentence_bert_config.json"))?;
        let tok = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let st_max = st.as_ref().and_then(|v| v.get("max_seq_length")).and_then(Value::as_u64);
        let tok_max = tok.as_ref().and_then(|v| v.get("model_max_length")).and_then(Value::as_f64);
        let max_seq_length = match (st_max, tok_max) {
            (Some(n), _) => n as usize,
            // Tokenizers without a real limit store a huge sentinel (1e30); the position table bounds it then.
            (None, Some(n)) if n >= 1.0 && n < max_position_embeddings as f64 => n as usize,
            _ => max_position_embeddings,
        }
        .min(max_position_embeddings);
        if max_seq_length < 2 {
            return Err(Error::model_invalid(format!(
                "{}: max_seq_length {max_seq_length} leaves no room for text",
                dir.display()
            )));
        }
        let do_lower_case =
            st.as_ref().and_then(|v| v.get("do_lower_case")).and_then(Value::as_bool).unwrap_or(false);
        let (prompts, default_prompt_name) = read_prompts(dir)?;
        Ok(SentenceConfig {
            pooling,
            pooling_include_prompt,
            normalize,
            max_seq_length,
            do_lower_case,
            prompts,
            default_prompt_name,
            dense,
        })
    }

    /// The prompt text for a request: the named prompt, else the model's default prompt, else none.
    pub fn prompt_text(&self, name: Option<&str>) -> Result<Option<&str>> {
        match name.or(self.default_prompt_name.as_deref()) {
            None => Ok(None),
            Some(name) => match self.prompts.get(name) {
                Some(text) if text.is_empty() => Ok(None),
                Some(text) => Ok(Some(text.as_str())),
                None => Err(Error::invalid_input(format!(
                    "unknown prompt {name:?}; this model's prompts are: {}",
                    if self.prompts.is_empty() {
                        "none".to_string()
                    } else {
                        self.prompts.keys().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
                    }
                ))),
            },
        }
    }
}

fn read_pooling(path: &Path) -> Result<(Vec<PoolingMode>, bool)> {
    let cfg = read_json_opt(path)?
        .ok_or_else(|| Error::model_invalid(format!("the pooling config {} is missing", path.display())))?;
    let include_prompt = cfg.get("include_prompt").and_then(Value::as_bool).unwrap_or(true);
    // Newer sentence-transformers writes `"pooling_mode": "cls"` (or a list); older versions write flags.
    if let Some(mode) = cfg.get("pooling_mode") {
        let names: Vec<&str> = match mode {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let modes = names
            .iter()
            .map(|n| {
                PoolingMode::from_name(n).ok_or_else(|| {
                    Error::model_invalid(format!("{}: unsupported pooling_mode {n:?}", path.display()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if modes.is_empty() {
            return Err(Error::model_invalid(format!("{}: pooling_mode names no mode", path.display())));
        }
        return Ok((modes, include_prompt));
    }
    // An absent flag takes sentence-transformers' default (Pooling's constructor): mean on, the rest off.
    let flag = |key: &str| cfg.get(key).and_then(Value::as_bool).unwrap_or(key == "pooling_mode_mean_tokens");
    let modes: Vec<PoolingMode> = [
        ("pooling_mode_cls_token", PoolingMode::Cls),
        ("pooling_mode_max_tokens", PoolingMode::Max),
        ("pooling_mode_mean_tokens", PoolingMode::Mean),
        ("pooling_mode_mean_sqrt_len_tokens", PoolingMode::MeanSqrtLen),
        ("pooling_mode_weightedmean_tokens", PoolingMode::WeightedMean),
        ("pooling_mode_lasttoken", PoolingMode::LastToken),
    ]
    .into_iter()
    .filter(|(key, _)| flag(key))
    .map(|(_, mode)| mode)
    .collect();
    if modes.is_empty() {
        return Err(Error::model_invalid(format!("{}: no pooling mode is enabled", path.display())));
    }
    Ok((modes, include_prompt))
}


/// The pipeline `modules.json` names: the pooling module's folder (else `1_Pooling` if present), the Dense
/// modules after it, and whether a Normalize module ends it. Modules run in order, so anything out of the
/// order Transformer, Pooling, Dense..., Normalize is refused rather than run in another order.
fn read_modules(dir: &Path) -> Result<(Option<PathBuf>, Vec<DenseModule>, bool)> {
    let modules_path = dir.join("modules.json");
    let Some(modules) = read_json_opt(&modules_path)? else {
        return Ok((dir.join("1_Pooling").is_dir().then(|| dir.join("1_Pooling")), Vec::new(), false));
    };
    let modules: Vec<ModuleEntry> = serde_json::from_value(modules).map_err(|e| {
        Error::model_invalid(format!("{} does not list modules as expected: {e}", modules_path.display()))
    })?;
    let mut pooling_dir = None;
    let mut dense = Vec::new();
    let mut normalize = false;
    let out_of_order = |what: &str| {
        Err(Error::model_invalid(format!(
            "{}: {what}; supported pipelines are Transformer, Pooling, then any Dense modules, then Normalize",
            modules_path.display()
        )))
    };
    for (i, module) in modules.iter().enumerate() {
        if normalize {
            return out_of_order(&format!("{:?} follows Normalize", module.kind));
        }
        match class_name(&module.kind) {
            "Transformer" if i == 0 => {}
            "Pooling" if pooling_dir.is_none() && dense.is_empty() => pooling_dir = Some(dir.join(&module.path)),
            "Dense" if pooling_dir.is_some() => {
                let module = DenseModule::read(dir.join(&module.path))?;
                if let Some(previous) = dense.last().map(|d: &DenseModule| d.out_features) {
                    if previous != module.in_features {
                        return out_of_order(&format!("a Dense module takes {} values after one that gives {previous}", module.in_features));
                    }
                }
                dense.push(module);
            }
            "Normalize" => normalize = true,
            "Transformer" | "Pooling" | "Dense" => return out_of_order(&format!("{:?} is module {i}", module.kind)),
            other => {
                return Err(Error::model_invalid(format!(
                    "{} uses the module {other:?} ({}), which this addon does not support; supported \
                     pipelines are Transformer, Pooling, Dense, Normalize",
                    modules_path.display(),
                    module.kind
                )))
            }
        }
    }
    Ok((pooling_dir, dense, normalize))
}

/// The files of the modules `modules.json` lists that a hub download fetches beside the folder's own: each
/// Pooling module's `config.json`, and each Dense module's `config.json` and `model.safetensors` (the last two
/// required: the pipeline cannot run without them), as `(path, required)`. The names come from the network,
/// so each module's path must be one plain folder name (letters, digits, `_`, `-`, `.`, not starting with
/// `.`) before it becomes part of a path; anything else is refused with ERR_MODEL_INVALID.
pub fn module_files(modules: &Value) -> Result<Vec<(String, bool)>> {
    let modules: Vec<ModuleEntry> = serde_json::from_value(modules.clone())
        .map_err(|e| Error::model_invalid(format!("modules.json does not list modules as expected: {e}")))?;
    let mut files = Vec::new();
    for module in modules.iter().filter(|m| !m.path.is_empty()) {
        let plain = !module.path.starts_with('.')
            && module.path.len() <= 64
            && module.path.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !plain {
            return Err(Error::model_invalid(format!(
                "modules.json gives the module {:?} the path {:?}, which is not a plain folder name",
                module.kind, module.path
            )));
        }
        match class_name(&module.kind) {
            "Pooling" => files.push((format!("{}/config.json", module.path), false)),
            "Dense" => {
                files.push((format!("{}/config.json", module.path), true));
                files.push((format!("{}/model.safetensors", module.path), true));
            }
            _ => {}
        }
    }
    Ok(files)
}

/// The named prompts of `config_sentence_transformers.json` and its default prompt name.
fn read_prompts(dir: &Path) -> Result<(BTreeMap<String, String>, Option<String>)> {
    let mut prompts = BTreeMap::new();
    let cst_path = dir.join("config_sentence_transformers.json");
    let Some(cst) = read_json_opt(&cst_path)? else { return Ok((prompts, None)) };
    if let Some(map) = cst.get("prompts").and_then(Value::as_object) {
        for (name, text) in map {
            let text = text.as_str().ok_or_else(|| {
                Error::model_invalid(format!("{}: prompt {name:?} is not a string", cst_path.display()))
            })?;
            prompts.insert(name.clone(), text.to_string());
        }
    }
    let default_prompt_name = cst.get("default_prompt_name").and_then(Value::as_str).map(str::to_string);
    if let Some(name) = &default_prompt_name {
        if !prompts.contains_key(name) {
            return Err(Error::model_invalid(format!(
                "{}: default_prompt_name {name:?} is not among the prompts",
                cst_path.display()
            )));
        }
    }
    Ok((prompts, default_prompt_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir()
            .join(format!("es-st-config-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const MODULES: &str = r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
        {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
        {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#;

    #[test]
    fn old_format_flags_and_sentence_bert_config() {
        let dir = folder(&[
            ("modules.json", MODULES),
            ("1_Pooling/config.json", r#"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": false}"#),
            ("sentence_bert_config.json", r#"{"max_seq_length": 256, "do_lower_case": false}"#),
            ("tokenizer_config.json", r#"{"model_max_length": 512}"#),
        ]);
        let c = SentenceConfig::read(&dir, 512).unwrap();
        assert_eq!(c.pooling, vec![PoolingMode::Mean]);
        assert!(c.normalize);
        assert_eq!(c.max_seq_length, 256);
    }

    #[test]
    fn absent_flags_take_sentence_transformers_defaults() {
        // Pooling(**config) fills what the file leaves out: pooling_mode_mean_tokens=True, the others False.
        let dir = folder(&[("modules.json", MODULES), ("1_Pooling/config.json", r#"{"pooling_mode_lasttoken": true}"#)]);
        assert_eq!(SentenceConfig::read(&dir, 64).unwrap().pooling, vec![PoolingMode::Mean, PoolingMode::LastToken]);
        let dir = folder(&[("modules.json", MODULES), ("1_Pooling/config.json", r#"{"word_embedding_dimension": 8}"#)]);
        assert_eq!(SentenceConfig::read(&dir, 64).unwrap().pooling, vec![PoolingMode::Mean]);
    }

    #[test]
    fn new_format_mode_and_tokenizer_max_length_capped_by_positions() {
        let dir = folder(&[
            ("modules.json", MODULES),
            ("1_Pooling/config.json", r#"{"pooling_mode": "cls", "include_prompt": true}"#),
            ("tokenizer_config.json", r#"{"model_max_length": 1000000000000000019884624838656}"#),
        ]);
        let c = SentenceConfig::read(&dir, 514).unwrap();
        assert_eq!(c.pooling, vec![PoolingMode::Cls]);
        assert_eq!(c.max_seq_length, 514);
    }

    #[test]
    fn prompts_resolve_by_name_and_unknown_names_are_invalid_input() {
        let dir = folder(&[(
            "config_sentence_transformers.json",
            r#"{"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": null}"#,
        )]);
        let c = SentenceConfig::read(&dir, 128).unwrap();
        assert_eq!(c.pooling, vec![PoolingMode::Mean], "no modules.json means mean pooling");
        assert!(!c.normalize);
        assert_eq!(c.prompt_text(Some("query")).unwrap(), Some("query: "));
        assert_eq!(c.prompt_text(Some("document")).unwrap(), None);
        assert_eq!(c.prompt_text(None).unwrap(), None);
        let err = c.prompt_text(Some("passage")).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidInput);
        assert!(err.message.contains("\"query\""), "{}", err.message);
    }

    #[test]
    fn unsupported_modules_and_broken_json_name_the_file() {
        let dir = folder(&[(
            "modules.json",
            r#"[{"idx":0,"path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
                {"idx":2,"path":"2_WordWeights","type":"sentence_transformers.models.WordWeights"}]"#,
        )]);
        let err = SentenceConfig::read(&dir, 128).unwrap_err();
        assert!(err.message.contains("WordWeights"), "{}", err.message);
        let dir = folder(&[("sentence_bert_config.json", "{not json")]);
        let err = SentenceConfig::read(&dir, 128).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::ModelInvalid);
        assert!(err.message.contains("sentence_bert_config.json"), "{}", err.message);
    }

    fn dense_pipeline(dense: &[(&str, &str)]) -> PathBuf {
        let mut modules = vec![
            r#"{"idx":0,"path":"","type":"sentence_transformers.models.Transformer"}"#.to_string(),
            r#"{"idx":1,"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}"#.to_string(),
        ];
        let mut files = vec![("1_Pooling/config.json".to_string(), r#"{"pooling_mode": "mean"}"#.to_string())];
        for (i, (config, _)) in dense.iter().enumerate() {
            modules.push(format!(r#"{{"idx":{},"path":"{}_Dense","type":"sentence_transformers.models.Dense"}}"#, i + 2, i + 2));
            files.push((format!("{}_Dense/config.json", i + 2), config.to_string()));
        }
        modules.push(r#"{"idx":9,"path":"9_Normalize","type":"sentence_transformers.models.Normalize"}"#.to_string());
        files.push(("modules.json".to_string(), format!("[{}]", modules.join(","))));
        let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        folder(&refs)
    }

    #[test]
    fn dense_modules_are_read_in_order_and_checked() {
        let dir = dense_pipeline(&[
            (r#"{"in_features": 32, "out_features": 48, "bias": true, "activation_function": "torch.nn.modules.activation.Tanh"}"#, ""),
            (r#"{"in_features": 48, "out_features": 16, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}"#, ""),
        ]);
        let c = SentenceConfig::read(&dir, 128).unwrap();
        assert_eq!(c.dense.len(), 2);
        assert_eq!((c.dense[0].in_features, c.dense[0].out_features, c.dense[0].bias, c.dense[0].activation), (32, 48, true, DenseActivation::Tanh));
        assert_eq!((c.dense[1].out_features, c.dense[1].bias, c.dense[1].activation), (16, false, DenseActivation::Identity));
        assert!(c.normalize);

        let chained_wrong = dense_pipeline(&[
            (r#"{"in_features": 32, "out_features": 48}"#, ""),
            (r#"{"in_features": 40, "out_features": 16}"#, ""),
        ]);
        assert!(SentenceConfig::read(&chained_wrong, 128).unwrap_err().message.contains("takes 40 values"));
        let gelu = dense_pipeline(&[(r#"{"in_features": 32, "out_features": 48, "activation_function": "torch.nn.modules.activation.GELU"}"#, "")]);
        let err = SentenceConfig::read(&gelu, 128).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::ModelInvalid);
        assert!(err.message.contains("GELU"), "{}", err.message);
        let no_size = dense_pipeline(&[(r#"{"out_features": 48}"#, "")]);
        assert!(SentenceConfig::read(&no_size, 128).unwrap_err().message.contains("in_features"));
    }

    #[test]
    fn a_hub_download_fetches_the_listed_modules_files_and_refuses_paths_that_are_not_plain_names() {
        let modules: Value = serde_json::from_str(
            r#"[{"idx":0,"path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
                {"idx":2,"path":"2_Dense","type":"sentence_transformers.models.Dense"},
                {"idx":3,"path":"3_Dense","type":"sentence_transformers.models.Dense"},
                {"idx":4,"path":"4_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
        )
        .unwrap();
        let files = module_files(&modules).unwrap();
        let want = [("1_Pooling/config.json", false), ("2_Dense/config.json", true), ("2_Dense/model.safetensors", true), ("3_Dense/config.json", true), ("3_Dense/model.safetensors", true)];
        assert_eq!(files, want.map(|(f, r)| (f.to_string(), r)));
        for hostile in ["../2_Dense", "..", "/etc", "2_Dense/../../x", ".hidden", "a\\b", "C:x"] {
            let modules = serde_json::json!([{"path": hostile, "type": "sentence_transformers.models.Dense"}]);
            let err = module_files(&modules).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::ModelInvalid, "{hostile}");
            assert!(err.message.contains("not a plain folder name"), "{hostile}: {}", err.message);
        }
    }

    #[test]
    fn modules_out_of_order_are_refused() {
        let dir = folder(&[(
            "modules.json",
            r#"[{"idx":0,"path":"","type":"sentence_transformers.models.Transformer"},
                {"idx":1,"path":"2_Normalize","type":"sentence_transformers.models.Normalize"},
                {"idx":2,"path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
        )]);
        assert!(SentenceConfig::read(&dir, 128).unwrap_err().message.contains("follows Normalize"));
    }
}
