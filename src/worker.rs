//! The inference thread. It alone owns the model: it loads it when work or `load()` asks, runs one step of one
//! request at a time (a step is one batch, so a waiting query overtakes index work at the next batch boundary),
//! and frees the model on keep-alive expiry, `unload()` or close — each decided under the lifecycle lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Prepared};
use crate::batching::{plan_batches, BatchLimits};
use crate::device::{self, DeviceChoice};
use crate::error::{Error, Result};
use crate::keyphrases::EXTRACTION_SLICE_BYTES;
use crate::lifecycle::{After, Core, Embeddings, Shared, State, Work};
use crate::scheduler::Priority;
use parking_lot::MutexGuard;
use crate::model::source::{self, ModelSource};
use crate::model::{Dtype, Embedder, Kernels};
use crate::remote::{RemoteEmbedder, RemoteOptions};
use crate::progress::{LogLevel, ProgressEvent, Status};
use crate::results::Vectors;

/// Faults the tests inject to prove the service survives them. Empty by default; never set in production.
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    /// Panic inside the forward-pass region when a request contains exactly this text.
    pub panic_on_text: Option<String>,
    /// Sleep this long before each batch, reporting nothing (a stuck device). Only the first worker does;
    /// the replacement the watchdog starts runs normally, as after a device recovers.
    pub stall: Option<Duration>,
    /// When above 0, the service's first index batch waits at its first checkpoint until this many queries
    /// are queued (at most 30 s), so a test can watch queries overtake a batch in progress without timing it.
    pub hold_index_until_queries: usize,
    /// Set once that batch has been held.
    pub hold_spent: Arc<std::sync::atomic::AtomicBool>,
}

/// What the worker is built with.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub source: ModelSource,
    pub device: DeviceChoice,
    pub threads: usize,
    /// `None`: the device's default.
    pub dtype: Option<Dtype>,
    pub limits: BatchLimits,
    pub faults: FaultInjection,
    /// A remote embedding server instead of the model in this process.
    pub remote: Option<RemoteOptions>,
    /// How long a request to a remote server may go unanswered before it is given up (after the watchdog
    /// has already reported it as stalled).
    pub remote_timeout: Duration,
}

struct Loaded {
    backend: Backend,
    device: candle_core::Device,
    dtype: Dtype,
}

enum Step {
    More,
    Done(Embeddings),
}

/// Starts a worker of the given generation on its own thread.
pub fn spawn(shared: Arc<Shared>, config: Arc<WorkerConfig>, generation: u64) -> Result<()> {
    std::thread::Builder::new()
        .name(format!("embedding-worker-{generation}"))
        .spawn(move || run(shared, config, generation))
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start the worker thread: {e}")))
}

