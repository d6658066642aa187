//! HTTP to the hub (or a mirror) where every wait has an end and an abort.
//!
//! Each exchange runs on a thread of its own that makes the request and then streams the body through a small
//! bounded channel. The calling thread only ever waits on that channel, a tick at a time: between ticks it
//! asks `keep_going` (the caller's abort: a signal, `close()`, the watchdog), and it fails the transfer when
//! nothing has arrived for `read_timeout`. So an abort is seen within a tick at any point, mid-body included,
//! and the caller releases its lock and partial file at once. The exchange thread is left to end by itself:
//! its socket has the same read timeout, and its next send finds the channel gone.
//!
//! Redirects are followed here, not by the HTTP client, so that each target is checked (http or https only,
//! never from https down to http) and the token only ever goes to the endpoint's own origin.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use url::Url;

use super::names::quoted;
use crate::error::{Error, ErrorCode, Result};

/// How often a wait looks at `keep_going`: an abort is seen within this (well inside the 1 s promised).
const TICK: Duration = Duration::from_millis(50);
/// Redirects followed for one file (the hub needs one or two: a renamed repo, the CDN).
const MAX_REDIRECTS: usize = 10;
/// Body pieces in flight between the exchange thread and the writer; their buffers go back to the exchange
/// thread to be read into again (a fresh zeroed buffer per piece cost as much as the hashing).
const PIECES_IN_FLIGHT: usize = 8;
const PIECE_SIZE: usize = 256 * 1024;

/// What bounds every wait of a download.
pub struct Watch<'a> {
    /// Asked at least every `TICK` while waiting, and between pieces; an error ends the download with it.
    pub keep_going: &'a dyn Fn() -> Result<()>,
    /// No answer, and no body bytes, for this long: the download fails.
    pub read_timeout: Duration,
}

impl Watch<'_> {
    fn stalled(&self, what: &str) -> Error {
        Error::new(
            ErrorCode::Download,
            format!(
                "{what}: nothing arrived for {} s (downloadTimeoutMs); the partial file is kept and the next \
                 download resumes it",
                self.read_timeout.as_secs_f64()
            ),
        )
    }
}

/// A client for one endpoint.
pub struct Client {
    agent: ureq::Agent,
    endpoint: Url,
    token: Option<String>,
}

/// The status and the headers the download reads, of one answer.
pub struct Answer {
    pub status: u16,
    pub url: Url,
    headers: Vec<(String, String)>,
    body: Option<(Receiver<Piece>, SyncSender<Vec<u8>>)>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the exchange thread sends: the answer's head, then its body piece by piece.
enum Piece {
    Head { status: u16, headers: Vec<(String, String)> },
    Bytes(Chunk),
    End,
    Failed(FailedExchange),
}

/// Bytes of a body: the first `len` of a reused buffer.
pub struct Chunk {
    buffer: Vec<u8>,
    len: usize,
}

impl Chunk {
    pub fn bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

/// Why an exchange produced no answer, or a body ended early.
#[derive(Debug)]
struct FailedExchange {
    unreachable: bool,
    message: String,
}

/// A body being received.
pub struct Body {
    pieces: Receiver<Piece>,
    spares: SyncSender<Vec<u8>>,
    url: Url,
    last_check: Instant,
}

/// How a body's next read went.
pub enum Next {
    Bytes(Chunk),
    End,
    /// The connection ended or failed mid-body (a reset, a body cut short): the bytes so far are good to
    /// resume from.
    Broken(String),
}

impl Body {
    /// The next piece, waiting at most `read_timeout` for it.
    pub fn next(&mut self, watch: &Watch, what: &str) -> Result<Next> {
        // Pieces can come thousands of times a second; `keep_going` may take a lock, so it is asked once a tick.
        if self.last_check.elapsed() >= TICK {
            (watch.keep_going)()?;
            self.last_check = Instant::now();
        }
        match wait(&self.pieces, watch, what)? {
            Piece::Bytes(bytes) => Ok(Next::Bytes(bytes)),
            Piece::End => Ok(Next::End),
            Piece::Failed(f) => Ok(Next::Broken(f.message)),
            Piece::Head { .. } => Err(Error::internal(format!("a second answer head from {}", self.url))),
        }
    }

