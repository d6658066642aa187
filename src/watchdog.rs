//! The stall watchdog. It watches progress, not wall time: while a request or a load is under way it compares
//! now with the last progress the worker reported. After `stall_warning` it warns once per stall; after
//! `stall_timeout` it fails every queued and running request with `ERR_STALLED`, abandons the stuck worker
//! (never joining it: it may never return) and starts a fresh one, which reloads the model for the next request.

use std::sync::Arc;

use crate::error::{Error, ErrorCode};
use crate::lifecycle::{Deferred, Lifecycle};
use crate::progress::LogLevel;
use crate::worker::{self, WorkerConfig};

pub fn spawn(shared: Arc<Lifecycle>, config: Arc<WorkerConfig>) -> crate::error::Result<()> {
    std::thread::Builder::new()
        .name("embedding-watchdog".into())
        .spawn(move || run(shared, config))
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start the watchdog thread: {e}")))
}

fn run(shared: Arc<Lifecycle>, config: Arc<WorkerConfig>) {
    let timing = shared.timing;
    let mut core = shared.lock();
    loop {
        if shared.is_closed(&core) {
            return;
        }
        let Some(silent) = shared.silence(&core) else {
            shared.watchdog_wake.wait(&mut core);
            continue;
        };
        if silent >= timing.stall_timeout {
            let message = format!(
                "the embedding worker made no progress for {:.1} s (stallTimeoutMs {}); in-flight requests \
                 failed and a fresh worker will reload the model for the next request",
                silent.as_secs_f64(),
                timing.stall_timeout.as_millis()
            );
            let mut after = Deferred::default();
            let generation = shared.abandon_worker(&mut core, &mut after, Error::new(ErrorCode::Stalled, message));
            if let Err(e) = worker::spawn(shared.clone(), config.clone(), generation) {
                shared.log(LogLevel::Error, format!("cannot replace the stalled worker: {e}"));
            }
            drop(core);
            after.run();
            core = shared.lock();
            continue;
        }
        if silent >= timing.stall_warning {
            shared.warn_stall(&mut core, silent);
        }
        // Sleep until the next threshold could be crossed; progress only pushes it later.
        let wake_at = shared.next_stall_check(&core);
        shared.watchdog_wake.wait_until(&mut core, wake_at);
    }
}
