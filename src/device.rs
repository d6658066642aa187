//! Choosing the compute device: CPU always, CUDA and Metal when compiled in (cargo features) and present.

use candle_core::Device;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The best compiled-in device that works: CUDA, then Metal, then CPU.
    Auto,
    Cpu,
    Cuda,
    Metal,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => DeviceChoice::Auto,
            "cpu" => DeviceChoice::Cpu,
            "cuda" => DeviceChoice::Cuda,
            "metal" => DeviceChoice::Metal,
            other => {
                return Err(Error::invalid_input(format!(
                    "unknown device {other:?}; use 'auto', 'cpu', 'cuda' or 'metal'"
                )))
            }
        })
    }
}

/// Whether this build can use a device at all (it may still be absent at run time).
pub fn check_compiled(choice: DeviceChoice) -> Result<()> {
    match choice {
        DeviceChoice::Cuda if !cfg!(feature = "cuda") => Err(Error::device_unavailable(
            "device 'cuda' is not compiled into this build of the addon; rebuild it with the `cuda` cargo feature \
             (on a machine with the CUDA toolkit) or use device 'cpu' or 'auto'",
        )),
        DeviceChoice::Metal if !cfg!(feature = "metal") => Err(Error::device_unavailable(
            "device 'metal' is not compiled into this build of the addon; rebuild it with the `metal` cargo \
             feature on macOS or use device 'cpu' or 'auto'",
        )),
        _ => Ok(()),
    }
}

/// An opened device, its description for status reports ("cpu", "cuda:0 (NVIDIA H200)", ...), and, when
/// 'auto' passed over a compiled-in GPU, why (for the loading event, so a silent CPU fallback is visible).
pub struct Opened {
    pub device: Device,
    pub name: String,
    pub fallback: Option<String>,
}

impl Opened {
    fn cpu(fallback: Option<String>) -> Self {
        Opened { device: Device::Cpu, name: "cpu".into(), fallback }
    }
}

pub fn open(choice: DeviceChoice) -> Result<Opened> {
    check_compiled(choice)?;
    match choice {
        DeviceChoice::Cpu => Ok(Opened::cpu(None)),
        DeviceChoice::Cuda => open_cuda(),
        DeviceChoice::Metal => open_metal(),
        DeviceChoice::Auto => {
            let mut passed_over = Vec::new();
            if cfg!(feature = "cuda") {
                match open_cuda() {
                    Ok(opened) => return Ok(opened),
                    Err(e) => passed_over.push(e.message),
                }
            }
            if cfg!(feature = "metal") {
                match open_metal() {
                    Ok(opened) => return Ok(opened),
                    Err(e) => passed_over.push(e.message),
                }
            }
            Ok(Opened::cpu((!passed_over.is_empty()).then(|| format!("running on the CPU: {}", passed_over.join("; ")))))
        }
    }
}

fn open_metal() -> Result<Opened> {
    let device = Device::new_metal(0).map_err(|e| Error::device_unavailable(format!("no usable Metal device: {e}")))?;
    Ok(Opened { device, name: "metal:0".into(), fallback: None })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Opened> {
    Err(Error::device_unavailable("device 'cuda' is not compiled into this build of the addon"))
}

/// CUDA through cudarc's dynamic loading: the driver, cuBLAS and cuRAND are opened with dlopen here, the first
/// time a CUDA device is asked for, so the addon loads and runs on CPU on machines without them. cudarc
/// panics when a library is missing, so each is looked for first and named in the error; the rest (no
/// device, a driver too old for the kernels' PTX) comes back from the driver as an error, or at worst as a
/// panic, caught here.
#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Opened> {
    use candle_core::cuda_backend::cudarc;
    let unavailable = |why: String| Error::device_unavailable(format!("no usable CUDA device: {why}"));
    // SAFETY: each probe only dlopens the library by its usual names and closes it again.
    let libraries: [(&str, bool); 4] = unsafe {
        [
            ("the NVIDIA driver (libcuda.so.1)", cudarc::driver::sys::is_culib_present()),
            ("cuBLAS (libcublas.so)", cudarc::cublas::sys::is_culib_present()),
            ("cuBLASLt (libcublasLt.so)", cudarc::cublaslt::sys::is_culib_present()),
            ("cuRAND (libcurand.so)", cudarc::curand::sys::is_culib_present()),
        ]
    };
    let missing: Vec<&str> = libraries.iter().filter(|(_, present)| !present).map(|(name, _)| *name).collect();
    if !missing.is_empty() {
        return Err(unavailable(format!(
            "this machine lacks {}, which the CUDA build opens at run time; install the NVIDIA driver (R580 or \
             newer) and the CUDA 13 libraries, or put their folder on LD_LIBRARY_PATH",
            missing.join(", ")
        )));
    }
    let opened = std::panic::catch_unwind(|| -> candle_core::Result<(Device, String)> {
        let device = Device::new_cuda(0)?;
        // Runs one of candle's kernels, so a driver too old for the PTX fails here, where 'auto' can still
        // choose the CPU, rather than at the first batch.
        let probe = candle_core::Tensor::ones(4, candle_core::DType::F32, &device)?.affine(2.0, 1.0)?.to_vec1::<f32>()?;
        if probe != [3.0; 4] {
            candle_core::bail!("a test kernel returned {probe:?} instead of [3, 3, 3, 3]");
        }
        let gpu = device.as_cuda_device()?.cuda_stream().context().name().unwrap_or_else(|_| "unnamed GPU".into());
        Ok((device, format!("cuda:0 ({gpu})")))
    });
    match opened {
        Ok(Ok((device, name))) => Ok(Opened { device, name, fallback: None }),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(panic) => Err(unavailable(crate::error::panic_message(&*panic))),
    }
}

/// CPU threads for inference by default: the physical cores, since hyper-threads share the FMA units the
/// matrix multiplies are bound by. Lives here, beside the device choice, so the model code need not reach up
/// into the service for it.
pub fn default_threads() -> usize {
    num_cpus::get_physical().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn names_parse_and_unknown_names_are_invalid_input() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("tpu".parse::<DeviceChoice>().unwrap_err().code, ErrorCode::InvalidInput);
    }

    #[test]
    fn cpu_and_auto_always_open() {
        let cpu = open(DeviceChoice::Cpu).unwrap();
        assert_eq!((cpu.name.as_str(), cpu.fallback), ("cpu", None));
        assert!(open(DeviceChoice::Auto).is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_unavailable_and_says_why() {
        let err = open(DeviceChoice::Cuda).err().unwrap();
        assert_eq!(err.code, ErrorCode::DeviceUnavailable);
        assert!(err.message.contains("cuda"), "{}", err.message);
    }
}
