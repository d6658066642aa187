//! Key phrases of documents, KeyBERT's way (what the daemon's semantic extraction asks of its GPU backend):
//! candidate n-grams from each document (`candidates`), the document and every distinct candidate embedded in
//! one index-priority request on the worker, then each document's candidates ranked against it (`ranking`).

pub mod candidates;
pub mod ranking;

use std::collections::BTreeMap;

pub use candidates::StopWords;
pub use ranking::{Keyphrase, Ranking};

use crate::error::{Error, Result};
use crate::scheduler::Priority;

/// KeyBERT's `extract_keywords` arguments, with the daemon's defaults: (1, 3)-grams, English stop words, MMR at
/// diversity 0.5, 10 phrases.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyphraseOptions {
    pub ngram_range: (usize, usize),
    pub stop_words: StopWords,
    pub top_n: usize,
    pub ranking: Ranking,
    pub priority: Priority,
}

impl Default for KeyphraseOptions {
    fn default() -> Self {
        KeyphraseOptions {
            ngram_range: (1, 3),
            stop_words: StopWords::English,
            top_n: 10,
            ranking: Ranking::Mmr { diversity: 0.5 },
            priority: Priority::Index,
        }
    }
}

/// Longest n-gram accepted: each extra word multiplies the candidates to embed.
pub const MAX_NGRAM: usize = 8;

impl KeyphraseOptions {
    pub fn validate(&self) -> Result<()> {
        let (min, max) = self.ngram_range;
        if min < 1 || max < min || max > MAX_NGRAM {
            return Err(Error::invalid_input(format!(
                "ngramRange must be [min, max] with 1 <= min <= max <= {MAX_NGRAM}, got [{min}, {max}]"
            )));
        }
        if self.top_n == 0 {
            return Err(Error::invalid_input("topN must be at least 1"));
        }
        if let Ranking::Mmr { diversity } = self.ranking {
            if !(0.0..=1.0).contains(&diversity) {
                return Err(Error::invalid_input(format!("diversity must be between 0 and 1, got {diversity}")));
            }
        }
        Ok(())
    }
}

/// What to embed for a set of documents: the documents that have candidates, then each distinct candidate once.
pub struct Plan {
    /// Per document: its candidates, and (when it has any) its position in `texts`.
    docs: Vec<(Vec<String>, Option<usize>)>,
    /// The candidate -> position in `texts`, for candidates shared by several documents.
    index: BTreeMap<String, usize>,
    pub texts: Vec<String>,
}

impl Plan {
    pub fn new(documents: &[String], options: &KeyphraseOptions) -> Self {
        let extractor = candidates::CandidateExtractor::new(&options.stop_words, options.ngram_range);
        let per_doc: Vec<Vec<String>> = documents.iter().map(|d| extractor.candidates(d)).collect();
        let mut texts = Vec::new();
        let mut docs = Vec::with_capacity(documents.len());
        for (doc, cands) in documents.iter().zip(per_doc) {
            let at = (!cands.is_empty()).then(|| {
                texts.push(doc.clone());
                texts.len() - 1
            });
            docs.push((cands, at));
        }
        let mut index = BTreeMap::new();
        for (cands, _) in &docs {
            for c in cands {
                if !index.contains_key(c) {
                    index.insert(c.clone(), texts.len());
                    texts.push(c.clone());
                }
            }
        }
        Plan { docs, index, texts }
    }

    /// Ranks every document's candidates, given the vectors of `self.texts` in order.
    pub fn rank<V: AsRef<[f32]>>(&self, vectors: &[V], options: &KeyphraseOptions) -> Vec<Vec<Keyphrase>> {
        self.docs
            .iter()
            .map(|(cands, at)| match at {
                None => Vec::new(),
                Some(at) => {
                    let embeddings: Vec<&[f32]> = cands.iter().map(|c| vectors[self.index[c]].as_ref()).collect();
                    ranking::rank(vectors[*at].as_ref(), cands, &embeddings, options.top_n, options.ranking)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_candidates_are_embedded_once_and_empty_documents_not_at_all() {
        let docs: Vec<String> = ["river bank", "the of and", "bank loans"].map(String::from).to_vec();
        let plan = Plan::new(&docs, &KeyphraseOptions { ngram_range: (1, 1), ..Default::default() });
        assert_eq!(plan.texts, ["river bank", "bank loans", "bank", "river", "loans"]);
        // Vectors: the two documents, then bank, river, loans.
        let v = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.7, 0.7], vec![1.0, 0.1], vec![0.1, 1.0]];
        let ranked = plan.rank(&v, &KeyphraseOptions { top_n: 1, ..Default::default() });
        assert_eq!(ranked[0][0].text, "river");
        assert!(ranked[1].is_empty());
        assert_eq!(ranked[2][0].text, "loans");
    }

    #[test]
    fn options_are_checked() {
        let bad = |o: KeyphraseOptions| o.validate().unwrap_err().code;
        let d = KeyphraseOptions::default();
        assert!(d.validate().is_ok());
        assert_eq!(bad(KeyphraseOptions { ngram_range: (0, 2), ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { ngram_range: (3, 2), ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { top_n: 0, ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { ranking: Ranking::Mmr { diversity: 1.5 }, ..d }), crate::ErrorCode::InvalidInput);
    }
}
