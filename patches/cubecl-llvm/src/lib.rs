//! An offline stand-in for `cubecl-llvm` 0.11, CubeCL's LLVM code generator.
//!
//! `cubecl-cuda` 0.11 always depends on `cubecl-llvm`, whose build script downloads an LLVM
//! bundle; a machine without network cannot build it, so `--features cuda` could not be built
//! here. `cubecl-cuda` has two kernel compilers: CUDA C++ handed to NVRTC at run time (its `cpp`
//! feature makes that the default) and LLVM. nc-vqvae uses the first one only, so this crate,
//! selected through `[patch.crates-io]` in the workspace manifest, supplies just the names
//! `cubecl-cuda` refers to:
//!
//! - [`nvptx::ptx_version::PtxVersion`]: the PTX ISA a CUDA driver loads, from NVIDIA's
//!   published table (CUDA 11.0 = PTX 7.0 … CUDA 13.0 = PTX 9.0);
//! - [`shared::lowered_features`]: the hook that narrows device features for LLVM (unused
//!   when NVRTC compiles);
//! - [`PlironCompiler`] and its option and artifact types: compiling with it fails with a
//!   [`CompilationError`] that says this build has no LLVM backend.
//!
//! Nothing here is a copy of the upstream crate; it is written against the API that
//! `cubecl-cuda` 0.11.3 calls. See README "Building" for the whole route.

use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
pub use cubecl_runtime::compiler::CompilationError;
use cubecl_runtime::kernel::BufferIOAttr;

/// The NVPTX target's pieces that `cubecl-cuda` names.
pub mod nvptx {
    /// PTX ISA versions.
    pub mod ptx_version {
        use core::fmt;

        /// A PTX ISA version, `major * 10 + minor` (PTX 8.7 is 87).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct PtxVersion(u32);

        /// (CUDA release as `major * 1000 + minor * 10`, the PTX ISA it introduced), from the
        /// release history in NVIDIA's PTX ISA documentation.
        const RELEASES: &[(i32, u32)] = &[
            (11000, 70),
            (11010, 71),
            (11020, 72),
            (11030, 73),
            (11040, 74),
            (11050, 75),
            (11060, 76),
            (11070, 77),
            (11080, 78),
            (12000, 80),
            (12010, 81),
            (12020, 82),
            (12030, 83),
            (12040, 84),
            (12050, 85),
            (12070, 86),
            (12080, 87),
            (12090, 88),
            (13000, 90),
        ];

        impl PtxVersion {
            /// The newest PTX ISA a driver reporting `driver` (as `cuDriverGetVersion` does,
            /// e.g. 12080 for CUDA 12.8) loads; `None` for drivers older than CUDA 11.0. A driver
            /// newer than the table gets the newest version the table knows.
            pub fn for_driver(driver: i32) -> Option<Self> {
                RELEASES
                    .iter()
                    .rev()
                    .find(|(cuda, _)| *cuda <= driver)
                    .map(|&(_, ptx)| PtxVersion(ptx))
            }

            /// The major version (8 for PTX 8.7).
            pub fn major(self) -> u32 {
                self.0 / 10
            }

            /// The minor version (7 for PTX 8.7).
            pub fn minor(self) -> u32 {
                self.0 % 10
            }
        }

        impl fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ptx{}{}", self.major(), self.minor())
            }
        }
    }
}

/// Pieces shared by the LLVM targets.
pub mod shared {
    /// Which device features the LLVM lowering can honour.
    pub mod lowered_features {
        use cubecl_core::ir::DeviceProperties;

        /// The GPU target features are narrowed for.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            /// NVIDIA PTX.
            Nvptx,
        }

        /// Narrows `props` to what the LLVM backend lowers for `target`. `cubecl-cuda` calls this
        /// only when LLVM is its selected compiler, which it never is in this build (NVRTC is),
        /// so the properties are left as the device reported them.
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }
}

/// The targets of the LLVM backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    /// NVIDIA PTX.
    #[default]
    Nvptx,
}

/// The LLVM backend's compiler. In this build it has no LLVM behind it: [`Self::compile`]
/// always fails, saying so.
#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    /// The target it would compile for.
    pub target: LlvmTarget,
}

/// Options of the LLVM backend (the fields `cubecl-cuda` fills in).
#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    /// AMDGPU architecture name (the CUDA runtime passes `None`).
    pub arch: Option<String>,
    /// The NVIDIA architecture.
    #[cfg(feature = "nvptx")]
    pub sm_arch: Option<cubecl_core::ir::nvidia::SmArch>,
    /// The PTX version to emit.
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    /// Whether scalars travel in the kernel parameter block.
    pub grid_constants: bool,
}

/// A PTX module as the LLVM backend would hand it to the driver.
#[derive(Clone, Debug)]
pub struct NvptxModule {
    /// NUL-terminated PTX text.
    pub ptx: Vec<core::ffi::c_char>,
    /// The kernel's entry point.
    pub entrypoint: String,
    /// The IR, for logs and cache keys.
    pub ir: String,
    /// Dynamic shared memory per launch, in bytes.
    pub shared_memory_size: usize,
    /// How each buffer binding is accessed.
    pub io: Vec<BufferIOAttr>,
}

/// What the LLVM backend produces.
#[derive(Clone, Debug)]
pub enum PlironArtifact {
    /// A PTX module.
    NvptxCode(NvptxModule),
}

/// Why [`PlironCompiler::compile`] fails in this build.
pub const NO_LLVM: &str = "this build has no LLVM kernel compiler (nc-vqvae replaces cubecl-llvm \
     so that it builds offline); CUDA kernels compile through NVRTC, cubecl-cuda's `cpp` feature";

impl PlironCompiler {
    /// Always an error: there is no LLVM in this build (see [`NO_LLVM`]).
    pub fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &PlironOptions,
    ) -> Result<PlironArtifact, CompilationError> {
        Err(CompilationError::Generic {
            reason: NO_LLVM.to_string(),
            backtrace: BackTrace::capture(),
        })
    }

    /// The language tag of what this compiler emits.
    pub fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}

#[cfg(test)]
mod tests {
    use super::nvptx::ptx_version::PtxVersion;

    #[test]
    fn ptx_version_follows_the_drivers_release() {
        assert_eq!(PtxVersion::for_driver(10020), None);
        let v = |d| PtxVersion::for_driver(d).unwrap().to_string();
        assert_eq!(v(11000), "ptx70");
        assert_eq!(v(11080), "ptx78");
        assert_eq!(v(12060), "ptx85"); // 12.6 introduced no new PTX ISA
        assert_eq!(v(12080), "ptx87");
        assert_eq!(v(12090), "ptx88");
        assert_eq!(v(13000), "ptx90");
        assert_eq!(v(13040), "ptx90"); // newer than the table: its newest entry
        assert_ne!(PtxVersion::for_driver(12080), PtxVersion::for_driver(12090));
    }
}
