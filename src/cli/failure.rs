//! Failures of a command, split by whose fault they are: exit 2 for bad input, 1 for ours.

use super::backend::{BackendError, NotCompiled};

/// Whether a failure is a full disk: an I/O error of that kind anywhere in its chain, or ENOSPC's
/// text (Burn's record errors carry the I/O error only as text).
pub(crate) fn disk_full(e: &anyhow::Error) -> bool {
    let kind = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
    });
    kind || e.to_string().contains("No space left on device")
}

/// Failures split by whose fault they are: bad input (exit 2) or ours (exit 1).
pub(crate) enum Failure {
    /// Bad input or usage: exit 2.
    Input(anyhow::Error),
    /// Our failure: exit 1.
    Internal(anyhow::Error),
}

impl From<nc_vqvae::ucr_data::Error> for Failure {
    fn from(e: nc_vqvae::ucr_data::Error) -> Self {
        Failure::Input(e.into())
    }
}

impl From<nc_vqvae::RunError> for Failure {
    fn from(e: nc_vqvae::RunError) -> Self {
        if e.is_input_error() { Failure::Input(e.into()) } else { Failure::Internal(e.into()) }
    }
}

impl From<nc_vqvae::train::Error> for Failure {
    fn from(e: nc_vqvae::train::Error) -> Self {
        if e.is_input_error() { Failure::Input(e.into()) } else { Failure::Internal(e.into()) }
    }
}

impl From<nc_vqvae::config::ConfigError> for Failure {
    fn from(e: nc_vqvae::config::ConfigError) -> Self {
        Failure::Input(e.into())
    }
}

impl From<NotCompiled> for Failure {
    fn from(e: NotCompiled) -> Self {
        Failure::Input(e.into())
    }
}

/// A backend that is not compiled in, or that this machine cannot run, is a usage error (exit 2).
impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Failure::Input(e.into())
    }
}