fn run(shared: Arc<Shared>, config: Arc<WorkerConfig>, generation: u64) {
    // The pool's threads are spawned here so close() can join them: rayon's own pool lets them finish after
    // it is dropped, so they could outlive close() (and showed as leaks under LeakSanitizer at exit).
    let compute_threads = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let spawned = compute_threads.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads.max(1))
        .thread_name(move |i| format!("embedding-compute-{generation}-{i}"))
        .spawn_handler(move |thread| {
            let mut builder = std::thread::Builder::new();
            if let Some(name) = thread.name() {
                builder = builder.name(name.to_owned());
            }
            if let Some(size) = thread.stack_size() {
                builder = builder.stack_size(size);
            }
            spawned.lock().push(builder.spawn(|| thread.run())?);
            Ok(())
        })
        .build()
        .ok();
    let mut model: Option<Loaded> = None;
    // When the worker, idle with a model loaded, hands its threads' free heap pages back (see `IDLE_COLLECT`).
    let mut collect_at: Option<Instant> = None;
    let mut core = shared.lock();
    loop {
        if core.generation != generation {
            // The watchdog gave up on this worker; a fresh one owns the service now.
            drop(core);
            return;
        }
        if core.state == State::Closed {
            break;
        }
        let idle = core.lanes.is_empty() && core.on_worker.is_none();

        // Unload: only when nothing is queued or running, decided and marked under the lock.
        let keep_alive_expired = core.keep_alive_deadline.is_some_and(|d| Instant::now() >= d);
        if model.is_some() && idle && (core.unload_requested || keep_alive_expired) {
            core.state = State::Unloading;
            core.keep_alive_deadline = None;
            drop(core);
            let loaded = model.take().expect("checked above");
            unload(&shared, loaded, pool.as_ref());
            core = shared.lock();
            if core.generation != generation {
                return;
            }
            let mut after = After::default();
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
            shared.emit(ProgressEvent::new(Status::Idle, 0, 0, "model unloaded"));
            drop(core);
            after.run();
            core = shared.lock();
            continue;
        }
        if model.is_none() && core.unload_requested && idle && !core.load_requested {
            // Nothing to unload (a load failed or never happened): just answer.
            core.unload_requested = false;
            let waiters: Vec<_> = core.unload_waiters.drain(..).collect();
            drop(core);
            waiters.into_iter().for_each(|w| w(Ok(())));
            core = shared.lock();
            continue;
        }

        // Load when work or load() asks for it.
        if model.is_none() && (!core.lanes.is_empty() || core.load_requested) {
            core.state = State::Loading;
            shared.touch(&mut core);
            drop(core);
            shared.watchdog_wake.notify_all();
            let result = catch_unwind(AssertUnwindSafe(|| load(&shared, &config, generation)))
                .unwrap_or_else(|p| Err(Error::from_panic("loading the model", p.as_ref())));
            core = shared.lock();
            if core.generation != generation {
                return;
            }
            let mut after = After::default();
            core.load_requested = false;
            match result {
                Ok((loaded, name)) => {
                    core.model_loaded = true;
                    core.load_count += 1;
                    core.dimensions = Some(loaded.backend.dimensions());
                    core.weights = loaded.backend.weight_memory();
                    core.device = Some(name);
                    // A server's number format is its own; the wire carries f32.
                    core.dtype = matches!(loaded.backend, Backend::Local(_)).then(|| loaded.dtype.as_str());
                    core.prompts = loaded.backend.prompt_names();
                    model = Some(loaded);
                    if core.state != State::Closed {
                        core.state = State::Ready;
                    }
                    for w in core.load_waiters.drain(..) {
                        after.reply(w, Ok(()));
                    }
                    shared.touch(&mut core);
                    shared.update_idle(&mut core);
                }
                Err(e) => {
                    // Everything waiting for this load fails with its error; the next request tries again.
                    if core.state != State::Closed {
                        core.state = State::Unloaded;
                    }
                    shared.log(LogLevel::Warn, format!("loading the model failed: {e}"));
                    shared.fail_all(&mut core, &mut after, e);
                }
            }
            drop(core);
            after.run();
            core = shared.lock();
            continue;
        }
        if model.is_some() && core.load_requested {
            core.load_requested = false;
            let waiters: Vec<_> = core.load_waiters.drain(..).collect();
            drop(core);
            waiters.into_iter().for_each(|w| w(Ok(())));
            core = shared.lock();
            continue;
        }

        // One step of the next request.
        if let (Some(loaded), Some(id)) = (model.as_ref(), core.lanes.next_to_run()) {
            match serve_step(&shared, loaded, &config, generation, pool.as_ref(), core, id) {
                Some(c) => core = c,
                None => return,
            }
            collect_at = Some(Instant::now() + IDLE_COLLECT);
            continue;
        }
        if collect_at.is_some_and(|at| Instant::now() >= at) && model.is_some() {
            collect_at = None;
            drop(core);
            release_heaps(pool.as_ref());
            core = shared.lock();
            continue;
        }

        // Idle: sleep until work, a request to load or unload, close, or the keep-alive deadline.
        if core.state == State::Working {
            core.state = State::Ready;
        }
        let keep_alive = core.keep_alive_deadline.filter(|_| model.is_some());
        match keep_alive.into_iter().chain(collect_at.filter(|_| model.is_some())).min() {
            Some(deadline) => {
                shared.worker_wake.wait_until(&mut core, deadline);
            }
            None => shared.worker_wake.wait(&mut core),
        }
    }
    // Closed: free the model, end the compute threads, then tell close() waiters.
    drop(core);
    if let Some(loaded) = model.take() {
        unload(&shared, loaded, pool.as_ref());
    }
    drop(pool);
    for thread in std::mem::take(&mut *compute_threads.lock()) {
        let _ = thread.join();
    }
    let waiters = {
        let mut core = shared.lock();
        if core.generation == generation {
            core.worker_exited = true;
            core.model_loaded = false;
            core.weights = Default::default();
        }
        std::mem::take(&mut core.exit_waiters)
    };
    waiters.into_iter().for_each(|w| w(Ok(())));
}

