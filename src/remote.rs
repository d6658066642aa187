//! A remote embedding server as the service's backend: any engine that speaks the OpenAI-compatible
//! `POST {endpoint}/embeddings` (`{model, input}` in, `data[].embedding` out): text-embeddings-inference,
//! infinity, vLLM, Ollama. The worker, lanes, lifecycle and watchdog stay the same; only a batch's forward pass
//! becomes HTTP requests.
//!
//! One step sends up to `concurrency` batches at once, one per connection, and waits for all of them, so a
//! query that arrives during an index job waits for at most one batch per connection before it goes first.
//! Connection failures and 429/503 answers are retried with backoff, each batch whole: a batch's vectors come
//! from exactly one answer, so no text is dropped or counted twice. Everything else fails the request with
//! `ERR_REMOTE`, carrying the server's status and message.
//!
//! A server is not trusted: every value must be finite in f32, an answer may be no larger than what was asked
//! for could take (texts x dimensions), redirects are not followed (vectors only ever come from the request
//! that carried the texts), a TLS failure is not retried, and the API key never appears in an error: it must
//! be a valid header value, and server messages are scrubbed of it. Credentials in the endpoint URL are refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// The API's base URL, e.g. `http://gpu-box:7997/v1`; requests go to `{endpoint}/embeddings`.
    pub endpoint: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Requests in flight at once (connections); a query waits behind at most one batch on each.
    pub concurrency: usize,
}

/// Requests in flight by default: two keeps a server busy between answers, and a query waits behind at most
/// two batches (one per connection) during an index job.
pub const DEFAULT_CONCURRENCY: usize = 2;

impl RemoteOptions {
    /// A malformed endpoint or key is the caller's mistake, refused before any request; neither message quotes
    /// a secret.
    pub fn validate(&self) -> Result<()> {
        let endpoint = self.endpoint.trim_end_matches('/');
        let host = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)) {
            return Err(Error::invalid_input(format!(
                "`endpoint` {:?} must be an http:// or https:// URL such as \"http://gpu-box:7997/v1\"",
                redact_userinfo(&self.endpoint)
            )));
        }
        if host.is_some_and(|h| h.split(['/', '?', '#']).next().unwrap_or("").contains('@')) {
            return Err(Error::invalid_input(format!(
                "`endpoint` {:?} carries credentials (user:password@); they would travel in every message that names \
                 the server: pass the key as `apiKey` instead",
                redact_userinfo(&self.endpoint)
            )));
        }
        if let Some(key) = &self.api_key {
            if key.is_empty() {
                return Err(Error::invalid_input("`apiKey` is empty"));
            }
            if let Some(at) = key.chars().position(|c| !c.is_ascii_graphic()) {
                return Err(Error::invalid_input(format!(
                    "`apiKey` has a character that cannot be sent in an HTTP header at position {at} (a space, a line \
                     break or another control character, or a non-ASCII character); the key is not shown"
                )));
            }
        }
        if self.concurrency == 0 {
            return Err(Error::invalid_input("`remoteConcurrency` must be at least 1"));
        }
        Ok(())
    }
}

/// The URL with any `user:password@` replaced, for messages.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_string() };
    let authority_end = url[scheme_end..].find(['/', '?', '#']).map_or(url.len(), |i| scheme_end + i);
    match url[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end], &url[scheme_end + at + 1..]),
        None => url.to_string(),
    }
}

/// The largest answer accepted for `texts` vectors of `dimensions` (0: not known yet, the first probe): room for
/// each value written out in full (`-1.2345678901234567e-10,` is 24 bytes) and per-item JSON, plus a margin.
fn answer_limit(texts: usize, dimensions: usize) -> u64 {
    let dimensions = if dimensions == 0 { 16_384 } else { dimensions };
    64 * 1024 + texts as u64 * (512 + dimensions as u64 * 32)
}

/// How often the worker, waiting for the server, checks whether the request was aborted or the service closed.
const WAIT_TICK: Duration = Duration::from_millis(20);

