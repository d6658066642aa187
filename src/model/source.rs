//! Finding a model's files: a local folder is read directly; a hub id ("org/name") is resolved through the
//! Hugging Face hub cache, and downloaded into that cache when online and missing (`crate::hub`, which treats
//! the hub or mirror that answers as hostile until checked).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::hub::cache::RepoCache;
use crate::hub::names::{self, Commit};
use crate::hub::{self, WantedFile};
use crate::model::st_config;

pub use crate::hub::DownloadProgress;

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
    /// A download that receives nothing for this long fails (`ERR_DOWNLOAD`).
    pub download_timeout: Duration,
}

/// No bytes for this long fails a download, unless `HF_HUB_DOWNLOAD_TIMEOUT` (seconds, as in
/// `huggingface_hub`) or `downloadTimeoutMs` says otherwise. Longer than `huggingface_hub`'s 10 s, which it
/// follows with retries; a stall here is reported to the caller instead.
pub const DEFAULT_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

impl ModelSource {
    /// A source with the defaults the Python tools use: revision "main", the cache from the environment,
    /// offline when `HF_HUB_OFFLINE` is set to a true value, and `HF_HUB_DOWNLOAD_TIMEOUT`.
    pub fn new(model: impl Into<String>) -> Self {
        ModelSource {
            model: model.into(),
            revision: "main".into(),
            cache_dir: None,
            offline: offline_from_env(),
            download_timeout: download_timeout_from_env(),
        }
    }
}

/// `HF_HUB_OFFLINE=1` (or true/yes/on) means offline, as in `huggingface_hub`.
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// `HF_HUB_DOWNLOAD_TIMEOUT` in seconds (a positive number), else the default.
pub fn download_timeout_from_env() -> Duration {
    non_empty_env("HF_HUB_DOWNLOAD_TIMEOUT")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_DOWNLOAD_TIMEOUT)
}

/// The hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = non_empty_env("HF_HUB_CACHE") {
        return PathBuf::from(dir);
    }
    hf_home().join("hub")
}

/// `$HF_HOME`, else `~/.cache/huggingface`.
fn hf_home() -> PathBuf {
    match non_empty_env("HF_HOME") {
        Some(home) => PathBuf::from(home),
        None => home_dir().join(".cache").join("huggingface"),
    }
}

