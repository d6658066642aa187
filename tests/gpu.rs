//! GPU checks, compiled only into a build with the `cuda` or `metal` feature, for a machine with that GPU:
//! `node scripts/cuda-toolchain.mjs cargo test --release --features cuda --test gpu` (the test binary also runs alone, without Node or a Rust
//! toolchain, next to a copy of `fixtures/`). On a CPU-only build this file is empty, so CPU runs count nothing.
#![cfg(any(feature = "cuda", feature = "metal"))]

mod common;

use common::*;
use embedding_service::{DeviceChoice, Dtype, EmbedOptions, Service, ServiceOptions};

fn gpu() -> DeviceChoice {
    if cfg!(feature = "cuda") {
        DeviceChoice::Cuda
    } else {
        DeviceChoice::Metal
    }
}

fn gpu_service(dtype: Option<Dtype>) -> Service {
    let mut options = ServiceOptions::new(minilm_dir().to_string_lossy());
    options.device = gpu();
    options.dtype = dtype;
    Service::new(options).unwrap()
}

/// f32 on the GPU matches sentence-transformers like the CPU does; the default (bf16 on CUDA, f16 on Metal)
/// stays within 0.999; status names the device and the format.
#[test]
fn minilm_on_the_gpu_in_f32_and_in_its_default_format() {
    let expected = read_json(reference("minilm").join("expected.json"));
    let want = vectors(&expected["embeddings"]);

    let svc = gpu_service(Some(Dtype::F32));
    let got = embed(&svc, &texts(), None);
    assert_parity("minilm on the GPU, f32", &got.vectors, &want);
    let status = svc.status();
    assert!(status.device.as_deref().is_some_and(|d| d != "cpu"), "{status:?}");
    assert_eq!(status.dtype, Some("f32"));
    svc.close_blocking();

    let svc = gpu_service(None);
    let got = embed(&svc, &texts(), None);
    let worst = got.vectors.iter().zip(&want).map(|(g, w)| cosine(g, w)).fold(f64::MAX, f64::min);
    eprintln!("minilm on the GPU, default {:?}: minimum cosine {worst:.6}", svc.status().dtype);
    assert!(worst >= 0.999, "minimum cosine {worst}");
    assert_ne!(svc.status().dtype, Some("f32"));
    svc.close_blocking();
}

/// Load and unload cycles on the GPU keep working; after each unload the next request reloads and matches.
#[test]
fn gpu_load_unload_cycles() {
    let svc = gpu_service(Some(Dtype::F32));
    for _ in 0..5 {
        svc.embed_blocking(vec!["hello".into()], EmbedOptions::default()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        svc.unload(Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap().unwrap();
        assert!(!svc.status().model_loaded);
    }
    svc.close_blocking();
}
