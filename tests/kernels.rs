//! The fast CPU encoders (model/cpu_bert.rs, cpu_modernbert.rs, cpu_qwen3.rs, cpu_gemma3.rs) against candle's
//! generic path (model/bert.rs, modernbert.rs, qwen3.rs, gemma3.rs), text by text, on every fixture that candle can
//! load (all but the ONNX one), with batches that mix lengths.

mod common;

use candle_core::Device;
use common::*;
use embedding_service::model::{Dtype, Embedder, Kernels};

fn compare(dir: std::path::PathBuf) {
    let fast = Embedder::load_with(&dir, &Device::Cpu, Kernels::Fast, Dtype::F32, 2).unwrap();
    let reference = Embedder::load_with(&dir, &Device::Cpu, Kernels::Candle, Dtype::F32, 2).unwrap();
    let tokens = fast.tokenize(&texts(), None).unwrap();
    let batch: Vec<_> = tokens.iter().collect();
    let a = fast.embed_tokens(&batch).unwrap();
    let b = reference.embed_tokens(&batch).unwrap();
    let min = assert_parity(&format!("fast vs candle, {}", dir.display()), &a, &b);
    // The README's claim: both paths compute the same f32 model, differing only in summation order.
    assert!(1.0 - min < 1e-10, "fast vs candle, {}: 1 - min cosine {:.2e}", dir.display(), 1.0 - min);
}

#[test]
fn the_fast_cpu_path_matches_candles_on_every_family() {
    compare(minilm_dir());
    for fixture in [
        "tiny-bert-cls",
        "tiny-bert-mean-e5",
        "tiny-bert-dense",
        "tiny-xlmr-cls",
        "tiny-xlmr-mean-prompts",
        "tiny-modernbert-mean",
        "tiny-qwen3-last",
        "tiny-gemma3-mean",
    ] {
        compare(reference(fixture).join("model"));
    }
}
