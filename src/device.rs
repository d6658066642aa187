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

/// Opens the device; returns it with a description for status reports ("cpu", "cuda:0", ...).
pub fn open(choice: DeviceChoice) -> Result<(Device, String)> {
    check_compiled(choice)?;
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceChoice::Cuda => Device::new_cuda(0)
            .map(|d| (d, "cuda:0".into()))
            .map_err(|e| Error::device_unavailable(format!("no usable CUDA device: {e}"))),
        DeviceChoice::Metal => Device::new_metal(0)
            .map(|d| (d, "metal:0".into()))
            .map_err(|e| Error::device_unavailable(format!("no usable Metal device: {e}"))),
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok((d, "cuda:0".into()));
                }
            }
            if cfg!(feature = "metal") {
                if let Ok(d) = Device::new_metal(0) {
                    return Ok((d, "metal:0".into()));
                }
            }
            Ok((Device::Cpu, "cpu".into()))
        }
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
        assert_eq!(open(DeviceChoice::Cpu).unwrap().1, "cpu");
        assert!(open(DeviceChoice::Auto).is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_unavailable_and_says_why() {
        let err = open(DeviceChoice::Cuda).unwrap_err();
        assert_eq!(err.code, ErrorCode::DeviceUnavailable);
        assert!(err.message.contains("cuda"), "{}", err.message);
    }
}
