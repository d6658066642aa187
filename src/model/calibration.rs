//! What `dtype: 'int8'` calibrates with at load, and how it picks the inputs it keeps in f32.
//!
//! A few of a transformer's hidden channels run far larger than the rest, for every text (all-MiniLM-L6-v2:
//! channel 99 of the residual stream reaches about 10 where the typical channel stays under 2, and one neuron
//! of each feed-forward block reaches 15 to 25 where the typical stays under 1). Quantized with one scale per
//! token, such a channel sets the step for all the others. Measured on the 32 reference texts, keeping the
//! single largest channel of each token out of the quantization of the Q/K/V product lifted the minimum cosine
//! to sentence-transformers from 0.9916 to 0.9998 (that product alone quantized). Since the channels are
//! properties of the model, not of the text, a short calibration at load finds them: these texts run through
//! the int8 model, and each product's input channels whose largest magnitude stands out from the rest are
//! multiplied in f32 beside the int8 product.

/// Calibration texts: prose, a question, code, numbers and punctuation, and a few other scripts, so that
/// special tokens and common subwords of every kind pass through the model.
pub const TEXTS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog, and the dog does not seem to mind at all.",
    "How do I configure the indexing daemon to skip files larger than ten megabytes?",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); }",
    "Revenue grew 12.5% year over year to $4.2 billion; operating margin was 31% (Q3 2024).",
    "Der schnelle braune Fuchs springt über den faulen Hund. Где находится ближайшая станция метро?",
    "机器学习是人工智能的一个分支。 東京は日本の首都です。 الذكاء الاصطناعي يغير العالم.",
    "README.md: Install with `npm install`, then run `npm test` -- see CONTRIBUTING for details!",
    "query: what is the capital of France?",
    "passage: Paris is the capital and most populous city of France, on the river Seine.",
    "A",
];

/// An input whose largest calibrated magnitude is more than this many times the median input's is an
/// outlier. Measured on all-MiniLM-L6-v2's 32 reference texts (minimum / mean cosine to sentence-transformers,
/// at most 8 outliers per product): ratio 10, 0.9864 / 0.9967; 6, 0.9946 / 0.9986; 4, 0.9964 / 0.9991;
/// 3, 0.9973 / 0.9993 (no input moved: 0.9857 / 0.9961).
const RATIO: f32 = 3.0;
/// At most this many outlier inputs per product (each one a multiply-add per output in the tile's epilogue).
/// At ratio 3: 2, 0.9967; 4, 0.9968; 8, 0.9973; 16, 0.9971 minimum cosine; 4 and 8 within noise on speed.
const MAX_OUTLIERS: usize = 8;

/// The outlier inputs among `ranges` (each input channel's largest magnitude in calibration), largest first.
pub fn outliers(ranges: &[f32]) -> Vec<usize> {
    let mut sorted = ranges.to_vec();
    sorted.sort_by(f32::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    if median <= 0.0 {
        return Vec::new();
    }
    let mut found: Vec<usize> = (0..ranges.len()).filter(|&i| ranges[i] > RATIO * median).collect();
    found.sort_by(|&a, &b| ranges[b].total_cmp(&ranges[a]));
    found.truncate(MAX_OUTLIERS);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outliers_stand_out_from_the_median_and_are_capped() {
        let mut ranges = vec![1.0f32; 100];
        ranges[7] = 10.0;
        ranges[50] = 5.0;
        ranges[60] = 2.9;
        assert_eq!(outliers(&ranges), vec![7, 50]);
        for i in 0..20 {
            ranges[i] = 100.0 + i as f32;
        }
        let found = outliers(&ranges);
        assert_eq!(found.len(), MAX_OUTLIERS);
        assert_eq!(found[0], 19);
        assert!(outliers(&[0.0; 8]).is_empty());
        assert!(outliers(&[]).is_empty());
    }
}
