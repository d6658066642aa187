//! The lifecycle, scheduling, progress and watchdog guarantees, on the tiny BERT fixture (fast, real forward
//! passes). Tests wait on events and replies, never on sleeps.

mod common;

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use embedding_service::progress::{Outgoing, ProgressEvent, Sink, Status};
use embedding_service::{EmbedOptions, Embeddings, ErrorCode, Priority, Result, Service, ServiceOptions, State};

/// Collects every event and forwards it to a channel the test can wait on.
struct Recorder {
    all: Mutex<Vec<ProgressEvent>>,
    tx: Mutex<Sender<ProgressEvent>>,
}

impl Sink for Recorder {
    fn send(&self, item: Outgoing) {
        if let Outgoing::Progress(e) = item {
            self.all.lock().unwrap().push(e.clone());
            let _ = self.tx.lock().unwrap().send(e);
        }
    }
}

fn recorded_service(configure: impl FnOnce(&mut ServiceOptions)) -> (Service, Arc<Recorder>, Receiver<ProgressEvent>) {
    let (tx, rx) = channel();
    let recorder = Arc::new(Recorder { all: Mutex::new(Vec::new()), tx: Mutex::new(tx) });
    let mut options = ServiceOptions::new(reference("tiny-bert-cls").join("model").to_string_lossy());
    options.threads = 1;
    options.sink = recorder.clone();
    configure(&mut options);
    (Service::new(options).unwrap(), recorder, rx)
}

fn wait_for(rx: &Receiver<ProgressEvent>, pred: impl Fn(&ProgressEvent) -> bool) -> ProgressEvent {
    loop {
        let e = rx.recv().expect("the service stopped sending events");
        if pred(&e) {
            return e;
        }
    }
}

fn submit(svc: &Service, texts: Vec<String>, priority: Priority) -> (u64, Receiver<Result<Embeddings>>) {
    let (tx, rx) = channel();
    let id = svc.embed(texts, EmbedOptions { priority, ..Default::default() }, Box::new(move |r| drop(tx.send(r))));
    (id, rx)
}

fn many(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text number {i} with some words {}", "x ".repeat(i % 7))).collect()
}

#[test]
fn a_request_reports_start_each_batch_and_completion_in_order() {
    let (svc, rec, _rx) = recorded_service(|o| o.limits.max_batch_size = 8);
    let (id, reply) = submit(&svc, many(100), Priority::Index);
    let got = reply.recv().unwrap().unwrap();
    assert_eq!(got.vectors.len(), 100);
    let events: Vec<ProgressEvent> = rec.all.lock().unwrap().iter().filter(|e| e.request_id == Some(id)).cloned().collect();
    assert_eq!((events[0].status, events[0].current, events[0].total), (Status::ProcessingEmbeddings, 0, 100));
    let last = events.last().unwrap();
    assert_eq!((last.status, last.current, last.total), (Status::Completed, 100, 100));
    let batches: Vec<&ProgressEvent> = events.iter().filter(|e| e.status == Status::ProcessingBatch).collect();
    assert_eq!(batches.len(), 13);
    for (i, b) in batches.iter().enumerate() {
        assert_eq!((b.current, b.total), (i as u64 + 1, 13));
        assert_eq!(b.details, format!("Batch {}/13", i + 1));
    }
    let done: Vec<u64> =
        events.iter().filter(|e| e.status == Status::ProcessingEmbeddings).map(|e| e.current).collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    // Loading reported its stages before the request started.
    let all = rec.all.lock().unwrap();
    let loaded = format!("model loaded (f32, {} kernels)", embedding_service::model::cpu_kernels(embedding_service::Dtype::F32));
    assert!(all.iter().any(|e| e.status == Status::LoadingModel && e.current == 3 && e.details == loaded));
}

#[test]
fn queries_overtake_a_running_index_job_and_the_job_is_unchanged() {
    let (svc, _rec, events) = recorded_service(|o| o.limits.max_batch_size = 4);
    let texts = many(2000);
    let (job_id, job) = submit(&svc, texts.clone(), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(job_id) && e.status == Status::ProcessingBatch);
    let queries: Vec<_> = (0..10).map(|i| submit(&svc, vec![format!("query {i}")], Priority::Query).1).collect();
    let mut query_results = Vec::new();
    for q in &queries {
        query_results.push(q.recv().unwrap().unwrap());
        assert!(job.try_recv().is_err(), "the index job finished before a query");
    }
    let job_result = job.recv().unwrap().unwrap();
    assert_eq!(svc.status().unload_count, 0);
    let alone = svc.embed_blocking(texts, EmbedOptions::default()).unwrap();
    for (a, b) in job_result.vectors.iter().zip(&alone.vectors) {
        assert!(cosine(a, b) >= 0.99999);
    }
    assert_eq!(query_results.len(), 10);
}

