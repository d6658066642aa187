//! Error kinds with stable codes. Every failure the service reports carries one of these codes, so callers
//! (and the JS binding) can branch on `code` instead of parsing messages.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The caller passed something the service cannot embed (not a list of strings, an unknown prompt, ...).
    InvalidInput,
    /// The model could not be found: no such folder, or a hub id that is not cached while offline.
    ModelNotFound,
    /// The model was found but cannot be used: unsupported architecture, missing or corrupt files.
    ModelInvalid,
    /// The requested device is not compiled in or not present.
    DeviceUnavailable,
    /// The service was closed.
    Closed,
    /// The caller aborted the request through its AbortSignal.
    Aborted,
    /// The worker made no progress for `stallTimeoutMs`; the request was failed and the worker replaced.
    Stalled,
    /// A remote embedding server (the `endpoint` option) failed the request: it could not be reached after
    /// retries, or answered with an error, which the message quotes with its HTTP status.
    Remote,
    /// A model download from the hub (or `HF_ENDPOINT`) could not be completed safely: the server's answer
    /// named no valid commit or digest, the bytes did not match their digest, a redirect went somewhere other
    /// than http(s), the transfer broke off or stalled for the download timeout, or the cache could not be
    /// written.
    Download,
    /// A bug: a caught panic or an invariant that did not hold.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "ERR_INVALID_INPUT",
            ErrorCode::ModelNotFound => "ERR_MODEL_NOT_FOUND",
            ErrorCode::ModelInvalid => "ERR_MODEL_INVALID",
            ErrorCode::DeviceUnavailable => "ERR_DEVICE_UNAVAILABLE",
            ErrorCode::Closed => "ERR_CLOSED",
            ErrorCode::Aborted => "ERR_ABORTED",
            ErrorCode::Stalled => "ERR_STALLED",
            ErrorCode::Remote => "ERR_REMOTE",
            ErrorCode::Download => "ERR_DOWNLOAD",
            ErrorCode::Internal => "ERR_INTERNAL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }
    pub fn model_not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelNotFound, message)
    }
    pub fn model_invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelInvalid, message)
    }
    pub fn device_unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DeviceUnavailable, message)
    }
    pub fn closed() -> Self {
        Self::new(ErrorCode::Closed, "the embedding service is closed; create a new EmbeddingService")
    }
    pub fn aborted() -> Self {
        Self::new(ErrorCode::Aborted, "the request was aborted by its AbortSignal")
    }
    pub fn remote(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Remote, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// Turns a caught panic payload into an `ERR_INTERNAL` error that says what panicked.
    pub fn from_panic(context: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let what = panic_message(payload);
        Self::internal(format!("internal error while {context}: {what} (this is a bug; please report it)"))
    }
}

/// The text a panic was raised with.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}
