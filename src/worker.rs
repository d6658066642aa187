//! The inference thread. It alone owns the model: it loads it when work or `load()` asks, runs one step of one
//! request at a time (a step is one batch, so a waiting query overtakes index work at the next batch boundary),
//! and frees the model on keep-alive expiry, `unload()` or close — each decided under the lifecycle lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{self, Backend, BackendConfig, OpenHooks, Prepared};
use crate::batching::{plan_batches, BatchLimits};
use crate::error::{Error, Result};
use crate::keyphrases::EXTRACTION_SLICE_BYTES;
use crate::lifecycle::{Deferred, Records, Duty, Embeddings, ModelInfo, Lifecycle, StepOutcome, Job};
use crate::scheduler::Priority;
use parking_lot::MutexGuard;
use crate::model::source;
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
    pub backend: BackendConfig,
    pub limits: BatchLimits,
    pub faults: FaultInjection,
}

/// Starts a worker of the given generation on its own thread.
pub fn spawn(shared: Arc<Lifecycle>, config: Arc<WorkerConfig>, generation: u64) -> Result<()> {
    std::thread::Builder::new()
        .name(format!("embedding-worker-{generation}"))
        .spawn(move || run(shared, config, generation))
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start the worker thread: {e}")))
}

fn run(shared: Arc<Lifecycle>, config: Arc<WorkerConfig>, generation: u64) {
    let compute = ComputeThreads::start(config.backend.threads, generation);
    let pool = compute.pool.as_ref();
    let mut model: Option<Box<dyn Backend>> = None;
    // When the worker, idle with a model loaded, hands its threads' free heap pages back (see `IDLE_COLLECT`).
    let mut collect_at: Option<Instant> = None;
    let mut core = shared.lock();
    loop {
        let mut after = Deferred::default();
        match shared.next_duty(&mut core, generation, model.is_some(), collect_at) {
            Duty::Leave => return,
            Duty::Close => break,
            Duty::Unload => {
                drop(core);
                unload(&shared, model.take().expect("a model to unload"), pool);
                core = shared.lock();
                if !shared.finish_unload(&mut core, &mut after, generation) {
                    return;
                }
            }
            Duty::Load => {
                drop(core);
                let result = catch_unwind(AssertUnwindSafe(|| load(&shared, &config, generation)))
                    .unwrap_or_else(|p| Err(Error::from_panic("loading the model", p.as_ref())));
                core = shared.lock();
                if shared.replaced(&core, generation) {
                    return;
                }
                let info = result.as_ref().map(|b| model_info(b.as_ref())).map_err(Clone::clone);
                if shared.finish_load(&mut core, &mut after, info) {
                    model = result.ok();
                }
            }
            Duty::Answer(waiters) => waiters.into_iter().for_each(|w| after.reply(w, Ok(()))),
            Duty::Step(id) => {
                let backend = model.as_deref().expect("steps run with a model");
                let cx = Ctx { shared: &shared, backend, config: &config, generation, pool };
                match serve_step(cx, core, id) {
                    Some(c) => core = c,
                    None => return,
                }
                collect_at = Some(Instant::now() + IDLE_COLLECT);
                continue;
            }
            Duty::Collect => {
                collect_at = None;
                drop(core);
                release_heaps(pool);
                core = shared.lock();
                continue;
            }
            Duty::Sleep(Some(deadline)) => {
                shared.worker_wake.wait_until(&mut core, deadline);
                continue;
            }
            Duty::Sleep(None) => {
                shared.worker_wake.wait(&mut core);
                continue;
            }
        }
        drop(core);
        after.run();
        core = shared.lock();
    }
    // Closed: free the model, end the compute threads, then tell close() waiters.
    drop(core);
    if let Some(backend) = model.take() {
        unload(&shared, backend, pool);
    }
    compute.join();
    shared.worker_exited(generation).into_iter().for_each(|w| w(Ok(())));
}

fn model_info(backend: &dyn Backend) -> ModelInfo {
    ModelInfo {
        dimensions: backend.dimensions(),
        weights: backend.weight_memory(),
        device: backend.device_name().to_string(),
        dtype: backend.dtype(),
        simd: backend.simd(),
        family: backend.family(),
        prompts: backend.prompt_names(),
    }
}