/// Runs one step of request `id` and settles the request when it finished, failed or was aborted, or puts it
/// back at the front of its lane. Called from the worker loop, and from an index batch's checkpoint to run a
/// waiting query (then `on_worker` is the paused index request's, and is restored after). Returns the core
/// locked again, or `None` when the watchdog has replaced this worker.
fn serve_step<'a>(
    shared: &'a Shared,
    loaded: &Loaded,
    config: &WorkerConfig,
    generation: u64,
    pool: Option<&rayon::ThreadPool>,
    mut core: MutexGuard<'a, Core>,
    id: u64,
) -> Option<MutexGuard<'a, Core>> {
    let Some(mut work) = core.works.remove(&id) else { return Some(core) };
    let outer = core.on_worker.replace(id);
    core.state = State::Working;
    let mut priority = Priority::Index;
    if let Some(t) = core.tickets.get_mut(&id) {
        t.started = true;
        priority = t.priority;
    }
    // Index work yields to queries inside its batch where the encoder has checkpoints, else by running smaller
    // batches while queries arrive; a step run from a checkpoint does not yield again.
    let yielding = match (priority, outer) {
        (Priority::Index, None) if loaded.backend.has_checkpoints() => Yield::Checkpoints(pool),
        (Priority::Index, None) => Yield::SmallerBatches(pool),
        _ => Yield::No,
    };
    drop(core);
    shared.watchdog_wake.notify_all();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut run_step = || step(shared, loaded, config, generation, &mut work, yielding);
        match pool {
            Some(pool) => pool.install(run_step),
            None => run_step(),
        }
    }))
    .unwrap_or_else(|p| Err(Error::from_panic("embedding", p.as_ref())));
    let mut core = shared.lock();
    if core.generation != generation {
        return None;
    }
    core.on_worker = outer;
    shared.touch(&mut core);
    let mut after = After::default();
    // The ticket is gone when close() or the watchdog already answered the request.
    if let Some(ticket) = core.tickets.remove(&id) {
        if ticket.abort_requested {
            after.reply(ticket.reply, Err(Error::aborted()));
        } else {
            match outcome {
                Err(e) => after.reply(ticket.reply, Err(e)),
                Ok(Step::Done(result)) => {
                    let n = result.vectors.len() as u64;
                    shared.emit(ProgressEvent::new(Status::Completed, n, n, "completed").for_request(id));
                    after.reply(ticket.reply, Ok(result));
                }
                Ok(Step::More) => {
                    core.tickets.insert(id, ticket);
                    core.works.insert(id, work);
                    core.lanes.push_front(id, priority);
                }
            }
        }
    }
    shared.update_idle(&mut core);
    drop(core);
    after.run();
    Some(shared.lock())
}

