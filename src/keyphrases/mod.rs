//! Key phrases of documents, KeyBERT's way (what the daemon's semantic extraction asks of its GPU backend):
//! candidate n-grams from each document (`candidates`), the document and every distinct candidate embedded in
//! one request on the worker, then each document's candidates ranked against it (`ranking`). The worker runs
//! the extraction too (`Extraction`), a bounded slice of text per step, so a large document never holds the
//! caller's thread and queries, abort and the watchdog see it as they see embedding.

pub mod candidates;
pub mod ranking;

use std::collections::HashMap;

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
    /// Distinct candidates kept per document; past it, the first ones in reading order (see `Extraction`).
    pub max_candidates: usize,
}

/// The default `max_candidates`. KeyBERT's MMR compares every candidate with every other (a float32 matrix of
/// candidates squared: 0.4 GB at 10,000, 270 GB for the 260,000 of a 5 MB document, where KeyBERT runs out of
/// memory), and its document vector sees only the model's first `max_seq_length` tokens. A 2,000-character
/// chunk has a few hundred candidates, so results are KeyBERT's exactly on such text; the cap bounds the time
/// and memory a pathological document can take (10,000 texts to embed, about 10 s on 2 CPU cores).
pub const DEFAULT_MAX_CANDIDATES: usize = 10_000;

impl Default for KeyphraseOptions {
    fn default() -> Self {
        KeyphraseOptions {
            ngram_range: (1, 3),
            stop_words: StopWords::English,
            top_n: 10,
            ranking: Ranking::Mmr { diversity: 0.5 },
            priority: Priority::Index,
            max_candidates: DEFAULT_MAX_CANDIDATES,
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
        if self.max_candidates == 0 {
            return Err(Error::invalid_input("maxCandidates must be at least 1"));
        }
        if let Ranking::Mmr { diversity } = self.ranking {
            if !(0.0..=1.0).contains(&diversity) {
                return Err(Error::invalid_input(format!("diversity must be between 0 and 1, got {diversity}")));
            }
        }
        Ok(())
    }
}

/// Bytes of document text one extraction step reads: about a millisecond of work, so a query waiting behind a
/// large document waits no longer than it would behind a batch.
pub const EXTRACTION_SLICE_BYTES: usize = 64 * 1024;

/// A document's place in the texts to embed.
struct Ranked {
    /// The document's own position (None: it has no candidates and is not embedded).
    at: Option<usize>,
    /// Its candidates' positions, in candidate order (code-point order, which breaks KeyBERT's ties).
    candidates: Vec<usize>,
}

/// A key-phrase request's candidates, extracted step by step, and what to embed: each document that has
/// candidates, followed by those of its candidates no earlier document had (each distinct candidate once).
pub struct Extraction {
    extractor: candidates::CandidateExtractor,
    max_candidates: usize,
    documents: Vec<String>,
    /// The document being read, where in it, and its candidates so far.
    doc: usize,
    offset: usize,
    current: candidates::DocumentCandidates,
    bytes_done: u64,
    bytes_total: u64,
    texts: Vec<String>,
    index: HashMap<String, usize>,
    ranked: Vec<Ranked>,
    /// (document, candidates kept) for each document that reached the cap.
    capped: Vec<(usize, usize)>,
}

impl Extraction {
    pub fn new(documents: Vec<String>, options: &KeyphraseOptions) -> Self {
        let bytes_total = documents.iter().map(|d| d.len() as u64).sum();
        Extraction {
            extractor: candidates::CandidateExtractor::new(&options.stop_words, options.ngram_range),
            max_candidates: options.max_candidates,
            documents,
            doc: 0,
            offset: 0,
            current: candidates::DocumentCandidates::new(options.max_candidates),
            bytes_done: 0,
            bytes_total,
            texts: Vec::new(),
            index: HashMap::new(),
            ranked: Vec::new(),
            capped: Vec::new(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.doc == self.documents.len()
    }

    /// Bytes of text read, of all.
    pub fn progress(&self) -> (u64, u64) {
        (self.bytes_done, self.bytes_total)
    }

    /// Documents that reached `max_candidates`, with how many candidates each kept; the caller reports them.
    pub fn take_capped(&mut self) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.capped)
    }

    /// Reads about `budget` bytes (at least one slice); returns whether the extraction is done.
    pub fn step(&mut self, budget: usize) -> bool {
        let mut spent = 0;
        while !self.is_done() && spent < budget {
            let text = &self.documents[self.doc];
            if self.offset < text.len() && !self.current.capped() {
                let end = candidates::slice_end(text, self.offset, budget - spent);
                self.current.feed(&self.extractor, &text[self.offset..end]);
                spent += end - self.offset;
                self.bytes_done += (end - self.offset) as u64;
                self.offset = end;
                continue;
            }
            // The document is read (or capped: the rest of it is skipped, and counted as read).
            self.bytes_done += (text.len() - self.offset) as u64;
            self.finish_document();
        }
        self.is_done()
    }

