//! Forming batches from tokenised texts: sorted by length so texts of similar length share a batch, bounded by
//! a count and by a budget of padded tokens, and split where a text is much shorter than the batch's longest,
//! so that a few long texts never make many short ones pay for padding.

/// Limits on one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Texts per batch.
    pub max_batch_size: usize,
    /// Padded tokens per batch (texts in the batch times the longest one's length). A single text longer than
    /// the budget still forms a batch of its own.
    pub max_batch_tokens: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits { max_batch_size: 32, max_batch_tokens: 4096 }
    }
}

/// Padding a text by this many tokens is always accepted: splitting would cost more in per-batch overhead.
const MAX_CHEAP_PADDING: usize = 8;

/// Splits indices `0..lengths.len()` into batches, longest texts first. Every index appears exactly once.
pub fn plan_batches(lengths: &[usize], limits: BatchLimits) -> Vec<Vec<usize>> {
    let max_size = limits.max_batch_size.max(1);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Stable, so equal lengths keep input order and the plan is deterministic.
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for i in order {
        let len = lengths[i].max(1);
        let would_be_longest = longest.max(len);
        // Sorted longest first, so `len` is the shortest so far: it joins only if padding it to the longest
        // costs at most as much again as the text itself (or a few tokens).
        let too_short = len * 2 < longest && longest - len > MAX_CHEAP_PADDING;
        if !current.is_empty()
            && (too_short
                || current.len() >= max_size
                || (current.len() + 1) * would_be_longest > limits.max_batch_tokens)
        {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once_and_limits_hold() {
        let lengths: Vec<usize> = (0..200).map(|i| (i * 37) % 300 + 1).collect();
        let limits = BatchLimits { max_batch_size: 16, max_batch_tokens: 2048 };
        let batches = plan_batches(&lengths, limits);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        for b in &batches {
            assert!(b.len() <= 16);
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            let shortest = b.iter().map(|&i| lengths[i]).min().unwrap();
            assert!(b.len() == 1 || b.len() * longest <= 2048, "{b:?}");
            assert!(shortest * 2 >= longest || longest - shortest <= MAX_CHEAP_PADDING, "{b:?}");
        }
    }

    #[test]
    fn sorted_longest_first_and_oversized_text_alone() {
        let batches = plan_batches(&[3, 5000, 4, 2], BatchLimits { max_batch_size: 8, max_batch_tokens: 100 });
        assert_eq!(batches, vec![vec![1], vec![2, 0, 3]]);
        assert!(plan_batches(&[], BatchLimits::default()).is_empty());
    }

    #[test]
    fn short_texts_do_not_share_a_batch_with_a_much_longer_one() {
        let batches = plan_batches(&[256, 10, 12, 200, 9, 3], BatchLimits::default());
        assert_eq!(batches, vec![vec![0, 3], vec![2, 1, 4], vec![5]]);
        for b in &batches {
            assert!(b.len() <= 32);
        }
    }
}
