//! The napi binding: JS values in, core calls, JS values out. No logic lives here beyond converting types,
//! checking that JS values have the types the API documents, and mapping errors to JS errors with a `code`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{
    ArrayBuffer, Float32Array, Float32ArraySlice, Function, JsObjectValue, Object, ToNapiValue, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsDeferred, JsError, JsValue, Status, ValueType};
use napi_derive::napi;

use crate::error::{Error, Result};
use crate::lifecycle::Reply;
use crate::keyphrases::{Keyphrase, KeyphraseOptions, Ranking, StopWords};
use crate::model::Dtype;
use crate::progress::{Mailbox, Outgoing, Sink};
use crate::scheduler::Priority;
use crate::model::source::{self, DownloadProgress, ModelSource};
use crate::service::{EmbedOptions, Service, ServiceOptions};

/// Builds a JS `Error` whose `code` is the stable error code, and wraps it so napi throws or rejects with it.
fn to_js(env: &Env, err: &Error) -> napi::Error {
    let js = JsError::from(napi::Error::new(err.code.as_str(), err.message.clone())).into_unknown(*env);
    napi::Error::from(js)
}

/// Drops the JS exception a caller's value left pending (a getter or Proxy trap that threw while we read it).
/// It has already been turned into our coded error; left pending, it would be thrown as well, next to a
/// promise that nobody could then reach and whose rejection would go unhandled.
fn clear_pending_exception(env: &Env) {
    let mut pending = false;
    // SAFETY: plain N-API calls on the live env of this call.
    unsafe {
        if napi::sys::napi_is_exception_pending(env.raw(), &mut pending) == napi::sys::Status::napi_ok && pending {
            let mut exception = std::ptr::null_mut();
            napi::sys::napi_get_and_clear_last_exception(env.raw(), &mut exception);
        }
    }
}

/// A napi call that failed while reading a caller's value (a throwing getter, a revoked Proxy, ...).
fn unreadable(what: &str, e: napi::Error) -> Error {
    let why = if e.reason.is_empty() { "reading it threw (a getter or a Proxy trap)" } else { e.reason.as_str() };
    Error::invalid_input(format!("cannot read {what}: {why}"))
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        ValueType::BigInt => "a bigint",
        _ => "an unknown value",
    }
}

/// Reads an optional property of an options object; `undefined` counts as absent.
struct Props<'e> {
    obj: Option<Object<'e>>,
    what: &'static str,
}

impl<'e> Props<'e> {
    fn new(value: Option<Unknown<'e>>, what: &'static str) -> Result<Self> {
        let Some(value) = value else { return Ok(Props { obj: None, what }) };
        match value.get_type().map_err(|e| unreadable(what, e))? {
            ValueType::Undefined | ValueType::Null => Ok(Props { obj: None, what }),
            ValueType::Object => {
                // SAFETY: the value was just checked to be an object.
                let obj = unsafe { value.cast::<Object>() }.map_err(|e| unreadable(what, e))?;
                Ok(Props { obj: Some(obj), what })
            }
            t => Err(Error::invalid_input(format!("{what} must be an object, got {}", type_name(t)))),
        }
    }

    fn get(&self, key: &str) -> Result<Option<(Unknown<'e>, ValueType)>> {
        let Some(obj) = &self.obj else { return Ok(None) };
        let v: Unknown = obj.get_named_property(key).map_err(|e| unreadable(&format!("{}.{key}", self.what), e))?;
        match v.get_type().map_err(|e| unreadable(key, e))? {
            ValueType::Undefined => Ok(None),
            t => Ok(Some((v, t))),
        }
    }

