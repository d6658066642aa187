//! The public Rust face of the addon: construct a service, submit texts, load, unload, read its state, close it.
//! The napi binding is a thin layer over this; Rust callers and tests use it directly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::BackendConfig;
use crate::batching::BatchLimits;
use crate::device::{self, default_threads, DeviceChoice};
use crate::error::{Error, Result};
use crate::keyphrases::{Extraction, Keyphrase, KeyphraseOptions};
use crate::lifecycle::{Embeddings, Reply, ServiceStatus, Lifecycle, Timing};
use crate::model::source::ModelSource;
use crate::model::{Dtype, Kernels};
use crate::progress::{NullSink, Sink};
use crate::remote::RemoteOptions;
use crate::results::Vectors;
use crate::worker::{self, FaultInjection, WorkerConfig};
use crate::watchdog;

/// Everything a service is built from. `ServiceOptions::new(model)` gives the documented defaults.
#[derive(Clone)]
pub struct ServiceOptions {
    pub model: String,
    pub revision: String,
    pub cache_dir: Option<PathBuf>,
    pub offline: bool,
    /// A model download that receives nothing for this long fails with `ERR_DOWNLOAD`. Default 30 s, or
    /// `HF_HUB_DOWNLOAD_TIMEOUT` seconds.
    pub download_timeout: Duration,
    pub device: DeviceChoice,
    /// CPU threads for inference.
    pub threads: usize,
    /// The weights' number format; `None` picks per device (`Dtype::default_for`: f32 on CPU).
    pub dtype: Option<Dtype>,
    /// The forward pass on the CPU: the fast kernels (the default), or candle's operations, which GPU devices
    /// run (to test on a CPU what those devices do; not offered to JS).
    pub kernels: Kernels,
    pub limits: BatchLimits,
    /// Unload after this long without work; `None` never unloads on its own. Default 5 minutes.
    pub keep_alive: Option<Duration>,
    /// No progress this long while work is active: a `stall_warning`. Default 60 s.
    pub stall_warning: Duration,
    /// No progress this long: in-flight work fails with `ERR_STALLED` and the worker is replaced. Default 5 min.
    pub stall_timeout: Duration,
    /// Where progress events and log lines go.
    pub sink: Arc<dyn Sink>,
    /// For tests only.
    pub faults: FaultInjection,
    /// Embed through a remote OpenAI-compatible server instead of loading the model here.
    pub remote: Option<RemoteOptions>,
}

impl ServiceOptions {
    pub fn new(model: impl Into<String>) -> Self {
        let source = ModelSource::new(model);
        ServiceOptions {
            model: source.model,
            revision: source.revision,
            cache_dir: source.cache_dir,
            offline: source.offline,
            download_timeout: source.download_timeout,
            device: DeviceChoice::Auto,
            threads: default_threads(),
            dtype: None,
            kernels: Kernels::Fast,
            limits: BatchLimits::default(),
            keep_alive: Some(Duration::from_millis(300_000)),
            stall_warning: Duration::from_millis(60_000),
            stall_timeout: Duration::from_millis(300_000),
            sink: Arc::new(NullSink),
            faults: FaultInjection::default(),
            remote: None,
        }
    }
}

pub use crate::request::{EmbedOptions, InputType, Output, PromptChoice};

pub struct Service {
    shared: Arc<Lifecycle>,
}

impl Service {
    /// Validates the options and starts the worker and watchdog threads. Loads nothing yet.
    pub fn new(options: ServiceOptions) -> Result<Self> {
        if options.model.trim().is_empty() {
            return Err(Error::invalid_input(
                "`model` is required: a hub id such as \"sentence-transformers/all-MiniLM-L6-v2\" or a folder path",
            ));
        }
        if options.threads == 0 {
            return Err(Error::invalid_input("`threads` must be at least 1"));
        }
        if options.limits.max_batch_size == 0 || options.limits.max_batch_tokens == 0 {
            return Err(Error::invalid_input("batch limits must be at least 1"));
        }
        if options.stall_timeout.is_zero() || options.stall_warning.is_zero() {
            return Err(Error::invalid_input("stall thresholds must be positive"));
        }
        if options.download_timeout.is_zero() {
            return Err(Error::invalid_input("`downloadTimeoutMs` must be positive"));
        }
        if let Some(remote) = &options.remote {
            remote.validate()?;
            if options.dtype.is_some() {
                return Err(Error::invalid_input(
                    "`dtype` does not apply with `endpoint`: the server decides the number format it computes in",
                ));
            }
        }
        if options.dtype == Some(Dtype::Int8) && matches!(options.device, DeviceChoice::Cuda | DeviceChoice::Metal) {
            return Err(Error::invalid_input(
                "dtype 'int8' runs on the CPU: use device 'cpu' or 'auto' with it (or dtype 'bf16' or 'f16' on a GPU)",
            ));
        }
        let local = options.remote.is_none();
        if local {
            device::check_compiled(options.device)?;
        }
        // On a CPU-only build (or device 'cpu') a bf16 request that this CPU cannot run fails now, not at load.
        let cpu_only = options.device == DeviceChoice::Cpu
            || (options.device == DeviceChoice::Auto && !cfg!(any(feature = "cuda", feature = "metal")));
        if local && options.dtype == Some(Dtype::Bf16) && cpu_only {
            crate::model::check_cpu_bf16()?;
        }
        let config = Arc::new(WorkerConfig {
            backend: BackendConfig {
                source: ModelSource {
                    model: options.model,
                    revision: options.revision,
                    cache_dir: options.cache_dir,
                    offline: options.offline,
                    download_timeout: options.download_timeout,
                },
                device: options.device,
                threads: options.threads,
                dtype: options.dtype,
                kernels: options.kernels,
                remote: options.remote,
                // The watchdog reports an unanswered request at the stall timeout; the socket gives up a minute
                // later.
                remote_timeout: options.stall_timeout + Duration::from_secs(60),
            },
            limits: options.limits,
            faults: options.faults,
        });
        let timing = Timing {
            keep_alive: options.keep_alive,
            stall_warning: options.stall_warning,
            stall_timeout: options.stall_timeout,
        };
        let shared = Arc::new(Lifecycle::new(options.sink, timing));
        worker::spawn(shared.clone(), config.clone(), 0)?;
        watchdog::spawn(shared.clone(), config)?;
        Ok(Service { shared })
    }

