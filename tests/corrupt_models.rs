//! Broken model folders: each fails the request with ERR_MODEL_INVALID (or ERR_MODEL_NOT_FOUND for no folder)
//! naming the file and the problem, never a panic, and the same service then reports the same error again.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use embedding_service::{EmbedOptions, ErrorCode};

/// A copy of tiny-bert-cls in a fresh folder, changed by `edit`.
fn broken(name: &str, edit: impl FnOnce(&Path)) -> PathBuf {
    let src = reference("tiny-bert-cls").join("model");
    let dir = std::env::temp_dir().join(format!("es-corrupt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(src.join("1_Pooling/config.json"), dir.join("1_Pooling/config.json")).unwrap();
    edit(&dir);
    dir
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut config = read_json(dir.join("config.json"));
    f(&mut config);
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

fn expect_invalid(dir: PathBuf, mentions: &[&str]) {
    let svc = service(dir.clone());
    for _ in 0..2 {
        let err = svc.embed_blocking(vec!["hello".into()], EmbedOptions::default()).unwrap_err();
        assert_eq!(err.code, ErrorCode::ModelInvalid, "{}: {}", dir.display(), err.message);
        for m in mentions {
            assert!(err.message.contains(m), "{:?} should mention {m:?}", err.message);
        }
    }
    svc.close_blocking();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_files_are_named() {
    expect_invalid(broken("no-config", |d| std::fs::remove_file(d.join("config.json")).unwrap()), &["config.json", "missing"]);
    expect_invalid(broken("no-tokenizer", |d| std::fs::remove_file(d.join("tokenizer.json")).unwrap()), &["tokenizer.json"]);
    expect_invalid(broken("no-weights", |d| std::fs::remove_file(d.join("model.safetensors")).unwrap()), &["model.safetensors", "missing"]);
}

#[test]
fn corrupt_files_are_named_with_the_problem() {
    let truncate = |d: &Path| {
        let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
        std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    };
    expect_invalid(broken("truncated-weights", truncate), &["model.safetensors"]);
    expect_invalid(broken("garbage-weights", |d| std::fs::write(d.join("model.safetensors"), b"not a safetensors file").unwrap()), &["model.safetensors"]);
    expect_invalid(broken("empty-weights", |d| std::fs::write(d.join("model.safetensors"), b"").unwrap()), &["model.safetensors"]);
    expect_invalid(broken("config-not-json", |d| std::fs::write(d.join("config.json"), b"{ not json").unwrap()), &["config.json"]);
    expect_invalid(broken("tokenizer-not-json", |d| std::fs::write(d.join("tokenizer.json"), b"[1, 2").unwrap()), &["tokenizer.json"]);
    // tokenizers 0.23 panics on this one (an unwrap in its decoder's deserializer); found by tests/fuzz.rs.
    let cut_tokenizer = |d: &Path| {
        let bytes = std::fs::read(d.join("tokenizer.json")).unwrap();
        std::fs::write(d.join("tokenizer.json"), &bytes[..bytes.len() * 161 / 1000]).unwrap();
    };
    expect_invalid(broken("truncated-tokenizer", cut_tokenizer), &["tokenizer.json", "not JSON"]);
    expect_invalid(broken("pooling-not-json", |d| std::fs::write(d.join("1_Pooling/config.json"), b"nope").unwrap()), &["1_Pooling"]);
}

#[test]
fn configs_that_do_not_fit_are_refused() {
    expect_invalid(broken("zero-layers", |d| edit_config(d, |c| c["num_hidden_layers"] = 0.into())), &["num_hidden_layers"]);
    expect_invalid(broken("more-layers", |d| edit_config(d, |c| c["num_hidden_layers"] = 7.into())), &["model.safetensors"]);
    expect_invalid(broken("hidden-mismatch", |d| edit_config(d, |c| c["hidden_size"] = 64.into())), &["model.safetensors"]);
    expect_invalid(broken("heads-mismatch", |d| edit_config(d, |c| c["num_attention_heads"] = 5.into())), &["num_attention_heads"]);
    expect_invalid(broken("vocab-mismatch", |d| edit_config(d, |c| c["vocab_size"] = 3.into())), &["model.safetensors"]);
    expect_invalid(broken("wrong-type", |d| edit_config(d, |c| c["hidden_size"] = "big".into())), &["config.json"]);
    expect_invalid(broken("unknown-arch", |d| edit_config(d, |c| c["model_type"] = "gpt2".into())), &["gpt2", "model_type"]);
    // Found by tests/fuzz.rs: the first aborted the process on an allocation sized from config.json; the second
    // failed at the first forward pass instead of at load.
    expect_invalid(broken("huge-layers", |d| edit_config(d, |c| c["num_hidden_layers"] = u64::MAX.into())), &["model.safetensors"]);
    expect_invalid(broken("pad-outside-vocab", |d| edit_config(d, |c| c["pad_token_id"] = 100_000.into())), &["pad_token_id"]);
    expect_invalid(broken("bad-activation", |d| edit_config(d, |c| c["hidden_act"] = "swishy".into())), &["swishy"]);
}

#[test]
fn no_folder_at_all_is_not_found() {
    let svc = service("/no/such/model/anywhere".into());
    let err = svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::ModelNotFound);
    svc.close_blocking();
}
