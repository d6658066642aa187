//! The service's state machine, guarded by one lock. Every decision that must be atomic happens in one critical
//! section of `Lifecycle::core`: a request is admitted (and the keep-alive disarmed) under it, and the worker decides
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
use crate::request::{EmbedOptions, Finisher};
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
pub struct Caller {
    pub reply: Reply<Embeddings>,
    pub priority: Priority,
    pub started: bool,
    pub abort_requested: bool,
}

/// The worker's side of a request: its texts and the results so far. Checked out while a step runs.
pub struct Job {
    pub id: u64,
    /// A key-phrase request's candidate extraction, run by the worker before its texts exist; shared with the
    /// reply, which ranks with it.
    pub extraction: Option<Arc<Mutex<Extraction>>>,
    pub texts: Vec<String>,
    /// The prompt and vector shape asked for.
    pub options: EmbedOptions,
    pub tokens: Option<Vec<Prepared>>,
    pub plan: Vec<Vec<usize>>,
    pub next_batch: usize,
    /// Mapped once the texts are tokenised (the count is known); filled batch by batch.
    pub vectors: Option<Vectors>,
    /// How each vector is finished before it is stored; known once the model is.
    pub finisher: Option<Finisher>,
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

/// Everything the lifecycle keeps under its one lock: the requests (callers and jobs) and their lanes, the
/// model's state, the waiters of load, unload and close, and the timers. Private: only `Lifecycle`'s methods
/// change it, so every transition is written here.
pub struct Records {
    state: State,
    lanes: Lanes,
    tickets: HashMap<u64, Caller>,
    works: HashMap<u64, Job>,
    /// The request whose step the worker is running now.
    on_worker: Option<u64>,
    /// An index request whose batch is paused at a checkpoint while `on_worker` (a query) runs.
    paused: Option<u64>,
    /// When the last query was submitted: encoders without checkpoints run smaller index batches while
    /// queries keep arriving.
    last_query_at: Option<Instant>,
    next_id: u64,
    model_loaded: bool,
    load_requested: bool,
    unload_requested: bool,
    load_waiters: Vec<Reply<()>>,
    unload_waiters: Vec<Reply<()>>,
    exit_waiters: Vec<Reply<()>>,
    worker_exited: bool,
    keep_alive_deadline: Option<Instant>,
    last_progress: Instant,
    last_progress_ms: Option<f64>,
    stall_warned: bool,
    /// Bumped when the watchdog abandons a stuck worker; a worker whose generation is stale exits.
    generation: u64,
    load_count: u64,
    unload_count: u64,
    dimensions: Option<usize>,
    /// The loaded model's weights (zero when none is loaded).
    weights: WeightMemory,
    device: Option<String>,
    /// The number format the loaded model computes in ("f32", "bf16", "f16", "int8").
    dtype: Option<&'static str>,
    /// The CPU kernels it runs on ("avx512", "avx512-vnni", ...), for a model on the CPU.
    simd: Option<&'static str>,
    /// The loaded model's architecture (`model_type`).
    family: Option<String>,
    /// The loaded model's prompt names.
    prompts: Vec<String>,
}

/// A snapshot for `status()`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub state: State,
    pub model_loaded: bool,
    pub device: Option<String>,
    pub dtype: Option<&'static str>,
    /// The CPU kernels the model runs on ("avx512", "avx2", "neon", "scalar"; for int8 the dot-product kernel:
    /// "avx512-vnni", "avx-vnni", "neon-dotprod", ...); `None` on a GPU or a server.
    pub simd: Option<&'static str>,
    /// The loaded model's architecture, as config.json's `model_type` names it ("bert", "xlm-roberta",
    /// "modernbert", "qwen3"); `None` for a server's model, or none loaded.
    pub family: Option<String>,
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

/// What to do once the lock is released: replies and events never run under it.
#[derive(Default)]
#[must_use]
pub struct Deferred(Vec<Box<dyn FnOnce() + Send>>);

impl Deferred {
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

/// What the worker does next, decided under the lock by `Lifecycle::next_duty`, which also makes the transition
/// a duty starts with (to `Loading`, to `Unloading`); the worker does the work unlocked and reports back.
pub enum Duty {
    /// The watchdog replaced this worker: it leaves without touching the service.
    Leave,
    /// The service closed: free the model and exit.
    Close,
    /// Free the model (the state is `Unloading` now), then `finish_unload`.
    Unload,
    /// Load the model (the state is `Loading` now), then `finish_load`.
    Load,
    /// Answer these load or unload waiters: nothing needs doing for them.
    Answer(Vec<Reply<()>>),
    /// Run one step of this request: `start_step`, then `finish_step`.
    Step(u64),
    /// Hand idle memory back (the worker's own timer came due).
    Collect,
    /// Nothing to do until woken, or until this deadline.
    Sleep(Option<Instant>),
}

/// The loaded model, as the service reports it.
pub struct ModelInfo {
    pub dimensions: usize,
    pub weights: WeightMemory,
    pub device: String,
    pub dtype: Option<&'static str>,
    pub simd: Option<&'static str>,
    pub family: Option<String>,
    pub prompts: Vec<String>,
}

/// A step taken out of the lanes for the worker to run unlocked.
pub struct StartedStep {
    pub work: Job,
    pub priority: Priority,
    /// The request this step interrupts (an index request paused at a checkpoint), if any.
    pub interrupts: Option<u64>,
}

/// How a step ended.
pub enum StepOutcome {
    More,
    Done(Embeddings),
    Failed(Error),
}

/// The service's state machine: its `Records` behind one lock, and the condition variables that wake the
/// worker and the watchdog. Shared by the service handle, the worker and the watchdog.
pub struct Lifecycle {
    pub core: Mutex<Records>,
    /// Wakes the worker: new work, load or unload asked for, close.
    pub worker_wake: Condvar,
    /// Wakes the watchdog: work started, close.
    pub watchdog_wake: Condvar,
    pub sink: Arc<dyn Sink>,
    pub timing: Timing,
    /// The bytes of this service's results still alive (in JavaScript or Rust).
    pub results: Arc<ResultLedger>,
}

impl Lifecycle {
    pub fn new(sink: Arc<dyn Sink>, timing: Timing) -> Self {
        Lifecycle {
            core: Mutex::new(Records {
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
                simd: None,
                family: None,
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
    pub fn submit(&self, texts: Vec<String>, options: EmbedOptions, reply: Reply<Embeddings>) -> u64 {
        self.admit(None, texts, options, reply)
    }

    /// Admits a key-phrase request: the worker extracts its candidates (in steps), then embeds them.
    pub fn submit_extraction(&self, extraction: Arc<Mutex<Extraction>>, priority: Priority, reply: Reply<Embeddings>) -> u64 {
        self.admit(Some(extraction), Vec::new(), EmbedOptions { priority, ..Default::default() }, reply)
    }

    fn admit(
        &self,
        extraction: Option<Arc<Mutex<Extraction>>>,
        texts: Vec<String>,
        options: EmbedOptions,
        reply: Reply<Embeddings>,
    ) -> u64 {
        let priority = options.priority;
        let mut core = self.core.lock();
        let id = core.next_id;
        core.next_id += 1;
        if core.state == State::Closed {
            drop(core);
            reply(Err(Error::closed()));
            return id;
        }
        core.tickets.insert(id, Caller { reply, priority, started: false, abort_requested: false });
        core.works.insert(
            id,
            Job {
                id,
                extraction,
                texts,
                options,
                tokens: None,
                plan: Vec::new(),
                next_batch: 0,
                vectors: None,
                finisher: None,
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
        let mut after = Deferred::default();
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
        let mut after = Deferred::default();
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
    pub fn fail_all(&self, core: &mut Records, after: &mut Deferred, error: Error) {
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
    pub fn touch(&self, core: &mut Records) {
        core.last_progress = Instant::now();
        core.last_progress_ms = Some(now_ms());
        core.stall_warned = false;
    }

    /// After the last request settles: back to `ready` and arm the keep-alive.
    pub fn update_idle(&self, core: &mut Records) {
        if core.lanes.is_empty() && core.on_worker.is_none() && core.state == State::Working {
            core.state = State::Ready;
        }
        if core.state == State::Ready && core.lanes.is_empty() && core.on_worker.is_none() {
            core.keep_alive_deadline = self.timing.keep_alive.map(|k| Instant::now() + k);
        }
    }

    /// Whether the watchdog should be watching: a request or a load is under way.
    pub fn work_active(core: &Records) -> bool {
        core.on_worker.is_some() || core.state == State::Loading || !core.lanes.is_empty()
    }

    pub fn status(&self) -> ServiceStatus {
        let core = self.core.lock();
        let active = core.tickets.values().filter(|t| t.started).count();
        // What describes the loaded model goes with it; the prompts and dimensions stay known after an unload
        // (callers size their stores and pick prompts from them while the model sleeps).
        let loaded = core.model_loaded;
        ServiceStatus {
            state: core.state,
            model_loaded: loaded,
            device: core.device.clone().filter(|_| loaded),
            dtype: core.dtype.filter(|_| loaded),
            simd: core.simd.filter(|_| loaded),
            family: core.family.clone().filter(|_| loaded),
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

    pub fn lock(&self) -> MutexGuard<'_, Records> {
        self.core.lock()
    }

    // ---- the worker's transitions ------------------------------------------------------------------------

    /// The worker's next duty. `has_model`: it holds a loaded model; `collect_due`: its idle-memory timer.
    pub fn next_duty(&self, core: &mut Records, generation: u64, has_model: bool, collect_due: Option<Instant>) -> Duty {
        if core.generation != generation {
            return Duty::Leave;
        }
        if core.state == State::Closed {
            return Duty::Close;
        }
        let idle = core.lanes.is_empty() && core.on_worker.is_none();
        // Unload: only when nothing is queued or running, decided and marked under the lock.
        let keep_alive_expired = core.keep_alive_deadline.is_some_and(|d| Instant::now() >= d);
        if has_model && idle && (core.unload_requested || keep_alive_expired) {
            core.state = State::Unloading;
            core.keep_alive_deadline = None;
            return Duty::Unload;
        }
        if !has_model && core.unload_requested && idle && !core.load_requested {
            // Nothing to unload (a load failed or never happened): just answer.
            core.unload_requested = false;
            return Duty::Answer(core.unload_waiters.drain(..).collect());
        }
        if !has_model && (!core.lanes.is_empty() || core.load_requested) {
            core.state = State::Loading;
            self.touch(core);
            self.watchdog_wake.notify_all();
            return Duty::Load;
        }
        if has_model && core.load_requested {
            core.load_requested = false;
            return Duty::Answer(core.load_waiters.drain(..).collect());
        }
        if has_model {
            if let Some(id) = core.lanes.next_to_run() {
                return Duty::Step(id);
            }
            if collect_due.is_some_and(|at| Instant::now() >= at) {
                return Duty::Collect;
            }
        }
        if core.state == State::Working {
            core.state = State::Ready;
        }
        let keep_alive = core.keep_alive_deadline.filter(|_| has_model);
        Duty::Sleep(keep_alive.into_iter().chain(collect_due.filter(|_| has_model)).min())
    }

    /// The model is freed. Returns false when the watchdog replaced the worker meanwhile.
    pub fn finish_unload(&self, core: &mut Records, after: &mut Deferred, generation: u64) -> bool {
        if core.generation != generation {
            return false;
        }
        core.model_loaded = false;
        core.weights = Default::default();
        core.unload_count += 1;
        core.unload_requested = false;
        if core.state != State::Closed {
            core.state = State::Unloaded;
        }
        for w in core.unload_waiters.drain(..) {
            after.reply(w, Ok(()));
        }
        self.emit(ProgressEvent::new(crate::progress::Status::Idle, 0, 0, "model unloaded"));
        true
    }

    /// A load ended: ready with `model`, or every waiting request and load failed with its error (the next
    /// request tries again). Returns whether the model is now the service's (false when it failed).
    pub fn finish_load(&self, core: &mut Records, after: &mut Deferred, result: Result<ModelInfo>) -> bool {
        core.load_requested = false;
        match result {
            Ok(model) => {
                core.model_loaded = true;
                core.load_count += 1;
                core.dimensions = Some(model.dimensions);
                core.weights = model.weights;
                core.device = Some(model.device);
                core.dtype = model.dtype;
                core.simd = model.simd;
                core.family = model.family;
                core.prompts = model.prompts;
                if core.state != State::Closed {
                    core.state = State::Ready;
                }
                for w in core.load_waiters.drain(..) {
                    after.reply(w, Ok(()));
                }
                self.touch(core);
                self.update_idle(core);
                true
            }
            Err(e) => {
                if core.state != State::Closed {
                    core.state = State::Unloaded;
                }
                self.log(LogLevel::Warn, format!("loading the model failed: {e}"));
                self.fail_all(core, after, e);
                false
            }
        }
    }

    /// Takes request `id`'s work out to run one step of it (None if it has settled meanwhile).
    pub fn start_step(&self, core: &mut Records, id: u64) -> Option<StartedStep> {
        let work = core.works.remove(&id)?;
        let interrupts = core.on_worker.replace(id);
        core.state = State::Working;
        let mut priority = Priority::Index;
        if let Some(t) = core.tickets.get_mut(&id) {
            t.started = true;
            priority = t.priority;
        }
        self.watchdog_wake.notify_all();
        Some(StartedStep { work, priority, interrupts })
    }

    /// Settles the request the step belonged to (done, failed or aborted) or puts it back at the front of its
    /// lane. The ticket is gone when close() or the watchdog already answered the request.
    pub fn finish_step(&self, core: &mut Records, after: &mut Deferred, step: StartedStep, outcome: StepOutcome) {
        let id = step.work.id;
        core.on_worker = step.interrupts;
        self.touch(core);
        if let Some(ticket) = core.tickets.remove(&id) {
            match outcome {
                _ if ticket.abort_requested => after.reply(ticket.reply, Err(Error::aborted())),
                StepOutcome::Failed(e) => after.reply(ticket.reply, Err(e)),
                StepOutcome::Done(result) => {
                    let n = result.vectors.len() as u64;
                    self.emit(ProgressEvent::new(crate::progress::Status::Completed, n, n, "completed").for_request(id));
                    after.reply(ticket.reply, Ok(result));
                }
                StepOutcome::More => {
                    core.tickets.insert(id, ticket);
                    core.works.insert(id, step.work);
                    core.lanes.push_front(id, step.priority);
                }
            }
        }
        self.update_idle(core);
    }

    /// A query to run now while index request `index_id` waits (at a checkpoint, or for a server's answers),
    /// if one is queued and the streak allows; `progressed`: the index work moved on since the last time
    /// (a new streak). The index request is marked paused until `end_pause`.
    pub fn query_to_interleave(&self, core: &mut Records, index_id: u64, progressed: bool) -> Option<u64> {
        if progressed {
            core.lanes.index_progressed();
        }
        let query = core.lanes.next_preempting_query()?;
        core.paused = Some(index_id);
        Some(query)
    }

    pub fn end_pause(&self, core: &mut Records) {
        core.paused = None;
    }

    /// Whether this worker still serves the service: not once the watchdog replaced it or the service closed.
    pub fn check_serving(&self, core: &Records, generation: u64) -> Result<()> {
        if core.generation != generation {
            return Err(Error::internal("the watchdog replaced this worker"));
        }
        if core.state == State::Closed {
            return Err(Error::closed());
        }
        Ok(())
    }

    /// Whether request `id`, in progress on this worker, should go on: not when the worker was replaced, the
    /// service closed, the request aborted or already answered.
    pub fn check_wanted(&self, core: &Records, generation: u64, id: u64) -> Result<()> {
        self.check_serving(core, generation)?;
        match core.tickets.get(&id) {
            Some(t) if !t.abort_requested => Ok(()),
            _ => Err(Error::aborted()),
        }
    }

    /// Whether a query arrived within `window`: index work then runs in smaller batches.
    pub fn queries_arriving(&self, core: &Records, window: Duration) -> bool {
        core.last_query_at.is_some_and(|t| t.elapsed() < window)
    }

    pub fn queued_queries(&self, core: &Records) -> usize {
        core.lanes.len(Priority::Query)
    }

    /// Whether the watchdog has replaced the worker of `generation`.
    pub fn replaced(&self, core: &Records, generation: u64) -> bool {
        core.generation != generation
    }

    pub fn is_closed(&self, core: &Records) -> bool {
        core.state == State::Closed
    }

    /// The worker of `generation` has exited (after close): the close() waiters to answer.
    pub fn worker_exited(&self, generation: u64) -> Vec<Reply<()>> {
        let mut core = self.core.lock();
        if core.generation == generation {
            core.worker_exited = true;
            core.model_loaded = false;
            core.weights = Default::default();
        }
        std::mem::take(&mut core.exit_waiters)
    }

    // ---- the watchdog's transitions ----------------------------------------------------------------------

    /// How long since the worker last reported progress, when work is under way and the service open.
    pub fn silence(&self, core: &Records) -> Option<Duration> {
        (core.state != State::Closed && Self::work_active(core)).then(|| core.last_progress.elapsed())
    }

    /// Gives up on the stuck worker: every request and waiter fails with `error`, the model counts as gone
    /// (the abandoned worker still holds it until it returns, if ever), and the new generation is returned
    /// for a fresh worker.
    pub fn abandon_worker(&self, core: &mut Records, after: &mut Deferred, error: Error) -> u64 {
        core.generation += 1;
        self.fail_all(core, after, error.clone());
        core.on_worker = None;
        core.paused = None;
        core.model_loaded = false;
        core.weights = Default::default();
        core.state = State::Unloaded;
        core.keep_alive_deadline = None;
        self.touch(core);
        self.emit(ProgressEvent::new(crate::progress::Status::Stalled, 0, 0, error.message.clone()));
        self.log(LogLevel::Error, error.message);
        core.generation
    }

    /// Reports a stall once (until progress resumes): returns the warning to send, or None if already sent.
    pub fn warn_stall(&self, core: &mut Records, silent: Duration) -> bool {
        if core.stall_warned {
            return false;
        }
        core.stall_warned = true;
        let message = format!(
            "no progress from the embedding worker for {:.1} s (state {}); it will be failed with ERR_STALLED \
             after {} ms without progress",
            silent.as_secs_f64(),
            core.state.as_str(),
            self.timing.stall_timeout.as_millis()
        );
        self.emit(ProgressEvent::new(crate::progress::Status::StallWarning, 0, 0, message.clone()));
        self.log(LogLevel::Warn, message);
        true
    }

    /// When the watchdog should look again: the next threshold the current silence could cross.
    pub fn next_stall_check(&self, core: &Records) -> Instant {
        let timing = self.timing;
        let next = if core.stall_warned { timing.stall_timeout } else { timing.stall_warning.min(timing.stall_timeout) };
        (core.last_progress + next).max(Instant::now() + Duration::from_millis(1))
    }

    /// The embedding size once a model has loaded.
    pub fn dimensions(&self) -> Option<usize> {
        self.core.lock().dimensions
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Receiver};

    use super::*;
    use crate::error::ErrorCode;
    use crate::progress::NullSink;

    fn lifecycle(keep_alive: Option<Duration>) -> Lifecycle {
        let timing = Timing { keep_alive, stall_warning: Duration::from_secs(60), stall_timeout: Duration::from_secs(300) };
        Lifecycle::new(Arc::new(NullSink), timing)
    }

    fn reply<T: Send + 'static>() -> (Reply<T>, Receiver<Result<T>>) {
        let (tx, rx) = channel();
        (Box::new(move |r| drop(tx.send(r))), rx)
    }

    fn model() -> ModelInfo {
        ModelInfo { dimensions: 4, weights: WeightMemory::default(), device: "cpu".into(), dtype: Some("f32"), simd: None, family: None, prompts: vec![] }
    }

    fn done(lc: &Lifecycle) -> StepOutcome {
        StepOutcome::Done(Embeddings { dimensions: 4, vectors: Vectors::new(0, 4, &lc.results).unwrap(), token_counts: vec![] })
    }

    /// Submits one text and loads the model, as the worker would; returns the request's id and its answer.
    fn submitted_and_loaded(lc: &Lifecycle) -> (u64, Receiver<Result<Embeddings>>) {
        let (r, rx) = reply();
        let id = lc.submit(vec!["a".into()], EmbedOptions::default(), r);
        let mut records = lc.lock();
        assert!(matches!(lc.next_duty(&mut records, 0, false, None), Duty::Load));
        assert_eq!(records.state, State::Loading);
        let mut after = Deferred::default();
        assert!(lc.finish_load(&mut records, &mut after, Ok(model())));
        assert_eq!(records.state, State::Ready);
        (id, rx)
    }

    #[test]
    fn work_asks_for_a_load_then_runs_and_settles_and_arms_the_keep_alive() {
        let lc = lifecycle(Some(Duration::from_secs(60)));
        let (id, rx) = submitted_and_loaded(&lc);
        let mut records = lc.lock();
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Step(s) if s == id));
        let step = lc.start_step(&mut records, id).unwrap();
        assert_eq!(records.state, State::Working);
        assert!(records.keep_alive_deadline.is_none(), "no keep-alive while work runs");
        let mut after = Deferred::default();
        lc.finish_step(&mut records, &mut after, step, done(&lc));
        assert_eq!(records.state, State::Ready);
        assert!(records.keep_alive_deadline.is_some());
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Sleep(Some(_))));
        drop(records);
        after.run();
        assert!(rx.recv().unwrap().is_ok());
        assert_eq!(lc.status().load_count, 1);
    }

    #[test]
    fn a_failed_load_fails_what_waits_for_it_and_the_next_request_loads_again() {
        let lc = lifecycle(None);
        let (r, rx) = reply();
        lc.submit(vec!["a".into()], EmbedOptions { priority: Priority::Query, ..Default::default() }, r);
        let mut records = lc.lock();
        assert!(matches!(lc.next_duty(&mut records, 0, false, None), Duty::Load));
        let mut after = Deferred::default();
        assert!(!lc.finish_load(&mut records, &mut after, Err(Error::model_not_found("no such model"))));
        assert_eq!(records.state, State::Unloaded);
        assert!(matches!(lc.next_duty(&mut records, 0, false, None), Duty::Sleep(None)));
        drop(records);
        after.run();
        assert_eq!(rx.recv().unwrap().unwrap_err().code, ErrorCode::ModelNotFound);
        let (r, _rx) = reply();
        lc.submit(vec!["b".into()], EmbedOptions { priority: Priority::Query, ..Default::default() }, r);
        assert!(matches!(lc.next_duty(&mut lc.lock(), 0, false, None), Duty::Load));
    }

    #[test]
    fn an_expired_keep_alive_unloads_only_when_nothing_is_queued_or_running() {
        let lc = lifecycle(Some(Duration::ZERO));
        let (id, _rx) = submitted_and_loaded(&lc);
        let mut records = lc.lock();
        // Queued work: it runs, the keep-alive does not unload.
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Step(_)));
        let step = lc.start_step(&mut records, id).unwrap();
        let mut after = Deferred::default();
        lc.finish_step(&mut records, &mut after, step, StepOutcome::More);
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Step(_)), "more of the same request");
        let step = lc.start_step(&mut records, id).unwrap();
        lc.finish_step(&mut records, &mut after, step, done(&lc));
        // Idle now: the expired keep-alive unloads, marked under the lock.
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Unload));
        assert_eq!(records.state, State::Unloading);
        let loaded = { let s = status_of(&lc, &mut records); (s.device, s.dtype, s.dimensions) };
        assert_eq!(loaded, (Some("cpu".to_string()), Some("f32"), Some(4)));
        assert!(lc.finish_unload(&mut records, &mut after, 0));
        assert_eq!(records.state, State::Unloaded);
        assert!(!records.model_loaded);
        assert_eq!(records.unload_count, 1);
        // The loaded model's description goes with it; its dimensions stay known.
        let s = status_of(&lc, &mut records);
        assert_eq!((s.device, s.dtype, s.simd, s.family, s.dimensions), (None, None, None, None, Some(4)));
    }