    /// Hands a chunk's buffer back to be read into again.
    pub fn recycle(&self, chunk: Chunk) {
        let _ = self.spares.try_send(chunk.buffer);
    }
}

/// Waits for the exchange thread's next piece: `keep_going` every tick, `read_timeout` in all.
fn wait(pieces: &Receiver<Piece>, watch: &Watch, what: &str) -> Result<Piece> {
    let deadline = Instant::now() + watch.read_timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(watch.stalled(what));
        }
        match pieces.recv_timeout(TICK.min(deadline - now)) {
            Ok(piece) => return Ok(piece),
            Err(RecvTimeoutError::Timeout) => (watch.keep_going)()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::internal(format!("{what}: the download thread ended without a word")))
            }
        }
    }
}

impl Client {
    /// A client for `endpoint` (the hub, or `HF_ENDPOINT`); `token` is sent to that origin only.
    pub fn new(endpoint: &str, token: Option<String>, read_timeout: Duration) -> Result<Client> {
        let endpoint = Url::parse(endpoint.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                Error::invalid_input(format!("HF_ENDPOINT {} is not an http:// or https:// URL", quoted(endpoint)))
            })?;
        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(true)
            .redirects(0)
            .timeout_connect(read_timeout)
            .timeout_read(read_timeout)
            .timeout_write(read_timeout)
            .user_agent(concat!("embedding-service/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client { agent, endpoint, token })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// `{endpoint}/{model}/resolve/{revision}/{file}`, each part percent-encoded as one path segment
    /// (a revision such as `refs/pr/1` included).
    pub fn resolve_url(&self, model: &str, revision: &str, file: &str) -> Url {
        let mut url = self.endpoint.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(model.split('/'));
            path.push("resolve");
            path.push(revision);
            path.extend(file.split('/'));
        }
        url
    }

    /// Sends one request and waits for its head; a GET's body can then be read from the answer.
    pub fn exchange(&self, method: &'static str, url: &Url, range_from: u64, watch: &Watch, what: &str) -> Result<Answer> {
        let mut request = self.agent.request_url(method, url).set("Accept-Encoding", "identity");
        if range_from > 0 {
            request = request.set("Range", &format!("bytes={range_from}-"));
        }
        if let Some(token) = self.token.as_deref().filter(|_| url.origin() == self.endpoint.origin()) {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        let (tx, rx) = sync_channel(PIECES_IN_FLIGHT);
        let (spares_tx, spares) = sync_channel::<Vec<u8>>(PIECES_IN_FLIGHT + 2);
        let stream_body = method == "GET";
        std::thread::Builder::new()
            .name("embedding-download-http".into())
            .spawn(move || {
                let response = match request.call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(_, r)) => r,
                    Err(ureq::Error::Transport(t)) => {
                        let unreachable = matches!(t.kind(), ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed);
                        let _ = tx.send(Piece::Failed(FailedExchange { unreachable, message: t.to_string() }));
                        return;
                    }
                };
                let status = response.status();
                let headers = response
                    .headers_names()
                    .into_iter()
                    .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
                    .collect();
                if tx.send(Piece::Head { status, headers }).is_err() || !stream_body || !(200..300).contains(&status) {
                    return;
                }
                let mut reader = response.into_reader();
                loop {
                    let mut buffer = spares.try_recv().unwrap_or_else(|_| vec![0u8; PIECE_SIZE]);
                    let sent = match reader.read(&mut buffer) {
                        Ok(0) => {
                            let _ = tx.send(Piece::End);
                            return;
                        }
                        Ok(len) => tx.send(Piece::Bytes(Chunk { buffer, len })),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.send(Piece::Failed(FailedExchange { unreachable: false, message: e.to_string() }));
                            return;
                        }
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::internal(format!("cannot start a download thread: {e}")))?;
        match wait(&rx, watch, what)? {
            Piece::Head { status, headers } => {
                Ok(Answer { status, url: url.clone(), headers, body: Some((rx, spares_tx)) })
            }
            Piece::Failed(f) if f.unreachable => Err(Error::model_not_found(format!(
                "{what}: cannot reach {} ({})",
                origin_of(url),
                f.message
            ))),
            Piece::Failed(f) => Err(Error::new(ErrorCode::Download, format!("{what}: {}", f.message))),
            Piece::Bytes(_) | Piece::End => Err(Error::internal(format!("{what}: a body before the answer's head"))),
        }
    }

    /// Takes the body of a GET's answer.
    pub fn body(answer: &mut Answer) -> Result<Body> {
        let (pieces, spares) = answer.body.take().ok_or_else(|| Error::internal("the answer's body was taken twice"))?;
        Ok(Body { pieces, spares, url: answer.url.clone(), last_check: Instant::now() })
    }

    /// Where a 3xx answer points: its `Location`, resolved against the request, if it is http or https and
    /// not a step down from https to http. Anything else is refused (a `file:` target would be read locally).
    pub fn redirect_target(answer: &Answer, what: &str) -> Result<Url> {
        let location = answer
            .header("Location")
            .ok_or_else(|| download_error(format!("{what}: a redirect ({}) without a Location header", answer.status)))?;
        let target = answer
            .url
            .join(location)
            .map_err(|e| download_error(format!("{what}: a redirect to {}, which is not a URL ({e})", quoted(location))))?;
        if !matches!(target.scheme(), "http" | "https") || !target.has_host() {
            return Err(download_error(format!(
                "{what}: refusing a redirect to {} (only http:// and https:// are followed)",
                quoted(location)
            )));
        }
        if answer.url.scheme() == "https" && target.scheme() == "http" {
            return Err(download_error(format!(
                "{what}: refusing a redirect from https down to plain http ({})",
                quoted(location)
            )));
        }
        Ok(target)
    }

    /// Whether `Location` is a path on the same server (the hub's answer for a renamed repo), as opposed to
    /// an absolute URL (the hub's CDN). `//host/path` names a host, so it is not relative.
    pub fn is_relative_redirect(answer: &Answer) -> bool {
        answer.header("Location").is_some_and(|l| {
            matches!(Url::parse(l), Err(url::ParseError::RelativeUrlWithoutBase))
                && answer.url.join(l).is_ok_and(|target| target.origin() == answer.url.origin())
        })
    }

    pub const MAX_REDIRECTS: usize = MAX_REDIRECTS;
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

pub fn download_error(message: String) -> Error {
    Error::new(ErrorCode::Download, message)
}

pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A server on loopback that answers each connection with `reply` and then holds it open, silent.
    fn silent_after(reply: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(reply);
                held.push(stream);
            }
        });
        addr
    }

    fn never_stop() -> Result<()> {
        Ok(())
    }

    #[test]
    fn a_server_that_never_answers_is_a_coded_stall_not_a_hang() {
        let addr = silent_after(b"");
        let client = Client::new(&addr, None, Duration::from_millis(300)).unwrap();
        let watch = Watch { keep_going: &never_stop, read_timeout: Duration::from_millis(300) };
        let url = client.resolve_url("org/m", "main", "config.json");
        let err = client.exchange("GET", &url, 0, &watch, "config.json").err().unwrap();
        assert_eq!(err.code, ErrorCode::Download);
        assert!(err.message.contains("nothing arrived for 0.3 s"), "{}", err.message);
    }

    #[test]
    fn a_body_that_stops_mid_file_ends_in_a_stall_and_an_abort_ends_it_sooner() {
        let addr = silent_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        let client = Client::new(&addr, None, Duration::from_secs(30)).unwrap();
        let url = client.resolve_url("org/m", "main", "model.safetensors");
        let watch = Watch { keep_going: &never_stop, read_timeout: Duration::from_millis(300) };
        let mut answer = client.exchange("GET", &url, 0, &watch, "f").unwrap();
        assert_eq!(answer.status, 200);
        let mut body = Client::body(&mut answer).unwrap();
        assert!(matches!(body.next(&watch, "f").unwrap(), Next::Bytes(b) if b.bytes() == b"0123456789"));
        assert_eq!(body.next(&watch, "f").err().unwrap().code, ErrorCode::Download);

        // The same stuck body, aborted: the abort's own error comes back within a tick or two.
        let aborted = AtomicBool::new(false);
        let keep_going = || if aborted.load(Ordering::Relaxed) { Err(Error::aborted()) } else { Ok(()) };
        let watch = Watch { keep_going: &keep_going, read_timeout: Duration::from_secs(30) };
        let mut answer = client.exchange("GET", &url, 0, &watch, "f").unwrap();
        let mut body = Client::body(&mut answer).unwrap();
        assert!(matches!(body.next(&watch, "f").unwrap(), Next::Bytes(_)));
        aborted.store(true, Ordering::Relaxed);
        let started = Instant::now();
        assert_eq!(body.next(&watch, "f").err().unwrap().code, ErrorCode::Aborted);
        assert!(started.elapsed() < Duration::from_secs(29), "the abort waited for the read timeout");
    }

    #[test]
    fn nobody_listening_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None, Duration::from_secs(5)).unwrap();
        let watch = Watch { keep_going: &never_stop, read_timeout: Duration::from_secs(5) };
        let url = client.resolve_url("org/m", "main", "config.json");
        let err = client.exchange("HEAD", &url, 0, &watch, "config.json").err().unwrap();
        assert_eq!(err.code, ErrorCode::ModelNotFound);
        assert!(err.message.contains("cannot reach"), "{}", err.message);
    }

    fn answer(url: &str, status: u16, location: Option<&str>) -> Answer {
        Answer {
            status,
            url: Url::parse(url).unwrap(),
            headers: location.map(|l| ("location".to_string(), l.to_string())).into_iter().collect(),
            body: None,
        }
    }

    #[test]
    fn redirects_go_to_http_or_https_only_and_never_down_to_http() {
        let hub = "https://hub.example/org/m/resolve/main/model.safetensors";
        let cdn = Client::redirect_target(&answer(hub, 302, Some("https://cdn.example/x?sig=1")), "f").unwrap();
        assert_eq!(cdn.as_str(), "https://cdn.example/x?sig=1");
        let renamed = answer(hub, 307, Some("/org/new/resolve/main/model.safetensors"));
        assert!(Client::is_relative_redirect(&renamed));
        assert_eq!(Client::redirect_target(&renamed, "f").unwrap().as_str(), "https://hub.example/org/new/resolve/main/model.safetensors");
        assert!(!Client::is_relative_redirect(&answer(hub, 302, Some("https://cdn.example/x"))));
        assert!(!Client::is_relative_redirect(&answer(hub, 302, Some("//cdn.example/x"))));
        for bad in ["file:///etc/passwd", "ftp://cdn.example/x", "http://cdn.example/x", "data:text/plain,hi"] {
            let err = Client::redirect_target(&answer(hub, 302, Some(bad)), "f").unwrap_err();
            assert_eq!(err.code, ErrorCode::Download, "{bad}");
        }
        assert_eq!(Client::redirect_target(&answer(hub, 302, None), "f").unwrap_err().code, ErrorCode::Download);
        // From plain http, https and http are both fine.
        Client::redirect_target(&answer("http://127.0.0.1:1/a", 302, Some("http://127.0.0.1:2/b")), "f").unwrap();
    }

    #[test]
    fn resolve_urls_encode_each_part_and_keep_a_mirror_prefix() {
        let client = Client::new("https://mirror.example/hf/", None, Duration::from_secs(1)).unwrap();
        assert_eq!(
            client.resolve_url("org/m", "refs/pr/1", "1_Pooling/config.json").as_str(),
            "https://mirror.example/hf/org/m/resolve/refs%2Fpr%2F1/1_Pooling/config.json"
        );
        assert!(Client::new("file:///tmp", None, Duration::from_secs(1)).is_err());
    }
}