    fn wrong(&self, key: &str, expected: &str, got: ValueType) -> Error {
        Error::invalid_input(format!("{}.{key} must be {expected}, got {}", self.what, type_name(got)))
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key)? {
            None => Ok(None),
            // SAFETY: checked to be a string.
            Some((v, ValueType::String)) => unsafe { v.cast::<String>() }.map(Some).map_err(|e| unreadable(key, e)),
            Some((_, t)) => Err(self.wrong(key, "a string", t)),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key)? {
            None => Ok(None),
            // SAFETY: checked to be a boolean.
            Some((v, ValueType::Boolean)) => unsafe { v.cast::<bool>() }.map(Some).map_err(|e| unreadable(key, e)),
            Some((_, t)) => Err(self.wrong(key, "a boolean", t)),
        }
    }

    /// A whole number of at least 1.
    fn count(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key)? {
            None => Ok(None),
            Some((v, ValueType::Number)) => {
                // SAFETY: checked to be a number.
                let n = unsafe { v.cast::<f64>() }.map_err(|e| unreadable(key, e))?;
                if n.is_finite() && n >= 1.0 && n.fract() == 0.0 && n <= u32::MAX as f64 {
                    Ok(Some(n as usize))
                } else {
                    Err(Error::invalid_input(format!("{}.{key} must be a whole number of at least 1, got {n}", self.what)))
                }
            }
            Some((_, t)) => Err(self.wrong(key, "a number", t)),
        }
    }
}

impl<'e> Props<'e> {
    /// Any finite number.
    fn number(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key)? {
            None => Ok(None),
            Some((v, ValueType::Number)) => {
                // SAFETY: checked to be a number.
                let n = unsafe { v.cast::<f64>() }.map_err(|e| unreadable(key, e))?;
                if n.is_finite() {
                    Ok(Some(n))
                } else {
                    Err(Error::invalid_input(format!("{}.{key} must be a finite number, got {n}", self.what)))
                }
            }
            Some((_, t)) => Err(self.wrong(key, "a number", t)),
        }
    }
}

/// `{ ngramRange?, stopWords?, topN?, useMmr?, diversity?, maxCandidates?, priority? }` of `extractKeyphrases`.
fn keyphrase_options(options: Option<Unknown>) -> Result<KeyphraseOptions> {
    let props = Props::new(options, "options")?;
    let mut o = KeyphraseOptions::default();
    if let Some((v, _)) = props.get("ngramRange")? {
        let pair = numbers_from_js(v, "options.ngramRange")?;
        match pair.as_slice() {
            [min, max] if min.fract() == 0.0 && max.fract() == 0.0 && *min >= 0.0 && *max >= 0.0 => {
                o.ngram_range = (*min as usize, *max as usize)
            }
            _ => return Err(Error::invalid_input("options.ngramRange must be [min, max], two whole numbers")),
        }
    }
    match props.get("stopWords")? {
        None => {}
        Some((_, ValueType::Null)) => o.stop_words = StopWords::None,
        Some((v, ValueType::String)) => {
            // SAFETY: checked to be a string.
            let name = unsafe { v.cast::<String>() }.map_err(|e| unreadable("options.stopWords", e))?;
            if name != "english" {
                return Err(Error::invalid_input(format!(
                    "options.stopWords must be 'english', null or an array of words, got {name:?}"
                )));
            }
        }
        Some((v, ValueType::Object)) => {
            o.stop_words = StopWords::Custom(
                texts_from_js(v).map_err(|e| Error::invalid_input(format!("options.stopWords: {}", e.message)))?,
            )
        }
        Some((_, t)) => return Err(props.wrong("stopWords", "'english', null or an array of words", t)),
    }
    if let Some(n) = props.count("topN")? {
        o.top_n = n;
    }
    if let Some(n) = props.count("maxCandidates")? {
        o.max_candidates = n;
    }
    let use_mmr = props.boolean("useMmr")?.unwrap_or(true);
    let diversity = props.number("diversity")?.unwrap_or(0.5);
    o.ranking = if use_mmr { Ranking::Mmr { diversity } } else { Ranking::Cosine };
    o.priority = embed_options_priority(&props)?;
    Ok(o)
}