    /// `status()` takes the lock itself: read it between two steps that hold it.
    fn status_of<'a>(lc: &'a Lifecycle, records: &mut parking_lot::MutexGuard<'a, Records>) -> ServiceStatus {
        parking_lot::MutexGuard::unlocked(records, || lc.status())
    }

    #[test]
    fn unload_waits_for_queued_work_then_answers() {
        let lc = lifecycle(None);
        let (id, _rx) = submitted_and_loaded(&lc);
        let (r, unloaded) = reply();
        lc.unload(r);
        let mut records = lc.lock();
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Step(_)), "the queued request first");
        let step = lc.start_step(&mut records, id).unwrap();
        let mut after = Deferred::default();
        lc.finish_step(&mut records, &mut after, step, done(&lc));
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Unload));
        assert!(lc.finish_unload(&mut records, &mut after, 0));
        drop(records);
        after.run();
        assert!(unloaded.recv().unwrap().is_ok());
    }

    #[test]
    fn an_abort_during_a_step_is_answered_when_the_step_ends() {
        let lc = lifecycle(None);
        let (id, rx) = submitted_and_loaded(&lc);
        assert!(matches!(lc.next_duty(&mut lc.lock(), 0, true, None), Duty::Step(_)));
        let step = lc.start_step(&mut lc.lock(), id).unwrap();
        lc.abort(id); // running: only marked
        assert!(lc.check_wanted(&lc.lock(), 0, id).is_err());
        let mut after = Deferred::default();
        lc.finish_step(&mut lc.lock(), &mut after, step, StepOutcome::More);
        after.run();
        assert_eq!(rx.recv().unwrap().unwrap_err().code, ErrorCode::Aborted);
        assert!(matches!(lc.next_duty(&mut lc.lock(), 0, true, None), Duty::Sleep(_)), "nothing left to run");
    }

    #[test]
    fn abandoning_a_stuck_worker_fails_everything_and_hands_over_to_a_new_generation() {
        let lc = lifecycle(None);
        let (id, rx) = submitted_and_loaded(&lc);
        let mut records = lc.lock();
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Step(_)));
        let _step = lc.start_step(&mut records, id).unwrap();
        let mut after = Deferred::default();
        let generation = lc.abandon_worker(&mut records, &mut after, Error::new(ErrorCode::Stalled, "stuck"));
        assert_eq!(generation, 1);
        assert!(lc.replaced(&records, 0));
        assert!(matches!(lc.next_duty(&mut records, 0, true, None), Duty::Leave), "the old worker leaves");
        assert_eq!(records.state, State::Unloaded);
        assert!(!records.model_loaded);
        drop(records);
        after.run();
        assert_eq!(rx.recv().unwrap().unwrap_err().code, ErrorCode::Stalled);
    }

    #[test]
    fn close_fails_the_work_and_tells_the_worker() {
        let lc = lifecycle(None);
        let (_id, rx) = submitted_and_loaded(&lc);
        let (r, closed) = reply();
        lc.close(r);
        assert_eq!(rx.recv().unwrap().unwrap_err().code, ErrorCode::Closed);
        assert!(matches!(lc.next_duty(&mut lc.lock(), 0, true, None), Duty::Close));
        for w in lc.worker_exited(0) {
            w(Ok(()));
        }
        assert!(closed.recv().unwrap().is_ok());
    }
}
