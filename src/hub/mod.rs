//! Downloading a model's files from the Hugging Face hub, or a mirror (`HF_ENDPOINT`), into the hub cache.
//!
//! Whatever answers is treated as hostile until checked, because a mirror, a proxy or anyone on a plain-HTTP
//! path can answer in the hub's place:
//! - the names it gives (the commit, each file's ETag, redirect targets) are checked before they touch the
//!   file system (`names`): a commit is 40 hex digits, a blob is named by a SHA-256 or git SHA-1 digest;
//! - every file's bytes are hashed as they arrive and must match that digest before the file is moved into
//!   `blobs/` and linked into `snapshots/` (`digest`); more bytes than announced are refused as they come;
//! - every wait ends (`http`): no bytes for `read_timeout` fails the download, and `keep_going` (an abort
//!   signal, `close()`, the watchdog) is asked at least every 50 ms, mid-body included;
//! - a blob downloads under an OS file lock, released when the download ends however it ends; its partial
//!   file is resumed by the next download, or restarted when its bytes turn out not to be the file's.
//!
//! hf-hub's own download API cannot do these (it takes the ETag and commit as path names unchecked, has no
//! read timeout, and its progress callback cannot stop a transfer), so the transfer is ours; the layout is
//! hf-hub's and `huggingface_hub`'s (`cache`).

pub mod cache;
mod digest;
mod http;
pub mod names;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode, Result};
use cache::RepoCache;
use digest::Hasher;
use http::{download_error, is_redirect, Answer, Client, Next, Watch};
use names::{BlobId, Commit};

/// One file's download progress: bytes of `file` received so far, out of `total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadProgress {
    pub file: String,
    pub current: u64,
    pub total: u64,
}

/// A file to fetch, and whether the model needs it (an optional file the hub does not have is skipped).
#[derive(Debug, Clone)]
pub struct WantedFile {
    /// A path inside the repository: the caller's own names, or a sentence-transformers module's files
    /// (`st_config::module_files`, checked to be plain folder names).
    pub name: std::borrow::Cow<'static, str>,
    pub required: bool,
}

/// What a download is told by its caller.
pub struct Download<'a> {
    /// The hub or a mirror: `https://huggingface.co` or `HF_ENDPOINT`.
    pub endpoint: &'a str,
    /// Sent as a bearer token to the endpoint's own origin only (never to the CDN it redirects to).
    pub token: Option<String>,
    /// No bytes for this long fails the download.
    pub read_timeout: Duration,
    /// Asked at least every 50 ms; an error ends the download with that error.
    pub keep_going: &'a dyn Fn() -> Result<()>,
    pub on_progress: &'a mut dyn FnMut(DownloadProgress),
}

/// How many times one file's transfer is resumed after its connection broke mid-body with bytes received.
const RESUMES: usize = 5;

