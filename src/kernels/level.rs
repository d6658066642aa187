//! The one place that decides which SIMD level the hand-written kernels run at: the best this CPU has, capped
//! by `EMBEDDING_SERVICE_SIMD` (`scalar`, `avx2`, `avx512` on x86-64; `scalar`, `neon` on aarch64), so tests and
//! benchmarks can run every level a machine has. A cap above what the CPU has, or a value this build does not
//! know, leaves the detected level. Read once per process. The `gemm` crate, used for the matrix products on
//! CPUs without AVX-512, picks its own kernels and is not capped.
//!
//! The int8 products (`int8.rs`) have finer levels, from the same cap and the CPU's dot-product instructions:
//! AVX-512 VNNI, 256-bit VNNI (AVX-VNNI), AVX2, NEON with the dot-product extension, NEON, scalar
//! (`int8_kernel`). `EMBEDDING_SERVICE_SIMD=avxvnni` selects the 256-bit VNNI kernel (the f32 kernels then run
//! at AVX2), which on a CPU with AVX-512 VNNI but no AVX-VNNI runs the same code through the EVEX encoding of
//! the instruction, so it is tested there too.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Scalar,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F (and AVX2, FMA).
    Avx512,
    /// aarch64 (NEON is part of the architecture).
    Neon,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }
}

fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return Level::Neon;
    }
    #[allow(unreachable_code)]
    Level::Scalar
}

/// The level `detected` is capped to by `cap` (the variable's value), when `cap` names a level on this
/// architecture at or below it.
fn capped(detected: Level, cap: Option<&str>) -> Level {
    let wanted = match cap.map(str::trim) {
        Some("scalar") => Level::Scalar,
        Some("avx2") if detected != Level::Neon => Level::Avx2,
        Some("avx512") if detected != Level::Neon => Level::Avx512,
        Some("avxvnni") if detected != Level::Neon => Level::Avx2,
        Some("neon") if detected == Level::Neon => Level::Neon,
        _ => return detected,
    };
    wanted.min(detected)
}

/// The level the kernels run at in this process.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| capped(detected(), std::env::var("EMBEDDING_SERVICE_SIMD").ok().as_deref()))
}

/// Whether the AVX2+FMA kernels may run.
pub fn avx2() -> bool {
    matches!(level(), Level::Avx2 | Level::Avx512)
}

/// Whether the AVX-512 kernels may run.
pub fn avx512() -> bool {
    level() == Level::Avx512
}

/// Which int8 product kernel runs (`int8.rs`); every one computes the same exact integer sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    Scalar,
    /// `vpmaddubsw` on sign-folded operands, exact (see `int8.rs`).
    Avx2,
    /// `vpdpbusd` on 256-bit registers: AVX-VNNI, or AVX-512 VNNI's EVEX form where only that exists.
    Vnni256 { evex: bool },
    /// `vpdpbusd` on 512-bit registers (AVX-512 VNNI).
    Vnni512,
    /// `smull`/`sadalp` (ARMv8.0).
    Neon,
    /// `sdot` (ARMv8.2 dot-product extension: Apple M, Graviton 2 and later, Cortex-A76 and later).
    NeonDot,
}

impl Int8Kernel {
    pub fn as_str(self) -> &'static str {
        match self {
            Int8Kernel::Scalar => "scalar",
            Int8Kernel::Avx2 => "avx2",
            Int8Kernel::Vnni256 { evex: false } => "avx-vnni",
            Int8Kernel::Vnni256 { evex: true } => "avx512-vnni (256-bit)",
            Int8Kernel::Vnni512 => "avx512-vnni",
            Int8Kernel::Neon => "neon",
            Int8Kernel::NeonDot => "neon-dotprod",
        }
    }

    /// The kernels this CPU can run (whatever the cap), best last: the tests run each of them.
    pub fn available() -> Vec<Int8Kernel> {
        let mut all = vec![Int8Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            let has = |f: &str| match f {
                "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                "avxvnni" => std::arch::is_x86_feature_detected!("avxvnni"),
                "avx512" => {
                    std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx512bw")
                        && std::arch::is_x86_feature_detected!("avx512vl")
                        && std::arch::is_x86_feature_detected!("avx512vnni")
                }
                _ => false,
            };
            if has("avx2") {
                all.push(Int8Kernel::Avx2);
                if has("avxvnni") {
                    all.push(Int8Kernel::Vnni256 { evex: false });
                }
                if has("avx512") {
                    all.push(Int8Kernel::Vnni256 { evex: true });
                    all.push(Int8Kernel::Vnni512);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            all.push(Int8Kernel::Neon);
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                all.push(Int8Kernel::NeonDot);
            }
        }
        all
    }
}