/// The worker's compute threads. Spawned here so they can be joined at close: rayon's own pool lets them finish
/// after it is dropped, so they could outlive close() (and showed as leaks under LeakSanitizer at exit).
struct ComputeThreads {
    pool: Option<rayon::ThreadPool>,
    threads: Arc<parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl ComputeThreads {
    fn start(count: usize, generation: u64) -> Self {
        let threads = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let spawned = threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(count.max(1))
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
        ComputeThreads { pool, threads }
    }

    fn join(self) {
        drop(self.pool);
        for thread in std::mem::take(&mut *self.threads.lock()) {
            let _ = thread.join();
        }
    }
}

/// Runs one step of request `id` and settles the request when it finished, failed or was aborted, or puts it
/// back at the front of its lane. Called from the worker loop, and from an index step (at a checkpoint, or
/// while it waits for a server) to run a waiting query. Returns the core locked again, or `None` when the
/// watchdog has replaced this worker.
fn serve_step<'a>(cx: Ctx<'a>, mut core: MutexGuard<'a, Records>, id: u64) -> Option<MutexGuard<'a, Records>> {
    let Ctx { shared, backend, generation, pool, .. } = cx;
    let Some(mut started) = shared.start_step(&mut core, id) else { return Some(core) };
    drop(core);
    // Index work yields to queries inside its batch where the encoder has checkpoints, else by running smaller
    // batches while queries arrive; a step run from inside another does not yield again.
    let yielding = match (started.priority, started.interrupts) {
        (Priority::Index, None) if backend.has_checkpoints() => Yield::Checkpoints,
        (Priority::Index, None) => Yield::SmallerBatches,
        _ => Yield::No,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut run_step = || step(cx, &mut started.work, yielding);
        match pool {
            Some(pool) => pool.install(run_step),
            None => run_step(),
        }
    }))
    .unwrap_or_else(|p| Err(Error::from_panic("embedding", p.as_ref())));
    let mut core = shared.lock();
    if shared.replaced(&core, generation) {
        return None;
    }
    let outcome = outcome.unwrap_or_else(StepOutcome::Failed);
    let mut after = Deferred::default();
    shared.finish_step(&mut core, &mut after, started, outcome);
    drop(core);
    after.run();
    Some(shared.lock())
}

/// A checkpoint of index work (inside a batch's forward pass, or between slices of its tokenisation): progress
/// for the watchdog, then any waiting queries (up to the streak), each run whole while the index work waits
/// (in the forward pass, on the encoder's second buffer set). Fails, ending the step early, when the index
/// request was aborted, the service closed or the worker replaced.
fn checkpoint(cx: Ctx, index_id: u64, in_forward: bool) -> Result<()> {
    let Ctx { shared, config, generation, .. } = cx;
    let mut core = shared.lock();
    shared.check_wanted(&core, generation, index_id)?;
    shared.touch(&mut core);
    let hold = config.faults.hold_index_until_queries;
    if hold > 0 && in_forward && !config.faults.hold_spent.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // Test hook: the batch waits here for queries, so a test can see them overtake it mid-batch.
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.queued_queries(&core) < hold && !shared.is_closed(&core) && Instant::now() < deadline {
            shared.worker_wake.wait_until(&mut core, deadline);
        }
    }
    // The index work ran since its last checkpoint: a new streak of queries may run here.
    interleave_queries(cx, core, index_id, true)
}

/// Runs waiting queries (up to the streak) while index request `index_id` waits for a server's answers; an
/// answer (`answered`) is the index work's progress, which starts a new streak.
fn serve_queries_while_waiting(cx: Ctx, index_id: u64, answered: bool) -> Result<()> {
    interleave_queries(cx, cx.shared.lock(), index_id, answered)
}

/// Runs the queries the lifecycle lets run now while index request `index_id` waits. Fails, ending the index
/// step early, when the index request was aborted, the service closed or the worker replaced.
fn interleave_queries<'a>(cx: Ctx<'a>, mut core: MutexGuard<'a, Records>, index_id: u64, progressed: bool) -> Result<()> {
    let Ctx { shared, generation, .. } = cx;
    let mut progressed = progressed;
    loop {
        shared.check_wanted(&core, generation, index_id)?;
        let Some(query) = shared.query_to_interleave(&mut core, index_id, progressed) else { return Ok(()) };
        progressed = false;
        core = serve_step(cx, core, query)
            .ok_or_else(|| Error::internal("the watchdog replaced this worker"))?;
        shared.end_pause(&mut core);
    }
}