/// An array of finite numbers.
fn numbers_from_js(value: Unknown, what: &str) -> Result<Vec<f64>> {
    if !value.is_array().map_err(|e| unreadable(what, e))? {
        return Err(Error::invalid_input(format!("{what} must be an array")));
    }
    // SAFETY: checked to be an array.
    let arr = unsafe { value.cast::<Object>() }.map_err(|e| unreadable(what, e))?;
    let len = arr.get_array_length().map_err(|e| unreadable(what, e))?;
    let mut out = Vec::new();
    for i in 0..len.min(16) {
        let v: Unknown = arr.get_element(i).map_err(|e| unreadable(what, e))?;
        if v.get_type().map_err(|e| unreadable(what, e))? != ValueType::Number {
            return Err(Error::invalid_input(format!("{what}[{i}] must be a number")));
        }
        // SAFETY: checked to be a number.
        let n = unsafe { v.cast::<f64>() }.map_err(|e| unreadable(what, e))?;
        if !n.is_finite() {
            return Err(Error::invalid_input(format!("{what}[{i}] must be finite")));
        }
        out.push(n);
    }
    if len > 16 {
        out.push(f64::NAN);
    }
    Ok(out)
}

fn service_options(options: Option<Unknown>) -> Result<ServiceOptions> {
    let props = Props::new(options, "options")?;
    let model = props.string("model")?.ok_or_else(|| {
        Error::invalid_input(
            "options.model is required: a hub id such as \"sentence-transformers/all-MiniLM-L6-v2\" or a path to a \
             model folder",
        )
    })?;
    let mut o = ServiceOptions::new(model);
    if let Some(revision) = props.string("revision")? {
        o.revision = revision;
    }
    if let Some(dir) = props.string("cacheDir")? {
        o.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(offline) = props.boolean("offline")? {
        o.offline = offline;
    }
    if let Some(device) = props.string("device")? {
        o.device = device.parse()?;
    }
    if let Some(dtype) = props.string("dtype")? {
        o.dtype = Some(Dtype::parse(&dtype)?);
    }
    if let Some(threads) = props.count("threads")? {
        o.threads = threads;
    }
    if let Some(n) = props.count("maxBatchSize")? {
        o.limits.max_batch_size = n;
    }
    if let Some(n) = props.count("maxBatchTokens")? {
        o.limits.max_batch_tokens = n;
    }
    if let Some(ms) = millis(&props, "keepAliveMs", true)? {
        o.keep_alive = (ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(ms) = millis(&props, "stallWarningMs", false)? {
        o.stall_warning = Duration::from_secs_f64(ms / 1000.0);
    }
    if let Some(ms) = millis(&props, "stallTimeoutMs", false)? {
        o.stall_timeout = Duration::from_secs_f64(ms / 1000.0);
    }
    if let Some(endpoint) = props.string("endpoint")? {
        o.remote = Some(crate::remote::RemoteOptions {
            endpoint,
            api_key: props.string("apiKey")?,
            concurrency: props.count("remoteConcurrency")?.unwrap_or(crate::remote::DEFAULT_CONCURRENCY),
        });
    } else if props.string("apiKey")?.is_some() || props.count("remoteConcurrency")?.is_some() {
        return Err(Error::invalid_input("`apiKey` and `remoteConcurrency` apply only with `endpoint`"));
    }
    let hooks = Props::new(props.get("testHooks")?.map(|(v, _)| v), "options.testHooks")?;
    o.faults.panic_on_text = hooks.string("panicOnText")?;
    o.faults.hold_index_until_queries = hooks.count("holdIndexBatchUntilQueries")?.unwrap_or(0);
    if let Some(ms) = millis(&hooks, "stallMs", false)? {
        o.faults.stall = Some(Duration::from_secs_f64(ms / 1000.0));
    }
    Ok(o)
}

fn texts_from_js(texts: Unknown) -> Result<Vec<String>> {
    let t = texts.get_type().map_err(|e| unreadable("texts", e))?;
    if t != ValueType::Object || !texts.is_array().map_err(|e| unreadable("texts", e))? {
        return Err(Error::invalid_input(format!("texts must be an array of strings, got {}", type_name(t))));
    }
    // SAFETY: checked to be an array.
    let arr = unsafe { texts.cast::<Object>() }.map_err(|e| unreadable("texts", e))?;
    let len = arr.get_array_length().map_err(|e| unreadable("texts", e))?;
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let v: Unknown = arr.get_element(i).map_err(|e| unreadable(&format!("texts[{i}]"), e))?;
        match v.get_type().map_err(|e| unreadable(&format!("texts[{i}]"), e))? {
            // SAFETY: checked to be a string.
            ValueType::String => out.push(unsafe { v.cast::<String>() }.map_err(|e| unreadable("texts", e))?),
            t => {
                return Err(Error::invalid_input(format!(
                    "texts[{i}] must be a string, got {}{}",
                    type_name(t),
                    if t == ValueType::Undefined { " (a hole in a sparse array reads as undefined)" } else { "" }
                )))
            }
        }
    }
    Ok(out)
}

fn embed_options_priority(props: &Props) -> Result<Priority> {
    match props.string("priority")?.as_deref() {
        None | Some("index") => Ok(Priority::Index),
        Some("query") => Ok(Priority::Query),
        Some(other) => Err(Error::invalid_input(format!("options.priority must be 'query' or 'index', got {other:?}"))),
    }
}

fn embed_options(options: Option<Unknown>) -> Result<EmbedOptions> {
    let props = Props::new(options, "options")?;
    Ok(EmbedOptions { priority: embed_options_priority(&props)?, prompt: props.string("prompt")? })
}

/// Milliseconds from a JS option: a finite number; `allow_negative` keeps negatives (keepAliveMs: never).
fn millis(props: &Props, key: &str, allow_negative: bool) -> Result<Option<f64>> {
    match props.get(key)? {
        None => Ok(None),
        Some((v, ValueType::Number)) => {
            // SAFETY: checked to be a number.
            let n = unsafe { v.cast::<f64>() }.map_err(|e| unreadable(key, e))?;
            if !n.is_finite() || (!allow_negative && n <= 0.0) {
                let what = if allow_negative { "a finite number" } else { "a positive number" };
                return Err(Error::invalid_input(format!("{}.{key} must be {what}, got {n}", props.what)));
            }
            Ok(Some(n))
        }
        Some((_, t)) => Err(props.wrong(key, "a number", t)),
    }
}

/// A progress event as JS sees it.
#[napi(object)]
pub struct JsProgressEvent {
    #[napi(js_name = "type")]
    pub kind: String,
    pub status: String,
    pub current: f64,
    pub total: f64,
    pub timestamp: f64,
    pub details: String,
    pub message: String,
    pub request_id: Option<f64>,
    pub eta_ms: Option<f64>,
    pub texts_per_second: Option<f64>,
}

/// One mailbox item as JS sees it: a progress event or a log line.
#[napi(object)]
pub struct JsOutgoing {
    pub kind: String,
    pub event: Option<JsProgressEvent>,
    pub level: Option<String>,
    pub message: Option<String>,
}

fn to_js_items(items: Vec<Outgoing>) -> Vec<JsOutgoing> {
    // The texts of every request are read into Rust on this (the JS) thread and freed on the worker, so their
    // pages wait in this thread's allocator heap until this thread collects it; a model unload is the moment
    // the daemon expects memory back (measured: +12.9 MB after one 100,000-text request without this).
    if items.iter().any(|item| matches!(item, Outgoing::Progress(e) if e.status == crate::progress::Status::Idle)) {
        crate::release_free_memory();
    }
    items
        .into_iter()
        .map(|item| match item {
            Outgoing::Progress(e) => JsOutgoing {
                kind: "progress".into(),
                level: None,
                message: None,
                event: Some(JsProgressEvent {
                    kind: "progress".into(),
                    status: e.status.as_str().into(),
                    current: e.current as f64,
                    total: e.total as f64,
                    timestamp: e.timestamp,
                    message: e.message(),
                    details: e.details,
                    request_id: e.request_id.map(|id| id as f64),
                    eta_ms: e.eta_ms,
                    texts_per_second: e.texts_per_second,
                }),
            },
            Outgoing::Log(level, message) => JsOutgoing {
                kind: "log".into(),
                event: None,
                level: Some(level.as_str().into()),
                message: Some(message),
            },
        })
        .collect()
}

type Dispatch = ThreadsafeFunction<(), Unknown<'static>, Vec<JsOutgoing>, Status, false, true>;

/// Delivers events to JS: a bounded mailbox, drained on the JS thread by one pending threadsafe call at a time.
/// The threadsafe function is weak, so it never keeps Node alive.
struct JsSink {
    mailbox: Arc<Mailbox>,
    dispatch: Dispatch,
}

impl Sink for JsSink {
    fn send(&self, item: Outgoing) {
        if self.mailbox.push(item) {
            let _ = self.dispatch.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// `{ vectors, tokenCounts }`: one `ArrayBuffer` over the request's result block (`results.rs`) and a
/// `Float32Array` view of it per text; no copy. The block is unmapped when the last view is collected.
pub struct JsEmbeddings(crate::Embeddings);

impl ToNapiValue for JsEmbeddings {
    unsafe fn to_napi_value(raw_env: napi::sys::napi_env, val: Self) -> napi::Result<napi::sys::napi_value> {
        let env = Env::from_raw(raw_env);
        let crate::Embeddings { dimensions, vectors, token_counts } = val.0;
        let count = vectors.len();
        let views: Vec<Unknown> = match vectors.into_raw() {
            Some((data, len, block)) => {
                // SAFETY: `block` owns the mapping at `data` (`len` bytes) and is dropped only by the finaliser.
                let buffer = unsafe { ArrayBuffer::from_external(&env, data, len, block, |_, block| drop(block))? };
                (0..count)
                    .map(|i| Float32ArraySlice::from_arraybuffer(&buffer, i * dimensions * 4, dimensions)?.into_unknown(&env))
                    .collect::<napi::Result<_>>()?
            }
            // No values at all (no texts): nothing to map.
            None => (0..count).map(|_| Float32Array::new(Vec::new()).into_unknown(&env)).collect::<napi::Result<_>>()?,
        };
        let mut object = Object::new(&env)?;
        object.set_named_property("vectors", views)?;
        object.set_named_property("tokenCounts", token_counts.into_iter().map(|n| n as u32).collect::<Vec<_>>())?;
        unsafe { Object::to_napi_value(raw_env, object) }
    }
}

#[napi(object)]
pub struct JsKeyphrase {
    pub text: String,
    pub score: f64,
}

#[napi(object)]
pub struct JsQueued {
    pub query: u32,
    pub index: u32,
}

#[napi(object)]
pub struct JsStatus {
    pub state: String,
    pub model_loaded: bool,
    pub device: Option<String>,
    pub dtype: Option<String>,
    pub prompts: Vec<String>,
    pub dimensions: Option<u32>,
    pub queued: JsQueued,
    pub active_requests: u32,
    pub last_progress_at: Option<f64>,
    pub load_count: f64,
    pub unload_count: f64,
    pub weights_bytes: f64,
    pub mapped_weights_bytes: f64,
    pub result_bytes: f64,
}

type UnitResolver = Box<dyn FnOnce(Env) -> napi::Result<()>>;

fn unit_reply(deferred: JsDeferred<(), UnitResolver>) -> Box<dyn FnOnce(Result<()>) + Send> {
    Box::new(move |result: Result<()>| {
        deferred.resolve(Box::new(move |env: Env| result.map_err(|e| to_js(&env, &e))))
    })
}

/// Starts a request with `start` (or settles it at once when its input was refused) and returns
/// `{ id, promise }`: the id lets JS abort it.
fn ticket<'e, R, T>(
    env: &'e Env,
    promise: Object<'e>,
    request: Result<R>,
    settle: impl FnOnce(Result<T>) + Send + 'static,
    start: impl FnOnce(R, Reply<T>) -> u64,
) -> napi::Result<Object<'e>> {
    let id = match request {
        Ok(request) => start(request, Box::new(settle)),
        Err(e) => {
            settle(Err(e));
            0
        }
    };
    let mut ticket = Object::new(env)?;
    ticket.set("id", id as f64)?;
    ticket.set("promise", promise)?;
    Ok(ticket)
}

/// The native half of `EmbeddingService`; `service.js` adds AbortSignal and callback handling around it.
#[napi]
pub struct NativeEmbeddingService {
    inner: Service,
    mailbox: Arc<Mailbox>,
}

#[napi]
impl NativeEmbeddingService {
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        options: Option<Unknown>,
        dispatch: Function<Vec<JsOutgoing>, Unknown<'static>>,
    ) -> napi::Result<Self> {
        let mailbox = Arc::new(Mailbox::new(1024));
        let drain = mailbox.clone();
        let dispatch: Dispatch = dispatch
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |_ctx| Ok(to_js_items(drain.drain())))?;
        let sink = Arc::new(JsSink { mailbox: mailbox.clone(), dispatch });
        let options = service_options(options);
        clear_pending_exception(&env);
        let built = options.and_then(|mut o| {
            o.sink = sink;
            Service::new(o)
        });
        built.map(|inner| NativeEmbeddingService { inner, mailbox }).map_err(|e| to_js(&env, &e))
    }

    /// Returns `{ id, promise }`; the promise resolves to `{ vectors, tokenCounts }`: one `Float32Array` and
    /// one token count per text.
    #[napi(catch_unwind)]
    pub fn embed<'e>(&self, env: &'e Env, texts: Unknown, options: Option<Unknown>) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        let request = texts_from_js(texts).and_then(|t| Ok((t, embed_options(options)?)));
        clear_pending_exception(env);
        let settle = move |result: Result<crate::Embeddings>| {
            deferred.resolve(move |env: Env| match result {
                // Each Vec becomes the backing store of its Float32Array: no copy, no per-number conversion.
                Ok(e) => Ok(JsEmbeddings(e)),
                Err(e) => Err(to_js(&env, &e)),
            })
        };
        ticket(env, promise, request, settle, |(texts, options), reply| self.inner.embed(texts, options, reply))
    }

    /// Returns `{ id, promise }`; the promise resolves to one list of `{ text, score }` per document.
    #[napi(catch_unwind)]
    pub fn extract_keyphrases<'e>(
        &self,
        env: &'e Env,
        texts: Unknown,
        options: Option<Unknown>,
    ) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        let request = texts_from_js(texts).and_then(|t| Ok((t, keyphrase_options(options)?)));
        clear_pending_exception(env);
        let settle = move |result: Result<Vec<Vec<Keyphrase>>>| {
            deferred.resolve(move |env: Env| match result {
                Ok(docs) => Ok(docs
                    .into_iter()
                    .map(|d| d.into_iter().map(|k| JsKeyphrase { text: k.text, score: k.score }).collect())
                    .collect::<Vec<Vec<JsKeyphrase>>>()),
                Err(e) => Err(to_js(&env, &e)),
            })
        };
        ticket(env, promise, request, settle, |(texts, options), reply| {
            self.inner.extract_keyphrases(texts, options, reply)
        })
    }

    /// Aborts a request by id (`ERR_ABORTED`); unknown or settled ids are ignored.
    #[napi(catch_unwind)]
    pub fn abort(&self, id: f64) {
        self.inner.abort(id as u64)
    }

    #[napi(catch_unwind)]
    pub fn load<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        self.inner.load(unit_reply(deferred));
        Ok(promise)
    }

    #[napi(catch_unwind)]
    pub fn unload<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        self.inner.unload(unit_reply(deferred));
        Ok(promise)
    }

    #[napi(catch_unwind)]
    pub fn close<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        self.inner.close(unit_reply(deferred));
        Ok(promise)
    }

    #[napi(catch_unwind)]
    pub fn status(&self) -> JsStatus {
        let s = self.inner.status();
        JsStatus {
            state: s.state.as_str().into(),
            model_loaded: s.model_loaded,
            device: s.device,
            dtype: s.dtype.map(str::to_string),
            prompts: s.prompts,
            dimensions: s.dimensions.map(|d| d as u32),
            queued: JsQueued { query: s.queued_query as u32, index: s.queued_index as u32 },
            active_requests: s.active_requests as u32,
            last_progress_at: s.last_progress_at,
            load_count: s.load_count as f64,
            unload_count: s.unload_count as f64,
            weights_bytes: s.weights.owned as f64,
            mapped_weights_bytes: s.weights.mapped as f64,
            result_bytes: s.result_bytes as f64,
        }
    }

    /// Takes the events waiting in the mailbox, so JS can deliver them before settling a request.
    #[napi(catch_unwind)]
    pub fn flush(&self) -> Vec<JsOutgoing> {
        to_js_items(self.mailbox.drain())
    }

    #[napi(getter)]
    pub fn dimensions(&self) -> Option<u32> {
        self.inner.dimensions().map(|d| d as u32)
    }
}

