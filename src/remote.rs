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
    /// A malformed endpoint is the caller's mistake, refused before any request.
    pub fn validate(&self) -> Result<()> {
        let endpoint = self.endpoint.trim_end_matches('/');
        let host = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
        if host.is_none_or(|h| h.is_empty() || h.starts_with('/') || h.contains(char::is_whitespace)) {
            return Err(Error::invalid_input(format!(
                "`endpoint` {:?} must be an http:// or https:// URL such as \"http://gpu-box:7997/v1\"",
                self.endpoint
            )));
        }
        if self.concurrency == 0 {
            return Err(Error::invalid_input("`remoteConcurrency` must be at least 1"));
        }
        Ok(())
    }
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
    prompts: BTreeMap<String, String>,
}

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
            prompts: crate::model::known_prompts::for_model(model).unwrap_or_default(),
        };
        // Servers that route by model answer 404 naming it (vLLM, Ollama: ERR_MODEL_NOT_FOUND from `post`); others
        // answer for whatever they serve (infinity, text-embeddings-inference), so their model list is checked.
        let probe = remote.embed_batches(vec![vec!["dimension probe".to_string()]], check)?;
        remote.dimensions = probe.first().and_then(|b| b.first()).map_or(0, Vec::len);
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
                let tokens = text.chars().count().div_ceil(CHARS_PER_TOKEN) + 2;
                (text, tokens)
            })
            .collect())
    }

    /// Sends each batch as one request, all at once, and returns their vectors in the same order. `check` runs
    /// on the worker thread after each answer (`true`: progress) and every few milliseconds while waiting
    /// (`false`); an error from it abandons the batches still in flight, whose answers are then discarded and
    /// whose retries stop.
    pub fn embed_batches(
        &self,
        batches: Vec<Vec<String>>,
        mut check: impl FnMut(bool) -> Result<()>,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let count = batches.len();
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        for (i, texts) in batches.into_iter().enumerate() {
            let (tx, cancel) = (tx.clone(), cancel.clone());
            let request = self.clone_for_request();
            std::thread::Builder::new()
                .name("embedding-remote-request".into())
                .spawn(move || {
                    let answer = request.post(&texts, &cancel);
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
            prompts: BTreeMap::new(),
        }
    }

    /// One batch, retried whole on connection failures and 429/503.
    fn post(&self, texts: &[String], cancel: &AtomicBool) -> Result<Vec<Vec<f32>>> {
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
            let retry_after = match request.send_string(&body) {
                Ok(response) => return self.parse(response, texts.len()),
                Err(ureq::Error::Status(429 | 503, response)) if attempt < RETRIES => {
                    let after = response.header("Retry-After").and_then(|s| s.trim().parse::<u64>().ok());
                    let _ = response.into_string();
                    after.map(Duration::from_secs)
                }
                Err(ureq::Error::Status(status, response)) => {
                    let message = server_message(&response.into_string().unwrap_or_default());
                    if status == 404 && message.to_lowercase().contains("model") {
                        return Err(Error::model_not_found(format!(
                            "{} does not serve {:?}: {status} {message}",
                            self.url, self.model
                        )));
                    }
                    return Err(Error::remote(format!("{} answered {status} {message}", self.url)));
                }
                Err(ureq::Error::Transport(t)) if attempt < RETRIES && retryable(&t) => None,
                Err(ureq::Error::Transport(t)) => {
                    let what = t.to_string();
                    return Err(Error::remote(if what.contains(&self.url) { what } else { format!("{}: {what}", self.url) }));
                }
            };
            attempt += 1;
            let pause = retry_after.unwrap_or(delay).min(MAX_RETRY_DELAY);
            if started.elapsed() + pause > RETRY_BUDGET {
                return Err(Error::remote(format!(
                    "{}: still unavailable after {attempt} tries in {:.1} s",
                    self.url,
                    started.elapsed().as_secs_f64()
                )));
            }
            std::thread::sleep(pause);
            delay *= 2;
        }
    }

    fn parse(&self, response: ureq::Response, expected: usize) -> Result<Vec<Vec<f32>>> {
        #[derive(serde::Deserialize)]
        struct Item {
            embedding: Vec<f32>,
            index: Option<usize>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            data: Vec<Item>,
        }
        let text = response.into_string().map_err(|e| Error::remote(format!("{}: reading the answer: {e}", self.url)))?;
        let answer: Answer = serde_json::from_str(&text).map_err(|e| {
            Error::remote(format!("{}: not an embeddings answer ({e}): {}", self.url, server_message(&text)))
        })?;
        if answer.data.len() != expected {
            return Err(Error::remote(format!("{}: {} vectors for {expected} texts", self.url, answer.data.len())));
        }
        // The API numbers its items; servers may answer out of order.
        let mut vectors: Vec<Option<Vec<f32>>> = (0..expected).map(|_| None).collect();
        for (position, item) in answer.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(position);
            if i >= expected || vectors[i].is_some() {
                return Err(Error::remote(format!("{}: an answer with a bad or repeated index {i}", self.url)));
            }
            if self.dimensions != 0 && item.embedding.len() != self.dimensions {
                return Err(Error::remote(format!(
                    "{}: a vector of {} dimensions, not {}",
                    self.url,
                    item.embedding.len(),
                    self.dimensions
                )));
            }
            vectors[i] = Some(item.embedding);
        }
        Ok(vectors.into_iter().map(|v| v.expect("all indices filled")).collect())
    }
}

/// Failures worth another try: the server refused or dropped the connection (not started yet, restarting).
/// Timeouts are not: a host that drops packets would cost a connect timeout per try, and a request that got
/// no answer in the stall time is the watchdog's to report.
fn retryable(t: &ureq::Transport) -> bool {
    use ureq::ErrorKind::*;
    let timed_out = t.to_string().to_lowercase().contains("timed out");
    matches!(t.kind(), ConnectionFailed | Dns | Io) && !timed_out
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
            prompts: BTreeMap::new(),
        };
        let got = remote.post(&["a".into(), "b".into()], &AtomicBool::new(false)).unwrap();
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
            prompts: BTreeMap::new(),
        };
        let err = remote.post(&["a".into()], &AtomicBool::new(false)).unwrap_err();
        assert_eq!(err.code, ErrorCode::Remote);
        assert!(err.message.contains("401") && err.message.contains("bad key"), "{}", err.message);
        assert_eq!(peer.join().unwrap().len(), 1);
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
