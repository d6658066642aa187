//! What the worker runs a request's batches on: a `Backend`, opened from the worker's config. Two
//! implementations: the model in this process (`local`) and a remote embedding server (`server`). The worker
//! knows neither: it opens one, prepares texts with it, embeds a step's batches and closes it; everything
//! above (lanes, lifecycle, watchdog, progress) is the same for both.

mod local;
mod server;

use std::time::Duration;

use crate::error::Result;
use crate::model::{cpu_bert, source::DownloadProgress, Tokens, WeightMemory};
use crate::device::DeviceChoice;
use crate::model::source::ModelSource;
use crate::model::{Dtype, Kernels};
use crate::remote::RemoteOptions;

/// One text made ready for its backend: token ids for the local model; for a server, the text to send (prompt
/// prepended) with its estimated tokens. Each backend only ever receives what its own `prepare` made.
#[derive(Debug, Clone)]
pub enum Prepared {
    Tokens(Tokens),
    Text { text: String, estimated_tokens: usize },
}

impl Prepared {
    /// Tokens, special tokens included: counted for the local model, estimated for a server.
    pub fn len(&self) -> usize {
        match self {
            Prepared::Tokens(t) => t.len(),
            Prepared::Text { estimated_tokens, .. } => *estimated_tokens,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What opening a backend reports as it goes; the worker turns these into events and watchdog progress.
pub struct OpenHooks<'a> {
    /// Loading stage `index` of 3, with what is being done.
    pub stage: &'a dyn Fn(u64, &str),
    /// Bytes of a model file downloaded so far (throttled by the caller).
    pub download: &'a mut dyn FnMut(DownloadProgress),
    /// Called while waiting on a server; an error (the service closed, the worker replaced) ends the wait.
    pub still_wanted: &'a dyn Fn() -> Result<()>,
}

/// Where the embeddings are computed. `Sync`: a step's compute threads share it.
pub trait Backend: Send + Sync {
    fn dimensions(&self) -> usize;

    /// The weights this process holds (nothing for a server).
    fn weight_memory(&self) -> WeightMemory {
        WeightMemory::default()
    }

    fn prompt_names(&self) -> Vec<String>;

    /// Whether the model's own pipeline normalises its vectors (the default of `normalize`).
    fn normalizes(&self) -> bool;

    /// Whether `embed` returns unit-length vectors already (a server that normalises); the model here returns
    /// them before normalisation, which the worker applies per request.
    fn arrives_normalized(&self) -> bool {
        false
    }

    /// For `status().device`: "cpu", "cuda:0 (<name>)", "remote <endpoint>".
    fn device_name(&self) -> &str;

    /// The number format this process computes in ("f32", "bf16", "f16"); `None` for a server, whose format is
    /// its own (the wire carries f32).
    fn dtype(&self) -> Option<&'static str>;

    /// The CPU kernels the model runs on, for a model on the CPU (see `ServiceStatus::simd`).
    fn simd(&self) -> Option<&'static str> {
        None
    }

    /// The model's architecture (see `ServiceStatus::family`); `None` for a server's.
    fn family(&self) -> Option<String> {
        None
    }

    /// Whether index work can pause inside a batch for a waiting query (the fast CPU encoder's checkpoints).
    fn has_checkpoints(&self) -> bool {
        false
    }

    /// Batches one step runs: one locally; one per connection for a server, sent at once.
    fn batches_per_step(&self) -> usize {
        1
    }

    /// Tokens the backend works through in `time`, where that decides how long a query waits behind a batch
    /// in flight (a server, measured from its answers); `None` where a batch pauses for queries instead.
    fn tokens_within(&self, _time: Duration) -> Option<usize> {
        None
    }

    fn prepare(&self, texts: &[String], prompt: Option<&str>) -> Result<Vec<Prepared>>;

    /// Embeds one step's batches, returning their vectors batch by batch, pooled but not normalised (see
    /// `arrives_normalized`). Locally `checkpoint` may run inside
    /// the forward pass; for a server, `wait` runs after each answer (`true`) and while waiting (`false`).
    /// `positions` are each batch's texts' places in the request, for messages about a text.
    fn embed(
        &self,
        batches: &[Vec<&Prepared>],
        positions: &[Vec<usize>],
        checkpoint: Option<cpu_bert::Checkpoint>,
        wait: &mut dyn FnMut(bool) -> Result<()>,
    ) -> Result<Vec<Vec<Vec<f32>>>>;

    /// The device whose queue must be drained once the backend is dropped (a GPU), if any.
    fn device_to_synchronize(&self) -> Option<candle_core::Device> {
        None
    }
}

/// What a backend is opened from.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub source: ModelSource,
    pub device: DeviceChoice,
    /// CPU threads for inference.
    pub threads: usize,
    /// `None`: the device's default.
    pub dtype: Option<Dtype>,
    /// The CPU's forward pass (`ServiceOptions::kernels`).
    pub kernels: Kernels,
    /// A remote embedding server instead of the model in this process.
    pub remote: Option<RemoteOptions>,
    /// How long a request to a remote server may go unanswered before it is given up (after the watchdog
    /// has already reported it as stalled).
    pub remote_timeout: Duration,
}

/// Opens the backend the config names: the remote server when it has an `endpoint`, else the model here.
pub fn open(config: &BackendConfig, hooks: OpenHooks) -> Result<Box<dyn Backend>> {
    match &config.remote {
        Some(remote) => Ok(Box::new(server::open(remote, config, hooks)?)),
        None => Ok(Box::new(local::open(config, hooks)?)),
    }
}