/// The hub token, as `huggingface_hub` finds it: `$HF_TOKEN`, else the file at `$HF_TOKEN_PATH`, else
/// `$HF_HOME/token` (written by `hf auth login`).
fn token() -> Option<String> {
    let from_file = || {
        let path = non_empty_env("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home().join("token"));
        std::fs::read_to_string(path).ok()
    };
    non_empty_env("HF_TOKEN").or_else(from_file).map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
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

/// The files a download fetches first: everything but the weights.
fn config_files() -> Vec<WantedFile> {
    let first = ["config.json", "tokenizer.json"].into_iter().map(|name| WantedFile { name: name.into(), required: true });
    let optional = OPTIONAL_FILES.iter().map(|&name| WantedFile { name: name.into(), required: false });
    first.chain(optional).collect()
}

/// The files a download fetches second, once `modules.json` (if any) is in `snapshot`: the modules' own files
/// (a Dense module's weights), then the weights last, so that until they are in place the snapshot does not
/// count as cached.
fn module_and_weight_files(snapshot: &Path) -> Result<Vec<WantedFile>> {
    let listed = match st_config::read_json_opt(&snapshot.join("modules.json"))? {
        Some(modules) => st_config::module_files(&modules)?,
        None => Vec::new(),
    };
    let modules = listed.into_iter().filter(|(name, _)| !OPTIONAL_FILES.contains(&name.as_str()));
    let modules = modules.map(|(name, required)| WantedFile { name: name.into(), required });
    Ok(modules.chain([WantedFile { name: "model.safetensors".into(), required: true }]).collect())
}

/// Resolves a source to a folder on disk holding the model's files, downloading a hub model that is not
/// cached (when online) and reporting the download through `on_progress`. `keep_going` is asked at least
/// every 50 ms during a download; its error ends the download (an abort, the service closing).
pub fn resolve_with(
    source: &ModelSource,
    on_progress: &mut dyn FnMut(DownloadProgress),
    keep_going: &dyn Fn() -> Result<()>,
) -> Result<PathBuf> {
    let path = Path::new(&source.model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    check_hub_id(&source.model)?;
    names::check_revision(&source.revision)?;
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
    let endpoint = non_empty_env("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".to_string());
    let token = token();
    let mut download = |revision: &str, files: &[WantedFile]| {
        let download = hub::Download { endpoint: &endpoint, token: token.clone(), read_timeout: source.download_timeout, keep_going, on_progress: &mut *on_progress };
        hub::download_snapshot(&cache_dir, &source.model, revision, files, download)
    };
    // Two passes: the folder's small files, then what its modules.json says it also needs and the weights,
    // at the commit the first pass resolved (the snapshot folder's name), so both are one commit's files.
    let first = download(&source.revision, &config_files())?;
    let commit = first.file_name().and_then(|c| c.to_str()).ok_or_else(|| Error::internal("a snapshot folder without a commit name"))?.to_string();
    let dir = download(&commit, &module_and_weight_files(&first)?)?;
    if !snapshot_complete(&dir) {
        return Err(Error::model_not_found(format!(
            "the download of {:?} left {} without one of {}",
            source.model,
            dir.display(),
            REQUIRED_FILES.join(", ")
        )));
    }
    Ok(dir)
}

/// `resolve_with` without progress reports or cancellation.
pub fn resolve(source: &ModelSource) -> Result<PathBuf> {
    resolve_with(source, &mut |_| {}, &|| Ok(()))
}

/// Whether a model can load without the network: a local folder with a config.json, or a hub id whose
/// snapshot in the cache has every file a model needs. Reads the disk only.
pub fn is_cached(source: &ModelSource) -> bool {
    let path = Path::new(&source.model);
    if path.is_dir() {
        return path.join("config.json").is_file();
    }
    looks_like_hub_id(&source.model)
        && names::check_revision(&source.revision).is_ok()
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

fn snapshot_complete(dir: &Path) -> bool {
    // The files its modules.json requires too (a Dense module's weights). A modules.json that does not read
    // or names paths that are not plain folder names counts as complete here: loading it then says what is
    // wrong with it, where "not cached" would not.
    let modules = st_config::read_json_opt(&dir.join("modules.json")).ok().flatten().and_then(|m| st_config::module_files(&m).ok());
    REQUIRED_FILES.iter().all(|f| dir.join(f).is_file())
        && modules.unwrap_or_default().iter().filter(|(_, required)| *required).all(|(f, _)| dir.join(f).is_file())
}

/// The snapshot folder of a cached model, when every required file is there: a download interrupted between
/// files leaves a snapshot with some of them, which must count as not cached (and be completed) rather than
/// load and fail. `refs/<revision>` names the commit (only a 40-hex commit id is believed); a revision that
/// is itself a commit id is looked up directly, since no ref file names it.
pub fn cached_snapshot(cache_dir: &Path, model: &str, revision: &str) -> Option<PathBuf> {
    let cache = RepoCache::new(cache_dir, model);
    let commit = Commit::parse(revision).or_else(|| cache.read_ref(revision))?;
    let dir = cache.snapshot(&commit);
    snapshot_complete(&dir).then_some(dir)
}

/// Passes on a file's start, its first bytes and its end, and other reports at most every 100 ms: the
/// transfer reports every piece it receives.
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
            download_timeout: DEFAULT_DOWNLOAD_TIMEOUT,
        };
        let err = resolve(&source).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::ModelNotFound);
        assert!(err.message.contains(&dir.display().to_string()), "{}", err.message);
    }
}
