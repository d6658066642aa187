//! `hub::download_snapshot` against a scripted hub on 127.0.0.1: the layout it writes, and what it does with
//! answers that cannot be trusted (names that are not digests, bytes that are not the file, a partial file
//! of someone else's bytes, a redirect off http). The Node suite (`__test__/hub.test.mjs`) runs the same
//! hostile servers through `downloadModel` and the service's load.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedding_service::hub::{self, Download, WantedFile};
use embedding_service::ErrorCode;

const COMMIT: &str = "c0ffee0000000000000000000000000000000003";

/// What one answer is: status, headers, body; `cut_after` sends that many body bytes and drops the connection.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut_after: Option<usize>,
}

type Handler = dyn Fn(&str, &str, Option<u64>) -> Reply + Send + Sync;

/// Serves each connection with `handler(method, path, range start)`; records "METHOD path range" lines.
fn serve(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (handler, seen) = (handler.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let mut range = None;
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = v.trim().trim_end_matches('-').parse::<u64>().ok();
                    }
                }
                seen.lock().unwrap().push(format!("{method} {path} {range:?}"));
                let reply = handler(&method, &path, range);
                let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                for (k, v) in &reply.headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                if method != "HEAD" {
                    let end = reply.cut_after.unwrap_or(reply.body.len()).min(reply.body.len());
                    let _ = stream.write_all(&reply.body[..end]);
                }
            });
        }
    });
    (base, log)
}

fn sha256(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn git_sha1(bytes: &[u8]) -> String {
    let mut c = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    c.update(format!("blob {}\0", bytes.len()).as_bytes());
    c.update(bytes);
    hex(c.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The repository being served: a small file in git and the weights in LFS, behind a CDN redirect.
fn files() -> HashMap<&'static str, Vec<u8>> {
    let weights: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    HashMap::from([("config.json", br#"{"model_type":"bert"}"#.to_vec()), ("model.safetensors", weights)])
}

/// How the scripted hub misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Good,
    EtagTraversal,
    WrongBytes,
    CutShortWrong,
    RedirectToFile,
}

fn hub(mode: Arc<Mutex<Mode>>) -> (String, Arc<Mutex<Vec<String>>>) {
    let files = files();
    let (cdn, _) = {
        let weights = files["model.safetensors"].clone();
        let mode = mode.clone();
        serve(Arc::new(move |_, _, range| {
            let mut body = weights.clone();
            let m = *mode.lock().unwrap();
            if matches!(m, Mode::WrongBytes | Mode::CutShortWrong) {
                body.iter_mut().step_by(1000).for_each(|b| *b ^= 0x5a);
            }
            let start = range.unwrap_or(0) as usize;
            let mut headers = vec![("Content-Length".to_string(), (body.len() - start).to_string())];
            if range.is_some() {
                headers.push(("Content-Range".into(), format!("bytes {start}-{}/{}", body.len() - 1, body.len())));
            }
            let cut_after = (m == Mode::CutShortWrong).then_some(20_000);
            Reply { status: if range.is_some() { 206 } else { 200 }, headers, body: body[start..].to_vec(), cut_after }
        }))
    };
    serve(Arc::new(move |_, path, _| {
        let m = *mode.lock().unwrap();
        let name = path.rsplit('/').next().unwrap_or("");
        let Some(data) = files.get(name) else {
            return Reply { status: 404, headers: vec![("Content-Length".into(), "0".into())], body: vec![], cut_after: None };
        };
        let traversal = "\"../../../escaped\"".to_string();
        let mut headers = vec![("X-Repo-Commit".to_string(), COMMIT.to_string())];
        if name == "model.safetensors" {
            let location = if m == Mode::RedirectToFile { "file:///etc/passwd".to_string() } else { format!("{cdn}/blob?sig=1") };
            let etag = if m == Mode::EtagTraversal { traversal } else { format!("\"{}\"", sha256(data)) };
            headers.extend([
                ("Location".to_string(), location),
                ("X-Linked-Etag".to_string(), etag),
                ("X-Linked-Size".to_string(), data.len().to_string()),
                ("Content-Length".to_string(), "0".to_string()),
            ]);
            return Reply { status: 302, headers, body: vec![], cut_after: None };
        }
        headers.push(("ETag".into(), format!("\"{}\"", git_sha1(data))));
        headers.push(("Content-Length".into(), data.len().to_string()));
        Reply { status: 200, headers, body: data.clone(), cut_after: None }
    }))
}

fn fresh_cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("es-hub-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    dir
}

const WANTED: &[WantedFile] = &[
    WantedFile { name: Cow::Borrowed("config.json"), required: true },
    WantedFile { name: Cow::Borrowed("modules.json"), required: false },
    WantedFile { name: Cow::Borrowed("model.safetensors"), required: true },
];

fn download(endpoint: &str, cache: &Path, revision: &str) -> embedding_service::Result<PathBuf> {
    hub::download_snapshot(
        cache,
        "org/m",
        revision,
        WANTED,
        Download {
            endpoint,
            token: None,
            read_timeout: Duration::from_secs(10),
            keep_going: &|| Ok(()),
            on_progress: &mut |_| {},
        },
    )
}

/// Only `cache` in the sandbox: nothing was written beside it.
fn nothing_outside(sandbox: &Path) {
    let entries: Vec<_> = std::fs::read_dir(sandbox).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["cache"], "files appeared outside the cache");
}

#[test]
fn a_good_hub_gives_the_huggingface_hub_layout() {
    let mode = Arc::new(Mutex::new(Mode::Good));
    let (endpoint, log) = hub(mode);
    let sandbox = fresh_cache("good");
    let cache = sandbox.join("cache");
    let dir = download(&endpoint, &cache, "main").unwrap();
    let repo = cache.join("models--org--m");
    assert_eq!(dir, repo.join("snapshots").join(COMMIT));
    for (name, data) in files() {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), data, "{name}");
    }
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), COMMIT);
    assert!(repo.join("blobs").join(sha256(&files()["model.safetensors"])).is_file());
    assert!(repo.join("blobs").join(git_sha1(&files()["config.json"])).is_file());
    // After the first answer, every file is asked for at that commit, so the snapshot is one commit's.
    let log = log.lock().unwrap();
    assert!(log.iter().skip(1).all(|l| l.contains(COMMIT)), "{log:?}");
    nothing_outside(&sandbox);
}