#[test]
fn the_model_unloads_after_the_keep_alive_and_reloads_for_the_next_request() {
    let (svc, _rec, events) = recorded_service(|o| o.keep_alive = Some(Duration::from_millis(100)));
    svc.embed_blocking(vec!["a".into()], EmbedOptions::default()).unwrap();
    wait_for(&events, |e| e.status == Status::UnloadingModel);
    let idle = wait_for(&events, |e| e.status == Status::Idle);
    assert_eq!(idle.details, "model unloaded");
    let s = svc.status();
    assert_eq!((s.state, s.model_loaded, s.unload_count, s.load_count), (State::Unloaded, false, 1, 1));
    svc.embed_blocking(vec!["b".into()], EmbedOptions::default()).unwrap();
    assert_eq!(svc.status().load_count, 2);
}

#[test]
fn never_unloads_while_work_is_queued_or_running_under_a_1ms_keep_alive() {
    let (svc, rec, _rx) = recorded_service(|o| o.keep_alive = Some(Duration::from_millis(1)));
    let svc = Arc::new(svc);
    let expected = svc.embed_blocking(many(8), EmbedOptions::default()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let svc = svc.clone();
            let want = expected.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9e3779b9u32.wrapping_mul(t + 1);
                for _ in 0..50 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    // Gaps of 0 to 3 ms: some shorter than the keep-alive, some longer.
                    std::thread::sleep(Duration::from_micros((seed % 3000) as u64));
                    let got = svc.embed_blocking(many(8), EmbedOptions::default()).expect("no request may fail");
                    assert_eq!(got.vectors, want.vectors);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let events = rec.all.lock().unwrap().clone();
    // Replay the stream: an unload may only begin when no request is between its start and its completion.
    let mut running = std::collections::HashSet::new();
    for e in &events {
        match (e.status, e.request_id) {
            (Status::ProcessingEmbeddings, Some(id)) if e.current == 0 => {
                running.insert(id);
            }
            (Status::Completed, Some(id)) => {
                running.remove(&id);
            }
            (Status::UnloadingModel, _) => assert!(running.is_empty(), "unload began while {running:?} ran"),
            _ => {}
        }
    }
    let s = svc.status();
    assert!(s.unload_count > 0, "the gaps should have allowed some unloads");
    assert_eq!(s.load_count, s.unload_count + u64::from(s.model_loaded));
}

#[test]
fn a_stalled_worker_is_reported_failed_and_replaced() {
    let (svc, rec, events) = recorded_service(|o| {
        o.faults.stall = Some(Duration::from_millis(600));
        o.stall_warning = Duration::from_millis(100);
        o.stall_timeout = Duration::from_millis(250);
    });
    let err = svc.embed_blocking(vec!["stuck".into()], EmbedOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::Stalled);
    wait_for(&events, |e| e.status == Status::Stalled);
    let statuses: Vec<Status> = rec.all.lock().unwrap().iter().map(|e| e.status).collect();
    let warn = statuses.iter().position(|s| *s == Status::StallWarning).expect("a stall warning first");
    let stalled = statuses.iter().position(|s| *s == Status::Stalled).unwrap();
    assert!(warn < stalled);
    // The replacement worker reloads the model and serves the next request (the hook stalls the first worker only).
    let ok = svc.embed_blocking(vec!["fine".into()], EmbedOptions::default()).unwrap();
    assert_eq!(ok.vectors.len(), 1);
    assert_eq!(svc.status().load_count, 2);
}

#[test]
fn slow_batches_that_keep_reporting_progress_are_never_failed() {
    let (svc, rec, _rx) = recorded_service(|o| {
        o.faults.stall = Some(Duration::from_millis(40));
        o.stall_warning = Duration::from_millis(400);
        o.stall_timeout = Duration::from_millis(800);
        o.limits.max_batch_size = 2;
    });
    // 30 batches of 40+ ms each: 1.2+ s in all, longer than the stall timeout, while each batch
    // stays ten times inside the warning so a loaded machine cannot fake a stall.
    let got = svc.embed_blocking(many(60), EmbedOptions::default()).unwrap();
    assert_eq!(got.vectors.len(), 60);
    let stalls = rec.all.lock().unwrap().iter().filter(|e| matches!(e.status, Status::StallWarning | Status::Stalled)).count();
    assert_eq!(stalls, 0);
}

#[test]
fn abort_rejects_a_queued_request_at_once_and_a_running_one_before_its_next_batch() {
    let (svc, _rec, events) = recorded_service(|o| o.limits.max_batch_size = 2);
    let (running_id, running) = submit(&svc, many(400), Priority::Index);
    let (queued_id, queued) = submit(&svc, many(4), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(running_id) && e.status == Status::ProcessingBatch);
    svc.abort(queued_id);
    assert_eq!(queued.recv().unwrap().unwrap_err().code, ErrorCode::Aborted);
    svc.abort(running_id);
    assert_eq!(running.recv().unwrap().unwrap_err().code, ErrorCode::Aborted);
    assert!(svc.embed_blocking(vec!["next".into()], EmbedOptions::default()).is_ok());
}

#[test]
fn close_rejects_running_and_queued_work_and_frees_the_worker() {
    let (svc, _rec, events) = recorded_service(|o| o.limits.max_batch_size = 2);
    let (running_id, running) = submit(&svc, many(400), Priority::Index);
    // Index priority: a query would overtake the running job and could finish before close().
    let (_, queued) = submit(&svc, many(4), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(running_id) && e.status == Status::ProcessingBatch);
    svc.close_blocking();
    assert_eq!(running.recv().unwrap().unwrap_err().code, ErrorCode::Closed);
    assert_eq!(queued.recv().unwrap().unwrap_err().code, ErrorCode::Closed);
    let s = svc.status();
    assert_eq!((s.state, s.model_loaded), (State::Closed, false));
    assert_eq!(svc.wait(|s, done| s.load(done)).unwrap_err().code, ErrorCode::Closed);
}

#[test]
fn load_and_unload_on_demand_and_unload_waits_for_running_work() {
    let (svc, _rec, events) = recorded_service(|o| {
        o.keep_alive = None;
        o.limits.max_batch_size = 2;
    });
    svc.wait(|s, done| s.load(done)).unwrap();
    assert_eq!((svc.status().state, svc.status().load_count), (State::Ready, 1));
    svc.wait(|s, done| s.load(done)).unwrap();
    assert_eq!(svc.status().load_count, 1, "a second load() reuses the loaded model");

    let (id, job) = submit(&svc, many(200), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(id) && e.status == Status::ProcessingBatch);
    svc.wait(|s, done| s.unload(done)).unwrap();
    // unload() returned only after the job: its reply is already there, and it succeeded.
    assert_eq!(job.try_recv().expect("the job finished before the unload").unwrap().vectors.len(), 200);
    let s = svc.status();
    assert_eq!((s.state, s.model_loaded, s.unload_count), (State::Unloaded, false, 1));
}

/// Index batches of `n` texts, the first held at its first checkpoint until `queries` queries are queued.
fn held_batch_service(n: usize, queries: usize) -> (Service, Arc<Recorder>, Receiver<ProgressEvent>) {
    recorded_service(|o| {
        o.limits.max_batch_size = n;
        o.limits.max_batch_tokens = 1 << 20;
        o.faults.hold_index_until_queries = queries;
    })
}

#[test]
fn a_query_overtakes_an_index_batch_in_progress_and_every_vector_is_bit_identical() {
    query_overtakes_a_batch_in_progress("tiny-bert-cls");
}

#[test]
fn a_query_overtakes_a_modernbert_batch_in_progress_and_every_vector_is_bit_identical() {
    query_overtakes_a_batch_in_progress("tiny-modernbert-mean");
}

#[test]
fn a_query_overtakes_a_qwen3_batch_in_progress_and_every_vector_is_bit_identical() {
    query_overtakes_a_batch_in_progress("tiny-qwen3-last");
}

#[test]
fn a_query_overtakes_a_gemma3_batch_in_progress_and_every_vector_is_bit_identical() {
    query_overtakes_a_batch_in_progress("tiny-gemma3-mean");
}

fn query_overtakes_a_batch_in_progress(model: &str) {
    let model_dir = reference(model).join("model").to_string_lossy().into_owned();
    let (svc, rec, events) = recorded_service(|o| {
        o.model = model_dir.clone();
        o.limits.max_batch_size = 64;
        o.limits.max_batch_tokens = 1 << 20;
        o.faults.hold_index_until_queries = 1;
    });
    let texts = many(64);
    let (job_id, job) = submit(&svc, texts.clone(), Priority::Index);
    // The job has been tokenised and its only batch has started; it waits inside the forward pass.
    wait_for(&events, |e| e.request_id == Some(job_id) && e.status == Status::ProcessingEmbeddings);
    let (query_id, query) = submit(&svc, vec!["where is the config?".into(), "how do I unload".into()], Priority::Query);
    let q = query.recv().unwrap().unwrap();
    assert!(job.try_recv().is_err(), "the index batch finished before the query");
    let j = job.recv().unwrap().unwrap();
    // The query completed while the job's one and only batch was still in progress.
    let all = rec.all.lock().unwrap().clone();
    let query_done = all.iter().position(|e| e.request_id == Some(query_id) && e.status == Status::Completed).unwrap();
    let job_batch = all.iter().position(|e| e.request_id == Some(job_id) && e.status == Status::ProcessingBatch).unwrap();
    assert!(query_done < job_batch);
    // Bit for bit what each gives alone, on a service that never pauses.
    let (plain, _, _) = recorded_service(|o| {
        o.model = model_dir.clone();
        o.limits.max_batch_size = 64;
    });
    let alone_job = plain.embed_blocking(texts, EmbedOptions::default()).unwrap();
    let alone_query = plain.embed_blocking(vec!["where is the config?".into(), "how do I unload".into()], EmbedOptions::default()).unwrap();
    assert_eq!(j.vectors, alone_job.vectors);
    assert_eq!(q.vectors, alone_query.vectors);
}

#[test]
fn a_steady_stream_of_queued_queries_cannot_starve_a_batch_in_progress() {
    // A sender keeps 16 queries queued at all times. Without the streak rule, the checkpoint would serve
    // them forever and the index batch would never finish.
    let (svc, _rec, events) = held_batch_service(64, 16);
    let (job_id, job) = submit(&svc, many(64), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(job_id) && e.status == Status::ProcessingEmbeddings);
    let done = std::sync::atomic::AtomicBool::new(false);
    let cap = 20_000;
    let sent = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut outstanding = std::collections::VecDeque::new();
            let mut sent = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) && sent < cap {
                while outstanding.len() < 16 {
                    outstanding.push_back(submit(&svc, vec![format!("query {sent}")], Priority::Query).1);
                    sent += 1;
                }
                outstanding.pop_front().unwrap().recv().unwrap().unwrap();
            }
            for q in outstanding {
                q.recv().unwrap().unwrap();
            }
            sent
        });
        let result = job.recv().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(result.is_ok());
        sender.join().unwrap()
    });
    assert!(sent > embedding_service::scheduler::MAX_QUERY_STREAK, "only {sent} queries were sent");
    assert!(sent < cap, "the index batch finished only after the sender gave up: starved");
}

