//! The `faultline` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use faultline_engine::cli::{Cli, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Cancels the token on SIGINT or SIGTERM.
async fn shutdown_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}

#[tokio::main]
async fn main() -> ExitCode {
    faultline_engine::allocator::configure();
    // Transparent huge pages make every fresh allocator page a 2 MiB zeroing; for a server that
    // allocates and frees a few KiB per event that cost CPU and memory (docs/benchmarks.md).
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    init_tracing(cli.global.log_format);
    let shutdown = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(shutdown.clone()));
    match faultline_engine::commands::run(cli, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Every error's message already includes its cause.
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
