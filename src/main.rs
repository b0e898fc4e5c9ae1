//! The `nc-vqvae` binary: the command line of [`cli`] around the `nc_vqvae` library.
//!
//! Panics are caught by a hook and reported in one line as internal errors.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Failure};

/// Keeps freed tensor buffers of 16 MiB and more for reuse instead of returning them to the
/// kernel (see `cli::alloc`): halves the NC-VQVAE projector's cost on the CPU backend.
#[global_allocator]
static ALLOCATOR: cli::alloc::LargeBlockCache = cli::alloc::LargeBlockCache::new();

fn main() -> ExitCode {
    cli::alloc::tune_system_allocator();
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place =
            info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("internal error: {}{place} (please report this)", message.replace('\n', " "));
    }));
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    nc_vqvae::set_progress_mode(cli.progress);
    // On a worker of the CPU backend's thread pool: its parallel kernels then split their work in
    // place instead of waking the pool and sleeping at every op (kernels::on_pool).
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kernels::on_pool(|| cli::run(cli, &matches))
    })) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failure::Input(e))) => {
            eprintln!("error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(2)
        }
        Ok(Err(Failure::Internal(e))) if cli::disk_full(&e) => {
            eprintln!(
                "error: out of disk space: {}; every file written before is intact (the run's last complete checkpoint is kept): free space and run the same command again to continue (stage1 / stage2: add --resume)",
                e.to_string().replace('\n', " ")
            );
            ExitCode::from(1)
        }
        Ok(Err(Failure::Internal(e))) => {
            eprintln!("internal error: {}", e.to_string().replace('\n', " "));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}
