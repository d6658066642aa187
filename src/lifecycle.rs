//! The service's state machine, guarded by one lock. Every decision that must be atomic happens in one critical
//! section of `Shared::core`: a request is admitted (and the keep-alive disarmed) under it, and the worker decides
//! to unload under it only when nothing is queued or running, moving to `Unloading` before the lock is released.
//! So no request can start on a model being freed, and no unload can start while work exists.
//!
//! ```text
//!  unloaded ──work or load()──▶ loading ──ok──▶ ready ◀──────────────┐
//!     ▲                            │ err         │ work               │ last request done (keep-alive armed)
//!     │                            ▼             ▼                    │
//!     └──────── unloading ◀── (keep-alive expired or unload(),    working
//!                  │            under the lock: nothing queued or running)
//!                  └─ work arriving now waits, then reloads
//!  any state ── close() ──▶ closed          stall timeout: in-flight work fails, a fresh worker takes over
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::backend::Prepared;
use crate::keyphrases::Extraction;
use crate::model::WeightMemory;
use crate::progress::{now_ms, LogLevel, Outgoing, ProgressEvent, Sink};
use crate::results::{ResultLedger, Vectors};
use crate::scheduler::{Lanes, Priority};

/// A one-shot reply, called exactly once and never under the service's lock.
pub type Reply<T> = Box<dyn FnOnce(Result<T>) + Send>;

/// The vectors of one request, in the order of its texts.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dimensions: usize,
    /// One block for the request (see `results.rs`), freed when its last owner drops it.
    pub vectors: Vectors,
    /// Tokens per text after truncation, special tokens included.
    pub token_counts: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unloaded,
    Loading,
    Ready,
    Working,
    Unloading,
    Closed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unloaded => "unloaded",
            State::Loading => "loading",
            State::Ready => "ready",
            State::Working => "working",
            State::Unloading => "unloading",
            State::Closed => "closed",
        }
    }
}

/// The caller's side of a request: how to answer it. Stays in the core while the worker computes, so that
/// close, abort and the watchdog can answer it even if the worker never comes back.
pub struct Ticket {
    pub reply: Reply<Embeddings>,
    pub priority: Priority,
    pub started: bool,
    pub abort_requested: bool,
}

/// The worker's side of a request: its texts and the results so far. Checked out while a step runs.
pub struct Work {
    pub id: u64,
    /// A key-phrase request's candidate extraction, run by the worker before its texts exist; shared with the
    /// reply, which ranks with it.
    pub extraction: Option<Arc<Mutex<Extraction>>>,
    pub texts: Vec<String>,
    pub prompt: Option<String>,
    pub tokens: Option<Vec<Prepared>>,
    pub plan: Vec<Vec<usize>>,
    pub next_batch: usize,
    /// Mapped once the texts are tokenised (the count is known); filled batch by batch.
    pub vectors: Option<Vectors>,
    pub done: usize,
    pub started_at: Option<Instant>,
}

/// Timings that shape the lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Unload after this long without work; `None` never unloads on its own.
    pub keep_alive: Option<Duration>,
    pub stall_warning: Duration,
    pub stall_timeout: Duration,
}

pub struct Core {
    pub state: State,
    pub lanes: Lanes,
    pub tickets: HashMap<u64, Ticket>,
    pub works: HashMap<u64, Work>,
    /// The request whose step the worker is running now.
    pub on_worker: Option<u64>,
    /// An index request whose batch is paused at a checkpoint while `on_worker` (a query) runs.
    pub paused: Option<u64>,
    /// When the last query was submitted: encoders without checkpoints run smaller index batches while
    /// queries keep arriving.
    pub last_query_at: Option<Instant>,
    pub next_id: u64,
    pub model_loaded: bool,
    pub load_requested: bool,
    pub unload_requested: bool,
    pub load_waiters: Vec<Reply<()>>,
    pub unload_waiters: Vec<Reply<()>>,
    pub exit_waiters: Vec<Reply<()>>,
    pub worker_exited: bool,
    pub keep_alive_deadline: Option<Instant>,
    pub last_progress: Instant,
    pub last_progress_ms: Option<f64>,
    pub stall_warned: bool,
    /// Bumped when the watchdog abandons a stuck worker; a worker whose generation is stale exits.
    pub generation: u64,
    pub load_count: u64,
    pub unload_count: u64,
    pub dimensions: Option<usize>,
    /// The loaded model's weights (zero when none is loaded).
    pub weights: WeightMemory,
    pub device: Option<String>,
    /// The number format the loaded model computes in ("f32", "bf16", "f16").
    pub dtype: Option<&'static str>,
    /// The loaded model's prompt names.
    pub prompts: Vec<String>,
}

