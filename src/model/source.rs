//! Finding a model's files: a local folder is read directly; a hub id ("org/name") is resolved through the
//! Hugging Face hub cache with `hf-hub`, and downloaded into that cache when online and missing.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

/// Where a model comes from, as the caller described it.
#[derive(Debug, Clone)]
pub struct ModelSource {
    /// A hub id ("org/name") or a path to a local model folder.
    pub model: String,
    /// Branch, tag or commit of a hub model; "main" unless told otherwise.
    pub revision: String,
    /// Hub cache folder; `None` means the usual environment lookup.
    pub cache_dir: Option<PathBuf>,
    /// Never touch the network.
    pub offline: bool,
}

impl ModelSource {
    /// A source with the defaults the Python tools use: revision "main", the cache from the environment, and
    /// offline when `HF_HUB_OFFLINE` is set to a true value.
    pub fn new(model: impl Into<String>) -> Self {
        ModelSource { model: model.into(), revision: "main".into(), cache_dir: None, offline: offline_from_env() }
    }
}

/// `HF_HUB_OFFLINE=1` (or true/yes/on) means offline, as in `huggingface_hub`.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = non_empty_env("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(home) = non_empty_env("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    home_dir().join(".cache").join("huggingface").join("hub")
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home_dir() -> PathBuf {
    non_empty_env("HOME")
        .or_else(|| non_empty_env("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A hub id is one or two path segments of letters, digits, '-', '_' and '.', not starting with '.'.
pub fn looks_like_hub_id(model: &str) -> bool {
    let segments: Vec<&str> = model.split('/').collect();
    (1..=2).contains(&segments.len())
        && segments.iter().all(|s| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Files a sentence-transformers folder may have beside the weights; fetched when present on the hub.
const OPTIONAL_FILES: &[&str] = &[
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "1_Pooling/config.json",
];
const REQUIRED_FILES: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];

/// Resolves a source to a folder on disk holding the model's files.
pub fn resolve(source: &ModelSource) -> Result<PathBuf> {
    let path = Path::new(&source.model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if source.model.trim().is_empty() {
        return Err(Error::invalid_input("`model` is empty: give a hub id such as \"sentence-transformers/all-MiniLM-L6-v2\" or a path to a model folder"));
    }
    if !looks_like_hub_id(&source.model) {
        return Err(Error::model_not_found(format!(
            "no model folder at {:?}, and it is not a hub id of the form \"org/name\"",
            source.model
        )));
    }
    let cache_dir = source.cache_dir.clone().unwrap_or_else(default_cache_dir);
    if let Some(dir) = cached_snapshot(&cache_dir, &source.model, &source.revision) {
        return Ok(dir);
    }
    if source.offline {
        return Err(Error::model_not_found(format!(
            "model {:?} (revision {:?}) is not in the hub cache at {} and the service is offline; download it \
             once while online, point `cacheDir` at a cache that has it, or pass a local folder",
            source.model,
            source.revision,
            cache_dir.display()
        )));
    }
    download(&cache_dir, source)
}

/// The snapshot folder of a cached model, when its config is there. A revision that is itself a commit hash is
/// looked up directly, since no ref file names it.
pub fn cached_snapshot(cache_dir: &Path, model: &str, revision: &str) -> Option<PathBuf> {
    let repo = Repo::with_revision(model.to_string(), RepoType::Model, revision.to_string());
    if let Some(config) = Cache::new(cache_dir.to_path_buf()).repo(repo.clone()).get("config.json") {
        return config.parent().map(Path::to_path_buf);
    }
    let direct = cache_dir.join(repo.folder_name()).join("snapshots").join(revision);
    direct.join("config.json").is_file().then_some(direct)
}

fn download(cache_dir: &Path, source: &ModelSource) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    let api = ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf()))
        .with_progress(false)
        .build()
        .map_err(|e| Error::model_not_found(format!("cannot reach the hub to download {:?}: {e}", source.model)))?;
    let repo = api.repo(Repo::with_revision(source.model.clone(), RepoType::Model, source.revision.clone()));
    let mut snapshot = None;
    for file in REQUIRED_FILES {
        let path = repo.get(file).map_err(|e| {
            Error::model_not_found(format!("cannot download {file} of {:?} from the hub: {e}", source.model))
        })?;
        snapshot = path.parent().map(Path::to_path_buf);
    }
    for file in OPTIONAL_FILES {
        // A sentence-transformers folder need not have every optional file; a missing one is not an error.
        let _ = repo.get(file);
    }
    snapshot.ok_or_else(|| Error::internal("hub download returned no snapshot folder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_paths_are_told_apart() {
        assert!(looks_like_hub_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(looks_like_hub_id("gpt2"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("org/na me"));
    }

    #[test]
    fn a_missing_folder_that_is_no_hub_id_is_not_found() {
        let err = resolve(&ModelSource::new("/definitely/not/here")).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::ModelNotFound);
        assert!(err.message.contains("/definitely/not/here"));
    }

    #[test]
    fn an_uncached_hub_id_while_offline_is_not_found_and_names_the_cache() {
        let dir = std::env::temp_dir().join(format!("es-empty-cache-{}", std::process::id()));
        let source = ModelSource {
            model: "org/not-cached".into(),
            revision: "main".into(),
            cache_dir: Some(dir.clone()),
            offline: true,
        };
        let err = resolve(&source).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::ModelNotFound);
        assert!(err.message.contains(&dir.display().to_string()), "{}", err.message);
    }
}
