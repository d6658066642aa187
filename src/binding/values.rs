//! Reading JS values as the API documents them: optional properties of options objects (`Props`), arrays of
//! strings and numbers, durations. A value whose reading throws (a getter, a Proxy trap) is an
//! `ERR_INVALID_INPUT`, never the caller's own exception.

use napi::bindgen_prelude::{JsObjectValue, Object, Unknown};
use napi::{Env, JsValue, ValueType};

use crate::error::{Error, Result};

/// Drops the JS exception a caller's value left pending (a getter or Proxy trap that threw while we read it).
/// It has already been turned into our coded error; left pending, it would be thrown as well, next to a
/// promise that nobody could then reach and whose rejection would go unhandled.
pub(super) fn clear_pending_exception(env: &Env) {
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
pub(super) fn unreadable(what: &str, e: napi::Error) -> Error {
    let why = if e.reason.is_empty() { "reading it threw (a getter or a Proxy trap)" } else { e.reason.as_str() };
    Error::invalid_input(format!("cannot read {what}: {why}"))
}

pub(super) fn type_name(t: ValueType) -> &'static str {
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
pub(super) struct Props<'e> {
    obj: Option<Object<'e>>,
    what: &'static str,
}

impl<'e> Props<'e> {
    pub(super) fn new(value: Option<Unknown<'e>>, what: &'static str) -> Result<Self> {
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

    pub(super) fn get(&self, key: &str) -> Result<Option<(Unknown<'e>, ValueType)>> {
        let Some(obj) = &self.obj else { return Ok(None) };
        let v: Unknown = obj.get_named_property(key).map_err(|e| unreadable(&format!("{}.{key}", self.what), e))?;
        match v.get_type().map_err(|e| unreadable(key, e))? {
            ValueType::Undefined => Ok(None),
            t => Ok(Some((v, t))),
        }
    }

    pub(super) fn wrong(&self, key: &str, expected: &str, got: ValueType) -> Error {
        Error::invalid_input(format!("{}.{key} must be {expected}, got {}", self.what, type_name(got)))
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key)? {
            None => Ok(None),
            // SAFETY: checked to be a string.
            Some((v, ValueType::String)) => unsafe { v.cast::<String>() }.map(Some).map_err(|e| unreadable(key, e)),
            Some((_, t)) => Err(self.wrong(key, "a string", t)),
        }
    }

    pub(super) fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key)? {
            None => Ok(None),
            // SAFETY: checked to be a boolean.
            Some((v, ValueType::Boolean)) => unsafe { v.cast::<bool>() }.map(Some).map_err(|e| unreadable(key, e)),
            Some((_, t)) => Err(self.wrong(key, "a boolean", t)),
        }
    }

    /// A whole number of at least 1.
    pub(super) fn count(&self, key: &str) -> Result<Option<usize>> {
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
    pub(super) fn number(&self, key: &str) -> Result<Option<f64>> {
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

/// An array of finite numbers.
pub(super) fn numbers_from_js(value: Unknown, what: &str) -> Result<Vec<f64>> {
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

pub(super) fn texts_from_js(texts: Unknown) -> Result<Vec<String>> {
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

/// Milliseconds from a JS option: a finite number; `allow_negative` keeps negatives (keepAliveMs: never).
pub(super) fn millis(props: &Props, key: &str, allow_negative: bool) -> Result<Option<f64>> {
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