/// Retries of one batch after a refused or reset connection or a 429/503 answer, with delays doubling from
/// `FIRST_RETRY_DELAY` (or the server's `Retry-After`, up to `MAX_RETRY_DELAY`), all within `RETRY_BUDGET`
/// (about 6 s of pauses when the server refuses at once): a server restarting in place is waited for, and a
/// dead one is reported.
const RETRIES: u32 = 5;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
const RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Characters per token, to estimate a text's tokens for batching (the tokenizer is on the server). About 4
/// for English with WordPiece or BPE vocabularies; the estimate only shapes batches and `token_counts`.
const CHARS_PER_TOKEN: usize = 4;

pub struct RemoteEmbedder {
    agent: ureq::Agent,
    url: String,
    model: String,
    api_key: Option<String>,
    concurrency: usize,
    dimensions: usize,
    unit_length: bool,
    prompts: BTreeMap<String, String>,
    /// The server's throughput in estimated tokens per second, from its recent answers to batches (not single
    /// short texts, whose time is mostly the round trip); shared by the request threads.
    rate: Arc<parking_lot::Mutex<Option<f64>>>,
}

/// Unit length within what f32 sums of a few thousand values keep.
fn is_unit_length(v: &[f32]) -> bool {
    let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    (norm - 1.0).abs() < 1e-3
}

/// Answers smaller than this many estimated tokens do not count towards the server's measured throughput.
const RATE_MIN_TOKENS: usize = 64;

