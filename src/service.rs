//! The public Rust face of the addon: construct a service, submit texts, read its state, close it.
//! The napi binding is a thin layer over this; Rust callers and tests use it directly.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::batching::BatchLimits;
use crate::device::{self, DeviceChoice};
use crate::error::{Error, Result};
use crate::model::source::ModelSource;
use crate::queue::JobQueue;
use crate::worker::{self, EmbedJob, Embeddings, FaultInjection, Published, Reply, WorkerConfig};

/// Everything a service is built from. `ServiceOptions::new(model)` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub model: String,
    pub revision: String,
    pub cache_dir: Option<PathBuf>,
    pub offline: bool,
    pub device: DeviceChoice,
    /// CPU threads for inference.
    pub threads: usize,
    pub limits: BatchLimits,
    /// For tests only.
    pub faults: FaultInjection,
}

impl ServiceOptions {
    pub fn new(model: impl Into<String>) -> Self {
        let source = ModelSource::new(model);
        ServiceOptions {
            model: source.model,
            revision: source.revision,
            cache_dir: source.cache_dir,
            offline: source.offline,
            device: DeviceChoice::Auto,
            threads: default_threads(),
            limits: BatchLimits::default(),
            faults: FaultInjection::default(),
        }
    }
}

/// Physical cores: hyper-threads share the FMA units the matrix multiplies are bound by.
pub fn default_threads() -> usize {
    num_cpus::get_physical().max(1)
}

/// Options for one `embed` call.
#[derive(Debug, Clone, Default)]
pub struct EmbedOptions {
    /// The name of one of the model's prompts.
    pub prompt: Option<String>,
}

pub struct Service {
    queue: Arc<JobQueue<EmbedJob>>,
    published: Arc<Published>,
}

impl Service {
    /// Validates the options and starts the worker thread. Loads nothing yet: the model loads on first use.
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
        device::check_compiled(options.device)?;
        let config = WorkerConfig {
            source: ModelSource {
                model: options.model,
                revision: options.revision,
                cache_dir: options.cache_dir,
                offline: options.offline,
            },
            device: options.device,
            threads: options.threads,
            limits: options.limits,
            faults: options.faults,
        };
        let queue = Arc::new(JobQueue::default());
        let published = Arc::new(Published::default());
        let (q, p) = (queue.clone(), published.clone());
        std::thread::Builder::new()
            .name("embedding-worker".into())
            .spawn(move || worker::run(q, p, config))
            .map_err(|e| Error::internal(format!("cannot start the worker thread: {e}")))?;
        Ok(Service { queue, published })
    }

    /// Queues texts for embedding; `reply` is called once with the result, on the worker thread (or at once on
    /// this thread when the request is answered without the worker: empty input, a closed service).
    pub fn embed(&self, texts: Vec<String>, options: EmbedOptions, reply: Reply<Embeddings>) {
        if self.queue.is_closed() {
            return reply(Err(Error::closed()));
        }
        if texts.is_empty() {
            let dimensions = self.dimensions().unwrap_or(0);
            return reply(Ok(Embeddings { dimensions, vectors: Vec::new(), token_counts: Vec::new() }));
        }
        let job = EmbedJob { texts, prompt: options.prompt, reply };
        if let Err(job) = self.queue.push(job) {
            (job.reply)(Err(Error::closed()));
        }
    }

    /// `embed`, waiting for the result on the calling thread.
    pub fn embed_blocking(&self, texts: Vec<String>, options: EmbedOptions) -> Result<Embeddings> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.embed(texts, options, Box::new(move |r| drop(tx.send(r))));
        rx.recv().map_err(|_| Error::internal("the worker dropped a request without answering"))?
    }

    /// The embedding size, once the model has loaded.
    pub fn dimensions(&self) -> Option<usize> {
        match self.published.dimensions.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// The device in use ("cpu", "cuda:0", ...), once the model has loaded.
    pub fn device(&self) -> Option<String> {
        self.published.device.lock().clone()
    }

    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Rejects queued work with `ERR_CLOSED`, stops the running request at its next batch, and calls `done`
    /// once the worker has freed the model and exited. Closing twice is harmless.
    pub fn close(&self, done: Reply<()>) {
        if let Some(unstarted) = self.queue.close() {
            for job in unstarted {
                (job.reply)(Err(Error::closed()));
            }
        }
        self.published.on_exit(done);
    }

    pub fn close_blocking(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.close(Box::new(move |_| {
            let _ = tx.send(());
        }));
        let _ = rx.recv();
    }
}

impl Drop for Service {
    /// A dropped service (garbage-collected in JS) stops its worker instead of leaking the thread and the model.
    fn drop(&mut self) {
        if let Some(unstarted) = self.queue.close() {
            for job in unstarted {
                (job.reply)(Err(Error::closed()));
            }
        }
    }
}