fn load(shared: &Lifecycle, config: &WorkerConfig, generation: u64) -> Result<Box<dyn Backend>> {
    // Each stage and each downloaded chunk is progress for the watchdog: a slow download that keeps moving is
    // never failed as stalled.
    let progress = || {
        let mut core = shared.lock();
        if shared.check_serving(&core, generation).is_ok() {
            shared.touch(&mut core);
        }
    };
    let stage = |i: u64, what: &str| {
        shared.emit(ProgressEvent::new(Status::LoadingModel, i, 3, what));
        progress();
    };
    let mut download = |p: source::DownloadProgress| {
        shared.emit(ProgressEvent::new(Status::DownloadingModel, p.current, p.total, p.file));
        progress();
    };
    let still_wanted = || shared.check_serving(&shared.lock(), generation);
    backend::open(&config.backend, OpenHooks { stage: &stage, download: &mut download, still_wanted: &still_wanted })
}

fn unload(shared: &Lifecycle, backend: Box<dyn Backend>, pool: Option<&rayon::ThreadPool>) {
    shared.emit(ProgressEvent::new(Status::UnloadingModel, 0, 0, "unloading model"));
    let device = backend.device_to_synchronize();
    drop(backend);
    release_heaps(pool);
    if let Some(device) = device {
        // Wait for the device to finish with the freed buffers before reporting them gone.
        shared.emit(ProgressEvent::new(Status::CleaningMemory, 0, 0, "synchronising the device"));
        let _ = device.synchronize();
    }
}

/// How an index step makes way for queries.
#[derive(Clone, Copy)]
enum Yield {
    No,
    /// The batch stops at the encoder's checkpoints to run waiting queries (see `checkpoint`).
    Checkpoints,
    /// For encoders that run a batch whole (ModernBERT, candle's, a server): while queries arrive, a step runs
    /// less of the planned batch, so a query waits for less.
    SmallerBatches,
}

/// What every step of this worker runs with: the lifecycle, the model, the config, this worker's generation
/// and its compute threads (which also run the matrix products of queries served inside an index step).
#[derive(Clone, Copy)]
struct Ctx<'a> {
    shared: &'a Lifecycle,
    backend: &'a dyn Backend,
    config: &'a WorkerConfig,
    generation: u64,
    pool: Option<&'a rayon::ThreadPool>,
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
        crate::model::gqa::release_thread_scratch();
        crate::memory::release_free_memory()
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

/// While a step waits for a remote server: each answer is progress for the watchdog; between answers the
/// request may have been aborted, the service closed or this worker replaced, and then the step stops waiting.
fn waiting(shared: &Lifecycle, generation: u64, id: u64, answered: bool) -> Result<()> {
    let mut core = shared.lock();
    shared.check_wanted(&core, generation, id)?;
    if answered {
        shared.touch(&mut core);
    }
    Ok(())
}

/// One step of a request: a slice of its key-phrase candidates, or (tokenising it on its first step) one batch
/// per step (one per connection, for a server).
fn step(cx: Ctx, work: &mut Job, yielding: Yield) -> Result<StepOutcome> {
    let Ctx { shared, config, generation, .. } = cx;
    if let Some(extraction) = work.extraction.clone() {
        extract_candidates(shared, work, &extraction);
        return Ok(StepOutcome::More);
    }
    if work.tokens.is_none() {
        tokenize(cx, work, yielding)?;
        if work.plan.is_empty() {
            // Nothing to embed (a key-phrase request whose documents have no candidates).
            return Ok(StepOutcome::Done(Embeddings {
                dimensions: work.vectors.as_ref().map_or(0, Vectors::dimensions),
                vectors: work.vectors.take().expect("mapped when tokenised"),
                token_counts: Vec::new(),
            }));
        }
    }
    if let Some(pause) = config.faults.stall.filter(|_| generation == 0) {
        std::thread::sleep(pause);
    }
    let per_step = make_way_for_queries(cx, work, yielding);
    embed_batches(cx, work, yielding, per_step)?;
    if work.next_batch < work.plan.len() {
        return Ok(StepOutcome::More);
    }
    let tokens = work.tokens.take().expect("tokenised above");
    Ok(StepOutcome::Done(Embeddings {
        dimensions: work.vectors.as_ref().map_or(0, Vectors::dimensions),
        vectors: work.vectors.take().expect("mapped when tokenised"),
        token_counts: tokens.iter().map(|t| t.len()).collect(),
    }))
}

/// A key-phrase request: one slice of candidate extraction per step, so queries, abort, close and the watchdog
/// meet it between slices as they meet batches. Once done, the request's texts are what to embed.
fn extract_candidates(shared: &Lifecycle, work: &mut Job, extraction: &parking_lot::Mutex<crate::keyphrases::Extraction>) {
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
}