#[test]
fn abort_and_close_act_at_the_next_checkpoint_of_a_paused_batch() {
    let (svc, _rec, events) = held_batch_service(64, 1);
    let (job_id, job) = submit(&svc, many(64), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(job_id) && e.status == Status::ProcessingEmbeddings);
    svc.abort(job_id);
    // The abort is noticed once the held batch resumes (the query releases it).
    let (_, query) = submit(&svc, vec!["q".into()], Priority::Query);
    assert_eq!(job.recv().unwrap().unwrap_err().code, ErrorCode::Aborted);
    query.recv().unwrap().unwrap();

    let (svc, _rec, events) = held_batch_service(64, 1);
    let (job_id, job) = submit(&svc, many(64), Priority::Index);
    wait_for(&events, |e| e.request_id == Some(job_id) && e.status == Status::ProcessingEmbeddings);
    svc.close_blocking();
    assert_eq!(job.recv().unwrap().unwrap_err().code, ErrorCode::Closed);
}

/// GPU devices run candle's forward pass, which has no checkpoints: their index work yields by running smaller
/// batches while queries arrive. Tested on the CPU with candle's kernels, as a GPU device runs them.
#[test]
fn an_encoder_without_checkpoints_runs_smaller_index_batches_while_queries_arrive() {
    let (tx, rx) = channel();
    let recorder = Arc::new(Recorder { all: Mutex::new(Vec::new()), tx: Mutex::new(tx) });
    let mut options = ServiceOptions::new(reference("tiny-modernbert-mean").join("model").to_string_lossy());
    options.threads = 1;
    options.kernels = embedding_service::model::Kernels::Candle;
    options.sink = recorder.clone();
    options.limits.max_batch_size = 8;
    let svc = Service::new(options).unwrap();
    drop(rx);
    let texts = many(32);
    // With no query, the job runs in its 4 planned batches.
    let (quiet_id, quiet) = submit(&svc, texts.clone(), Priority::Index);
    let quiet = quiet.recv().unwrap().unwrap();
    // A query has just arrived: each index step runs a quarter of its batch.
    submit(&svc, vec!["a query".into()], Priority::Query).1.recv().unwrap().unwrap();
    let (busy_id, busy) = submit(&svc, texts, Priority::Index);
    let busy = busy.recv().unwrap().unwrap();
    let batches = |id| recorder.all.lock().unwrap().iter().filter(|e| e.request_id == Some(id) && e.status == Status::ProcessingBatch).count();
    assert_eq!(batches(quiet_id), 4);
    assert!(batches(busy_id) > 4, "{} batches", batches(busy_id));
    for (a, b) in busy.vectors.iter().zip(&quiet.vectors) {
        assert!(cosine(a, b) >= 0.99999);
    }
}
