//! A model folder as transformers.js downloads it (config.json, tokenizer.json, onnx/model_quantized.onnx,
//! no safetensors): its weights are read from the ONNX file (`model/onnx_weights.rs`), so a daemon that already
//! has that file needs no second download. Made by scripts/fixtures/make_tiny_xlmr_onnx.py with ONNX Runtime's
//! quantize_dynamic (uint8, per output channel, zero points).

mod common;

use common::*;
use embedding_service::model::Dtype;
use embedding_service::{EmbedOptions, ErrorCode, Output, Service, ServiceOptions};

fn onnx_service(dtype: Dtype) -> Service {
    let mut options = ServiceOptions::new(reference("tiny-xlmr-onnx").join("model").to_string_lossy());
    options.threads = 2;
    options.dtype = Some(dtype);
    Service::new(options).unwrap()
}

fn min_cosine(got: &[Vec<f32>], want: &[Vec<f32>]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).map(|(g, w)| cosine(g, w)).fold(1.0, f64::min)
}

#[test]
fn an_onnx_export_gives_onnx_runtimes_vectors_and_the_f32_models() {
    let expected = read_json(reference("tiny-xlmr-onnx").join("expected.json"));
    for dtype in [Dtype::Int8, Dtype::F32] {
        let svc = onnx_service(dtype);
        for prefix in ["", "query: ", "passage: "] {
            // The daemon's ONNX service prepends its catalog's prefix, if any, to each text; so does this.
            let prefixed: Vec<String> = texts().iter().map(|t| format!("{prefix}{t}")).collect();
            let options = EmbedOptions { output: Output { normalize: Some(true), ..Default::default() }, ..Default::default() };
            let got = svc.embed_blocking(prefixed, options).unwrap();
            let counts: Vec<usize> = serde_json::from_value(expected["token_counts_by_prefix"][prefix].clone()).unwrap();
            assert_eq!(got.token_counts, counts, "{dtype:?} {prefix:?}");
            let vectors: Vec<Vec<f32>> = got.vectors.iter().map(|v| v.to_vec()).collect();
            let to_ort = min_cosine(&vectors, &vectors_of(&expected["onnxruntime_by_prefix"][prefix]));
            let to_f32 = min_cosine(&vectors, &vectors_of(&expected["f32_by_prefix"][prefix]));
            eprintln!("{dtype:?} {prefix:?}: minimum cosine to ONNX Runtime {to_ort:.6}, to the f32 model {to_f32:.6}");
            assert!(to_ort >= 0.9999 && to_f32 >= 0.999, "{dtype:?} {prefix:?}: {to_ort} / {to_f32}");
        }
        assert_eq!(svc.status().dtype, Some(if dtype == Dtype::Int8 { "int8" } else { "f32" }));
        svc.close_blocking();
    }
}

fn vectors_of(v: &serde_json::Value) -> Vec<Vec<f32>> {
    vectors(v)
}

#[test]
fn onnx_weights_are_refused_off_the_cpu_kernels_and_when_unreadable() {
    // Candle's path (the GPUs' path, also runnable on the CPU) reads safetensors only.
    let mut options = ServiceOptions::new(reference("tiny-xlmr-onnx").join("model").to_string_lossy());
    options.kernels = embedding_service::model::Kernels::Candle;
    let svc = Service::new(options).unwrap();
    let err = svc.wait(|s, done| s.load(done)).err().unwrap();
    assert_eq!(err.code, ErrorCode::InvalidInput);
    assert!(err.message.contains("ONNX weights, which run on the CPU kernels only"), "{}", err.message);
    svc.close_blocking();

    // A truncated file is a model error naming it, and the service stays usable for the next load.
    let dir = std::env::temp_dir().join(format!("es-onnx-truncated-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("onnx")).unwrap();
    let src = reference("tiny-xlmr-onnx").join("model");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("onnx/model_quantized.onnx")).unwrap();
    std::fs::write(dir.join("onnx/model_quantized.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    let svc = Service::new(ServiceOptions::new(dir.to_string_lossy())).unwrap();
    let err = svc.wait(|s, done| s.load(done)).err().unwrap();
    assert_eq!(err.code, ErrorCode::ModelInvalid);
    assert!(err.message.contains("model_quantized.onnx"), "{}", err.message);
    svc.close_blocking();
    std::fs::remove_dir_all(dir).ok();
}
