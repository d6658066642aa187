//! Rotary position embeddings on the fast CPU path (ModernBERT, Qwen3): the rotation tables for one base,
//! computed once at load, and their application to one head in place.

/// cos and sin of each position's rotation angles, `[position × head_dim/2]`, for one rotary base.
pub(super) struct Rotary {
    pub(super) cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rotary {
    /// The angles as transformers computes them in f32: inverse frequencies from the base, times the position.
    pub(super) fn new(base: f64, head_dim: usize, positions: usize) -> Self {
        let half = head_dim / 2;
        let inv: Vec<f32> = (0..half).map(|i| (1.0 / base.powf((2 * i) as f64 / head_dim as f64)) as f32).collect();
        let angles: Vec<f32> = (0..positions).flat_map(|p| inv.iter().map(move |f| p as f32 * f)).collect();
        Rotary { cos: angles.iter().map(|a| a.cos()).collect(), sin: angles.iter().map(|a| a.sin()).collect() }
    }

    /// Rotates `x` (one head's `head_dim` values) for position `p`: each value pairs with the one half a head
    /// away (transformers' `rotate_half`).
    pub(super) fn apply(&self, x: &mut [f32], p: usize) {
        let half = x.len() / 2;
        let (cos, sin) = (&self.cos[p * half..][..half], &self.sin[p * half..][..half]);
        let (a, b) = x.split_at_mut(half);
        for j in 0..half {
            let (x1, x2) = (a[j], b[j]);
            a[j] = x1 * cos[j] - x2 * sin[j];
            b[j] = x2 * cos[j] + x1 * sin[j];
        }
    }
}
