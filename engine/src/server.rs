//! `faultline serve`: listeners, background tasks and ordered shutdown.
//!
//! Shutdown: stop accepting, let in-flight requests finish (bounded by
//! `server.shutdown_timeout`), flush the buffer to Parquet (bounded by
//! `server.shutdown_flush_timeout`), then return. What the final flush could not write stays in
//! the WAL, is logged, and is flushed at the next start.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use faultline_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::listener::HttpTimeouts;
use crate::node::{self, Node};
use crate::sqlwire::{self, SqlAccess};
use crate::{api, maintenance};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error(
        "invalid config: backup.schedule: {schedule:?} is not a 5-field cron expression: {message}"
    )]
    Schedule { schedule: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: HttpTimeouts,
    shutdown: CancellationToken,
) -> Result<()> {
    api::listener::serve(listener, router, timeouts, shutdown).await;
    Ok(())
}

/// On a data location without an owner, prints a one-time link (log and stderr) that creates
/// the first owner: there is no default password. A store that cannot be read is logged only.
async fn first_start_link(node: &Node) {
    let people = &node.people;
    match people.has_owner().await {
        Ok(true) => {}
        Ok(false) => match people.create_link(None).await {
            Ok(token) => {
                let base = node.config.server.public_url.clone().unwrap_or_else(|| {
                    let mut addr = node
                        .config
                        .server
                        .admin_listen
                        .unwrap_or(node.config.server.listen);
                    if addr.ip().is_unspecified() {
                        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    format!("http://{addr}")
                });
                let link = format!("{}/setup/{token}", base.trim_end_matches('/'));
                let ttl = humantime::format_duration(node.config.auth.setup_link_ttl);
                tracing::warn!(%link, valid_for = %ttl,
                    "no owner yet: open this one-time link to create the first owner");
                eprintln!(
                    "No owner yet. Create the first owner within {ttl} (the link works once):\n  {link}\n\
                     (or run `faultline user create --owner EMAIL`)"
                );
            }
            Err(err) => tracing::error!(cause = %err, "cannot create the first-start setup link"),
        },
        Err(err) => tracing::error!(cause = %err, "cannot read the accounts"),
    }
}

/// Runs a node until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
    let listen = config.server.listen;
    let admin_listen = config.server.admin_listen;
    let config_pg_listen = config.server.pg_listen;
    let config_flight_listen = config.server.flight_listen;
    let timeout = config.server.shutdown_timeout;
    let timeouts = HttpTimeouts {
        header_read: config.server.header_read_timeout,
    };
    if let Some(schedule) = &config.backup.schedule {
        maintenance::schedule::parse_cron(schedule).map_err(|message| Error::Schedule {
            schedule: schedule.clone(),
            message,
        })?;
    }
    let node = Arc::new(Node::open(config).await?);
    tracing::info!(store = %node.store.location, node = %node.config.storage.node_id, "storage ready");
    first_start_link(&node).await;

    let flusher_stop = CancellationToken::new();
    let flusher = tokio::spawn(Arc::clone(&node).run_flusher(flusher_stop.clone()));
    tokio::spawn(Arc::clone(&node.projects).refresh(shutdown.clone()));
    tokio::spawn(Arc::clone(&node.alerts).run(shutdown.clone()));
    tokio::spawn(Arc::clone(&node.hashes).persist_loop(shutdown.clone()));
    // Reads the issue rollups once in the background, so the first issues list is fast too.
    tokio::spawn({
        let query = Arc::clone(&node.query);
        async move { query.warm_issue_cache().await }
    });
    let backups = node
        .config
        .backup
        .destination
        .is_some()
        .then(|| node.backups());
    let maintenance = tokio::spawn(maintenance::schedule::run(
        Arc::clone(&node),
        backups,
        shutdown.clone(),
    ));

    // Bound before the HTTP listeners, so a node that answers /health/ready takes SQL clients too.
    let access = SqlAccess {
        query: Arc::clone(&node.query),
        tokens: Arc::clone(&node.tokens),
        projects: Arc::clone(&node.projects),
    };
    if let Some(addr) = config_pg_listen {
        let listener = bind(addr).await?;
        tracing::info!(addr = %addr, "postgres listening");
        tokio::spawn(sqlwire::postgres::serve(
            listener,
            access.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(addr) = config_flight_listen {
        let listener = bind(addr).await?;
        tracing::info!(addr = %addr, "flight sql listening");
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = sqlwire::flight::serve(listener, access, stop).await {
                tracing::error!(cause = %err, "flight sql listener failed");
            }
        });
    }

    let ingest_listener = bind(listen).await?;
    let mut servers = tokio::task::JoinSet::new();
    match admin_listen {
        Some(admin) => {
            let admin_listener = bind(admin).await?;
            tracing::info!(addr = %listen, "ingest listening");
            tracing::info!(addr = %admin, "query api listening");
            servers.spawn(serve(
                ingest_listener,
                api::ingest_router(&node),
                timeouts,
                shutdown.clone(),
            ));
            servers.spawn(serve(
                admin_listener,
                api::admin_router(&node),
                timeouts,
                shutdown.clone(),
            ));
        }
        None => {
            tracing::info!(addr = %listen, "listening");
            let router = api::router(&node);
            servers.spawn(serve(ingest_listener, router, timeouts, shutdown.clone()));
        }
    }

    shutdown.cancelled().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let drained = tokio::time::timeout(timeout, async {
        while let Some(result) = servers.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::error!(cause = %err, "listener failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(timeout = ?timeout, "in-flight requests did not finish in time");
        servers.abort_all();
    }
    if tokio::time::timeout(timeout, maintenance).await.is_err() {
        tracing::warn!(
            "maintenance did not stop in time; a running backup is abandoned and stays incomplete"
        );
    }
    flusher_stop.cancel();
    let flush_timeout = node.config.server.shutdown_flush_timeout;
    // One deadline for a flush already running and the final one: during an object-store
    // outage both would otherwise retry for as long as the store stays away.
    let flushed = tokio::time::timeout(flush_timeout, async {
        let _ = flusher.await;
        node.flush_with_outcomes().await
    })
    .await;
    match flushed {
        Ok(Ok(rows)) => tracing::info!(events = rows, "final flush done"),
        Ok(Err(err)) => tracing::error!(cause = %err, "final flush failed"),
        Err(_) => tracing::error!(timeout = ?flush_timeout, "final flush did not finish in time"),
    }
    let left = node.unflushed();
    if left.events > 0 {
        tracing::warn!(
            events = left.events,
            wal_bytes = left.bytes,
            wal = %node.config.wal_dir().display(),
            "events left in the wal; they are flushed at the next start"
        );
    }
    Ok(())
}
