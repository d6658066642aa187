//! Candidate phrases of a document, as KeyBERT takes them from scikit-learn's `CountVectorizer`: words are the
//! maximal runs of two or more word characters, lowercased; stop words are dropped *before* n-grams are formed
//! (so an n-gram can join words a stop word separated); the candidates are the distinct n-grams, sorted.

use std::collections::BTreeSet;

/// scikit-learn's English stop-word list (`ENGLISH_STOP_WORDS`), the list KeyBERT's `stop_words='english'` uses.
const ENGLISH: &str = include_str!("stop_words_en.txt");

/// Which words never appear in a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StopWords {
    /// scikit-learn's English list.
    #[default]
    English,
    /// Keep every word.
    None,
    /// The caller's own list (compared after lowercasing).
    Custom(Vec<String>),
}

impl StopWords {
    fn set(&self) -> BTreeSet<String> {
        match self {
            StopWords::English => ENGLISH.split_whitespace().map(str::to_owned).collect(),
            StopWords::None => BTreeSet::new(),
            StopWords::Custom(words) => words.iter().map(|w| w.to_lowercase()).collect(),
        }
    }
}

/// Python's `\w` in a str pattern: letters, digits and numerals of any script, and the underscore.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The text's words: scikit-learn's default token pattern `(?u)\b\w\w+\b` after lowercasing.
pub fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut start = None;
    let mut chars = 0usize;
    for (i, c) in lower.char_indices().chain(std::iter::once((lower.len(), ' '))) {
        if i < lower.len() && is_word_char(c) {
            if start.is_none() {
                start = Some(i);
                chars = 0;
            }
            chars += 1;
        } else if let Some(s) = start.take() {
            if chars >= 2 {
                out.push(lower[s..i].to_owned());
            }
        }
    }
    out
}

/// Extracts candidates for many documents with one stop-word set.
pub struct CandidateExtractor {
    stop_words: BTreeSet<String>,
    ngram_range: (usize, usize),
}

impl CandidateExtractor {
    /// `ngram_range` is inclusive, as in KeyBERT; the caller has validated `1 <= min <= max`.
    pub fn new(stop_words: &StopWords, ngram_range: (usize, usize)) -> Self {
        CandidateExtractor { stop_words: stop_words.set(), ngram_range }
    }

    /// The document's distinct n-grams in code-point order (scikit-learn's `get_feature_names_out` order).
    pub fn candidates(&self, text: &str) -> Vec<String> {
        let kept: Vec<String> = words(text).into_iter().filter(|w| !self.stop_words.contains(w)).collect();
        let (min, max) = self.ngram_range;
        let mut set = BTreeSet::new();
        for n in min..=max.min(kept.len()) {
            for window in kept.windows(n) {
                set.insert(window.join(" "));
            }
        }
        set.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_default_token_pattern() {
        assert_eq!(words("A cat's 2 big_dogs, naïve—Ünïcode x1!"), ["cat", "big_dogs", "naïve", "ünïcode", "x1"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("a b c"), Vec::<String>::new());
    }

    #[test]
    fn stop_words_are_removed_before_ngrams_are_formed() {
        let ex = CandidateExtractor::new(&StopWords::English, (1, 2));
        // "of the" goes, so "bank river" becomes a bigram although the text never has them side by side.
        assert_eq!(ex.candidates("The bank of the river"), ["bank", "bank river", "river"]);
        let none = CandidateExtractor::new(&StopWords::None, (2, 2));
        assert_eq!(none.candidates("the bank of"), ["bank of", "the bank"]);
    }

    #[test]
    fn candidates_are_distinct_and_sorted_by_code_point() {
        let ex = CandidateExtractor::new(&StopWords::Custom(vec!["IS".into()]), (1, 1));
        assert_eq!(ex.candidates("Zebra is apple, zebra is Éclair"), ["apple", "zebra", "éclair"]);
    }

    #[test]
    fn the_english_list_is_scikit_learns() {
        let set = StopWords::English.set();
        assert_eq!(set.len(), 318);
        assert!(set.contains("the") && set.contains("whereupon") && !set.contains("river"));
    }
}