/// The int8 kernel for this process: the best the CPU has within the level (and the `avxvnni` cap).
pub fn int8_kernel() -> Int8Kernel {
    static KERNEL: OnceLock<Int8Kernel> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        let cap = std::env::var("EMBEDDING_SERVICE_SIMD").ok();
        int8_kernel_for(level(), cap.as_deref().map(str::trim), &Int8Kernel::available())
    })
}

fn int8_kernel_for(level: Level, cap: Option<&str>, available: &[Int8Kernel]) -> Int8Kernel {
    let has = |k: Int8Kernel| available.contains(&k);
    let vnni256 = [Int8Kernel::Vnni256 { evex: false }, Int8Kernel::Vnni256 { evex: true }].into_iter().find(|&k| has(k));
    match level {
        Level::Scalar => Int8Kernel::Scalar,
        Level::Avx512 if has(Int8Kernel::Vnni512) => Int8Kernel::Vnni512,
        // `avxvnni` asks for the 256-bit kernel even where the EVEX form is the only one.
        Level::Avx2 if cap == Some("avxvnni") => vnni256.unwrap_or(Int8Kernel::Avx2),
        Level::Avx2 | Level::Avx512 if has(Int8Kernel::Vnni256 { evex: false }) => Int8Kernel::Vnni256 { evex: false },
        Level::Avx2 | Level::Avx512 => Int8Kernel::Avx2,
        Level::Neon if has(Int8Kernel::NeonDot) => Int8Kernel::NeonDot,
        Level::Neon => Int8Kernel::Neon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_only_lowers_the_level_and_ignores_what_it_does_not_know() {
        assert_eq!(capped(Level::Avx512, Some("avx2")), Level::Avx2);
        assert_eq!(capped(Level::Avx512, Some("scalar")), Level::Scalar);
        assert_eq!(capped(Level::Avx2, Some("avx512")), Level::Avx2);
        assert_eq!(capped(Level::Avx2, Some("neon")), Level::Avx2);
        assert_eq!(capped(Level::Neon, Some("avx2")), Level::Neon);
        assert_eq!(capped(Level::Neon, Some(" scalar ")), Level::Scalar);
        assert_eq!(capped(Level::Avx2, Some("fast")), Level::Avx2);
        assert_eq!(capped(Level::Avx2, None), Level::Avx2);
        assert_eq!(capped(Level::Avx512, Some("avxvnni")), Level::Avx2);
    }

    #[test]
    fn the_int8_kernel_follows_the_level_and_the_cpu() {
        use Int8Kernel::*;
        let zen4 = [Scalar, Avx2, Vnni256 { evex: true }, Vnni512];
        assert_eq!(int8_kernel_for(Level::Avx512, None, &zen4), Vnni512);
        assert_eq!(int8_kernel_for(Level::Avx2, Some("avx2"), &zen4), Avx2);
        assert_eq!(int8_kernel_for(Level::Avx2, Some("avxvnni"), &zen4), Vnni256 { evex: true });
        assert_eq!(int8_kernel_for(Level::Scalar, Some("scalar"), &zen4), Scalar);
        let alder_lake = [Scalar, Avx2, Vnni256 { evex: false }];
        assert_eq!(int8_kernel_for(Level::Avx2, None, &alder_lake), Vnni256 { evex: false });
        assert_eq!(int8_kernel_for(Level::Avx2, Some("avx2"), &alder_lake), Vnni256 { evex: false });
        let zen3 = [Scalar, Avx2];
        assert_eq!(int8_kernel_for(Level::Avx2, Some("avxvnni"), &zen3), Avx2);
        let skylake_x = [Scalar, Avx2];
        assert_eq!(int8_kernel_for(Level::Avx512, None, &skylake_x), Avx2);
        assert_eq!(int8_kernel_for(Level::Neon, None, &[Scalar, Neon, NeonDot]), NeonDot);
        assert_eq!(int8_kernel_for(Level::Neon, None, &[Scalar, Neon]), Neon);
    }
}
