//! The one place that decides which SIMD level the hand-written kernels run at: the best this CPU has, capped
//! by `EMBEDDING_SERVICE_SIMD` (`scalar`, `avx2`, `avx512` on x86-64; `scalar`, `neon` on aarch64), so tests and
//! benchmarks can run every level a machine has. A cap above what the CPU has, or a value this build does not
//! know, leaves the detected level. Read once per process. The `gemm` crate, used for the matrix products on
//! CPUs without AVX-512, picks its own kernels and is not capped.

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
    }
}
