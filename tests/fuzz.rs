//! Property-based fuzzing (proptest) of the two paths hostile input reaches: texts, through the tokenizer, the
//! long-text shortcut, batching and the encoder; and model folders, through config.json, the sentence-transformers
//! files, the tokenizer and the weights' header. Each case must end in vectors or a clean error, never a panic or
//! an abort. Bounded for CI (`PROPTEST_CASES`, default 48 per property); run longer with e.g.
//! `PROPTEST_CASES=5000 cargo test --release --test fuzz`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Device;
use common::*;
use embedding_service::model::{Dtype, Embedder, Kernels};
use embedding_service::ErrorCode;
use proptest::prelude::*;
use serde_json::{json, Value};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const FAMILIES: [&str; 5] = ["tiny-bert-cls", "tiny-xlmr-mean-prompts", "tiny-modernbert-mean", "tiny-qwen3-last", "tiny-gemma3-mean"];

fn load(dir: &Path) -> embedding_service::Result<Embedder> {
    Embedder::load_with(dir, &Device::Cpu, Kernels::Fast, Dtype::F32, 1)
}

/// Text that reaches the tokenizer's corners: any Unicode scalar (controls, NUL, unassigned, private use, every
/// plane), runs of whitespace and punctuation, repeated words past max_seq_length, and mixed scripts.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,400}",
        "[ \\t\\n\\r\\u{a0}\\u{3000}.,;!?]{0,200}",
        ("[a-zA-Z]{1,12}", 1usize..3000).prop_map(|(w, n)| format!("{w} ").repeat(n)),
        ("[\\u{4e00}-\\u{9fff}\\u{3040}-\\u{30ff}]{1,50}", 1usize..200).prop_map(|(s, n)| s.repeat(n)),
        proptest::collection::vec(any::<char>(), 0..600).prop_map(|c| c.into_iter().collect()),
    ]
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn any_texts_embed_to_finite_vectors_the_same_batched_as_alone() {
    let models: Vec<Embedder> = FAMILIES.iter().map(|f| load(&reference(f).join("model")).unwrap()).collect();
    let seen = AtomicUsize::new(0);
    proptest!(config(), |(family in 0..FAMILIES.len(), texts in proptest::collection::vec(text(), 1..6))| {
        let model = &models[family];
        let tokens = model.tokenize(&texts, None).unwrap();
        for t in &tokens {
            prop_assert!(!t.is_empty() && t.len() <= model.max_seq_length() + 2, "{} tokens", t.len());
        }
        let refs: Vec<_> = tokens.iter().collect();
        let batched = model.embed_tokens(&refs).unwrap();
        prop_assert_eq!(batched.len(), texts.len());
        for (i, v) in batched.iter().enumerate() {
            prop_assert_eq!(v.len(), model.dimensions());
            prop_assert!(v.iter().all(|x| x.is_finite()), "non-finite vector for {:?}", texts[i]);
            let alone = model.embed_tokens(&[&tokens[i]]).unwrap().remove(0);
            prop_assert!(max_abs_diff(v, &alone) <= 1e-5, "batched differs from alone for {:?}", texts[i]);
        }
        seen.fetch_add(texts.len(), Ordering::Relaxed);
    });
    eprintln!("fuzz: {} texts embedded", seen.load(Ordering::Relaxed));
}

/// A JSON value of any shape, weighted towards the numbers and strings a config field could plausibly hold.
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-4i64..4).prop_map(Value::from),
        (0i64..100_000).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        (-1.0f64..1.0).prop_map(|f| json!(f)),
        "[a-z_\\-]{0,16}".prop_map(Value::from),
        Just(json!("bert")),
        Just(json!("modernbert")),
        Just(json!("qwen3")),
        Just(json!("gemma3_text")),
        Just(json!("sliding_attention")),
        Just(json!("xlm-roberta")),
        Just(json!("gelu")),
        proptest::collection::vec((0i64..64).prop_map(Value::from), 0..4).prop_map(Value::from),
        Just(json!({})),
    ]
}