/// A checkpoint of index work (inside a batch's forward pass, or between slices of its tokenisation): progress
/// for the watchdog, then any waiting queries (up to the streak), each run whole while the index work waits
/// (in the forward pass, on the encoder's second buffer set). Fails, ending the step early, when the index
/// request was aborted, the service closed or the worker replaced.
fn checkpoint(
    shared: &Shared,
    loaded: &Loaded,
    config: &WorkerConfig,
    generation: u64,
    pool: Option<&rayon::ThreadPool>,
    index_id: u64,
    in_forward: bool,
) -> Result<()> {
    let mut core = shared.lock();
    // The index work ran since its last checkpoint: a new streak of queries may run here.
    core.lanes.index_progressed();
    loop {
        still_wanted(&core, generation, index_id)?;
        shared.touch(&mut core);
        let hold = config.faults.hold_index_until_queries;
        if hold > 0 && in_forward && !config.faults.hold_spent.swap(true, std::sync::atomic::Ordering::Relaxed) {
            // Test hook: the batch waits here for queries, so a test can see them overtake it mid-batch.
            let deadline = Instant::now() + Duration::from_secs(30);
            while core.lanes.len(Priority::Query) < hold && core.state != State::Closed && Instant::now() < deadline {
                shared.worker_wake.wait_until(&mut core, deadline);
            }
            continue;
        }
        let Some(query) = core.lanes.next_preempting_query() else { return Ok(()) };
        core.paused = Some(index_id);
        core = serve_step(shared, loaded, config, generation, pool, core, query)
            .ok_or_else(|| Error::internal("the watchdog replaced this worker"))?;
        core.paused = None;
    }
}

/// Runs waiting queries (up to the streak) while index request `index_id` waits for a server's answers; an
/// answer (`answered`) is the index work's progress, which starts a new streak. Fails, ending the wait, when the
/// index request was aborted, the service closed or the worker replaced.
fn serve_queries_while_waiting(
    shared: &Shared,
    loaded: &Loaded,
    config: &WorkerConfig,
    generation: u64,
    pool: Option<&rayon::ThreadPool>,
    index_id: u64,
    answered: bool,
) -> Result<()> {
    let mut core = shared.lock();
    if answered {
        core.lanes.index_progressed();
    }
    loop {
        still_wanted(&core, generation, index_id)?;
        let Some(query) = core.lanes.next_preempting_query() else { return Ok(()) };
        core.paused = Some(index_id);
        core = serve_step(shared, loaded, config, generation, pool, core, query)
            .ok_or_else(|| Error::internal("the watchdog replaced this worker"))?;
        core.paused = None;
    }
}

fn load(shared: &Shared, config: &WorkerConfig, generation: u64) -> Result<(Loaded, String)> {
    let stage = |i: u64, what: &str| {
        shared.emit(ProgressEvent::new(Status::LoadingModel, i, 3, what));
        let mut core = shared.lock();
        if core.generation == generation {
            shared.touch(&mut core);
        }
    };
    if let Some(remote) = &config.remote {
        // The model lives on the server: loading is asking it for one embedding (its dimensions).
        stage(0, &format!("asking {} for {}", remote.endpoint, config.source.model));
        // close() and the watchdog's replacement end the wait, as they end a step's.
        let still_loading = |_answered: bool| still_serving(&shared.lock(), generation);
        let backend =
            Backend::Remote(RemoteEmbedder::connect(remote, &config.source.model, config.remote_timeout, still_loading)?);
        stage(3, "model loaded");
        let name = format!("remote {}", remote.endpoint.trim_end_matches('/'));
        return Ok((Loaded { backend, device: candle_core::Device::Cpu, dtype: Dtype::F32 }, name));
    }
    stage(0, "resolving model");
    // A download reports its bytes, and each report counts as progress for the watchdog: a slow download
    // that keeps moving is never failed as stalled.
    let mut on_download = source::throttled(|p: source::DownloadProgress| {
        shared.emit(ProgressEvent::new(Status::DownloadingModel, p.current, p.total, p.file));
        let mut core = shared.lock();
        if core.generation == generation {
            shared.touch(&mut core);
        }
    });
    let dir = source::resolve_with(&config.source, &mut on_download, &std::sync::atomic::AtomicBool::new(false))?;
    stage(1, "opening device");
    let device::Opened { device, name, fallback } = device::open(config.device)?;
    match fallback {
        Some(why) => stage(2, &format!("loading tokenizer and weights; {why}")),
        None => stage(2, "loading tokenizer and weights"),
    }
    let dtype = config.dtype.unwrap_or_else(|| Dtype::default_for(&device));
    let mut embedder = Embedder::load_with(&dir, &device, Kernels::Fast, dtype, config.threads)?;
    embedder.adopt_known_prompts(&config.source.model);
    // Loading converts the weights through temporary copies; hand those pages back rather than keep them.
    crate::release_free_memory();
    stage(3, "model loaded");
    Ok((Loaded { backend: Backend::Local(embedder), device, dtype }, name))
}

