//! Which request the worker serves next. Two lanes: interactive queries go ahead of bulk indexing at every
//! batch boundary, and a bounded streak keeps a steady trickle of queries from starving index work.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// An interactive search: served before any index work that is waiting.
    Query,
    /// Bulk indexing (the default).
    #[default]
    Index,
}

/// After this many query steps in a row while index work waits, one index step runs. With one batch per
/// step, index work keeps at least 1/(MAX_QUERY_STREAK + 1) of the worker under any load of queries.
pub const MAX_QUERY_STREAK: usize = 8;

#[derive(Debug, Default)]
pub struct Lanes {
    query: VecDeque<u64>,
    index: VecDeque<u64>,
    query_streak: usize,
}

impl Lanes {
    fn lane(&mut self, p: Priority) -> &mut VecDeque<u64> {
        match p {
            Priority::Query => &mut self.query,
            Priority::Index => &mut self.index,
        }
    }

    /// A new request joins the back of its lane.
    pub fn push(&mut self, id: u64, p: Priority) {
        self.lane(p).push_back(id);
    }

    /// A request that has more batches to run goes back to the front of its lane: within a lane, requests
    /// finish in arrival order; across lanes, waiting queries still go first.
    pub fn push_front(&mut self, id: u64, p: Priority) {
        self.lane(p).push_front(id);
    }

    /// The request to run one step of next.
    pub fn next_to_run(&mut self) -> Option<u64> {
        let take_query = !self.query.is_empty() && (self.index.is_empty() || self.query_streak < MAX_QUERY_STREAK);
        if take_query {
            self.query_streak += 1;
            self.query.pop_front()
        } else {
            self.query_streak = 0;
            self.index.pop_front()
        }
    }

    /// The index work in progress has moved on (it reached its next checkpoint): a new streak of queries may
    /// preempt it.
    pub fn index_progressed(&mut self) {
        self.query_streak = 0;
    }

    /// A query to run while index work is paused at a checkpoint, if one waits and the streak allows: at most
    /// `MAX_QUERY_STREAK` queries run at one checkpoint, then the index work runs to its next one, so queries
    /// cannot starve it this way either.
    pub fn next_preempting_query(&mut self) -> Option<u64> {
        if self.query.is_empty() || self.query_streak >= MAX_QUERY_STREAK {
            return None;
        }
        self.query_streak += 1;
        self.query.pop_front()
    }

    pub fn remove(&mut self, id: u64) -> bool {
        for lane in [&mut self.query, &mut self.index] {
            if let Some(pos) = lane.iter().position(|&x| x == id) {
                lane.remove(pos);
                return true;
            }
        }
        false
    }

    pub fn len(&self, p: Priority) -> usize {
        match p {
            Priority::Query => self.query.len(),
            Priority::Index => self.index.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.query.is_empty() && self.index.is_empty()
    }

    pub fn clear(&mut self) {
        self.query.clear();
        self.index.clear();
        self.query_streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_go_first_and_an_interrupted_index_request_resumes_first() {
        let mut l = Lanes::default();
        l.push(1, Priority::Index);
        l.push(2, Priority::Index);
        assert_eq!(l.next_to_run(), Some(1));
        l.push(10, Priority::Query);
        l.push_front(1, Priority::Index); // request 1 has more batches
        assert_eq!(l.next_to_run(), Some(10));
        assert_eq!(l.next_to_run(), Some(1));
        assert_eq!(l.next_to_run(), Some(2));
        assert_eq!(l.next_to_run(), None);
    }

    #[test]
    fn a_steady_stream_of_queries_cannot_starve_index_work() {
        let mut l = Lanes::default();
        l.push(0, Priority::Index);
        let mut served = Vec::new();
        for q in 1..=20 {
            l.push(q, Priority::Query);
            let id = l.next_to_run().unwrap();
            served.push(id);
            if id == 0 {
                break;
            }
        }
        assert_eq!(served.len(), MAX_QUERY_STREAK + 1, "{served:?}");
        assert_eq!(*served.last().unwrap(), 0);
    }

    #[test]
    fn queries_preempting_an_index_batch_count_toward_the_streak() {
        let mut l = Lanes::default();
        l.push(0, Priority::Index);
        assert_eq!(l.next_to_run(), Some(0)); // index request 0 is running its batch
        for q in 1..=20 {
            l.push(q, Priority::Query);
        }
        let preempting: Vec<u64> = std::iter::from_fn(|| l.next_preempting_query()).collect();
        assert_eq!(preempting, (1..=MAX_QUERY_STREAK as u64).collect::<Vec<_>>());
        // The batch moves on to its next checkpoint: another streak may run there.
        l.index_progressed();
        assert_eq!(l.next_preempting_query(), Some(MAX_QUERY_STREAK as u64 + 1));
        // A full streak ran before the batch finished: its request goes back to the front and runs before
        // any more queries.
        while l.next_preempting_query().is_some() {}
        l.push_front(0, Priority::Index);
        assert_eq!(l.next_to_run(), Some(0));
        assert_eq!(l.next_to_run(), Some(2 * MAX_QUERY_STREAK as u64 + 1));
    }

    #[test]
    fn remove_takes_a_request_out_of_either_lane() {
        let mut l = Lanes::default();
        l.push(1, Priority::Query);
        l.push(2, Priority::Index);
        assert!(l.remove(2));
        assert!(!l.remove(2));
        assert_eq!((l.len(Priority::Query), l.len(Priority::Index)), (1, 0));
    }
}
