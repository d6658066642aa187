//! Progress events and the bounded, coalescing mailbox that carries them (and log lines) from the worker and
//! watchdog threads to whoever listens (the JS thread, in the addon). Producers never block. When the listener
//! falls behind, a request's newer routine progress replaces its older, not yet delivered progress, and routine
//! items and log lines are bounded; milestones (loading, completion, stalls, unloading) are always delivered.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    DownloadingModel,
    LoadingModel,
    ExtractingCandidates,
    ProcessingEmbeddings,
    ProcessingBatch,
    CleaningMemory,
    Completed,
    UnloadingModel,
    Idle,
    StallWarning,
    Stalled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::DownloadingModel => "downloading_model",
            Status::LoadingModel => "loading_model",
            Status::ExtractingCandidates => "extracting_candidates",
            Status::ProcessingEmbeddings => "processing_embeddings",
            Status::ProcessingBatch => "processing_batch",
            Status::CleaningMemory => "cleaning_memory",
            Status::Completed => "completed",
            Status::UnloadingModel => "unloading_model",
            Status::Idle => "idle",
            Status::StallWarning => "stall_warning",
            Status::Stalled => "stalled",
        }
    }

    /// Routine progress (per batch, per 64 KB of text, per 100 ms of a download), which a newer event of the
    /// same request (or, for a download, the same file) may replace.
    fn coalescable(self) -> bool {
        matches!(
            self,
            Status::DownloadingModel
                | Status::ExtractingCandidates
                | Status::ProcessingEmbeddings
                | Status::ProcessingBatch
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProgressEvent {
    pub status: Status,
    pub current: u64,
    pub total: u64,
    /// Milliseconds since the Unix epoch, taken when the event was made.
    pub timestamp: f64,
    pub details: String,
    pub request_id: Option<u64>,
    pub eta_ms: Option<f64>,
    pub texts_per_second: Option<f64>,
}

impl ProgressEvent {
    pub fn new(status: Status, current: u64, total: u64, details: impl Into<String>) -> Self {
        ProgressEvent {
            status,
            current,
            total,
            timestamp: now_ms(),
            details: details.into(),
            request_id: None,
            eta_ms: None,
            texts_per_second: None,
        }
    }

    pub fn for_request(mut self, id: u64) -> Self {
        self.request_id = Some(id);
        self
    }

    /// "processing_embeddings: 200/1000", or the status alone when no count applies.
    pub fn message(&self) -> String {
        if self.total > 0 {
            format!("{}: {}/{}", self.status.as_str(), self.current, self.total)
        } else if self.details.is_empty() {
            self.status.as_str().to_string()
        } else {
            format!("{}: {}", self.status.as_str(), self.details)
        }
    }
}

/// Wall-clock milliseconds since the epoch, never going backwards within this process.
pub fn now_ms() -> f64 {
    static LAST: Mutex<f64> = Mutex::new(0.0);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
    let mut last = LAST.lock();
    *last = last.max(t);
    *last
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Progress(ProgressEvent),
    Log(LogLevel, String),
}

/// Where events go. The addon implements this with a threadsafe function; tests collect into a vector.
pub trait Sink: Send + Sync {
    fn send(&self, item: Outgoing);
}

/// A sink that drops everything (a service nobody listens to).
pub struct NullSink;

impl Sink for NullSink {
    fn send(&self, _: Outgoing) {}
}

/// The mailbox between producer threads and one consumer. Milestones (every progress status that is not
/// routine: loading stages, completion, stalls, unloading, idle) are always delivered, in order: a progress bar must
/// see `completed`, and there are only a few per request or per load, each far smaller than the request's
/// results that wait for the same JS thread. Routine progress and log lines are bounded by `capacity`: once the
/// listener falls behind, a request's newer routine progress replaces its older one, and when they are full,
/// the oldest routine item (or debug line, else the oldest line) is dropped.
pub struct Mailbox {
    inner: Mutex<MailboxState>,
    capacity: usize,
}

struct MailboxState {
    /// Both queues hold (arrival number, item); a drain merges them back into arrival order. They are kept
    /// apart so that a backlog of milestones never makes a push scan past them.
    milestones: VecDeque<(u64, Outgoing)>,
    bounded: VecDeque<(u64, Outgoing)>,
    next: u64,
    /// A drain is scheduled and has not run yet: producers need not schedule another.
    drain_pending: bool,
    dropped: u64,
}

fn is_milestone(item: &Outgoing) -> bool {
    matches!(item, Outgoing::Progress(e) if !e.status.coalescable())
}

impl Mailbox {
    pub fn new(capacity: usize) -> Self {
        Mailbox {
            inner: Mutex::new(MailboxState {
                milestones: VecDeque::new(),
                bounded: VecDeque::new(),
                next: 0,
                drain_pending: false,
                dropped: 0,
            }),
            capacity: capacity.max(8),
        }
    }

    /// Adds an item; returns true when the caller must schedule a drain (none is pending yet).
    pub fn push(&self, item: Outgoing) -> bool {
        let mut s = self.inner.lock();
        let seq = s.next;
        s.next += 1;
        if is_milestone(&item) {
            s.milestones.push_back((seq, item));
            return Self::schedule(&mut s);
        }
        if let Outgoing::Progress(ev) = &item {
            if s.milestones.len() + s.bounded.len() >= self.capacity / 2 {
                // Replace this request's undelivered progress of the same kind, keeping its place in the order.
                if let Some(slot) = s.bounded.iter_mut().rev().find(|(_, o)| {
                    matches!(o, Outgoing::Progress(old) if old.status == ev.status
                        && old.request_id == ev.request_id
                        && (ev.status != Status::DownloadingModel || old.details == ev.details))
                }) {
                    slot.1 = item;
                    return Self::schedule(&mut s);
                }
            }
        }
        if s.bounded.len() >= self.capacity {
            let victim = s
                .bounded
                .iter()
                .position(|(_, o)| matches!(o, Outgoing::Progress(_) | Outgoing::Log(LogLevel::Debug, _)))
                .unwrap_or(0);
            s.bounded.remove(victim);
            s.dropped += 1;
        }
        s.bounded.push_back((seq, item));
        Self::schedule(&mut s)
    }

    fn schedule(s: &mut MailboxState) -> bool {
        !std::mem::replace(&mut s.drain_pending, true)
    }

    /// Takes everything queued, in arrival order; the next push schedules a new drain. When the model has been
    /// unloaded (an `idle` event is among them), the draining thread hands its free memory back too: it is the
    /// caller's thread, which read every request's texts in, and their pages wait in its allocator heap until
    /// it collects them; an unload is when a daemon expects memory back (measured: +12.9 MB after one
    /// 100,000-text request without this).
    pub fn drain(&self) -> Vec<Outgoing> {
        let (milestones, bounded) = {
            let mut s = self.inner.lock();
            s.drain_pending = false;
            (std::mem::take(&mut s.milestones), std::mem::take(&mut s.bounded))
        };
        let unloaded = milestones.iter().any(|(_, item)| matches!(item, Outgoing::Progress(e) if e.status == Status::Idle));
        let mut items = Vec::with_capacity(milestones.len() + bounded.len());
        let (mut a, mut b) = (milestones.into_iter().peekable(), bounded.into_iter().peekable());
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some((x, _)), Some((y, _))) => x < y,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            items.extend(next.map(|(_, item)| item));
        }
        if unloaded {
            crate::memory::release_free_memory();
        }
        items
    }

    /// Routine items and log lines dropped because the consumer fell behind; milestones are never dropped.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(status: Status, id: u64, current: u64) -> Outgoing {
        Outgoing::Progress(ProgressEvent::new(status, current, 100, "").for_request(id))
    }

    #[test]
    fn a_drain_is_scheduled_once_until_it_runs() {
        let m = Mailbox::new(16);
        assert!(m.push(progress(Status::Completed, 1, 100)));
        assert!(!m.push(progress(Status::Completed, 2, 100)));
        assert_eq!(m.drain().len(), 2);
        assert!(m.push(progress(Status::Completed, 3, 100)));
    }

    #[test]
    fn routine_progress_of_a_request_coalesces_in_place_once_behind_and_milestones_stay() {
        let m = Mailbox::new(8);
        for i in 0..4 {
            m.push(progress(Status::Completed, 100 + i, 100));
        }
        m.push(progress(Status::ProcessingEmbeddings, 1, 0));
        m.push(progress(Status::ProcessingEmbeddings, 2, 5));
        m.push(progress(Status::ProcessingEmbeddings, 1, 10));
        m.push(progress(Status::ProcessingEmbeddings, 1, 20));
        m.push(progress(Status::Completed, 1, 100));
        let got: Vec<(Status, Option<u64>, u64)> = m
            .drain()
            .into_iter()
            .map(|o| match o {
                Outgoing::Progress(e) => (e.status, e.request_id, e.current),
                _ => unreachable!(),
            })
            .skip(4)
            .collect();
        assert_eq!(
            got,
            vec![
                (Status::ProcessingEmbeddings, Some(1), 20),
                (Status::ProcessingEmbeddings, Some(2), 5),
                (Status::Completed, Some(1), 100)
            ]
        );
    }

    #[test]
    fn a_listener_that_keeps_up_sees_every_event() {
        let m = Mailbox::new(8);
        m.push(progress(Status::ProcessingEmbeddings, 1, 0));
        m.push(progress(Status::ProcessingEmbeddings, 1, 10));
        assert_eq!(m.drain().len(), 2);
    }

    #[test]
    fn milestones_survive_any_backlog_while_routine_items_stay_bounded() {
        let m = Mailbox::new(8);
        for i in 0..1000 {
            m.push(progress(Status::ProcessingBatch, i, 1));
            m.push(progress(Status::Completed, i, 100));
        }
        let got: Vec<(Status, u64)> = m
            .drain()
            .into_iter()
            .map(|o| match o {
                Outgoing::Progress(e) => (e.status, e.request_id.unwrap()),
                _ => unreachable!(),
            })
            .collect();
        // Every `completed`, and the 8 newest routine events, all in arrival order.
        let mut want = Vec::new();
        for i in 0..1000 {
            if i >= 992 {
                want.push((Status::ProcessingBatch, i));
            }
            want.push((Status::Completed, i));
        }
        assert_eq!(got, want);
        assert_eq!(m.dropped(), 992);
    }

    #[test]
    fn a_download_coalesces_per_file_once_behind() {
        let m = Mailbox::new(8);
        for i in 0..4 {
            m.push(progress(Status::Completed, 100 + i, 100));
        }
        let download = |file: &str, bytes| Outgoing::Progress(ProgressEvent::new(Status::DownloadingModel, bytes, 90, file));
        for bytes in [10, 20, 30] {
            m.push(download("tokenizer.json", bytes));
            m.push(download("model.safetensors", bytes * 3));
        }
        let got: Vec<(String, u64)> = m
            .drain()
            .into_iter()
            .skip(4)
            .map(|o| match o {
                Outgoing::Progress(e) => (e.details, e.current),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, [("tokenizer.json".to_string(), 30), ("model.safetensors".to_string(), 90)]);
    }

    #[test]
    fn routine_progress_is_dropped_before_warnings() {
        let m = Mailbox::new(8);
        m.push(Outgoing::Log(LogLevel::Warn, "stall".into()));
        for i in 0..20 {
            m.push(progress(Status::ProcessingBatch, i, 1));
        }
        let got = m.drain();
        assert_eq!(got.len(), 8);
        assert_eq!(got[0], Outgoing::Log(LogLevel::Warn, "stall".into()));
    }

    #[test]
    fn timestamps_never_go_backwards() {
        let mut last = 0.0;
        for _ in 0..1000 {
            let t = now_ms();
            assert!(t >= last);
            last = t;
        }
    }
}