#[test]
fn hostile_answers_are_refused_and_a_good_hub_then_completes_the_same_cache() {
    for bad in [Mode::EtagTraversal, Mode::WrongBytes, Mode::CutShortWrong, Mode::RedirectToFile] {
        let mode = Arc::new(Mutex::new(bad));
        let (endpoint, _) = hub(mode.clone());
        let sandbox = fresh_cache("hostile");
        let cache = sandbox.join("cache");
        let err = download(&endpoint, &cache, "main").unwrap_err();
        assert_eq!(err.code, ErrorCode::Download, "{}", err.message);
        let expected = match bad {
            Mode::EtagTraversal => "X-Linked-Etag header is not a SHA-256",
            Mode::WrongBytes => "not to the digest its ETag promised",
            Mode::CutShortWrong => "broke off at byte",
            _ => "only http:// and https:// are followed",
        };
        assert!(err.message.contains(expected), "{}", err.message);
        nothing_outside(&sandbox);
        let snapshot = cache.join("models--org--m/snapshots").join(COMMIT);
        assert!(!snapshot.join("model.safetensors").exists());
        *mode.lock().unwrap() = Mode::Good;
        let dir = download(&endpoint, &cache, "main").unwrap();
        assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), files()["model.safetensors"]);
        nothing_outside(&sandbox);
    }
}

#[test]
fn a_revision_that_is_a_commit_must_be_the_commit_served() {
    let (endpoint, _) = hub(Arc::new(Mutex::new(Mode::Good)));
    let sandbox = fresh_cache("commit");
    let other = "1111111111111111111111111111111111111111";
    let err = download(&endpoint, &sandbox.join("cache"), other).unwrap_err();
    assert_eq!(err.code, ErrorCode::Download);
    assert!(err.message.contains(&format!("not {other}")), "{}", err.message);
    download(&endpoint, &sandbox.join("cache"), COMMIT).unwrap();
    // No ref is written for a commit: it names itself.
    assert!(!sandbox.join("cache/models--org--m/refs").exists());
}

#[test]
fn an_abort_ends_the_download_with_the_abort() {
    let (endpoint, _) = hub(Arc::new(Mutex::new(Mode::Good)));
    let sandbox = fresh_cache("abort");
    let err = hub::download_snapshot(
        &sandbox.join("cache"),
        "org/m",
        "main",
        WANTED,
        Download {
            endpoint: &endpoint,
            token: None,
            read_timeout: Duration::from_secs(10),
            keep_going: &|| Err(embedding_service::Error::aborted()),
            on_progress: &mut |_| {},
        },
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Aborted);
}
