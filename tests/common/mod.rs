//! Helpers shared by the integration tests: fixture paths, golden data, cosine similarity.
#![allow(dead_code)]

use std::path::PathBuf;

use embedding_service::{EmbedOptions, PromptChoice, Service, ServiceOptions};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The real all-MiniLM-L6-v2 folder laid out by `npm run fixtures`. A missing fixture fails the test loudly:
/// it is never skipped.
pub fn minilm_dir() -> PathBuf {
    let dir = fixtures().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `npm run fixtures` (node scripts/fetch-test-model.mjs) first",
        dir.display()
    );
    dir
}

pub fn hub_cache_dir() -> PathBuf {
    minilm_dir();
    fixtures().join("models/hub")
}

pub fn reference(name: &str) -> PathBuf {
    fixtures().join("reference").join(name)
}

pub fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

pub fn texts() -> Vec<String> {
    serde_json::from_value(read_json(reference("minilm").join("texts.json"))).unwrap()
}

pub fn vectors(v: &Value) -> Vec<Vec<f32>> {
    serde_json::from_value(v.clone()).unwrap()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "dimension mismatch");
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Asserts every vector matches its golden vector to cosine >= 0.99999; returns the minimum cosine.
/// `got`: a result's `vectors` (`&Vectors`) or any list of vectors.
pub fn assert_parity<G: AsRef<[f32]>>(label: &str, got: impl IntoIterator<Item = G>, want: &[Vec<f32>]) -> f64 {
    let got: Vec<G> = got.into_iter().collect();
    assert_eq!(got.len(), want.len(), "{label}: count");
    let mut min = f64::MAX;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = cosine(g.as_ref(), w);
        assert!(c >= 0.99999, "{label}: text {i} has cosine {c} to the golden vector");
        min = min.min(c);
    }
    eprintln!("{label}: minimum cosine {min:.9} (1 - min = {:.2e}) over {} texts", 1.0 - min, got.len());
    min
}

pub fn service(model: PathBuf) -> Service {
    let mut options = ServiceOptions::new(model.to_string_lossy());
    options.threads = 2;
    Service::new(options).unwrap()
}

pub fn embed(svc: &Service, texts: &[String], prompt: Option<&str>) -> embedding_service::Embeddings {
    svc.embed_blocking(texts.to_vec(), EmbedOptions { prompt: prompt.map_or(PromptChoice::ModelDefault, |p| PromptChoice::Named(p.to_string())), ..Default::default() }).unwrap()
}
