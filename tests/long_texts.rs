//! The long-text shortcut (tokenising growing prefixes of a text far longer than max_seq_length) gives the same
//! tokens as tokenising the whole text, for both tokenizer families, on prose, code, CJK, no-space runs and
//! whitespace-heavy text.

mod common;

use candle_core::Device;
use common::*;
use embedding_service::model::Embedder;

fn long_inputs() -> Vec<String> {
    let mut out: Vec<String> = texts().iter().map(|t| t.repeat(4000 / t.len().max(1) + 50)).collect();
    out.push("The quick brown fox jumps over the lazy dog. ".repeat(5000));
    out.push("日本語のテキストと中文文本".repeat(3000));
    out.push("a".repeat(200_000));
    out.push(format!("{}word {}", " ".repeat(100_000), "x y ".repeat(20_000)));
    out.push("fn main() { let x = vec![1, 2, 3]; println!(\"{:?}\", x); }\n".repeat(2000));
    out.push("ünïcödé façade naïve Ωmega ".repeat(4000));
    out
}

#[test]
fn the_long_text_shortcut_changes_no_token() {
    for dir in [minilm_dir(), reference("tiny-xlmr-mean-prompts").join("model"), reference("tiny-bert-cls").join("model")] {
        let model = Embedder::load(&dir, &Device::Cpu).unwrap();
        let max = model.max_seq_length();
        let mut used = 0;
        for text in long_inputs() {
            let fast = model.tokenize(std::slice::from_ref(&text), None).unwrap().remove(0).ids;
            let shortcut = model.truncation_prefix(&text).unwrap().len() < text.len();
            let whole = model.encode_whole(&text).unwrap();
            assert_eq!(fast, whole, "{} on a {}-byte text starting {:?}", dir.display(), text.len(), text.chars().take(20).collect::<String>());
            assert!(fast.len() <= max);
            used += shortcut as usize;
        }
        // Most of these texts are long enough and break at whitespace: the shortcut must actually run.
        assert!(used >= long_inputs().len() / 2, "{}: the shortcut ran on {used} texts", dir.display());
    }
}

#[test]
fn a_long_english_text_is_tokenised_from_a_short_prefix() {
    let model = Embedder::load(&minilm_dir(), &Device::Cpu).unwrap();
    let huge = "The quick brown fox jumps over the lazy dog. ".repeat(230_000);
    let prefix = model.truncation_prefix(&huge).unwrap();
    assert!(prefix.len() < 20_000, "prefix of {} bytes", prefix.len());
    assert_eq!(model.tokenize(std::slice::from_ref(&huge), None).unwrap()[0].ids, model.encode_whole(&huge).unwrap());
}