/// A snapshot for `status()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub state: State,
    pub model_loaded: bool,
    pub device: Option<String>,
    pub dtype: Option<&'static str>,
    /// The prompt names the model accepts (known once it has loaded).
    pub prompts: Vec<String>,
    pub dimensions: Option<usize>,
    pub queued_query: usize,
    pub queued_index: usize,
    pub active_requests: usize,
    pub last_progress_at: Option<f64>,
    pub load_count: u64,
    pub unload_count: u64,
    /// The loaded model's weights (zero when none is loaded).
    pub weights: WeightMemory,
    /// Bytes of this service's results still alive (vectors not yet collected in JavaScript or dropped in Rust).
    pub result_bytes: u64,
}

/// Work to do once the lock is released: replies and events never run under it.
#[derive(Default)]
#[must_use]
pub struct After(Vec<Box<dyn FnOnce() + Send>>);

impl After {
    pub fn push(&mut self, f: impl FnOnce() + Send + 'static) {
        self.0.push(Box::new(f));
    }
    pub fn reply<T: Send + 'static>(&mut self, reply: Reply<T>, result: Result<T>) {
        self.push(move || reply(result));
    }
    pub fn run(self) {
        for f in self.0 {
            f();
        }
    }
}

pub struct Shared {
    pub core: Mutex<Core>,
    /// Wakes the worker: new work, load or unload asked for, close.
    pub worker_wake: Condvar,
    /// Wakes the watchdog: work started, close.
    pub watchdog_wake: Condvar,
    pub sink: Arc<dyn Sink>,
    pub timing: Timing,
    /// The bytes of this service's results still alive (in JavaScript or Rust).
    pub results: Arc<ResultLedger>,
}

impl Shared {
    pub fn new(sink: Arc<dyn Sink>, timing: Timing) -> Self {
        Shared {
            core: Mutex::new(Core {
                state: State::Unloaded,
                lanes: Lanes::default(),
                tickets: HashMap::new(),
                works: HashMap::new(),
                on_worker: None,
                paused: None,
                last_query_at: None,
                next_id: 1,
                model_loaded: false,
                load_requested: false,
                unload_requested: false,
                load_waiters: Vec::new(),
                unload_waiters: Vec::new(),
                exit_waiters: Vec::new(),
                worker_exited: false,
                keep_alive_deadline: None,
                last_progress: Instant::now(),
                last_progress_ms: None,
                stall_warned: false,
                generation: 0,
                load_count: 0,
                unload_count: 0,
                dimensions: None,
                weights: WeightMemory::default(),
                device: None,
                dtype: None,
                prompts: Vec::new(),
            }),
            worker_wake: Condvar::new(),
            watchdog_wake: Condvar::new(),
            sink,
            timing,
            results: Arc::default(),
        }
    }