fn unload(shared: &Shared, loaded: Loaded, pool: Option<&rayon::ThreadPool>) {
    shared.emit(ProgressEvent::new(Status::UnloadingModel, 0, 0, "unloading model"));
    let device = loaded.device.clone();
    drop(loaded);
    release_heaps(pool);
    if !device.is_cpu() {
        // Wait for the device to finish with the freed buffers before reporting them gone.
        shared.emit(ProgressEvent::new(Status::CleaningMemory, 0, 0, "synchronising the device"));
        let _ = device.synchronize();
    }
}

/// How an index step makes way for queries.
#[derive(Clone, Copy)]
enum Yield<'a> {
    No,
    /// The batch stops at the encoder's checkpoints to run waiting queries (see `checkpoint`); the pool runs
    /// their matrix products.
    Checkpoints(Option<&'a rayon::ThreadPool>),
    /// For encoders that run a batch whole (ModernBERT, candle's): while queries arrive, a step runs a quarter
    /// of the planned batch, so a query waits for less.
    SmallerBatches(Option<&'a rayon::ThreadPool>),
}

/// How long the worker waits, idle with a model loaded, before handing its threads' free heap pages back to
/// the OS: a request's tokens and working data are freed into the heaps of the threads that made them, which
/// keep them for reuse (measured: +11.8 MB of resident memory after a 20,000-text job, kept while the model
/// stays loaded). Long enough that back-to-back requests never pay for it.
const IDLE_COLLECT: Duration = Duration::from_secs(2);

/// The allocator keeps freed pages for reuse and returns them lazily, on later allocations of the thread that
/// owns them, and an idle or unloaded worker's threads make none. Return them now, on this thread and every
/// compute thread, with each thread's attention and widened-panel buffers (regrown by the next request).
fn release_heaps(pool: Option<&rayon::ThreadPool>) {
    let collect = || {
        crate::model::cpu_bert::release_thread_scratch();
        crate::release_free_memory()
    };
    if let Some(pool) = pool {
        pool.broadcast(|_| collect());
    }
    collect();
}

/// How recently a query must have arrived for `Yield::SmallerBatches` to shrink index batches.
const QUERIES_ARRIVING: Duration = Duration::from_secs(2);

/// While queries arrive, how much of a server's time one index batch may take: what a query waits at most for
/// the batch in flight before the server gets to it.
const REMOTE_QUERY_WAIT: Duration = Duration::from_millis(40);

/// Texts tokenised between two checkpoints of index work.
const TOKENIZE_SLICE: usize = 64;

/// Whether this worker still serves the service: not once the watchdog replaced it or the service closed.
fn still_serving(core: &Core, generation: u64) -> Result<()> {
    if core.generation != generation {
        return Err(Error::internal("the watchdog replaced this worker"));
    }
    if core.state == State::Closed {
        return Err(Error::closed());
    }
    Ok(())
}

/// Whether request `id`, in progress on this worker, should go on: not when the watchdog replaced the worker,
/// the service closed, or the request was aborted (or already answered).
fn still_wanted(core: &Core, generation: u64, id: u64) -> Result<()> {
    still_serving(core, generation)?;
    match core.tickets.get(&id) {
        Some(t) if !t.abort_requested => Ok(()),
        _ => Err(Error::aborted()),
    }
}

/// While a step waits for a remote server: each answer is progress for the watchdog; between answers the
/// request may have been aborted, the service closed or this worker replaced, and then the step stops waiting.
fn remote_wait(shared: &Shared, generation: u64, id: u64, answered: bool) -> Result<()> {
    let mut core = shared.lock();
    still_wanted(&core, generation, id)?;
    if answered {
        shared.touch(&mut core);
    }
    Ok(())
}

/// One step of a request: tokenise it on its first step, then run one batch (one per connection, for a server).
fn step(
    shared: &Shared,
    loaded: &Loaded,
    config: &WorkerConfig,
    generation: u64,
    work: &mut Work,
    yielding: Yield,
) -> Result<Step> {
    if let Some(extraction) = work.extraction.clone() {
        // A key-phrase request: one slice of candidate extraction per step, so queries, abort, close and the
        // watchdog meet it between slices as they meet batches.
        let mut job = extraction.lock();
        let done = job.step(EXTRACTION_SLICE_BYTES);
        for (doc, kept) in job.take_capped() {
            shared.log(
                LogLevel::Warn,
                format!(
                    "extractKeyphrases: document {doc} has more distinct candidates than maxCandidates ({kept}); its key \
                     phrases are ranked among the first {kept}, in reading order"
                ),
            );
        }
        let (read, total) = job.progress();
        shared.emit(
            ProgressEvent::new(Status::ExtractingCandidates, read, total, format!("candidates: {read}/{total} bytes read"))
                .for_request(work.id),
        );
        if done {
            work.texts = job.texts().to_vec();
            work.extraction = None;
        }
        return Ok(Step::More);
    }
    let n = work.texts.len() as u64;
    if work.tokens.is_none() {
        if let Some(trigger) = &config.faults.panic_on_text {
            if work.texts.iter().any(|t| t == trigger) {
                panic!("injected test panic");
            }
        }
        shared.emit(ProgressEvent::new(Status::ProcessingEmbeddings, 0, n, "tokenizing").for_request(work.id));
        // In slices, with a checkpoint after each for index work: tokenising a large job takes long enough
        // (about half a millisecond per 1,000-character text) that a query should not wait for all of it.
        let mut tokens = Vec::with_capacity(work.texts.len());
        for slice in work.texts.chunks(TOKENIZE_SLICE) {
            tokens.extend(loaded.backend.prepare(slice, work.prompt.as_deref())?);
            if let Yield::Checkpoints(pool) | Yield::SmallerBatches(pool) = yielding {
                if tokens.len() < work.texts.len() {
                    checkpoint(shared, loaded, config, generation, pool, work.id, false)?;
                }
            }
        }
        let lengths: Vec<usize> = tokens.iter().map(|t| t.len()).collect();
        work.plan = plan_batches(&lengths, config.limits);
        work.vectors = Some(Vectors::new(tokens.len(), loaded.backend.dimensions(), &shared.results)?);
        work.tokens = Some(tokens);
        work.started_at = Some(Instant::now());
        if work.plan.is_empty() {
            // Nothing to embed (a key-phrase request whose documents have no candidates).
            return Ok(Step::Done(Embeddings {
                dimensions: loaded.backend.dimensions(),
                vectors: work.vectors.take().expect("mapped above"),
                token_counts: Vec::new(),
            }));
        }
    }
    if let Some(pause) = config.faults.stall.filter(|_| generation == 0) {
        std::thread::sleep(pause);
    }
    let mut per_step = loaded.backend.batches_per_step();
    if let Yield::SmallerBatches(_) = yielding {
        let arriving = shared.lock().last_query_at.is_some_and(|t| t.elapsed() < QUERIES_ARRIVING);
        let tokens = work.tokens.as_ref().expect("tokenised above");
        let batch = &mut work.plan[work.next_batch];
        if arriving && batch.len() > 1 {
            // A server works through what it was sent before a query: while queries arrive, one batch of
            // about `REMOTE_QUERY_WAIT` of its time is in flight. Locally, a quarter of the planned batch.
            let keep = match loaded.backend.tokens_within(REMOTE_QUERY_WAIT) {
                Some(budget) => {
                    let mut sum = 0;
                    batch.iter().take_while(|&&i| {
                        sum += tokens[i].len();
                        sum <= budget
                    }).count().max(1)
                }
                None => batch.len().div_ceil(4),
            };
            if keep < batch.len() {
                let rest = batch.split_off(keep);
                work.plan.insert(work.next_batch + 1, rest);
            }
        }
        if arriving {
            per_step = 1;
        }
    }
    let tokens = work.tokens.as_ref().expect("tokenised above");
    let step_batches = &work.plan[work.next_batch..(work.next_batch + per_step).min(work.plan.len())];
    let refs: Vec<Vec<&Prepared>> = step_batches.iter().map(|b| b.iter().map(|&i| &tokens[i]).collect()).collect();
    let id = work.id;
    // While an index step waits for a server, queries do not wait for its batches: each one goes out at once
    // on its own connection (the in-flight batches carry on), as a local batch stops at a checkpoint for them.
    let wait = |answered: bool| {
        remote_wait(shared, generation, id, answered)?;
        match yielding {
            Yield::SmallerBatches(pool) | Yield::Checkpoints(pool) => serve_queries_while_waiting(shared, loaded, config, generation, pool, id, answered),
            Yield::No => Ok(()),
        }
    };
    let vectors = match yielding {
        Yield::Checkpoints(pool) => {
            let mut pause = || checkpoint(shared, loaded, config, generation, pool, id, true);
            loaded.backend.embed(&refs, step_batches, Some(&mut pause), wait)?
        }
        Yield::No | Yield::SmallerBatches(_) => loaded.backend.embed(&refs, step_batches, None, wait)?,
    };
    let results = work.vectors.as_mut().expect("mapped when tokenised");
    for (batch, batch_vectors) in step_batches.iter().zip(vectors) {
        for (&i, v) in batch.iter().zip(batch_vectors) {
            results.set(i, &v);
        }
        work.done += batch.len();
    }
    work.next_batch += step_batches.len();
    let (b, total_batches) = (work.next_batch, work.plan.len());
    shared.emit(
        ProgressEvent::new(Status::ProcessingBatch, b as u64, total_batches as u64, format!("Batch {b}/{total_batches}"))
            .for_request(work.id),
    );
    let mut ev = ProgressEvent::new(Status::ProcessingEmbeddings, work.done as u64, n, format!("Batch {b}/{total_batches}"))
        .for_request(work.id);
    if let Some(started) = work.started_at {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        let rate = work.done as f64 / secs;
        ev.texts_per_second = Some(rate);
        ev.eta_ms = Some((n as f64 - work.done as f64) / rate.max(1e-9) * 1000.0);
    }
    shared.emit(ev);
    if work.next_batch < work.plan.len() {
        return Ok(Step::More);
    }
    let tokens = work.tokens.take().expect("tokenised above");
    Ok(Step::Done(Embeddings {
        dimensions: loaded.backend.dimensions(),
        vectors: work.vectors.take().expect("mapped when tokenised"),
        token_counts: tokens.iter().map(|t| t.len()).collect(),
    }))
}
