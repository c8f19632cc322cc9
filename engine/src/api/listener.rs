//! Serving a router on a TCP listener with the timeouts `axum::serve` does not offer.
//!
//! Each connection is served by hyper's HTTP/1 and HTTP/2 server. A client that does not send a
//! request's headers within `header_read_timeout` has its connection closed (slow-header
//! attacks hold no connection past it); body time limits are applied by the routes
//! (`server.body_read_timeout`). On shutdown, the listener stops accepting and open
//! connections finish their current request.

use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Time limits of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    /// Longest time to receive a request's line and headers.
    pub header_read: Duration,
}

/// Serves `router` on `listener` until `shutdown`, then waits for open connections to finish
/// their requests. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: HttpTimeouts,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // e.g. out of file descriptors: wait for connections to close
                    tracing::warn!(cause = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = router.clone().map_request(move |mut request: Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(cause = %err, peer = %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
