//! The napi binding: JS values in, core calls, JS values out. No logic lives here beyond converting types,
//! checking that JS values have the types the API documents, and mapping errors to JS errors with a `code`.

use std::path::PathBuf;

use napi::bindgen_prelude::{Float32Array, JsObjectValue, Object, Unknown};
use napi::{Env, JsError, JsValue, ValueType};
use napi_derive::napi;

use crate::error::{Error, Result};
use crate::service::{EmbedOptions, Service, ServiceOptions};

/// Builds a JS `Error` whose `code` is the stable error code, and wraps it so napi throws or rejects with it.
fn to_js(env: &Env, err: &Error) -> napi::Error {
    let js = JsError::from(napi::Error::new(err.code.as_str(), err.message.clone())).into_unknown(*env);
    napi::Error::from(js)
}

/// A napi call that failed while reading a caller's value (a throwing getter, a revoked Proxy, ...).
fn unreadable(what: &str, e: napi::Error) -> Error {
    Error::invalid_input(format!("cannot read {what}: {}", e.reason))
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
    if let Some(threads) = props.count("threads")? {
        o.threads = threads;
    }
    if let Some(n) = props.count("maxBatchSize")? {
        o.limits.max_batch_size = n;
    }
    if let Some(n) = props.count("maxBatchTokens")? {
        o.limits.max_batch_tokens = n;
    }
    let hooks = Props::new(props.get("testHooks")?.map(|(v, _)| v), "options.testHooks")?;
    o.faults.panic_on_text = hooks.string("panicOnText")?;
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

fn embed_options(options: Option<Unknown>) -> Result<EmbedOptions> {
    let props = Props::new(options, "options")?;
    Ok(EmbedOptions { prompt: props.string("prompt")? })
}

/// Computes sentence embeddings in-process on a dedicated worker thread.
#[napi(js_name = "EmbeddingService")]
pub struct JsEmbeddingService {
    inner: Service,
}

#[napi]
impl JsEmbeddingService {
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, options: Option<Unknown>) -> napi::Result<Self> {
        let built = service_options(options).and_then(Service::new);
        built.map(|inner| JsEmbeddingService { inner }).map_err(|e| to_js(&env, &e))
    }

    /// Resolves to one `Float32Array` per text; rejects with an `Error` carrying a stable `code`.
    #[napi(catch_unwind)]
    pub fn embed<'e>(&self, env: &'e Env, texts: Unknown, options: Option<Unknown>) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        let request = texts_from_js(texts).and_then(|t| Ok((t, embed_options(options)?)));
        let settle = move |result: Result<Vec<Vec<f32>>>| {
            deferred.resolve(move |env: Env| match result {
                // Each Vec becomes the backing store of its Float32Array: no copy, no per-number conversion.
                Ok(vectors) => Ok(vectors.into_iter().map(Float32Array::new).collect::<Vec<_>>()),
                Err(e) => Err(to_js(&env, &e)),
            })
        };
        match request {
            Ok((texts, options)) => self.inner.embed(texts, options, Box::new(move |r| settle(r.map(|e| e.vectors)))),
            Err(e) => settle(Err(e)),
        }
        Ok(promise)
    }

    /// The embedding size once the model has loaded, else `null`.
    #[napi(getter)]
    pub fn dimensions(&self) -> Option<u32> {
        self.inner.dimensions().map(|d| d as u32)
    }

    /// Rejects queued work with `ERR_CLOSED`, frees the model and the worker thread, then resolves.
    #[napi(catch_unwind)]
    pub fn close<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        let (deferred, promise) = env.create_deferred()?;
        self.inner.close(Box::new(move |_| deferred.resolve(|_env: Env| Ok(()))));
        Ok(promise)
    }
}
