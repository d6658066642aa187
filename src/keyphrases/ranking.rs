//! Ranking candidates against their document, as KeyBERT does: by cosine similarity, or by Maximal Marginal
//! Relevance (MMR), which trades that similarity against similarity to the phrases already chosen.

/// A chosen phrase and its cosine similarity to the document, rounded to 4 decimals as KeyBERT reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyphrase {
    pub text: String,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ranking {
    /// The `top_n` most similar to the document.
    Cosine,
    /// Greedy MMR with `diversity` in [0, 1]: 0 is plain similarity, 1 only avoids repeating chosen phrases.
    Mmr { diversity: f64 },
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

fn cosine(a: &[f32], na: f64, b: &[f32], nb: f64) -> f64 {
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() / (na * nb)
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Index of the first maximum (numpy's `argmax`).
fn argmax(values: impl Iterator<Item = f64>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, v) in values.enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Picks up to `top_n` of `candidates` (with their embeddings, in the same order) for the document embedding
/// `doc`. The result is sorted by score, highest first; equal scores keep the order they were chosen in.
pub fn rank<S: AsRef<str>>(doc: &[f32], candidates: &[S], embeddings: &[&[f32]], top_n: usize, ranking: Ranking) -> Vec<Keyphrase> {
    debug_assert_eq!(candidates.len(), embeddings.len());
    if candidates.is_empty() || top_n == 0 {
        return Vec::new();
    }
    let norms: Vec<f64> = embeddings.iter().map(|e| norm(e)).collect();
    let doc_norm = norm(doc);
    let to_doc: Vec<f64> = embeddings.iter().zip(&norms).map(|(e, &n)| cosine(e, n, doc, doc_norm)).collect();
    let chosen: Vec<usize> = match ranking {
        Ranking::Cosine => {
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            // Stable, so equal similarities keep candidate order.
            order.sort_by(|&a, &b| to_doc[b].total_cmp(&to_doc[a]));
            order.truncate(top_n);
            order
        }
        Ranking::Mmr { diversity } => {
            let first = argmax(to_doc.iter().copied()).expect("candidates is not empty");
            let mut chosen = vec![first];
            let mut remaining: Vec<usize> = (0..candidates.len()).filter(|&i| i != first).collect();
            // The highest similarity of each remaining candidate to any chosen one, updated as phrases are chosen.
            let mut nearest: Vec<f64> = remaining
                .iter()
                .map(|&i| cosine(embeddings[i], norms[i], embeddings[first], norms[first]))
                .collect();
            while chosen.len() < top_n && !remaining.is_empty() {
                let scores = remaining.iter().zip(&nearest).map(|(&i, &near)| (1.0 - diversity) * to_doc[i] - diversity * near);
                let pick = argmax(scores).expect("remaining is not empty");
                let picked = remaining.remove(pick);
                nearest.remove(pick);
                for (near, &i) in nearest.iter_mut().zip(&remaining) {
                    *near = near.max(cosine(embeddings[i], norms[i], embeddings[picked], norms[picked]));
                }
                chosen.push(picked);
            }
            chosen
        }
    };
    let mut out: Vec<Keyphrase> =
        chosen.into_iter().map(|i| Keyphrase { text: candidates[i].as_ref().to_owned(), score: round4(to_doc[i]) }).collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: &[Keyphrase]) -> Vec<&str> {
        k.iter().map(|k| k.text.as_str()).collect()
    }

    #[test]
    fn cosine_takes_the_most_similar() {
        let doc = [1.0, 0.0];
        let c: Vec<String> = ["far", "near", "mid"].map(String::from).to_vec();
        let e: [&[f32]; 3] = [&[0.0, 1.0], &[1.0, 0.1], &[1.0, 1.0]];
        let got = rank(&doc, &c, &e, 2, Ranking::Cosine);
        assert_eq!(names(&got), ["near", "mid"]);
        assert_eq!(got[0].score, 0.995);
    }

    #[test]
    fn mmr_skips_a_near_duplicate_of_a_chosen_phrase() {
        let doc = [1.0, 1.0, 0.0];
        let c: Vec<String> = ["a", "a2", "b"].map(String::from).to_vec();
        // "a2" is a little more similar to the document than "b", but nearly the same as "a".
        let e: [&[f32]; 3] = [&[1.0, 0.9, 0.0], &[1.0, 0.85, 0.05], &[0.3, 1.0, 0.3]];
        assert_eq!(names(&rank(&doc, &c, &e, 2, Ranking::Mmr { diversity: 0.0 })), ["a", "a2"]);
        assert_eq!(names(&rank(&doc, &c, &e, 2, Ranking::Mmr { diversity: 0.7 })), ["a", "b"]);
    }

    #[test]
    fn top_n_beyond_the_candidates_returns_them_all() {
        let c: Vec<String> = vec!["x".into()];
        let e: [&[f32]; 1] = [&[0.0, 0.0]];
        let got = rank(&[1.0, 0.0], &c, &e, 5, Ranking::Mmr { diversity: 0.5 });
        assert_eq!(got, [Keyphrase { text: "x".into(), score: 0.0 }]);
        assert!(rank::<&str>(&[1.0], &[], &[], 5, Ranking::Cosine).is_empty());
    }
}