impl RemoteEmbedder {
    /// Checks that the server answers for `model` (one embedding of a short text) and learns its dimensions.
    /// `read_timeout` bounds a request that gets no answer; the watchdog reports it first, as a stall. `check`
    /// runs while waiting, as in `embed_batches`: an error from it (the service closed) ends the wait.
    pub fn connect(
        options: &RemoteOptions,
        model: &str,
        read_timeout: Duration,
        check: impl FnMut(bool) -> Result<()>,
    ) -> Result<Self> {
        options.validate()?;
        let endpoint = options.endpoint.trim_end_matches('/');
        let agent = ureq::AgentBuilder::new()
            // A redirected POST arrives as a body-less GET: its answer would be vectors for texts it never saw.
            .redirects(0)
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(read_timeout)
            .timeout_write(read_timeout)
            .max_idle_connections_per_host(options.concurrency.max(1))
            .build();
        let mut remote = RemoteEmbedder {
            agent,
            url: format!("{endpoint}/embeddings"),
            model: model.to_string(),
            api_key: options.api_key.clone(),
            concurrency: options.concurrency.max(1),
            dimensions: 0,
            unit_length: false,
            prompts: crate::model::known_prompts::for_model(model).unwrap_or_default(),
            rate: Arc::default(),
        };
        // Servers that route by model answer 404 naming it (vLLM, Ollama: ERR_MODEL_NOT_FOUND from `post`); others
        // answer for whatever they serve (infinity, text-embeddings-inference), so their model list is checked.
        let probe = remote.embed_batches(vec![vec!["dimension probe".to_string()]], vec![vec![0]], check)?;
        let first = probe.first().and_then(|b| b.first());
        remote.dimensions = first.map_or(0, Vec::len);
        remote.unit_length = first.is_some_and(|v| is_unit_length(v));
        if remote.dimensions == 0 {
            return Err(Error::remote(format!("{}: the server answered with an empty vector", remote.url)));
        }
        if let Some(served) = remote.served_models(endpoint) {
            // Ollama lists tagged names ("nomic-embed-text:latest") and answers for the untagged one.
            if !served.iter().any(|id| id == model || id.strip_suffix(":latest") == Some(model)) {
                return Err(Error::model_not_found(format!(
                    "the server at {endpoint} serves {}, not {model:?}; set `model` to one of those names",
                    served.iter().map(|id| format!("{id:?}")).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(remote)
    }

    /// The model names `GET {endpoint}/models` lists (the OpenAI API's model list), where the server has one.
    fn served_models(&self, endpoint: &str) -> Option<Vec<String>> {
        let mut request = self.agent.get(&format!("{endpoint}/models")).timeout(Duration::from_secs(10));
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let body: serde_json::Value = serde_json::from_str(&request.call().ok()?.into_string().ok()?).ok()?;
        let ids: Vec<String> =
            body.get("data")?.as_array()?.iter().filter_map(|m| m.get("id")?.as_str().map(str::to_string)).collect();
        (!ids.is_empty()).then_some(ids)
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Whether the server's vectors are unit-length (it normalises, as text-embeddings-inference does by
    /// default), judged from the probe's.
    pub fn unit_length(&self) -> bool {
        self.unit_length
    }

    /// Estimated tokens per second the server has been answering at, once a batch has been answered.
    pub fn tokens_per_second(&self) -> Option<f64> {
        *self.rate.lock()
    }

    fn record_rate(&self, texts: &[String], elapsed: Duration) {
        let tokens: usize = texts.iter().map(|t| estimated_tokens(t)).sum();
        if tokens < RATE_MIN_TOKENS || elapsed.is_zero() {
            return;
        }
        let now = tokens as f64 / elapsed.as_secs_f64();
        let mut rate = self.rate.lock();
        *rate = Some(rate.map_or(now, |r| 0.7 * r + 0.3 * now));
    }

    /// Batches sent at once by one step.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The prompts applied here, before sending (the OpenAI API has no prompt field): the model's known ones.
    pub fn prompt_names(&self) -> Vec<String> {
        self.prompts.keys().cloned().collect()
    }

    /// The text to send and its estimated tokens, with the named prompt prepended.
    pub fn prepare(&self, texts: &[String], prompt: Option<&str>) -> Result<Vec<(String, usize)>> {
        let prefix = match prompt {
            None => "",
            Some(name) => self.prompts.get(name).map(String::as_str).ok_or_else(|| {
                Error::invalid_input(format!(
                    "unknown prompt {name:?}; this model's prompts are: {}",
                    if self.prompts.is_empty() { "none".to_string() } else { self.prompt_names().join(", ") }
                ))
            })?,
        };
        Ok(texts
            .iter()
            .map(|t| {
                let text = format!("{prefix}{t}");
                let tokens = estimated_tokens(&text);
                (text, tokens)
            })
            .collect())
    }

    /// Sends each batch as one request, all at once, and returns their vectors in the same order. `positions`
    /// are the texts' places in the caller's request (for messages). `check` runs on the worker thread after
    /// each answer (`true`: progress) and every few milliseconds while waiting (`false`); an error from it
    /// abandons the batches still in flight, whose answers are then discarded and whose retries stop.
    pub fn embed_batches(
        &self,
        batches: Vec<Vec<String>>,
        positions: Vec<Vec<usize>>,
        mut check: impl FnMut(bool) -> Result<()>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let count = batches.len();
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        for (i, (texts, positions)) in batches.into_iter().zip(positions).enumerate() {
            let (tx, cancel) = (tx.clone(), cancel.clone());
            let request = self.clone_for_request();
            std::thread::Builder::new()
                .name("embedding-remote-request".into())
                .spawn(move || {
                    let answer = request.post(&texts, &positions, &cancel);
                    let _ = tx.send((i, answer));
                })
                .map_err(|e| Error::internal(format!("cannot start a request thread: {e}")))?;
        }
        drop(tx);
        let mut answers: Vec<Option<Vec<Vec<f32>>>> = (0..count).map(|_| None).collect();
        let mut received = 0;
        let outcome = loop {
            if received == count {
                break Ok(());
            }
            match rx.recv_timeout(WAIT_TICK) {
                Ok((i, Ok(vectors))) => {
                    answers[i] = Some(vectors);
                    received += 1;
                    if let Err(e) = check(true) {
                        break Err(e);
                    }
                }
                Ok((_, Err(e))) => break Err(e),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = check(false) {
                        break Err(e);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break Err(Error::internal("a request thread ended without an answer")),
            }
        };
        if let Err(e) = outcome {
            cancel.store(true, Ordering::Relaxed);
            return Err(e);
        }
        Ok(answers.into_iter().map(|a| a.expect("every batch answered")).collect())
    }

    /// What one request thread needs: the agent shares its connection pool.
    fn clone_for_request(&self) -> RemoteEmbedder {
        RemoteEmbedder {
            agent: self.agent.clone(),
            url: self.url.clone(),
            model: self.model.clone(),
            api_key: self.api_key.clone(),
            concurrency: self.concurrency,
            dimensions: self.dimensions,
            unit_length: self.unit_length,
            prompts: BTreeMap::new(),
            rate: self.rate.clone(),
        }
    }

    /// A message about the server, with the API key scrubbed out wherever the server (or a transport error)
    /// quoted it.
    fn redact(&self, message: String) -> String {
        match &self.api_key {
            Some(key) if !key.is_empty() => message.replace(key.as_str(), "[apiKey redacted]"),
            _ => message,
        }
    }

    fn remote_error(&self, message: String) -> Error {
        Error::remote(self.redact(message))
    }

    /// One batch, retried whole on connection failures and 429/503.
    fn post(&self, texts: &[String], positions: &[usize], cancel: &AtomicBool) -> Result<Vec<Vec<f32>>> {
        let body = serde_json::json!({ "model": self.model, "input": texts, "encoding_format": "float" }).to_string();
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::aborted());
            }
            let mut request = self.agent.post(&self.url).set("Content-Type", "application/json");
            if let Some(key) = &self.api_key {
                request = request.set("Authorization", &format!("Bearer {key}"));
            }
            let sent = std::time::Instant::now();
            let retry_after = match request.send_string(&body) {
                Ok(response) if (300..400).contains(&response.status()) => {
                    let location = response.header("Location").map(redact_userinfo).unwrap_or_default();
                    return Err(self.remote_error(format!(
                        "{} answered {} (a redirect to {location:?}); redirects are not followed, since the texts \
                         would not travel with them: set `endpoint` to the final URL",
                        self.url,
                        response.status()
                    )));
                }
                Ok(response) => {
                    let vectors = self.parse(response, positions)?;
                    self.record_rate(texts, sent.elapsed());
                    return Ok(vectors);
                }
                Err(ureq::Error::Status(429 | 503, response)) if attempt < RETRIES => {
                    let after = response.header("Retry-After").and_then(|s| s.trim().parse::<u64>().ok());
                    let _ = response.into_string();
                    after.map(Duration::from_secs)
                }
                Err(ureq::Error::Status(status, response)) => {
                    let message = server_message(&response.into_string().unwrap_or_default());
                    if status == 404 && message.to_lowercase().contains("model") {
                        return Err(Error::model_not_found(self.redact(format!(
                            "{} does not serve {:?}: {status} {message}",
                            self.url, self.model
                        ))));
                    }
                    return Err(self.remote_error(format!("{} answered {status} {message}", self.url)));
                }
                Err(ureq::Error::Transport(t)) if attempt < RETRIES && retryable(&t) => None,
                Err(ureq::Error::Transport(t)) => {
                    let what = t.to_string();
                    return Err(self.remote_error(if what.contains(&self.url) { what } else { format!("{}: {what}", self.url) }));
                }
            };
            attempt += 1;
            let pause = retry_after.unwrap_or(delay).min(MAX_RETRY_DELAY);
            if started.elapsed() + pause > RETRY_BUDGET {
                return Err(self.remote_error(format!(
                    "{}: still unavailable after {attempt} tries in {:.1} s",
                    self.url,
                    started.elapsed().as_secs_f64()
                )));
            }
            std::thread::sleep(pause);
            delay *= 2;
        }
    }

    fn parse(&self, response: ureq::Response, positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        #[derive(serde::Deserialize)]
        struct Item {
            embedding: Vec<f32>,
            index: Option<usize>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<Item>,
        }
        use std::io::Read;
        let expected = positions.len();
        let limit = answer_limit(expected, self.dimensions);
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.remote_error(format!("{}: reading the answer: {e}", self.url)))?;
        if bytes.len() as u64 > limit {
            return Err(self.remote_error(format!(
                "{}: an answer larger than {limit} bytes for {expected} texts (more than their vectors can take)",
                self.url
            )));
        }
        let text = String::from_utf8_lossy(&bytes);
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            self.remote_error(format!("{}: not an embeddings answer ({e}): {}", self.url, server_message(&text)))
        })?;
        if answer.data.len() != expected {
            return Err(self.remote_error(format!("{}: {} vectors for {expected} texts", self.url, answer.data.len())));
        }
        // The API numbers its items; servers may answer out of order.
        let mut vectors: Vec<Option<Vec<f32>>> = (0..expected).map(|_| None).collect();
        for (position, item) in answer.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(position);
            if i >= expected || vectors[i].is_some() {
                return Err(self.remote_error(format!("{}: an answer with a bad or repeated index {i}", self.url)));
            }
            if self.dimensions != 0 && item.embedding.len() != self.dimensions {
                return Err(self.remote_error(format!(
                    "{}: a vector of {} dimensions, not {}",
                    self.url,
                    item.embedding.len(),
                    self.dimensions
                )));
            }
            // A value past f32's range (1e39) is valid JSON and becomes infinity: a wrong vector, never returned.
            if let Some(v) = item.embedding.iter().position(|x| !x.is_finite()) {
                return Err(self.remote_error(format!(
                    "{}: the vector for text {} has a value that is not a finite f32 (component {v})",
                    self.url, positions[i]
                )));
            }
            vectors[i] = Some(item.embedding);
        }
        Ok(vectors.into_iter().map(|v| v.expect("all indices filled")).collect())
    }
}