/// Downloads `files` of `model` at `revision` into the hub cache at `cache_dir`, and returns the snapshot
/// folder. All files come from one commit: the first answer's, or `revision` itself when it is a commit id.
pub fn download_snapshot(
    cache_dir: &Path,
    model: &str,
    revision: &str,
    files: &[WantedFile],
    download: Download,
) -> Result<PathBuf> {
    names::check_revision(revision)?;
    let Download { endpoint, token, read_timeout, keep_going, on_progress } = download;
    let client = Client::new(endpoint, token, read_timeout)?;
    let watch = Watch { keep_going, read_timeout };
    let cache = RepoCache::new(cache_dir, model);
    let asked_commit = Commit::parse(revision);
    let mut commit: Option<Commit> = None;
    for file in files {
        keep_going()?;
        let name = file.name.as_ref();
        let what = format!("{file} of {model:?} from {}", client.endpoint(), file = name);
        let at = commit.as_ref().or(asked_commit.as_ref()).map_or(revision, Commit::as_str);
        let url = client.resolve_url(model, at, name);
        let mut meta = match metadata(&client, url.clone(), &watch, &what)? {
            Found::File(meta) => meta,
            Found::Missing(_) if !file.required => continue,
            Found::Missing(why) => {
                return Err(Error::model_not_found(format!(
                    "cannot download {} of {model:?} (revision {revision:?}) from {}: {why}",
                    name,
                    client.endpoint()
                )))
            }
        };
        let expected = commit.as_ref().or(asked_commit.as_ref());
        if let Some(expected) = expected.filter(|c| **c != meta.commit) {
            return Err(download_error(format!(
                "{what}: the answer is for commit {}, not {expected} (X-Repo-Commit)",
                meta.commit
            )));
        }
        if meta.location == url {
            // Fetched at the commit, not the branch, so a push in between cannot mix two commits' files.
            meta.location = client.resolve_url(model, meta.commit.as_str(), name);
        }
        if commit.is_none() {
            if asked_commit.is_none() {
                cache.write_ref(revision, &meta.commit).map_err(|e| cache_error(&what, e))?;
            }
            commit = Some(meta.commit.clone());
        }
        let pointer = cache.pointer(&meta.commit, name);
        if pointer.is_file() {
            (on_progress)(DownloadProgress { file: name.to_string(), current: meta.size, total: meta.size });
            continue;
        }
        let new_blob = !cache.blob(&meta.blob).is_file();
        if new_blob {
            fetch_blob(&client, &cache, &meta, name, &watch, on_progress, &what)?;
        } else {
            (on_progress)(DownloadProgress { file: name.to_string(), current: meta.size, total: meta.size });
        }
        cache.link(&meta.commit, name, &meta.blob, new_blob).map_err(|e| cache_error(&what, e))?;
    }
    let commit = commit.ok_or_else(|| Error::internal("a download with no files"))?;
    Ok(cache.snapshot(&commit))
}

/// What the hub says about one file before it is fetched.
struct Metadata {
    commit: Commit,
    blob: BlobId,
    size: u64,
    /// Where the bytes are: the resolve URL, or the CDN it redirects to.
    location: url::Url,
}

enum Found {
    File(Metadata),
    /// 404 (no such file or repo), 401 or 403 (gated, private, or no such repo): why, for the message.
    Missing(String),
}

/// Asks for a file's commit, digest and size with HEAD, as `huggingface_hub` does: a relative redirect (a
/// renamed repo) is followed; an absolute one (the CDN) is where the bytes will be fetched from, and its
/// answer's headers describe the file.
fn metadata(client: &Client, mut url: url::Url, watch: &Watch, what: &str) -> Result<Found> {
    for _ in 0..=Client::MAX_REDIRECTS {
        let answer = client.exchange("HEAD", &url, 0, watch, what)?;
        if is_redirect(answer.status) && Client::is_relative_redirect(&answer) {
            url = Client::redirect_target(&answer, what)?;
            continue;
        }
        return match answer.status {
            s if (200..300).contains(&s) || is_redirect(s) => {
                let location = if is_redirect(s) { Client::redirect_target(&answer, what)? } else { url };
                Ok(Found::File(describe(&answer, location, what)?))
            }
            404 => Ok(Found::Missing("HTTP 404: no such file, repository or revision".into())),
            s @ (401 | 403) => Ok(Found::Missing(format!(
                "HTTP {s}: no such repository, or it is private or gated (set HF_TOKEN to a token that has access)"
            ))),
            s => Err(download_error(format!("{what}: the server answered HTTP {s}"))),
        };
    }
    Err(download_error(format!("{what}: more than {} redirects", Client::MAX_REDIRECTS)))
}

/// The file's commit, digest and size, from the headers of the answer that describes it.
fn describe(answer: &Answer, location: url::Url, what: &str) -> Result<Metadata> {
    let with_file = |e: Error| Error::new(e.code, format!("{what}: {}", e.message));
    let commit = Commit::from_header("X-Repo-Commit", answer.header("X-Repo-Commit")).map_err(with_file)?;
    let (etag_header, etag) = match answer.header("X-Linked-Etag") {
        Some(v) => ("X-Linked-Etag", Some(v)),
        None => ("ETag", answer.header("ETag")),
    };
    let blob = BlobId::from_etag(etag_header, etag).map_err(with_file)?;
    let (size_header, size) = match answer.header("X-Linked-Size") {
        Some(v) => ("X-Linked-Size", Some(v)),
        None => ("Content-Length", answer.header("Content-Length")),
    };
    let size = size
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| download_error(format!("{what}: no file size in its {size_header} header ({size:?})")))?;
    Ok(Metadata { commit, blob, size, location })
}