/// `{ cacheDir?, revision?, offline? }` for the static model functions.
fn model_source(model: Unknown, options: Option<Unknown>) -> Result<ModelSource> {
    let model = match model.get_type().map_err(|e| unreadable("model", e))? {
        // SAFETY: checked to be a string.
        ValueType::String => unsafe { model.cast::<String>() }.map_err(|e| unreadable("model", e))?,
        t => return Err(Error::invalid_input(format!("model must be a hub id or a folder path (a string), got {}", type_name(t)))),
    };
    let props = Props::new(options, "options")?;
    let mut source = ModelSource::new(model);
    if let Some(revision) = props.string("revision")? {
        source.revision = revision;
    }
    if let Some(dir) = props.string("cacheDir")? {
        source.cache_dir = Some(PathBuf::from(dir));
    }
    if let Some(offline) = props.boolean("offline")? {
        source.offline = offline;
    }
    Ok(source)
}

/// Whether the model loads without the network (a folder with a config.json, or a complete hub-cache
/// snapshot). Reads the disk only.
#[napi(catch_unwind)]
pub fn is_model_cached(env: Env, model: Unknown, options: Option<Unknown>) -> napi::Result<bool> {
    let source = model_source(model, options);
    clear_pending_exception(&env);
    source.map(|s| source::is_cached(&s)).map_err(|e| to_js(&env, &e))
}

