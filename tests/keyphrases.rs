//! Key phrases against Python KeyBERT 0.9 with the real all-MiniLM-L6-v2, on real documents
//! (fixtures/keybert/reference.json, made by scripts/fixtures/make_keybert_reference.py with the daemon's
//! arguments). Candidates must be identical; rankings agree as far as float precision allows.

mod common;

use common::*;
use embedding_service::keyphrases::candidates::CandidateExtractor;
use embedding_service::{ErrorCode, Keyphrase, KeyphraseOptions, Ranking, Service, StopWords};
use serde_json::Value;

fn reference_json() -> Value {
    read_json(fixtures().join("keybert").join("reference.json"))
}

fn phrases(v: &Value) -> Vec<(String, f64)> {
    v.as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_f64().unwrap())).collect()
}

fn extract(svc: &Service, texts: Vec<String>, options: KeyphraseOptions) -> embedding_service::Result<Vec<Vec<Keyphrase>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    svc.extract_keyphrases(texts, options, Box::new(move |r| drop(tx.send(r))));
    rx.recv().unwrap()
}

#[test]
fn candidates_are_scikit_learns_for_every_document() {
    let reference = reference_json();
    let english: Vec<&str> = reference["stop_words_english"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    let extractor = CandidateExtractor::new(&StopWords::Custom(english.iter().map(|w| w.to_string()).collect()), (1, 3));
    let builtin = CandidateExtractor::new(&StopWords::English, (1, 3));
    for doc in reference["texts"].as_array().unwrap() {
        let text = doc["text"].as_str().unwrap();
        let want: Vec<String> = serde_json::from_value(doc["candidates"].clone()).unwrap();
        assert_eq!(extractor.candidates(text), want, "candidates of {}", doc["id"]);
        assert_eq!(builtin.candidates(text), want, "built-in stop words, {}", doc["id"]);
    }
}

/// Top-5 overlap, exact top-10 order and score differences, against one of the reference rankings.
struct Agreement {
    docs: usize,
    top5_shared: usize,
    top5_total: usize,
    same_order: usize,
    max_score_diff: f64,
}

fn agreement(got: &[Vec<Keyphrase>], want: &[Vec<(String, f64)>]) -> Agreement {
    let mut a = Agreement { docs: 0, top5_shared: 0, top5_total: 0, same_order: 0, max_score_diff: 0.0 };
    for (g, w) in got.iter().zip(want) {
        a.docs += 1;
        let g5: Vec<&str> = g.iter().take(5).map(|k| k.text.as_str()).collect();
        let w5: Vec<&str> = w.iter().take(5).map(|(t, _)| t.as_str()).collect();
        a.top5_total += w5.len();
        a.top5_shared += w5.iter().filter(|t| g5.contains(t)).count();
        let gt: Vec<&str> = g.iter().map(|k| k.text.as_str()).collect();
        let wt: Vec<&str> = w.iter().map(|(t, _)| t.as_str()).collect();
        if gt == wt {
            a.same_order += 1;
        }
        for k in g {
            if let Some((_, s)) = w.iter().find(|(t, _)| *t == k.text) {
                a.max_score_diff = a.max_score_diff.max((k.score - s).abs());
            }
        }
    }
    a
}

#[test]
fn rankings_agree_with_python_keybert() {
    let reference = reference_json();
    let docs = reference["texts"].as_array().unwrap();
    let texts: Vec<String> = docs.iter().map(|d| d["text"].as_str().unwrap().to_owned()).collect();
    let svc = service(minilm_dir());
    for (label, key, ranking) in
        [("MMR 0.5", "mmr", Ranking::Mmr { diversity: 0.5 }), ("cosine", "cosine", Ranking::Cosine)]
    {
        let got = extract(&svc, texts.clone(), KeyphraseOptions { ranking, ..Default::default() }).unwrap();
        let want: Vec<Vec<(String, f64)>> = docs.iter().map(|d| phrases(&d[key])).collect();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.len(), w.len(), "{label}: phrase count");
        }
        let a = agreement(&got, &want);
        println!(
            "{label}: {} documents, top-5 overlap {}/{} ({:.1}%), identical top-10 lists {}/{}, max |score diff| {:.1e}",
            a.docs,
            a.top5_shared,
            a.top5_total,
            100.0 * a.top5_shared as f64 / a.top5_total.max(1) as f64,
            a.same_order,
            a.docs,
            a.max_score_diff
        );
        // What the README claims: the whole top-10 list, in order, on every text, and every score equal to
        // KeyBERT's rounded to its 4 decimals.
        assert_eq!(a.top5_shared, a.top5_total, "{label}: top-5 overlap");
        assert_eq!(a.same_order, a.docs, "{label}: identical top-10 lists");
        assert!(a.max_score_diff <= 0.5e-4 + 1e-6, "{label}: scores differ by {}", a.max_score_diff);
    }
    svc.close_blocking();
}

#[test]
fn per_candidate_similarities_match_to_float_precision() {
    let reference = reference_json();
    let svc = service(minilm_dir());
    let mut checked = 0;
    for doc in reference["texts"].as_array().unwrap().iter().filter(|d| d["similarities"].is_array()) {
        let text = doc["text"].as_str().unwrap().to_owned();
        let candidates: Vec<String> = serde_json::from_value(doc["candidates"].clone()).unwrap();
        let want: Vec<f64> = serde_json::from_value(doc["similarities"].clone()).unwrap();
        // Every candidate, ranked by similarity alone: the scores are then the similarities, rounded.
        let got = extract(
            &svc,
            vec![text],
            KeyphraseOptions { ranking: Ranking::Cosine, top_n: candidates.len(), ..Default::default() },
        )
        .unwrap()
        .remove(0);
        assert_eq!(got.len(), candidates.len());
        for k in &got {
            let i = candidates.iter().position(|c| *c == k.text).unwrap();
            assert!((k.score - want[i]).abs() <= 0.5e-4 + 1e-6, "{}: {} vs {}", k.text, k.score, want[i]);
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} similarities checked");
    svc.close_blocking();
}

#[test]
fn documents_without_candidates_get_none_and_bad_options_are_refused() {
    let svc = service(minilm_dir());
    let got = extract(&svc, vec!["".into(), "and the of to".into(), "Bicycle chains rust".into()], KeyphraseOptions::default()).unwrap();
    assert!(got[0].is_empty() && got[1].is_empty());
    assert_eq!(got[2].len(), 6); // 3 words: 3 unigrams, 2 bigrams, 1 trigram
    let bad = extract(&svc, vec!["x".into()], KeyphraseOptions { top_n: 0, ..Default::default() }).unwrap_err();
    assert_eq!(bad.code, ErrorCode::InvalidInput);
    svc.close_blocking();
}