/// Downloads one blob into `blobs/`, verified, under its lock.
fn fetch_blob(
    client: &Client,
    cache: &RepoCache,
    meta: &Metadata,
    file: &str,
    watch: &Watch,
    on_progress: &mut dyn FnMut(DownloadProgress),
    what: &str,
) -> Result<()> {
    let _lock = wait_for_lock(cache, &meta.blob, watch, what)?;
    let blob = cache.blob(&meta.blob);
    // Another download may have finished it while this one waited for the lock.
    if blob.is_file() {
        return Ok(());
    }
    let part_path = cache.incomplete(&meta.blob);
    let mut part = Partial::open(&part_path, meta, what)?;
    let mut report = |current: u64| on_progress(DownloadProgress { file: file.to_string(), current, total: meta.size });
    report(part.have);
    // A partial file from an earlier download may hold bytes that are not this file's (a broken or hostile
    // server wrote them): when the whole does not verify, it is restarted once from nothing.
    let resumed = part.have > 0;
    let verified = match transfer(client, meta, &mut part, watch, &mut report, what)? {
        Ok(()) => Ok(()),
        Err(_) if resumed => {
            part.restart().map_err(|e| cache_error(what, e))?;
            report(0);
            transfer(client, meta, &mut part, watch, &mut report, what)?
        }
        Err(mismatch) => Err(mismatch),
    };
    if let Err(mismatch) = verified {
        drop(part);
        let _ = fs::remove_file(&part_path);
        return Err(mismatch);
    }
    // Not synced to disk before the rename, as huggingface_hub and hf-hub do not: it cost a third of a
    // loopback download's time, and the bytes were checked as they arrived.
    drop(part);
    fs::rename(&part_path, &blob).map_err(|e| cache_error(what, e))
}

