//! A linear layer's weight in any of the CPU encoder's formats, and the product that reads it: the one place
//! the f32, bf16 and int8 kernels are chosen, shared by every encoder family on the fast CPU path.

use super::Dtype;
use crate::kernels::int8::{self, PackedI8, QuantizedRows};
use crate::kernels::matmul::matmul_bt;
use crate::kernels::panel::{self as packed, PackedBf16, PackedF32};

/// The four products of an encoder layer, in the order the forward pass runs them: fused Q/K/V, attention
/// output, and the feed-forward block's two (their inputs: hidden, hidden, hidden, intermediate wide).
#[derive(Debug, Clone, Copy)]
pub(super) enum Product {
    Qkv,
    AttnOut,
    Inter,
    Out,
}

pub(super) const PRODUCTS: [Product; 4] = [Product::Qkv, Product::AttnOut, Product::Inter, Product::Out];

/// A Linear layer's weight, `[out × in]`: f32 as in the file, rounded to bf16 and packed (`dtype: 'bf16'`), or
/// quantized to int8 (`dtype: 'int8'`).
pub(super) enum Weight {
    F32(Vec<f32>),
    /// f32 packed for the panel kernels (every SIMD level but scalar).
    F32Packed(PackedF32),
    Bf16(PackedBf16),
    /// Quantized to int8; the inputs whose activations run far larger than the rest (found at load by
    /// `calibrate`) are multiplied in f32 inside the same product.
    Int8(PackedI8),
}

/// Reusable buffers for the activations of the low-precision products.
#[derive(Default)]
pub(super) struct LowPrecision {
    /// Rounded to bf16 (bf16 on AVX512_BF16).
    a16: Vec<u16>,
    /// Quantized per row (int8).
    q: QuantizedRows,
}

impl Weight {
    /// The `[out × in]` weight whose value at (row, input) is `get(row, input)`.
    pub(super) fn new(out: usize, inp: usize, dtype: Dtype, get: impl Fn(usize, usize) -> f32 + Sync) -> Self {
        match dtype {
            Dtype::Int8 => Weight::Int8(PackedI8::quantize_with(out, inp, get)),
            // The panel kernels beat gemm here at every SIMD level, most of all on short queries.
            Dtype::F32 if packed::supported() => Weight::F32Packed(PackedF32::pack_with(out, inp, get)),
            // Refused before loading (f16 is for GPUs); f32 is the safe reading if it ever gets here.
            Dtype::F32 | Dtype::F16 => {
                Weight::F32((0..out * inp).map(|x| get(x / inp, x % inp)).collect())
            }
            Dtype::Bf16 => Weight::Bf16(PackedBf16::pack_with(out, inp, get)),
        }
    }

    /// `dst[m×out] (+)= a[m×in] · Wᵀ`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply(&self, dst: &mut [f32], dst_stride: usize, a: &[f32], a_stride: usize, m: usize, (n, k): (usize, usize), accumulate: bool, threads: usize, low: &mut LowPrecision) {
        match self {
            Weight::F32(w) => matmul_bt(dst, dst_stride, a, a_stride, w, k, m, n, k, accumulate, threads),
            Weight::F32Packed(w) => packed::matmul_bt_f32(dst, dst_stride, a, a_stride, w, m, accumulate, threads),
            Weight::Bf16(w) => packed::matmul_bt_bf16(dst, dst_stride, a, a_stride, w, m, accumulate, threads, &mut low.a16),
            Weight::Int8(w) => int8::matmul_bt_i8(dst, dst_stride, a, a_stride, w, m, accumulate, threads, &mut low.q),
        }
    }
}

impl Weight {
    pub(super) fn bytes(&self) -> usize {
        match self {
            Weight::F32(w) => w.len() * 4,
            Weight::F32Packed(w) => w.bytes(),
            Weight::Bf16(w) => w.bytes(),
            Weight::Int8(w) => w.bytes(),
        }
    }
}

