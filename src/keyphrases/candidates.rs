//! Candidate phrases of a document, as KeyBERT takes them from scikit-learn's `CountVectorizer`: words are the
//! maximal runs of two or more word characters, lowercased; stop words are dropped *before* n-grams are formed
//! (so an n-gram can join words a stop word separated); the candidates are the distinct n-grams, sorted.
//! A document can be fed in slices that end at whitespace (`DocumentCandidates`), with a cap on how many
//! distinct candidates it keeps.

use std::collections::{BTreeSet, VecDeque};

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

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

/// Python's `\w` in a str pattern (`str.isalnum()` or `_`): General_Category L* (letters) or N* (numbers) and
/// the underscore. Not combining marks (Mn, Mc, Me): Devanagari vowel signs, Arabic harakat, Hebrew niqqud
/// and U+0301 end a word, as in scikit-learn (Rust's `is_alphanumeric` would keep the Alphabetic ones).
pub fn is_word_char(c: char) -> bool {
    c == '_' || matches!(c.general_category_group(), GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number)
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
        let mut doc = DocumentCandidates::new(usize::MAX);
        doc.feed(self, text);
        doc.finish()
    }
}

/// The candidates of one document, fed slice by slice. Each slice must end where the text has whitespace (or
/// at its end): no word spans two slices, and lowercasing a slice gives what lowercasing the whole text gives
/// there (the one context-dependent rule, the final sigma, never looks past whitespace).
pub struct DocumentCandidates {
    /// The last kept words (up to the longest n-gram less one): n-grams continue across slices.
    tail: VecDeque<String>,
    set: BTreeSet<String>,
    cap: usize,
    capped: bool,
}

impl DocumentCandidates {
    /// Keeps at most `cap` distinct candidates: the first ones met in reading order (by the word they end on).
    pub fn new(cap: usize) -> Self {
        DocumentCandidates { tail: VecDeque::new(), set: BTreeSet::new(), cap, capped: false }
    }

    pub fn feed(&mut self, extractor: &CandidateExtractor, slice: &str) {
        let (min, max) = extractor.ngram_range;
        for word in words(slice) {
            if self.capped {
                return;
            }
            if extractor.stop_words.contains(&word) {
                continue;
            }
            self.tail.push_back(word);
            if self.tail.len() > max {
                self.tail.pop_front();
            }
            let len = self.tail.len();
            for n in min..=max.min(len) {
                let gram = self.tail.range(len - n..).map(String::as_str).collect::<Vec<_>>().join(" ");
                if !self.set.contains(&gram) {
                    if self.set.len() == self.cap {
                        self.capped = true;
                        return;
                    }
                    self.set.insert(gram);
                }
            }
        }
    }

