//! `GET /metrics`: the engine's Prometheus metrics (see [`crate::metrics`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::metrics::{self, Levels};
use crate::node::Node;

pub(super) async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let (buffer_rows, buffer_bytes) = node.buffer.levels();
    let text = metrics::render(Levels {
        buffer_rows,
        buffer_bytes,
        wal_unflushed_bytes: node.wal.unflushed_bytes(),
    });
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}
