//! The inference thread. It alone owns the model: it loads it on the first job, runs every forward pass, and
//! frees it when the queue closes. Everything else reaches it through the job queue.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::batching::{plan_batches, BatchLimits};
use crate::device::{self, DeviceChoice};
use crate::error::{Error, Result};
use crate::model::source::{self, ModelSource};
use crate::model::Embedder;
use crate::queue::JobQueue;

/// A one-shot reply, called exactly once, from the worker thread (or from the caller's thread when a job is
/// refused before it reaches the worker).
pub type Reply<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// The vectors of one request, in the order of its texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dimensions: usize,
    pub vectors: Vec<Vec<f32>>,
    /// Tokens per text after truncation, special tokens included.
    pub token_counts: Vec<usize>,
}

pub struct EmbedJob {
    pub texts: Vec<String>,
    pub prompt: Option<String>,
    pub reply: Reply<Embeddings>,
}

/// What the worker was built with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub source: ModelSource,
    pub device: DeviceChoice,
    pub threads: usize,
    pub limits: BatchLimits,
    pub faults: FaultInjection,
}

/// Faults the tests inject to prove the service survives them. Empty by default; never set in production.
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    /// Panic inside the forward-pass region when a request contains exactly this text.
    pub panic_on_text: Option<String>,
}

/// State the worker publishes for the service to read without asking it.
#[derive(Default)]
pub struct Published {
    /// 0 until the model has loaded once.
    pub dimensions: AtomicUsize,
    pub device: Mutex<Option<String>>,
    exit: Mutex<ExitState>,
}

#[derive(Default)]
struct ExitState {
    exited: bool,
    waiters: Vec<Reply<()>>,
}

impl Published {
    /// Calls `done` once the worker has exited and freed the model (at once if it already has).
    pub fn on_exit(&self, done: Reply<()>) {
        let mut s = self.exit.lock();
        if s.exited {
            drop(s);
            done(Ok(()));
        } else {
            s.waiters.push(done);
        }
    }

    fn mark_exited(&self) {
        let waiters = {
            let mut s = self.exit.lock();
            s.exited = true;
            std::mem::take(&mut s.waiters)
        };
        for w in waiters {
            w(Ok(()));
        }
    }
}

struct Loaded {
    embedder: Embedder,
}

pub fn run(queue: Arc<JobQueue<EmbedJob>>, published: Arc<Published>, config: WorkerConfig) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.max(1))
        .thread_name(|i| format!("embedding-compute-{i}"))
        .build();
    let pool = match pool {
        Ok(p) => Some(p),
        Err(_) => None, // fall back to the global pool rather than refuse to work
    };
    let mut loaded: Option<Loaded> = None;
    while let Some(job) = queue.pop() {
        let EmbedJob { texts, prompt, reply } = job;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if loaded.is_none() {
                loaded = Some(load(&config, &published)?);
            }
            let embedder = &loaded.as_ref().expect("loaded above").embedder;
            let compute = || {
                if let Some(trigger) = &config.faults.panic_on_text {
                    if texts.iter().any(|t| t == trigger) {
                        panic!("injected test panic");
                    }
                }
                embed(embedder, &texts, prompt.as_deref(), config.limits, &queue)
            };
            match &pool {
                Some(pool) => pool.install(compute),
                None => compute(),
            }
        }));
        let result = outcome.unwrap_or_else(|panic| Err(Error::from_panic("embedding", panic.as_ref())));
        reply(result);
    }
    drop(loaded);
    published.mark_exited();
}

fn load(config: &WorkerConfig, published: &Published) -> Result<Loaded> {
    let dir = source::resolve(&config.source)?;
    let (device, name) = device::open(config.device)?;
    let embedder = Embedder::load(&dir, &device)?;
    published.dimensions.store(embedder.dimensions(), Ordering::Release);
    *published.device.lock() = Some(name);
    Ok(Loaded { embedder })
}

fn embed(
    embedder: &Embedder,
    texts: &[String],
    prompt: Option<&str>,
    limits: BatchLimits,
    queue: &JobQueue<EmbedJob>,
) -> Result<Embeddings> {
    let tokens = embedder.tokenize(texts, prompt)?;
    let lengths: Vec<usize> = tokens.iter().map(|t| t.len()).collect();
    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
    for batch in plan_batches(&lengths, limits) {
        if queue.is_closed() {
            return Err(Error::closed());
        }
        let refs: Vec<_> = batch.iter().map(|&i| &tokens[i]).collect();
        for (i, v) in batch.iter().zip(embedder.embed_tokens(&refs)?) {
            vectors[*i] = v;
        }
    }
    Ok(Embeddings { dimensions: embedder.dimensions(), vectors, token_counts: lengths })
}