/// A text's tokens as estimated here (the tokenizer is on the server), special tokens included.
fn estimated_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN) + 2
}

/// Failures worth another try: the server refused or dropped the connection (not started yet, restarting).
/// Timeouts are not: a host that drops packets would cost a connect timeout per try, and a request that got
/// no answer in the stall time is the watchdog's to report. Nor is a TLS failure (a certificate, or https to
/// a plain-http server): it fails the same way every time, so it is reported at once.
fn retryable(t: &ureq::Transport) -> bool {
    use ureq::ErrorKind::*;
    let text = t.to_string().to_lowercase();
    if text.contains("timed out") || text.contains("tls") || text.contains("certificate") || text.contains("handshake") {
        return false;
    }
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return false; // a TLS record where none was expected, or garbage: not the connection's fault
            }
        }
        source = e.source();
    }
    matches!(t.kind(), ConnectionFailed | Dns | Io)
}

/// The server's own message, from a JSON error body where it has one (`{"error": {"message": ...}}`,
/// `{"detail": ...}`, `{"message": ...}`), else the body itself, shortened.
fn server_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let found = parsed.as_ref().and_then(|v| {
        [v.pointer("/error/message"), v.get("error"), v.get("detail"), v.get("message")]
            .into_iter()
            .flatten()
            .find_map(|m| match m {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            })
    });
    let text = found.unwrap_or_else(|| body.trim().to_string());
    if text.chars().count() > 500 {
        format!("{}…", text.chars().take(500).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn server_messages_are_found_in_the_usual_error_bodies() {
        assert_eq!(server_message(r#"{"error":{"message":"model x not found","type":"invalid"}}"#), "model x not found");
        assert_eq!(server_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(server_message(r#"{"error":"overloaded"}"#), "overloaded");
        assert_eq!(server_message("plain text\n"), "plain text");
        assert_eq!(server_message(&"x".repeat(600)).chars().count(), 501);
    }

    #[test]
    fn bad_endpoints_are_invalid_input_before_any_request() {
        let options = |endpoint: &str| RemoteOptions { endpoint: endpoint.into(), api_key: None, concurrency: 1 };
        for bad in ["not a url", "ftp://host/v1"] {
            let err = RemoteEmbedder::connect(&options(bad), "m", Duration::from_secs(1), |_| Ok(())).err().unwrap();
            assert_eq!(err.code, ErrorCode::InvalidInput, "{bad}: {}", err.message);
        }
    }

    /// A scripted peer, not a server: it answers each connection with the next canned response and records
    /// the request bodies, so the retry rules can be checked exactly.
    fn scripted_peer(responses: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for response in responses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                bodies.push(String::from_utf8(body).unwrap());
                let mut stream = stream;
                stream.write_all(response.as_bytes()).unwrap();
            }
            bodies
        });
        (url, handle)
    }

    fn http(status: &str, headers: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}", body.len())
    }

    #[test]
    fn a_503_and_a_429_are_retried_and_the_batch_is_answered_once_in_order() {
        let answer = r#"{"data":[{"index":1,"embedding":[0.0,1.0]},{"index":0,"embedding":[1.0,0.0]}]}"#;
        let (url, peer) = scripted_peer(vec![
            http("503 Service Unavailable", "Retry-After: 0\r\n", r#"{"error":"loading"}"#),
            http("429 Too Many Requests", "", r#"{"error":"slow down"}"#),
            http("200 OK", "", answer),
        ]);
        let remote = RemoteEmbedder {
            agent: ureq::AgentBuilder::new().build(),
            url: format!("{url}/embeddings"),
            model: "m".into(),
            api_key: Some("k".into()),
            concurrency: 1,
            dimensions: 2,
            unit_length: false,
            prompts: BTreeMap::new(),
            rate: Arc::default(),
        };
        let got = remote.post(&["a".into(), "b".into()], &[0, 1], &AtomicBool::new(false)).unwrap();
        assert_eq!(got, vec![vec![1.0, 0.0], vec![0.0, 1.0]], "placed by index, not by position");
        let bodies = peer.join().unwrap();
        assert_eq!(bodies.len(), 3);
        assert!(bodies.iter().all(|b| b == &bodies[0]), "every retry sends the same batch: {bodies:?}");
        assert!(bodies[0].contains(r#""input":["a","b"]"#), "{}", bodies[0]);
    }

    #[test]
    fn other_error_answers_are_not_retried_and_quote_the_server() {
        let (url, peer) = scripted_peer(vec![http("401 Unauthorized", "", r#"{"detail":"bad key"}"#)]);
        let remote = RemoteEmbedder {
            agent: ureq::AgentBuilder::new().build(),
            url: format!("{url}/embeddings"),
            model: "m".into(),
            api_key: None,
            concurrency: 1,
            dimensions: 0,
            unit_length: false,
            prompts: BTreeMap::new(),
            rate: Arc::default(),
        };
        let err = remote.post(&["a".into()], &[0], &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.code, ErrorCode::Remote);
        assert!(err.message.contains("401") && err.message.contains("bad key"), "{}", err.message);
        assert_eq!(peer.join().unwrap().len(), 1);
    }

    fn embedder(url: &str, api_key: Option<&str>, dimensions: usize) -> RemoteEmbedder {
        RemoteEmbedder {
            agent: ureq::AgentBuilder::new().redirects(0).build(),
            url: format!("{url}/embeddings"),
            model: "m".into(),
            api_key: api_key.map(str::to_string),
            concurrency: 1,
            dimensions,
            unit_length: false,
            prompts: BTreeMap::new(),
            rate: Arc::default(),
        }
    }

    #[test]
    fn a_value_beyond_f32_is_refused_naming_the_text() {
        // 1e39 is valid JSON and overflows f32 to infinity.
        let answer = r#"{"data":[{"index":0,"embedding":[0.5,0.5]},{"index":1,"embedding":[1e39,0.0]}]}"#;
        let (url, peer) = scripted_peer(vec![http("200 OK", "", answer)]);
        let err = embedder(&url, None, 2).post(&["a".into(), "b".into()], &[7, 12], &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.code, ErrorCode::Remote);
        assert!(err.message.contains("text 12") && err.message.contains("finite"), "{}", err.message);
        peer.join().unwrap();
    }

    #[test]
    fn a_redirect_is_not_followed_and_fails_the_batch() {
        let (url, peer) = scripted_peer(vec![http("302 Found", "Location: http://user:pw@elsewhere.example/v1/embeddings\r\n", "")]);
        let err = embedder(&url, Some("sk-secret"), 2).post(&["a".into()], &[0], &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.code, ErrorCode::Remote);
        assert!(err.message.contains("302") && err.message.contains("redirect"), "{}", err.message);
        assert!(!err.message.contains("pw@"), "{}", err.message);
        assert_eq!(peer.join().unwrap().len(), 1, "one request, the redirect not followed");
    }

    #[test]
    fn the_api_key_never_appears_in_a_message() {
        let key = "sk-live-0123456789abcdef";
        let body = format!(r#"{{"error":{{"message":"invalid header Authorization: Bearer {key}"}}}}"#);
        let (url, peer) = scripted_peer(vec![http("401 Unauthorized", "", &body)]);
        let err = embedder(&url, Some(key), 2).post(&["a".into()], &[0], &AtomicBool::new(false)).unwrap_err();
        assert!(err.message.contains("401") && err.message.contains("[apiKey redacted]"), "{}", err.message);
        assert!(!err.message.contains(key), "{}", err.message);
        peer.join().unwrap();
        // Keys that cannot be a header value are refused up front, without quoting them.
        for bad in ["sk-with-newline\n", "sk-ünïcode", "sk with space", ""] {
            let options = RemoteOptions { endpoint: "http://127.0.0.1:1/v1".into(), api_key: Some(bad.into()), concurrency: 1 };
            let err = options.validate().unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidInput);
            assert!(bad.is_empty() || !err.message.contains(bad.trim()), "{}", err.message);
        }
    }

    #[test]
    fn credentials_in_the_endpoint_are_refused_without_quoting_them() {
        let options = RemoteOptions { endpoint: "http://alice:hunter2@gpu-box:7997/v1".into(), api_key: None, concurrency: 1 };
        let err = options.validate().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);
        assert!(!err.message.contains("hunter2") && !err.message.contains("alice"), "{}", err.message);
        assert!(err.message.contains("http://***@gpu-box:7997/v1"), "{}", err.message);
        assert_eq!(redact_userinfo("https://h/v1?next=a@b"), "https://h/v1?next=a@b");
    }

    #[test]
    fn an_answer_may_be_as_large_as_its_vectors_need_and_no_larger() {
        // 300 texts of 3,072 dimensions, every value written out in full: about 20 MB, over ureq's 10 MB default.
        let value = "-0.012345678901234567";
        let row = vec![value; 3072].join(",");
        let items: Vec<String> = (0..300).map(|i| format!(r#"{{"index":{i},"embedding":[{row}]}}"#)).collect();
        let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
        assert!(body.len() > 15_000_000);
        let (url, peer) = scripted_peer(vec![http("200 OK", "", &body)]);
        let texts: Vec<String> = (0..300).map(|i| format!("t{i}")).collect();
        let positions: Vec<usize> = (0..300).collect();
        let got = embedder(&url, None, 3072).post(&texts, &positions, &AtomicBool::new(false)).unwrap();
        assert_eq!(got.len(), 300);
        peer.join().unwrap();
        // The same bytes for 2 texts: more than 2 vectors can take.
        let (url, peer) = scripted_peer(vec![http("200 OK", "", &body)]);
        let err = embedder(&url, None, 3072).post(&texts[..2], &positions[..2], &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.code, ErrorCode::Remote);
        assert!(err.message.contains("larger than"), "{}", err.message);
        drop(peer);
    }

    #[test]
    fn a_tls_failure_is_reported_at_once_not_retried() {
        use std::io::{Read, Write};
        // A plain-HTTP peer that an https:// endpoint reaches: it counts the connections it gets.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let counter = std::thread::spawn(move || {
            let mut accepted = 0;
            let until = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < until {
                if let Ok((mut stream, _)) = listener.accept() {
                    accepted += 1;
                    stream.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 512];
                    let _ = stream.read(&mut buf);
                    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            accepted
        });
        let started = std::time::Instant::now();
        let err = embedder(&format!("https://127.0.0.1:{port}/v1"), None, 2).post(&["a".into()], &[0], &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.code, ErrorCode::Remote, "{}", err.message);
        assert!(started.elapsed() < Duration::from_secs(2), "retried: {:?} ({})", started.elapsed(), err.message);
        assert_eq!(counter.join().unwrap(), 1, "{}", err.message);
    }

    #[test]
    fn a_refused_connection_is_retried_then_reported_as_remote() {
        // A port just bound and released: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = RemoteOptions { endpoint: format!("http://127.0.0.1:{port}/v1"), api_key: None, concurrency: 1 };
        let err = RemoteEmbedder::connect(&options, "m", Duration::from_secs(1), |_| Ok(())).err().unwrap();
        assert_eq!(err.code, ErrorCode::Remote, "{}", err.message);
        assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{}", err.message);
    }
}
