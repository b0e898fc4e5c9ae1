//! Mapping the `--backend` flag to a Burn [`Device`].
//!
//! Backends are compiled in by cargo features: `cpu` (default, Burn's `flex` backend), `wgpu`
//! (any GPU vendor through Vulkan, Metal, DX12 or WebGPU) and `cuda`.

use burn::tensor::Device;

/// A compute backend the user can ask for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// Burn's `flex` CPU backend (cargo feature `cpu`, on by default).
    #[default]
    Cpu,
    /// Burn's WGPU backend (cargo feature `wgpu`).
    Wgpu,
    /// Burn's CUDA backend (cargo feature `cuda`).
    Cuda,
}

/// The backend asked for is not compiled into this binary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "backend '{name}' is not compiled into this binary; rebuild with `cargo build --release --features {feature}`"
)]
pub(crate) struct NotCompiled {
    /// The backend name.
    pub(crate) name: &'static str,
    /// The cargo feature that enables it.
    pub(crate) feature: &'static str,
}

/// The backend asked for cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BackendError {
    /// It is not compiled into this binary.
    #[error(transparent)]
    NotCompiled(#[from] NotCompiled),
    /// It is compiled in, but this machine lacks what it needs at run time.
    #[error("backend '{name}': {reason}")]
    #[cfg_attr(not(feature = "cuda"), allow(dead_code, reason = "only the cuda check finds this"))]
    Unavailable {
        /// The backend name.
        name: &'static str,
        /// What is missing.
        reason: String,
    },
}

impl Backend {
    /// The flag value and cargo feature name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend's feature.
    pub(crate) fn is_compiled(self) -> bool {
        match self {
            Backend::Cpu => cfg!(feature = "cpu"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Checks that the backend is compiled in, without creating a device.
    pub(crate) fn ensure_compiled(self) -> Result<(), NotCompiled> {
        if self.is_compiled() {
            Ok(())
        } else {
            Err(NotCompiled { name: self.name(), feature: self.name() })
        }
    }

    /// The device for inference; `.autodiff()` it for training. For `cuda`, first checks that the
    /// NVIDIA driver and NVRTC libraries can be loaded (the backend would panic on first use).
    pub(crate) fn device(self) -> Result<Device, BackendError> {
        self.ensure_compiled()?;
        match self {
            #[cfg(feature = "cpu")]
            Backend::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(feature = "cuda")]
            Backend::Cuda => {
                let missing = |reason: &str| {
                    Err(BackendError::Unavailable { name: "cuda", reason: reason.into() })
                };
                // SAFETY: loading a shared library runs its initialisers; these are the NVIDIA
                // driver and NVRTC, which the CUDA backend loads anyway on its first use.
                if !unsafe { cudarc::driver::sys::is_culib_present() } {
                    return missing(
                        "the NVIDIA driver library (libcuda.so) is not found: no NVIDIA driver on this machine, or its folder is not on LD_LIBRARY_PATH",
                    );
                }
                // SAFETY: as above.
                if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
                    return missing(
                        "NVRTC (libnvrtc.so), which compiles the CUDA kernels, is not found: install CUDA's NVRTC or put its folder on LD_LIBRARY_PATH",
                    );
                }
                Ok(Device::cuda(0))
            }
            #[allow(unreachable_patterns)]
            _ => Err(NotCompiled { name: self.name(), feature: self.name() }.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_match_the_features_compiled_in() {
        for backend in [Backend::Cpu, Backend::Wgpu, Backend::Cuda] {
            match backend.device() {
                Ok(_) => assert!(backend.is_compiled()),
                Err(BackendError::NotCompiled(e)) => {
                    assert!(!backend.is_compiled());
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("--features {}", backend.name())), "{msg}");
                }
                // Compiled in, but the machine lacks the driver (cuda without an NVIDIA driver).
                Err(e @ BackendError::Unavailable { .. }) => {
                    assert!(backend.is_compiled() && backend == Backend::Cuda, "{e}");
                    assert!(e.to_string().contains("LD_LIBRARY_PATH"), "{e}");
                }
            }
        }
    }

    #[cfg(feature = "cpu")]
    #[test]
    fn cpu_device_computes() {
        let device = Backend::Cpu.device().unwrap();
        let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device);
        assert_eq!(t.sum().into_scalar::<f32>(), 3.0);
    }
}
