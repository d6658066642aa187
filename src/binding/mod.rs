//! The napi binding: JS values in, core calls, JS values out; it converts and nothing more. This file is the
//! native class and the hand-off of its results and events; `values` reads JS values, `options` turns them
//! into the core's options, `download` is the static model functions.

mod download;
mod options;
mod values;

use options::{embed_options, keyphrase_options, service_options};
use values::{clear_pending_exception, texts_from_js};

use std::sync::Arc;

use napi::bindgen_prelude::{
    ArrayBuffer, Float32Array, Float32ArraySlice, Function, JsObjectValue, Object, ToNapiValue, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsDeferred, JsError, Status};
use napi_derive::napi;

use crate::error::{Error, Result};
use crate::lifecycle::Reply;
use crate::keyphrases::Keyphrase;
use crate::progress::{Mailbox, Outgoing, Sink};
use crate::service::Service;

/// Builds a JS `Error` whose `code` is the stable error code, and wraps it so napi throws or rejects with it.
fn to_js(env: &Env, err: &Error) -> napi::Error {
    let js = JsError::from(napi::Error::new(err.code.as_str(), err.message.clone())).into_unknown(*env);
    napi::Error::from(js)
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
    pub simd: Option<String>,
    pub family: Option<String>,
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
fn start_request<'e, R, T>(
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
        start_request(env, promise, request, settle, |(texts, options), reply| self.inner.embed(texts, options, reply))
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
        start_request(env, promise, request, settle, |(texts, options), reply| {
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
            simd: s.simd.map(str::to_string),
            family: s.family,
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