/// Lets JS stop a `downloadModel` in progress.
#[napi]
pub struct NativeCancel {
    flag: Arc<AtomicBool>,
}

#[napi]
impl NativeCancel {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        NativeCancel { flag: Arc::new(AtomicBool::new(false)) }
    }

    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed)
    }
}

/// A download's progress, or (with `done`) its outcome. Both travel through one threadsafe function so that
/// every progress report reaches JS before the outcome does.
#[napi(object)]
pub struct JsDownloadProgress {
    pub file: String,
    pub current: f64,
    pub total: f64,
    pub done: bool,
    pub dir: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Downloads a hub model into the cache on its own thread (nothing if it is already there). `on_event` gets
/// throttled byte counts per file, then one final event with `done` and the snapshot folder or the error.
#[napi(catch_unwind)]
pub fn download_model(
    env: Env,
    model: Unknown,
    options: Option<Unknown>,
    on_event: Function<JsDownloadProgress, ()>,
    cancel: &NativeCancel,
) -> napi::Result<()> {
    let source = model_source(model, options);
    clear_pending_exception(&env);
    // Strong (not weak): a download in progress keeps Node running until it settles.
    let events = on_event.build_threadsafe_function().callee_handled::<false>().build()?;
    let flag = cancel.flag.clone();
    let spawned = std::thread::Builder::new().name("embedding-download".into()).spawn(move || {
        let progress = |p: DownloadProgress| {
            let event = JsDownloadProgress {
                file: p.file,
                current: p.current as f64,
                total: p.total as f64,
                done: false,
                dir: None,
                error_code: None,
                error_message: None,
            };
            let _ = events.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            source.and_then(|s| source::resolve_with(&s, &mut source::throttled(progress), &flag))
        }))
        .unwrap_or_else(|_| Err(Error::internal("the download thread panicked")));
        let (dir, error) = match result {
            Ok(dir) => (Some(dir.display().to_string()), None),
            Err(e) => (None, Some(e)),
        };
        let outcome = JsDownloadProgress {
            file: String::new(),
            current: 0.0,
            total: 0.0,
            done: true,
            dir,
            error_code: error.as_ref().map(|e| e.code.as_str().to_string()),
            error_message: error.map(|e| e.message),
        };
        let _ = events.call(outcome, ThreadsafeFunctionCallMode::Blocking);
    });
    spawned.map(|_| ()).map_err(|e| napi::Error::from_reason(format!("cannot start a download thread: {e}")))
}
