//! The stall watchdog. It watches progress, not wall time: while a request or a load is under way it compares
//! now with the last progress the worker reported. After `stall_warning` it warns once per stall; after
//! `stall_timeout` it fails every queued and running request with `ERR_STALLED`, abandons the stuck worker
//! (never joining it: it may never return) and starts a fresh one, which reloads the model for the next request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode};
use crate::lifecycle::{After, Shared, State};
use crate::progress::{LogLevel, ProgressEvent, Status};
use crate::worker::{self, WorkerConfig};

pub fn spawn(shared: Arc<Shared>, config: Arc<WorkerConfig>) -> crate::error::Result<()> {
    std::thread::Builder::new()
        .name("embedding-watchdog".into())
        .spawn(move || run(shared, config))
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start the watchdog thread: {e}")))
}

fn run(shared: Arc<Shared>, config: Arc<WorkerConfig>) {
    let timing = shared.timing;
    let mut core = shared.lock();
    loop {
        if core.state == State::Closed {
            return;
        }
        if !Shared::work_active(&core) {
            shared.watchdog_wake.wait(&mut core);
            continue;
        }
        let silent = core.last_progress.elapsed();
        if silent >= timing.stall_timeout {
            let mut after = After::default();
            let seconds = silent.as_secs_f64();
            let message = format!(
                "the embedding worker made no progress for {seconds:.1} s (stallTimeoutMs {}); in-flight requests \
                 failed and a fresh worker will reload the model for the next request",
                timing.stall_timeout.as_millis()
            );
            core.generation += 1;
            let generation = core.generation;
            shared.fail_all(&mut core, &mut after, Error::new(ErrorCode::Stalled, message.clone()));
            core.on_worker = None;
            core.paused = None;
            // The abandoned worker still holds its model until it returns (if ever); the service has none.
            core.model_loaded = false;
            core.weights = Default::default();
            core.state = State::Unloaded;
            core.keep_alive_deadline = None;
            shared.touch(&mut core);
            shared.emit(ProgressEvent::new(Status::Stalled, 0, 0, message.clone()));
            shared.log(LogLevel::Error, message);
            if let Err(e) = worker::spawn(shared.clone(), config.clone(), generation) {
                shared.log(LogLevel::Error, format!("cannot replace the stalled worker: {e}"));
            }
            drop(core);
            after.run();
            core = shared.lock();
            continue;
        }
        if silent >= timing.stall_warning && !core.stall_warned {
            core.stall_warned = true;
            let message = format!(
                "no progress from the embedding worker for {:.1} s (state {}); it will be failed with ERR_STALLED \
                 after {} ms without progress",
                silent.as_secs_f64(),
                core.state.as_str(),
                timing.stall_timeout.as_millis()
            );
            shared.emit(ProgressEvent::new(Status::StallWarning, 0, 0, message.clone()));
            shared.log(LogLevel::Warn, message);
        }
        // Sleep until the next threshold could be crossed; progress only pushes it later.
        let next = if core.stall_warned { timing.stall_timeout } else { timing.stall_warning.min(timing.stall_timeout) };
        let wake_at = core.last_progress + next;
        let wake_at = wake_at.max(Instant::now() + Duration::from_millis(1));
        shared.watchdog_wake.wait_until(&mut core, wake_at);
    }
}
