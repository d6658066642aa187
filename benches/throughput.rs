//! Embeds the benchmark corpus (target/bench-corpus.json, from `node bench/corpus.mjs`) with the Rust API and
//! prints the time: a harness for profilers (`perf record`, `valgrind --tool=callgrind`).
//! Usage: cargo bench --bench throughput -- [texts=500] [threads=2] [runs=3]; DTYPE=bf16 (or int8) for that
//! mode, MODEL=folder for another model than all-MiniLM-L6-v2, KERNELS=candle for candle's forward pass, and
//! OUT=file to write the last run's vectors (raw little-endian f32) for a comparison.

use std::time::Instant;

use embedding_service::{EmbedOptions, Service, ServiceOptions};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (n, threads, runs) = (args.first().copied().unwrap_or(500), args.get(1).copied().unwrap_or(2), args.get(2).copied().unwrap_or(3));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(root.join("target/bench-corpus.json")).expect("run node bench/corpus.mjs"))
            .unwrap();
    // QUERY="text" times that one text instead (latency of a short query).
    let texts: Vec<String> = match std::env::var("QUERY") {
        Ok(q) => vec![q; n.max(1)].into_iter().take(1).collect(),
        Err(_) => corpus.into_iter().take(n).collect(),
    };
    let model = std::env::var("MODEL").unwrap_or_else(|_| root.join("fixtures/models/all-MiniLM-L6-v2").to_string_lossy().into_owned());
    let mut options = ServiceOptions::new(model);
    options.threads = threads;
    if std::env::var("KERNELS").as_deref() == Ok("candle") {
        options.kernels = embedding_service::model::Kernels::Candle;
    }
    options.dtype = Some(embedding_service::model::Dtype::parse(&std::env::var("DTYPE").unwrap_or_else(|_| "f32".into())).unwrap());
    let svc = Service::new(options).unwrap();
    svc.embed_blocking(vec!["warm up".into()], EmbedOptions::default()).unwrap();
    for run in 0..runs {
        let t = Instant::now();
        let out = svc.embed_blocking(texts.clone(), EmbedOptions::default()).unwrap();
        let tokens: usize = out.token_counts.iter().sum();
        let s = t.elapsed().as_secs_f64();
        eprintln!("{} texts, {tokens} tokens in {:.3} ms: {:.0} tokens/s", texts.len(), s * 1000.0, tokens as f64 / s);
        if let (true, Ok(path)) = (run + 1 == runs, std::env::var("OUT")) {
            let bytes: Vec<u8> = out.vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(path, bytes).unwrap();
        }
    }
}
