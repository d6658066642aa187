//! The CPU encoder's math, one file per kernel family, each level of SIMD side by side in it:
//! - `level`: the one dispatch point: which SIMD level runs (AVX-512, AVX2+FMA, NEON or scalar), from the CPU
//!   and the `EMBEDDING_SERVICE_SIMD` cap;
//! - `panel`: products with weights packed at load (f32 and bf16), written once over `pulp` and compiled per
//!   level, plus the AVX512_BF16 tile;
//! - `int8`: products with int8 weights and activations (`dtype: 'int8'`), exact in i32, one kernel per
//!   dot-product instruction set;
//! - `matmul`: products with an unpacked right-hand side (`gemm`, the few-rows kernel, attention's products),
//!   the reference the panel kernels are tested against;
//! - `elementwise`: bias, GELU, softmax, layer norm, exp and erf, one loop compiled per level.
//!
//! Nothing here knows about models: `model/cpu_bert.rs` composes these into the forward pass.

pub mod elementwise;
pub mod int8;
pub mod level;
pub mod matmul;
pub mod panel;
