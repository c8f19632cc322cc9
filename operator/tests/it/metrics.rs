//! The operator's `/metrics` endpoint, as Prometheus scrapes it.

use std::sync::Arc;

use faultline_operator::metrics::{Metrics, router};
use tower::ServiceExt;

#[tokio::test]
async fn metrics_endpoint_serves_the_counters() {
    let metrics = Arc::new(Metrics::default());
    metrics.reconciles.inc();
    metrics.record_error("apply");
    let response = router(Arc::clone(&metrics))
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("faultline_operator_reconciles_total 1"),
        "{text}"
    );
    assert!(
        text.contains("faultline_operator_reconcile_errors_total{error=\"apply\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE faultline_operator_leader gauge"),
        "{text}"
    );
}
