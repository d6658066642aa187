//! Pooling token embeddings into one sentence embedding, and normalising it, exactly as sentence-transformers'
//! Pooling and Normalize modules do. Works on one sequence's rows at a time, so padding never enters a result.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    Cls,
    Max,
    Mean,
    MeanSqrtLen,
    WeightedMean,
    LastToken,
}

impl PoolingMode {
    /// The names sentence-transformers uses for `pooling_mode`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "cls" => PoolingMode::Cls,
            "max" => PoolingMode::Max,
            "mean" => PoolingMode::Mean,
            "mean_sqrt_len_tokens" => PoolingMode::MeanSqrtLen,
            "weightedmean" => PoolingMode::WeightedMean,
            "lasttoken" => PoolingMode::LastToken,
            _ => return None,
        })
    }
}

/// Pools one sequence. `tokens` holds `len * hidden` values (row-major, unpadded); `skip` leading tokens (a
/// prompt excluded from pooling) do not count for the averaging modes. Modes are concatenated in order.
pub fn pool(modes: &[PoolingMode], tokens: &[f32], hidden: usize, skip: usize) -> Vec<f32> {
    let len = tokens.len() / hidden;
    debug_assert!(len > 0 && tokens.len() == len * hidden);
    let row = |i: usize| &tokens[i * hidden..(i + 1) * hidden];
    let first = skip.min(len - 1);
    let mut out = Vec::with_capacity(hidden * modes.len());
    for mode in modes {
        match mode {
            PoolingMode::Cls => out.extend_from_slice(row(0)),
            PoolingMode::LastToken => out.extend_from_slice(row(len - 1)),
            PoolingMode::Max => {
                let mut acc = vec![f32::NEG_INFINITY; hidden];
                for i in first..len {
                    for (a, &x) in acc.iter_mut().zip(row(i)) {
                        *a = a.max(x);
                    }
                }
                out.extend(acc);
            }
            PoolingMode::Mean | PoolingMode::MeanSqrtLen | PoolingMode::WeightedMean => {
                // Accumulate in f64: long sequences would otherwise lose the last bits that parity needs.
                let mut acc = vec![0f64; hidden];
                let mut weight_sum = 0f64;
                for i in first..len {
                    let w = if *mode == PoolingMode::WeightedMean { (i + 1) as f64 } else { 1.0 };
                    weight_sum += w;
                    for (a, &x) in acc.iter_mut().zip(row(i)) {
                        *a += w * x as f64;
                    }
                }
                let div = match mode {
                    PoolingMode::MeanSqrtLen => weight_sum.sqrt(),
                    _ => weight_sum,
                }
                .max(1e-9);
                out.extend(acc.iter().map(|a| (a / div) as f32));
            }
        }
    }
    out
}

/// L2-normalises in place, like `torch.nn.functional.normalize` (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt().max(1e-12);
    for x in v {
        *x = (*x as f64 / norm) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: [f32; 6] = [1.0, 2.0, 3.0, -4.0, 5.0, 0.0]; // three tokens of hidden size 2

    #[test]
    fn each_mode_matches_its_definition() {
        assert_eq!(pool(&[PoolingMode::Cls], &T, 2, 0), vec![1.0, 2.0]);
        assert_eq!(pool(&[PoolingMode::LastToken], &T, 2, 0), vec![5.0, 0.0]);
        assert_eq!(pool(&[PoolingMode::Max], &T, 2, 0), vec![5.0, 2.0]);
        assert_eq!(pool(&[PoolingMode::Mean], &T, 2, 0), vec![3.0, -2.0 / 3.0]);
        let s = 3f32.sqrt();
        let got = pool(&[PoolingMode::MeanSqrtLen], &T, 2, 0);
        assert!((got[0] - 9.0 / s).abs() < 1e-6 && (got[1] + 2.0 / s).abs() < 1e-6);
        // weights 1, 2, 3
        let got = pool(&[PoolingMode::WeightedMean], &T, 2, 0);
        assert!((got[0] - (1.0 + 6.0 + 15.0) / 6.0).abs() < 1e-6);
        assert!((got[1] - (2.0 - 8.0) / 6.0).abs() < 1e-6);
    }

    #[test]
    fn modes_concatenate_and_skip_excludes_prompt_tokens() {
        assert_eq!(pool(&[PoolingMode::Cls, PoolingMode::Max], &T, 2, 0), vec![1.0, 2.0, 5.0, 2.0]);
        assert_eq!(pool(&[PoolingMode::Mean], &T, 2, 2), vec![5.0, 0.0]);
    }

    #[test]
    fn normalize_gives_unit_length_and_leaves_zero_alone() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut z = vec![0.0, 0.0];
        normalize(&mut z);
        assert_eq!(z, vec![0.0, 0.0]);
    }
}