/// Waits for a blob's lock while another download holds it, for as long as that download makes progress
/// (its partial file grows): one that stops for `read_timeout` is reported, never waited on forever.
fn wait_for_lock(cache: &RepoCache, blob: &BlobId, watch: &Watch, what: &str) -> Result<cache::BlobLock> {
    let part = cache.incomplete(blob);
    let size = || fs::metadata(&part).map(|m| m.len()).ok();
    let (mut seen, mut since) = (size(), Instant::now());
    loop {
        if let Some(lock) = cache.try_lock(blob).map_err(|e| cache_error(what, e))? {
            return Ok(lock);
        }
        (watch.keep_going)()?;
        let now = size();
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() >= watch.read_timeout {
            return Err(download_error(format!(
                "{what}: another download of this file (in this or another process) holds its lock and has \
                 made no progress for {} s",
                watch.read_timeout.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A blob's `.incomplete` file and the hash of the bytes in it so far.
struct Partial {
    file: File,
    have: u64,
    hasher: Hasher,
    size: u64,
    kind: names::DigestKind,
}

impl Partial {
    /// Opens the partial file to resume from, hashing the bytes it already holds.
    fn open(path: &Path, meta: &Metadata, what: &str) -> Result<Partial> {
        fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(|e| cache_error(what, e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| cache_error(what, e))?;
        let mut part = Partial { file, have: 0, hasher: Hasher::new(meta.blob.kind(), meta.size), size: meta.size, kind: meta.blob.kind() };
        let on_disk = part.file.metadata().map_err(|e| cache_error(what, e))?.len();
        if on_disk > meta.size {
            part.restart().map_err(|e| cache_error(what, e))?;
            return Ok(part);
        }
        let mut buffer = vec![0u8; 1 << 20];
        let mut reader = (&part.file).take(on_disk);
        loop {
            let n = reader.read(&mut buffer).map_err(|e| cache_error(what, e))?;
            if n == 0 {
                break;
            }
            part.hasher.update(&buffer[..n]);
            part.have += n as u64;
        }
        part.file.seek(SeekFrom::Start(part.have)).map_err(|e| cache_error(what, e))?;
        Ok(part)
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.have = 0;
        self.hasher = Hasher::new(self.kind, self.size);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.have += bytes.len() as u64;
        Ok(())
    }
}

/// Fetches the rest of the file into `part` (resuming, and resuming again when a connection breaks after
/// bytes arrived), then checks the digest. The outer `Result` is a failed transfer; the inner one a complete
/// file whose bytes are not the file the ETag names.
fn transfer(
    client: &Client,
    meta: &Metadata,
    part: &mut Partial,
    watch: &Watch,
    report: &mut dyn FnMut(u64),
    what: &str,
) -> Result<Result<()>> {
    let mut resumes = 0;
    while part.have < meta.size {
        let mut body = open_body(client, meta, part, watch, what)?;
        let before = part.have;
        let broken = loop {
            match body.next(watch, what)? {
                Next::Bytes(chunk) => {
                    let bytes = chunk.bytes();
                    if part.have + bytes.len() as u64 > meta.size {
                        part.restart().map_err(|e| cache_error(what, e))?;
                        return Err(download_error(format!(
                            "{what}: the server sent more than the {} bytes it announced",
                            meta.size
                        )));
                    }
                    part.append(bytes).map_err(|e| cache_error(what, e))?;
                    body.recycle(chunk);
                    report(part.have);
                }
                Next::End if part.have == meta.size => break None,
                Next::End => break Some(format!("the body ended after {} of {} bytes", part.have, meta.size)),
                Next::Broken(why) => break Some(why),
            }
        };
        if let Some(why) = broken {
            if part.have == before || resumes == RESUMES {
                return Err(download_error(format!(
                    "{what}: the transfer broke off at byte {} of {} ({why}); the next download resumes it",
                    part.have, meta.size
                )));
            }
            resumes += 1;
        }
    }
    // An abort that came while the last pieces were arriving still wins: the file is not moved into place.
    (watch.keep_going)()?;
    let hasher = std::mem::replace(&mut part.hasher, Hasher::new(part.kind, part.size));
    Ok(hasher.matches(&meta.blob).map_err(|got| {
        download_error(format!(
            "{what}: its bytes hash to {got}, not to the digest its ETag promised ({}); the server sent a corrupt \
             or altered file, and nothing of it was kept",
            meta.blob
        ))
    }))
}

/// Starts the transfer of the bytes `part` lacks, following redirects; a server that ignores the range and
/// sends the whole file restarts the partial file.
fn open_body(client: &Client, meta: &Metadata, part: &mut Partial, watch: &Watch, what: &str) -> Result<http::Body> {
    let mut url = meta.location.clone();
    for _ in 0..=Client::MAX_REDIRECTS {
        let mut answer = client.exchange("GET", &url, part.have, watch, what)?;
        match answer.status {
            s if is_redirect(s) => url = Client::redirect_target(&answer, what)?,
            200 => {
                if part.have > 0 {
                    part.restart().map_err(|e| cache_error(what, e))?;
                }
                return Client::body(&mut answer);
            }
            206 => {
                let start = answer.header("Content-Range").and_then(range_start);
                if start != Some(part.have) {
                    return Err(download_error(format!(
                        "{what}: asked for bytes from {}, the answer's Content-Range is {:?}",
                        part.have,
                        answer.header("Content-Range")
                    )));
                }
                return Client::body(&mut answer);
            }
            s => return Err(download_error(format!("{what}: the server answered HTTP {s} to the download"))),
        }
    }
    Err(download_error(format!("{what}: more than {} redirects", Client::MAX_REDIRECTS)))
}

/// The first byte of `bytes <start>-<end>/<size>`.
fn range_start(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

fn cache_error(what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorCode::Download, format!("{what}: cannot write to the hub cache: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_give_their_first_byte() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes 0-0/5"), Some(0));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }
}
