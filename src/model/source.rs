//! Finding a model's files: a local folder is read directly; a hub id ("org/name") is resolved through the
//! Hugging Face hub cache with `hf-hub`, and downloaded into that cache when online and missing.

use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo, RepoType};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, ErrorCode, Result};

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

/// One file's download progress: bytes of `file` received so far, out of `total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadProgress {
    pub file: String,
    pub current: u64,
    pub total: u64,
}

/// Resolves a source to a folder on disk holding the model's files, downloading a hub model that is not
/// cached (when online) and reporting the download through `on_progress`.
pub fn resolve_with(source: &ModelSource, on_progress: &mut dyn FnMut(DownloadProgress), cancel: &AtomicBool) -> Result<PathBuf> {
    let path = Path::new(&source.model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    check_hub_id(&source.model)?;
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
    download(&cache_dir, source, on_progress, cancel)
}

/// `resolve_with` without progress reports or cancellation.
pub fn resolve(source: &ModelSource) -> Result<PathBuf> {
    resolve_with(source, &mut |_| {}, &AtomicBool::new(false))
}

/// Whether a model can load without the network: a local folder with a config.json, or a hub id whose
/// snapshot in the cache has every file a model needs. Reads the disk only.
pub fn is_cached(source: &ModelSource) -> bool {
    let path = Path::new(&source.model);
    if path.is_dir() {
        return path.join("config.json").is_file();
    }
    looks_like_hub_id(&source.model)
        && cached_snapshot(&source.cache_dir.clone().unwrap_or_else(default_cache_dir), &source.model, &source.revision)
            .is_some()
}

fn check_hub_id(model: &str) -> Result<()> {
    if model.trim().is_empty() {
        return Err(Error::invalid_input(
            "`model` is empty: give a hub id such as \"sentence-transformers/all-MiniLM-L6-v2\" or a path to a model folder",
        ));
    }
    if !looks_like_hub_id(model) {
        return Err(Error::model_not_found(format!(
            "no model folder at {model:?}, and it is not a hub id of the form \"org/name\""
        )));
    }
    Ok(())
}

/// The snapshot folder of a cached model, when every required file is there: the hub client writes each file
/// atomically, but a download interrupted between files leaves a snapshot with some of them, which must count
/// as not cached (and be completed) rather than load and fail. A revision that is itself a commit hash is
/// looked up directly, since no ref file names it.
pub fn cached_snapshot(cache_dir: &Path, model: &str, revision: &str) -> Option<PathBuf> {
    let repo = Repo::with_revision(model.to_string(), RepoType::Model, revision.to_string());
    let complete = |dir: &Path| REQUIRED_FILES.iter().all(|f| dir.join(f).is_file());
    if let Some(config) = Cache::new(cache_dir.to_path_buf()).repo(repo.clone()).get("config.json") {
        if let Some(dir) = config.parent().filter(|d| complete(d)) {
            return Some(dir.to_path_buf());
        }
    }
    let direct = cache_dir.join(repo.folder_name()).join("snapshots").join(revision);
    complete(&direct).then_some(direct)
}

/// Passes hf-hub's byte counts on, and stops a transfer that was cancelled.
struct Reporter<'a> {
    file: String,
    current: u64,
    total: u64,
    on_progress: &'a mut dyn FnMut(DownloadProgress),
    cancel: &'a AtomicBool,
}

/// The panic payload that stops a cancelled transfer (hf-hub's progress callback cannot return an error);
/// caught in `download`, never seen outside it.
struct Cancelled;

impl hf_hub::api::Progress for Reporter<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        (self.file, self.current, self.total) = (filename.to_string(), 0, size as u64);
        self.report();
    }
    fn update(&mut self, size: usize) {
        if self.cancel.load(Ordering::Relaxed) {
            std::panic::resume_unwind(Box::new(Cancelled));
        }
        self.current += size as u64;
        self.report();
    }
    fn finish(&mut self) {}
}

impl Reporter<'_> {
    fn report(&mut self) {
        (self.on_progress)(DownloadProgress { file: self.file.clone(), current: self.current, total: self.total });
    }
}

/// Passes on a file's start, its first bytes and its end, and other reports at most every 100 ms: the hub
/// client reports every few kilobytes.
pub fn throttled(mut report: impl FnMut(DownloadProgress)) -> impl FnMut(DownloadProgress) {
    let mut last: Option<(std::time::Instant, u64)> = None;
    move |p: DownloadProgress| {
        let first_bytes = p.current > 0 && last.is_none_or(|(_, reported)| reported == 0);
        let edge = p.current == 0 || p.current >= p.total || first_bytes;
        if edge || last.is_none_or(|(t, _)| t.elapsed() >= std::time::Duration::from_millis(100)) {
            last = Some((std::time::Instant::now(), p.current));
            report(p);
        }
    }
}

fn download(
    cache_dir: &Path,
    source: &ModelSource,
    on_progress: &mut dyn FnMut(DownloadProgress),
    cancel: &AtomicBool,
) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    let mut builder = ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf())).with_progress(false);
    // HF_ENDPOINT points at a mirror, as in huggingface_hub.
    if let Some(endpoint) = non_empty_env("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_string());
    }
    let api = builder
        .build()
        .map_err(|e| Error::model_not_found(format!("cannot reach the hub to download {:?}: {e}", source.model)))?;
    let repo = api.repo(Repo::with_revision(source.model.clone(), RepoType::Model, source.revision.clone()));
    let aborted = || Error::new(ErrorCode::Aborted, format!("the download of {:?} was aborted", source.model));
    let mut fetch = |file: &str| -> Result<std::result::Result<PathBuf, hf_hub::api::sync::ApiError>> {
        if cancel.load(Ordering::Relaxed) {
            return Err(aborted());
        }
        let reporter = Reporter { file: file.to_string(), current: 0, total: 0, on_progress: &mut *on_progress, cancel };
        // A cancelled transfer unwinds out of hf-hub, which leaves its partial file to resume from next time;
        // the finished files in the cache are complete, each renamed into place.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| repo.download_with_progress(file, reporter))) {
            Ok(result) => Ok(result),
            Err(payload) if payload.is::<Cancelled>() => Err(aborted()),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    };
    let mut snapshot = None;
    // The weights last: until they are in place the snapshot does not count as cached.
    for file in ["config.json", "tokenizer.json"].iter().chain(OPTIONAL_FILES).chain(["model.safetensors"].iter()) {
        let required = REQUIRED_FILES.contains(file);
        match fetch(file)? {
            Ok(path) => {
                if required {
                    snapshot = path.parent().map(Path::to_path_buf);
                }
            }
            Err(e) if required => {
                return Err(Error::model_not_found(format!(
                    "cannot download {file} of {:?} (revision {:?}) from the hub: {e}",
                    source.model, source.revision
                )))
            }
            // A sentence-transformers folder need not have every optional file.
            Err(_) => {}
        }
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