    /// True once the cap was reached: the rest of the document adds nothing.
    pub fn capped(&self) -> bool {
        self.capped
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The distinct candidates in code-point order.
    pub fn finish(self) -> Vec<String> {
        self.set.into_iter().collect()
    }
}

/// The end of the next slice of `text` from `start`: about `budget` bytes on, at whitespace (just after it),
/// else at the next whitespace after that, else the end of the text.
pub fn slice_end(text: &str, start: usize, budget: usize) -> usize {
    let mut limit = (start + budget.max(1)).min(text.len());
    if limit == text.len() {
        return limit;
    }
    while !text.is_char_boundary(limit) {
        limit -= 1;
    }
    if let Some((i, c)) = text[start..limit].char_indices().rev().find(|(_, c)| c.is_whitespace()) {
        return start + i + c.len_utf8();
    }
    match text[limit..].char_indices().find(|(_, c)| c.is_whitespace()) {
        Some((i, c)) => limit + i + c.len_utf8(),
        None => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_the_default_token_pattern() {
        assert_eq!(words("A cat's 2 big_dogs, naïve—Ünïcode x1!"), ["cat", "big_dogs", "naïve", "ünïcode", "x1"]);
        // Combining marks end words, as Python's \w excludes them: "cafe" + U+0301 + "s", Arabic shadda.
        assert_eq!(words("cafe\u{301}s يغيّر"), ["cafe", "يغي"]);
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
    fn slices_at_whitespace_give_the_candidates_of_the_whole_text() {
        let text = "Ο ΔΡΟΜΟΣ ΤΗΣ ΖΩΗΣ  bank  of the river\nfloods every spring; the river bank lends money ΟΔΟΣ";
        let ex = CandidateExtractor::new(&StopWords::English, (1, 3));
        let whole = ex.candidates(text);
        for budget in 1..text.len() {
            let mut doc = DocumentCandidates::new(usize::MAX);
            let mut at = 0;
            while at < text.len() {
                let end = slice_end(text, at, budget);
                assert!(end > at);
                doc.feed(&ex, &text[at..end]);
                at = end;
            }
            assert_eq!(doc.finish(), whole, "budget {budget}");
        }
        // Final sigmas, as Python's str.lower() gives them, at a slice's end too.
        assert!(whole.contains(&"δρομος της ζωης".to_string()) && whole.contains(&"οδος".to_string()), "{whole:?}");
    }

    #[test]
    fn a_cap_keeps_the_first_candidates_in_reading_order() {
        let ex = CandidateExtractor::new(&StopWords::None, (1, 2));
        let mut doc = DocumentCandidates::new(3);
        doc.feed(&ex, "alpha beta gamma delta");
        assert!(doc.capped());
        // alpha; beta, "alpha beta"; then the cap.
        assert_eq!(doc.finish(), ["alpha", "alpha beta", "beta"]);
    }

    #[test]
    fn word_characters_are_pythons_on_every_assigned_code_point() {
        // fixtures/keybert/scripts/python-word-chars.json: where Python's re matches \w, and what its Unicode
        // database leaves unassigned (newer code points may be letters to us and not yet to it).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keybert/scripts/python-word-chars.json");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ranges = |key: &str| -> Vec<(u32, u32)> {
            json[key].as_array().unwrap().iter().map(|r| (r[0].as_u64().unwrap() as u32, r[1].as_u64().unwrap() as u32)).collect()
        };
        let inside = |set: &[(u32, u32)], cp: u32| set.binary_search_by(|&(a, b)| if cp < a { std::cmp::Ordering::Greater } else if cp > b { std::cmp::Ordering::Less } else { std::cmp::Ordering::Equal }).is_ok();
        let (word, unassigned) = (ranges("word"), ranges("unassigned"));
        let mut wrong = Vec::new();
        let mut checked = 0;
        for cp in 0..=0x10FFFFu32 {
            let Some(c) = char::from_u32(cp) else { continue };
            if inside(&unassigned, cp) {
                continue;
            }
            checked += 1;
            if is_word_char(c) != inside(&word, cp) {
                wrong.push(format!("U+{cp:04X}"));
            }
        }
        assert!(checked > 280_000, "{checked}");
        assert!(wrong.is_empty(), "{} code points differ from Python {}: {:?}", wrong.len(), json["unidata_version"], &wrong[..wrong.len().min(40)]);
    }

    #[test]
    fn candidates_are_scikit_learns_in_every_script() {
        // CountVectorizer(ngram_range=(1, 3), stop_words='english') on each reference text (made with
        // scripts/fixtures/make_keybert_reference.py): the English chunks and 18 texts in 20 scripts.
        let ex = CandidateExtractor::new(&StopWords::English, (1, 3));
        for file in ["fixtures/keybert/reference.json", "fixtures/keybert/scripts/reference.json"] {
            let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
            let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            for t in json["texts"].as_array().unwrap() {
                let want: Vec<&str> = t["candidates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
                assert_eq!(ex.candidates(t["text"].as_str().unwrap()), want, "{file}: {}", t["id"]);
            }
        }
    }

    #[test]
    fn the_english_list_is_scikit_learns() {
        let set = StopWords::English.set();
        assert_eq!(set.len(), 318);
        assert!(set.contains("the") && set.contains("whereupon") && !set.contains("river"));
    }
}