    /// Queues texts for embedding and returns the request's id. `reply` is called once with the result, from
    /// the worker thread (or from this thread when the request is answered without the worker).
    pub fn embed(&self, texts: Vec<String>, options: EmbedOptions, reply: Reply<Embeddings>) -> u64 {
        if texts.is_empty() {
            if self.shared.is_closed(&self.shared.lock()) {
                reply(Err(Error::closed()));
            } else {
                let dimensions = self.dimensions().unwrap_or(0);
                let vectors = Vectors::new(0, dimensions, &self.shared.results).expect("no values to map");
                reply(Ok(Embeddings { dimensions, vectors, token_counts: Vec::new() }));
            }
            return 0;
        }
        self.shared.submit(texts, options, reply)
    }

    /// `embed`, waiting for the result on the calling thread.
    pub fn embed_blocking(&self, texts: Vec<String>, options: EmbedOptions) -> Result<Embeddings> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.embed(texts, options, Box::new(move |r| drop(tx.send(r))));
        rx.recv().map_err(|_| Error::internal("the worker dropped a request without answering"))?
    }

    /// Key phrases of each document, KeyBERT's way: candidate n-grams are extracted on the worker, a slice of
    /// text per step (progress `extracting_candidates`, abortable, watched by the watchdog; at index priority
    /// queries run between slices), then the documents and their distinct candidates are embedded as one request
    /// (no prompt, at `options.priority`) and each document's candidates ranked against it. The calling thread
    /// only hands the texts over. Returns the request's id, for `abort`.
    pub fn extract_keyphrases(
        &self,
        documents: Vec<String>,
        options: KeyphraseOptions,
        reply: Reply<Vec<Vec<Keyphrase>>>,
    ) -> u64 {
        if let Err(e) = options.validate() {
            reply(Err(e));
            return 0;
        }
        if documents.is_empty() {
            reply(Ok(Vec::new()));
            return 0;
        }
        let extraction = Arc::new(parking_lot::Mutex::new(Extraction::new(documents, &options)));
        let ranker = extraction.clone();
        let priority = options.priority;
        self.shared.submit_extraction(
            extraction,
            priority,
            Box::new(move |result| {
                // The reply runs on the worker thread: a bug here must fail this request, not the worker.
                let ranked = result.and_then(|e| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        ranker.lock().rank(&e.vectors.iter().collect::<Vec<_>>(), &options)
                    }))
                    .map_err(|p| Error::from_panic("ranking key phrases", p.as_ref()))
                });
                reply(ranked)
            }),
        )
    }

    /// Aborts a request (`ERR_ABORTED`): at once if it waits, else before its next batch.
    pub fn abort(&self, id: u64) {
        self.shared.abort(id)
    }

    /// Loads the model if it is not loaded; `done` is called when it is ready (or failed).
    pub fn load(&self, done: Reply<()>) {
        self.shared.load(done)
    }

    /// Unloads the model once no work is queued or running; `done` is called when it is unloaded.
    pub fn unload(&self, done: Reply<()>) {
        self.shared.unload(done)
    }

    pub fn status(&self) -> ServiceStatus {
        self.shared.status()
    }

    /// The embedding size, once the model has loaded.
    pub fn dimensions(&self) -> Option<usize> {
        self.shared.dimensions()
    }

    /// Rejects queued and running work with `ERR_CLOSED`, and calls `done` once the worker has freed the model
    /// and exited. Closing twice is harmless.
    pub fn close(&self, done: Reply<()>) {
        self.shared.close(done)
    }

    pub fn close_blocking(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.close(Box::new(move |_| {
            let _ = tx.send(());
        }));
        let _ = rx.recv();
    }

    /// Runs `op` and waits for its reply on this thread (for `load` and `unload` in Rust code and tests).
    pub fn wait(&self, op: impl FnOnce(&Self, Reply<()>)) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        op(self, Box::new(move |r| drop(tx.send(r))));
        rx.recv().map_err(|_| Error::internal("dropped without an answer"))?
    }
}

impl Drop for Service {
    /// A dropped service (garbage-collected in JS) stops its threads instead of leaking them and the model.
    fn drop(&mut self) {
        self.shared.close(Box::new(|_| {}));
    }
}
