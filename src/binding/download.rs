//! The static model functions: whether a model is cached, and downloading one on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{Function, Unknown};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Env;
use napi_derive::napi;

use super::options::model_source;
use super::to_js;
use super::values::clear_pending_exception;
use crate::error::{Error, ErrorCode};
use crate::model::source::{self, DownloadProgress};

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
            let keep_going = || match flag.load(Ordering::Relaxed) {
                true => Err(Error::new(ErrorCode::Aborted, "the download was aborted by its AbortSignal")),
                false => Ok(()),
            };
            source.and_then(|s| source::resolve_with(&s, &mut source::throttled(progress), &keep_going))
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

