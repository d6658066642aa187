//! The job queue between callers and the worker thread: a mutex-guarded deque with a condition variable, and a
//! closed flag that turns every later submission away. Callers never block on the worker.

use std::collections::VecDeque;

use parking_lot::{Condvar, Mutex};

pub struct JobQueue<J> {
    state: Mutex<State<J>>,
    ready: Condvar,
}

struct State<J> {
    jobs: VecDeque<J>,
    closed: bool,
}

impl<J> Default for JobQueue<J> {
    fn default() -> Self {
        JobQueue { state: Mutex::new(State { jobs: VecDeque::new(), closed: false }), ready: Condvar::new() }
    }
}

impl<J> JobQueue<J> {
    /// Queues a job; hands it back when the queue is closed.
    pub fn push(&self, job: J) -> Result<(), J> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(job);
        }
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// Waits for the next job; `None` once the queue is closed.
    pub fn pop(&self) -> Option<J> {
        let mut s = self.state.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(job) = s.jobs.pop_front() {
                return Some(job);
            }
            self.ready.wait(&mut s);
        }
    }

    /// Closes the queue and returns the jobs that never started. Returns `None` when it was closed already.
    pub fn close(&self) -> Option<Vec<J>> {
        let mut s = self.state.lock();
        if s.closed {
            return None;
        }
        s.closed = true;
        let left = s.jobs.drain(..).collect();
        drop(s);
        self.ready.notify_all();
        Some(left)
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    pub fn len(&self) -> usize {
        self.state.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_then_close_returns_unstarted_jobs_and_refuses_more() {
        let q = JobQueue::default();
        q.push(1).unwrap();
        q.push(2).unwrap();
        q.push(3).unwrap();
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.close(), Some(vec![2, 3]));
        assert_eq!(q.close(), None);
        assert_eq!(q.push(4), Err(4));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_waiting_pop_wakes_on_push_and_on_close() {
        let q = Arc::new(JobQueue::default());
        let (q1, q2) = (q.clone(), q.clone());
        let t = std::thread::spawn(move || (q1.pop(), q1.pop()));
        q2.push("a").unwrap();
        // The second pop can only return once close wakes it.
        while !q.is_empty() {
            std::thread::yield_now();
        }
        q.close();
        assert_eq!(t.join().unwrap(), (Some("a"), None));
    }
}