/// Which file of a model folder to change, and the keys worth changing in it.
const TARGETS: [(&str, &[&str]); 5] = [
    (
        "config.json",
        &[
            "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings", "vocab_size", "type_vocab_size", "layer_norm_eps", "norm_eps", "hidden_act",
            "hidden_activation", "pad_token_id", "position_embedding_type", "architectures",
            "global_attn_every_n_layers", "local_attention", "global_rope_theta", "local_rope_theta",
            "rope_parameters", "attention_bias", "mlp_bias", "norm_bias", "torch_dtype", "num_key_value_heads",
            "head_dim", "sliding_window", "layer_types", "use_bidirectional_attention", "query_pre_attn_scalar",
            "attn_logit_softcapping", "rope_local_base_freq", "rope_theta",
        ],
    ),
    ("sentence_bert_config.json", &["max_seq_length", "do_lower_case"]),
    (
        "1_Pooling/config.json",
        &[
            "word_embedding_dimension", "pooling_mode_cls_token", "pooling_mode_mean_tokens",
            "pooling_mode_max_tokens", "pooling_mode_lasttoken", "include_prompt",
        ],
    ),
    ("config_sentence_transformers.json", &["prompts", "default_prompt_name"]),
    ("modules.json", &[]),
];

#[derive(Debug, Clone)]
enum Edit {
    /// Set (or, with `None`, remove) one key of one JSON file; a file with no keys listed is replaced whole.
    Json { target: usize, key: usize, value: Option<Value> },
    /// Cut a file to a fraction of its length.
    Truncate { file: &'static str, keep: f64 },
    /// Overwrite one byte of a file's first `within` bytes (the safetensors header; the tokenizer's JSON).
    Flip { file: &'static str, within: usize, at: usize, byte: u8 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..TARGETS.len(), 0usize..64, proptest::option::weighted(0.85, json_value()))
            .prop_map(|(target, key, value)| Edit::Json { target, key, value }),
        1 => (prop_oneof![Just("model.safetensors"), Just("tokenizer.json"), Just("config.json")], 0.0f64..1.0)
            .prop_map(|(file, keep)| Edit::Truncate { file, keep }),
        1 => (prop_oneof![Just("model.safetensors"), Just("tokenizer.json")], any::<usize>(), any::<u8>())
            .prop_map(|(file, at, byte)| Edit::Flip { file, within: 400, at, byte }),
    ]
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

fn apply(dir: &Path, edit: &Edit) {
    match edit {
        Edit::Json { target, key, value } => {
            let (file, keys) = TARGETS[*target];
            let path = dir.join(file);
            let mut doc: Value = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_else(|| json!({}));
            if keys.is_empty() {
                doc = value.clone().unwrap_or(Value::Null);
            } else if let Some(obj) = doc.as_object_mut() {
                let key = keys[key % keys.len()].to_string();
                match value {
                    Some(v) => obj.insert(key, v.clone()),
                    None => obj.remove(&key),
                };
            }
            std::fs::write(path, doc.to_string()).unwrap();
        }
        Edit::Truncate { file, keep } => {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            std::fs::write(dir.join(file), &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
        }
        Edit::Flip { file, within, at, byte } => {
            let mut bytes = std::fs::read(dir.join(file)).unwrap();
            let i = at % (*within).min(bytes.len());
            bytes[i] = *byte;
            std::fs::write(dir.join(file), bytes).unwrap();
        }
    }
}

#[test]
fn any_broken_model_folder_loads_and_embeds_or_fails_cleanly() {
    let scratch: PathBuf = std::env::temp_dir().join(format!("es-fuzz-{}", std::process::id()));
    let counts = [AtomicUsize::new(0), AtomicUsize::new(0)];
    proptest!(config(), |(family in 0..FAMILIES.len(), edits in proptest::collection::vec(edit(), 1..4))| {
        let _ = std::fs::remove_dir_all(&scratch);
        copy_dir(&reference(FAMILIES[family]).join("model"), &scratch);
        for e in &edits {
            apply(&scratch, e);
        }
        match load(&scratch) {
            Ok(model) => {
                // What loads must embed (or fail with a code); the shapes were all checked at load.
                let texts = vec!["hello world".to_string(), "word ".repeat(600)];
                let tokens = model.tokenize(&texts, None);
                let vectors = tokens.and_then(|t| model.embed_tokens(&t.iter().collect::<Vec<_>>()));
                match vectors {
                    Ok(v) => {
                        prop_assert_eq!(v.len(), 2);
                        prop_assert!(v.iter().all(|v| v.len() == model.dimensions()));
                    }
                    Err(e) => prop_assert!(e.code != ErrorCode::Internal, "{:?} after load: {}", edits, e.message),
                }
                counts[0].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                prop_assert!(
                    matches!(e.code, ErrorCode::ModelInvalid | ErrorCode::InvalidInput),
                    "{:?}: {:?} {}", edits, e.code, e.message
                );
                counts[1].fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    eprintln!("fuzz: {} broken folders still loaded, {} refused", counts[0].load(Ordering::Relaxed), counts[1].load(Ordering::Relaxed));
}