/// Prepares the request's texts for the backend and plans its batches. In slices, with a checkpoint after each
/// for index work: tokenising a large job takes long enough (about half a millisecond per 1,000-character
/// text) that a query should not wait for all of it.
fn tokenize(cx: Ctx, work: &mut Job, yielding: Yield) -> Result<()> {
    let Ctx { shared, backend, config, .. } = cx;
    if let Some(trigger) = &config.faults.panic_on_text {
        if work.texts.iter().any(|t| t == trigger) {
            panic!("injected test panic");
        }
    }
    let n = work.texts.len() as u64;
    shared.emit(ProgressEvent::new(Status::ProcessingEmbeddings, 0, n, "tokenizing").for_request(work.id));
    let finisher = work.options.output.finisher(backend.dimensions(), backend.normalizes(), backend.arrives_normalized())?;
    let prompt_names = backend.prompt_names();
    let prompt = work.options.prompt.resolve(&prompt_names);
    let mut tokens = Vec::with_capacity(work.texts.len());
    for slice in work.texts.chunks(TOKENIZE_SLICE) {
        tokens.extend(backend.prepare(slice, prompt)?);
        if let Yield::Checkpoints | Yield::SmallerBatches = yielding {
            if tokens.len() < work.texts.len() {
                checkpoint(cx, work.id, false)?;
            }
        }
    }
    let lengths: Vec<usize> = tokens.iter().map(|t| t.len()).collect();
    work.plan = plan_batches(&lengths, config.limits);
    work.vectors = Some(Vectors::new(tokens.len(), finisher.dimensions, &shared.results)?);
    work.finisher = Some(finisher);
    work.tokens = Some(tokens);
    work.started_at = Some(Instant::now());
    Ok(())
}

/// While queries arrive, index work keeps less in flight: locally a quarter of the planned batch; for a server,
/// one batch of about `REMOTE_QUERY_WAIT` of its time (it works through what it was sent before a query).
/// Returns how many batches this step runs.
fn make_way_for_queries(cx: Ctx, work: &mut Job, yielding: Yield) -> usize {
    let Ctx { shared, backend, .. } = cx;
    let Yield::SmallerBatches = yielding else { return backend.batches_per_step() };
    if !shared.queries_arriving(&shared.lock(), QUERIES_ARRIVING) {
        return backend.batches_per_step();
    }
    let tokens = work.tokens.as_ref().expect("tokenised above");
    let batch = &mut work.plan[work.next_batch];
    if batch.len() > 1 {
        let keep = match backend.tokens_within(REMOTE_QUERY_WAIT) {
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
    1
}

/// Embeds this step's `per_step` batches into the request's results and reports the progress.
fn embed_batches(cx: Ctx, work: &mut Job, yielding: Yield, per_step: usize) -> Result<()> {
    let Ctx { shared, backend, generation, .. } = cx;
    let tokens = work.tokens.as_ref().expect("tokenised above");
    let step_batches = &work.plan[work.next_batch..(work.next_batch + per_step).min(work.plan.len())];
    let refs: Vec<Vec<&Prepared>> = step_batches.iter().map(|b| b.iter().map(|&i| &tokens[i]).collect()).collect();
    let id = work.id;
    // While an index step waits for a server, queries do not wait for its batches: each one goes out at once
    // on its own connection (the in-flight batches carry on), as a local batch stops at a checkpoint for them.
    let mut wait = |answered: bool| {
        waiting(shared, generation, id, answered)?;
        match yielding {
            Yield::SmallerBatches | Yield::Checkpoints => serve_queries_while_waiting(cx, id, answered),
            Yield::No => Ok(()),
        }
    };
    let vectors = match yielding {
        Yield::Checkpoints => {
            let mut pause = || checkpoint(cx, id, true);
            backend.embed(&refs, step_batches, Some(&mut pause), &mut wait)?
        }
        Yield::No | Yield::SmallerBatches => backend.embed(&refs, step_batches, None, &mut wait)?,
    };
    let results = work.vectors.as_mut().expect("mapped when tokenised");
    let finisher = work.finisher.expect("set when tokenised");
    for (batch, batch_vectors) in step_batches.iter().zip(vectors) {
        for (&i, mut v) in batch.iter().zip(batch_vectors) {
            results.set(i, finisher.finish(&mut v));
        }
        work.done += batch.len();
    }
    work.next_batch += step_batches.len();
    report_batch(shared, work);
    Ok(())
}

fn report_batch(shared: &Lifecycle, work: &Job) {
    let n = work.texts.len() as u64;
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
}