    pub fn emit(&self, event: ProgressEvent) {
        self.sink.send(Outgoing::Progress(event));
    }

    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.sink.send(Outgoing::Log(level, message.into()));
    }

    /// Admits a request; returns its id. Disarms the keep-alive in the same critical section, so an unload
    /// decision can never see this request as absent.
    pub fn submit(&self, texts: Vec<String>, prompt: Option<String>, priority: Priority, reply: Reply<Embeddings>) -> u64 {
        self.admit(None, texts, prompt, priority, reply)
    }

    /// Admits a key-phrase request: the worker extracts its candidates (in steps), then embeds them.
    pub fn submit_extraction(&self, extraction: Arc<Mutex<Extraction>>, priority: Priority, reply: Reply<Embeddings>) -> u64 {
        self.admit(Some(extraction), Vec::new(), None, priority, reply)
    }

    fn admit(
        &self,
        extraction: Option<Arc<Mutex<Extraction>>>,
        texts: Vec<String>,
        prompt: Option<String>,
        priority: Priority,
        reply: Reply<Embeddings>,
    ) -> u64 {
        let mut core = self.core.lock();
        let id = core.next_id;
        core.next_id += 1;
        if core.state == State::Closed {
            drop(core);
            reply(Err(Error::closed()));
            return id;
        }
        core.tickets.insert(id, Ticket { reply, priority, started: false, abort_requested: false });
        core.works.insert(
            id,
            Work {
                id,
                extraction,
                texts,
                prompt,
                tokens: None,
                plan: Vec::new(),
                next_batch: 0,
                vectors: None,
                done: 0,
                started_at: None,
            },
        );
        core.lanes.push(id, priority);
        if priority == Priority::Query {
            core.last_query_at = Some(Instant::now());
        }
        core.keep_alive_deadline = None;
        drop(core);
        self.worker_wake.notify_all();
        self.watchdog_wake.notify_all();
        id
    }

    /// Aborts a request: at once if it is waiting, else before its next batch. Unknown ids are ignored
    /// (the request has already settled).
    pub fn abort(&self, id: u64) {
        let mut after = After::default();
        {
            let mut core = self.core.lock();
            if core.on_worker == Some(id) || core.paused == Some(id) {
                if let Some(t) = core.tickets.get_mut(&id) {
                    t.abort_requested = true;
                }
            } else if let Some(ticket) = core.tickets.remove(&id) {
                core.lanes.remove(id);
                core.works.remove(&id);
                after.reply(ticket.reply, Err(Error::aborted()));
                self.update_idle(&mut core);
            }
        }
        after.run();
    }

    /// Loads the model now (if it is not loaded); `done` is called once it is ready or failed to load.
    pub fn load(&self, done: Reply<()>) {
        let mut core = self.core.lock();
        match core.state {
            State::Closed => {
                drop(core);
                done(Err(Error::closed()));
            }
            State::Ready | State::Working if core.model_loaded => {
                drop(core);
                done(Ok(()));
            }
            _ => {
                core.load_requested = true;
                core.load_waiters.push(done);
                drop(core);
                self.worker_wake.notify_all();
                self.watchdog_wake.notify_all();
            }
        }
    }

    /// Unloads the model once no work is queued or running; `done` is called when it is unloaded.
    pub fn unload(&self, done: Reply<()>) {
        let mut core = self.core.lock();
        if core.state == State::Closed {
            drop(core);
            return done(Err(Error::closed()));
        }
        if !core.model_loaded && !matches!(core.state, State::Loading | State::Unloading) && !core.load_requested {
            drop(core);
            return done(Ok(()));
        }
        core.unload_requested = true;
        core.unload_waiters.push(done);
        drop(core);
        self.worker_wake.notify_all();
    }

    /// Rejects every queued and running request with `ERR_CLOSED` and stops the worker; `done` is called once
    /// the worker has freed the model and exited (at once if it already has).
    pub fn close(&self, done: Reply<()>) {
        let mut after = After::default();
        {
            let mut core = self.core.lock();
            if core.state != State::Closed {
                core.state = State::Closed;
                self.fail_all(&mut core, &mut after, Error::closed());
            }
            if core.worker_exited {
                after.reply(done, Ok(()));
            } else {
                core.exit_waiters.push(done);
            }
        }
        self.worker_wake.notify_all();
        self.watchdog_wake.notify_all();
        after.run();
    }

    /// Answers every request, queued or running, and every load or unload waiter with `error`.
    pub fn fail_all(&self, core: &mut Core, after: &mut After, error: Error) {
        core.lanes.clear();
        core.works.clear();
        for (_, ticket) in core.tickets.drain() {
            after.reply(ticket.reply, Err(error.clone()));
        }
        for w in core.load_waiters.drain(..).chain(core.unload_waiters.drain(..)) {
            after.reply(w, Err(error.clone()));
        }
        core.load_requested = false;
        core.unload_requested = false;
    }

    /// Records progress: the watchdog measures stalls from here.
    pub fn touch(&self, core: &mut Core) {
        core.last_progress = Instant::now();
        core.last_progress_ms = Some(now_ms());
        core.stall_warned = false;
    }

    /// After the last request settles: back to `ready` and arm the keep-alive.
    pub fn update_idle(&self, core: &mut Core) {
        if core.lanes.is_empty() && core.on_worker.is_none() && core.state == State::Working {
            core.state = State::Ready;
        }
        if core.state == State::Ready && core.lanes.is_empty() && core.on_worker.is_none() {
            core.keep_alive_deadline = self.timing.keep_alive.map(|k| Instant::now() + k);
        }
    }

    /// Whether the watchdog should be watching: a request or a load is under way.
    pub fn work_active(core: &Core) -> bool {
        core.on_worker.is_some() || core.state == State::Loading || !core.lanes.is_empty()
    }

    pub fn status(&self) -> ServiceStatus {
        let core = self.core.lock();
        let active = core.tickets.values().filter(|t| t.started).count();
        ServiceStatus {
            state: core.state,
            model_loaded: core.model_loaded,
            device: core.device.clone(),
            dtype: core.dtype,
            prompts: core.prompts.clone(),
            dimensions: core.dimensions,
            queued_query: core.tickets.values().filter(|t| !t.started && t.priority == Priority::Query).count(),
            queued_index: core.tickets.values().filter(|t| !t.started && t.priority == Priority::Index).count(),
            active_requests: active,
            last_progress_at: core.last_progress_ms,
            load_count: core.load_count,
            unload_count: core.unload_count,
            weights: core.weights,
            result_bytes: self.results.held_bytes(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock()
    }
}