    fn finish_document(&mut self) {
        let doc = std::mem::replace(&mut self.current, candidates::DocumentCandidates::new(self.max_candidates));
        if doc.capped() {
            self.capped.push((self.doc, doc.len()));
        }
        let text = std::mem::take(&mut self.documents[self.doc]);
        let candidates = doc.finish();
        let at = (!candidates.is_empty()).then(|| {
            self.texts.push(text);
            self.texts.len() - 1
        });
        let mut positions = Vec::with_capacity(candidates.len());
        for c in candidates {
            let at = match self.index.get(&c) {
                Some(&at) => at,
                None => {
                    self.index.insert(c.clone(), self.texts.len());
                    self.texts.push(c);
                    self.texts.len() - 1
                }
            };
            positions.push(at);
        }
        self.ranked.push(Ranked { at, candidates: positions });
        self.doc += 1;
        self.offset = 0;
        if self.is_done() {
            self.index = HashMap::new(); // only needed to share candidates between documents
        }
    }

    /// What to embed, in order (the extraction must be done).
    pub fn texts(&self) -> &[String] {
        debug_assert!(self.is_done());
        &self.texts
    }

    /// Ranks every document's candidates, given the vectors of `texts()` in order.
    pub fn rank<V: AsRef<[f32]>>(&self, vectors: &[V], options: &KeyphraseOptions) -> Vec<Vec<Keyphrase>> {
        self.ranked
            .iter()
            .map(|r| match r.at {
                None => Vec::new(),
                Some(at) => {
                    let words: Vec<&str> = r.candidates.iter().map(|&i| self.texts[i].as_str()).collect();
                    let embeddings: Vec<&[f32]> = r.candidates.iter().map(|&i| vectors[i].as_ref()).collect();
                    ranking::rank(vectors[at].as_ref(), &words, &embeddings, options.top_n, options.ranking)
                }
            })
            .collect()
    }

    /// The whole extraction at once (tests, and callers with small inputs).
    pub fn run(documents: Vec<String>, options: &KeyphraseOptions) -> Self {
        let mut e = Extraction::new(documents, options);
        while !e.step(usize::MAX) {}
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_candidates_are_embedded_once_and_empty_documents_not_at_all() {
        let docs: Vec<String> = ["river bank", "the of and", "bank loans"].map(String::from).to_vec();
        let plan = Extraction::run(docs, &KeyphraseOptions { ngram_range: (1, 1), ..Default::default() });
        assert_eq!(plan.texts(), ["river bank", "bank", "river", "bank loans", "loans"]);
        // Vectors: document 1, bank, river, document 3, loans.
        let v = vec![vec![1.0, 0.0], vec![0.7, 0.7], vec![1.0, 0.1], vec![0.0, 1.0], vec![0.1, 1.0]];
        let ranked = plan.rank(&v, &KeyphraseOptions { top_n: 1, ..Default::default() });
        assert_eq!(ranked[0][0].text, "river");
        assert!(ranked[1].is_empty());
        assert_eq!(ranked[2][0].text, "loans");
    }

    #[test]
    fn stepping_in_small_slices_plans_what_one_pass_plans_and_caps_per_document() {
        let docs: Vec<String> = vec![
            "The bank of the river floods every spring. ".repeat(40),
            String::new(),
            "Loans from the bank of the town, and the river again.".into(),
        ];
        let options = KeyphraseOptions::default();
        let whole = Extraction::run(docs.clone(), &options);
        let mut sliced = Extraction::new(docs.clone(), &options);
        let mut steps = 0;
        while !sliced.step(7) {
            steps += 1;
            let (done, total) = sliced.progress();
            assert!(done <= total);
        }
        assert!(steps > 100);
        assert_eq!(sliced.progress().0, sliced.progress().1);
        assert_eq!(sliced.texts(), whole.texts());
        assert!(sliced.take_capped().is_empty());

        let mut capped = Extraction::new(docs, &KeyphraseOptions { max_candidates: 5, ..options.clone() });
        while !capped.step(16) {}
        assert_eq!(capped.take_capped(), [(0, 5), (2, 5)]);
        // The first five in reading order: bank; river, bank river; floods, river floods. Then sorted.
        let first: Vec<&str> = capped.texts()[1..6].iter().map(String::as_str).collect();
        assert_eq!(first, ["bank", "bank river", "floods", "river", "river floods"]);
    }

    #[test]
    fn options_are_checked() {
        let bad = |o: KeyphraseOptions| o.validate().unwrap_err().code;
        let d = KeyphraseOptions::default();
        assert!(d.validate().is_ok());
        assert_eq!(bad(KeyphraseOptions { ngram_range: (0, 2), ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { ngram_range: (3, 2), ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { top_n: 0, ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { max_candidates: 0, ..d.clone() }), crate::ErrorCode::InvalidInput);
        assert_eq!(bad(KeyphraseOptions { ranking: Ranking::Mmr { diversity: 1.5 }, ..d }), crate::ErrorCode::InvalidInput);
    }
}
