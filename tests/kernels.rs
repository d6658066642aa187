//! The fast CPU encoders (model/cpu_bert.rs, cpu_modernbert.rs, cpu_qwen3.rs, cpu_gemma3.rs) against candle's
//! generic path (model/bert.rs, modernbert.rs, qwen3.rs, gemma3.rs), text by text, on every fixture family, with batches that mix lengths.

mod common;

use candle_core::Device;
use common::*;
use embedding_service::model::{Dtype, Embedder, Kernels};

fn compare(dir: std::path::PathBuf) -> f64 {
    let fast = Embedder::load_with(&dir, &Device::Cpu, Kernels::Fast, Dtype::F32, 2).unwrap();
    let reference = Embedder::load_with(&dir, &Device::Cpu, Kernels::Candle, Dtype::F32, 2).unwrap();
    let tokens = fast.tokenize(&texts(), None).unwrap();
    let batch: Vec<_> = tokens.iter().collect();
    let a = fast.embed_tokens(&batch).unwrap();
    let b = reference.embed_tokens(&batch).unwrap();
    assert_parity(&format!("fast vs candle, {}", dir.display()), &a, &b)
}

#[test]
fn the_fast_cpu_path_matches_candles_on_every_family() {
    compare(minilm_dir());
    compare(reference("tiny-bert-cls").join("model"));
    compare(reference("tiny-xlmr-cls").join("model"));
    compare(reference("tiny-xlmr-mean-prompts").join("model"));
    compare(reference("tiny-modernbert-mean").join("model"));
    compare(reference("tiny-qwen3-last").join("model"));
    compare(reference("tiny-gemma3-mean").join("model"));
}
