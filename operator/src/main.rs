//! `faultline-operator`: run the controller, print the CRD, or render a tracker's objects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use faultline_operator::leader::LeaseLock;
use faultline_operator::metrics::{self, Metrics};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "faultline-operator",
    version,
    about = "Kubernetes operator for faultline ErrorTrackers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the controller (in a cluster, or with the current kubeconfig).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions (ErrorTracker, Backup) as one YAML stream, or
    /// write one file per CRD into a directory.
    Crd {
        /// Write `errortracker.yaml` and `backup.yaml` into this directory instead.
        #[arg(long, env = "FAULTLINE_CRD_OUT_DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Print every object the operator would create for an ErrorTracker, as YAML documents.
    Render {
        /// File with one ErrorTracker document (`-` for standard input).
        #[arg(short = 'f', long = "file", env = "FAULTLINE_RENDER_FILE")]
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address of the `/metrics` and `/health` listener.
    #[arg(
        long,
        env = "FAULTLINE_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    metrics_addr: SocketAddr,
    /// Namespace of the leader Lease: the operator's own namespace, which every tracker's
    /// NetworkPolicy admits to the admin port.
    #[arg(
        long,
        env = "FAULTLINE_OPERATOR_NAMESPACE",
        default_value = "faultline-system"
    )]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "FAULTLINE_OPERATOR_LEASE",
        default_value = "faultline-operator"
    )]
    lease_name: String,
    /// Identity of this replica in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { out_dir: None } => write_stdout(&faultline_operator::crd_yaml()),
        Command::Crd { out_dir: Some(dir) } => {
            for (file, yaml) in faultline_operator::crd_files() {
                let path = dir.join(file);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Render { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            write_stdout(&faultline_operator::render::render(&text)?)
        }
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
                )
                .init();
            tokio::runtime::Runtime::new()?.block_on(run(args))
        }
    }
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    faultline_operator::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .context("connecting to Kubernetes")?;
    let metrics = Arc::new(Metrics::default());
    let server = tokio::spawn(metrics::serve(args.metrics_addr, Arc::clone(&metrics)));
    let identity = args
        .identity
        .unwrap_or_else(|| format!("faultline-operator-{}", std::process::id()));
    let lock = LeaseLock::new(
        client.clone(),
        &args.lease_namespace,
        &args.lease_name,
        &identity,
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    let mut ctx = faultline_operator::Context::new(client, metrics);
    ctx.operator_namespace = args.lease_namespace.clone();
    let result = faultline_operator::run_elected(ctx, lock, shutdown).await;
    server.abort();
    result.context("leader election")
}

/// SIGTERM (what Kubernetes sends) or SIGINT.
async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
