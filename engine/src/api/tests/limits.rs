//! Query limits over HTTP, at their boundaries: SQL nested deeper than the limit is refused
//! with a 400 before planning (and just under it runs), functions whose output explodes and
//! results beyond the memory pool are stopped with errors naming the limit, long functions end
//! at the time limit, and too many concurrent queries are told to retry.

use axum::http::StatusCode;
use serde_json::json;

use super::{Harness, harness_with};

/// A node with `edit` applied, `messages` stored in project 1, and a read token.
async fn node_with(
    edit: impl FnOnce(&mut faultline_config::Config),
    messages: impl IntoIterator<Item = String>,
) -> (Harness, String) {
    let h = harness_with(edit).await;
    for message in messages {
        let reply = h.store(json!({ "message": message }).to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    let token = h.token(&["events:read"], None).await;
    (h, token)
}

fn detail(reply: &super::Reply) -> &str {
    reply.body["detail"].as_str().unwrap_or_default()
}

/// `SELECT <term> <op> <term> ... AS v` with `n` terms.
fn chain(term: &str, op: &str, n: usize) -> String {
    format!("SELECT {} AS v", vec![term; n].join(op))
}

#[tokio::test]
async fn deep_sql_is_refused_with_a_400_naming_the_limit() {
    let (h, token) = node_with(|_| {}, ["m".to_owned()]).await;
    assert_eq!(h.node.config.query.max_expression_depth, 500);
    let refused = [
        chain("1", "+", 5000),
        chain("'a'", " || ", 5000),
        chain("true", " AND ", 5000),
        format!(
            "SELECT count(*) AS v FROM events WHERE {}",
            vec!["message = 'x'"; 5000].join(" OR ")
        ),
        // One term over: the query, 500 additions and the innermost literal.
        chain("1", "+", 500),
    ];
    for sql in refused {
        let reply = h.sql_as(&token, &sql).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
        assert_eq!(
            detail(&reply),
            "the SQL nests expressions or subqueries more than query.max_expression_depth \
             (500 levels) deep; split long chains of operators (for example with IN lists)"
        );
        let next = h.sql_as(&token, "SELECT 1 AS one").await;
        assert_eq!(next.body, json!([{ "one": 1 }]));
    }
    // Just under the limit, every kind of chain plans and runs.
    let reply = h.sql_as(&token, &chain("1", "+", 499)).await;
    assert_eq!(reply.body, json!([{ "v": 499 }]));
    let reply = h.sql_as(&token, &chain("'a'", " || ", 499)).await;
    assert_eq!(reply.body, json!([{ "v": "a".repeat(499) }]));
    let reply = h
        .sql_as(
            &token,
            &format!(
                "SELECT count(*) AS v FROM events WHERE {}",
                vec!["message = 'm'"; 498].join(" OR ")
            ),
        )
        .await;
    assert_eq!(reply.body, json!([{ "v": 1 }]));
    let reply = h.sql_as(&token, &chain("true", " AND ", 499)).await;
    assert_eq!(reply.body, json!([{ "v": true }]));
}

#[tokio::test]
async fn sql_longer_than_the_limit_is_refused_before_parsing() {
    let (h, token) = node_with(|_| {}, []).await;
    let limit = h.node.config.query.max_sql_length;
    // The longest chain the default length allows: refused for its depth, without a crash.
    let longest = chain("1", "+", (limit - 20) / 2);
    assert!(longest.len() <= limit);
    let reply = h.sql_as(&token, &longest).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(detail(&reply).contains("query.max_expression_depth"));
    let padded = format!("SELECT 1 AS v --{}", "x".repeat(limit));
    let reply = h.sql_as(&token, &padded).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(
        detail(&reply),
        format!(
            "the SQL text is {} bytes, more than query.max_sql_length ({limit} bytes)",
            padded.len()
        )
    );
    let reply = h.sql_as(&token, &padded[..limit]).await;
    assert_eq!(reply.body, json!([{ "v": 1 }]));
}

#[tokio::test]
async fn exploding_functions_and_results_stop_at_the_memory_limits() {
    let (h, token) = node_with(
        |c| c.query.memory_limit = faultline_config::ByteSize::mib(1),
        (0..40).map(|i| format!("{i:02} {}", "a".repeat(2000))),
    )
    .await;
    let reply = h
        .sql_as(&token, "SELECT array_resize([1], 400000000, 1) AS v")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    assert_eq!(
        detail(&reply),
        "function array_resize was asked for 400000000 elements per row, more than \
         query.max_function_output (67108864 bytes) allows"
    );
    let reply = h
        .sql_as(
            &token,
            "SELECT cardinality(array_resize([1], 1000, 1)) AS v",
        )
        .await;
    assert_eq!(reply.body, json!([{ "v": 1000 }]));

    // Each level multiplies the length by 10: 40 x 2 KB, 20 KB, ... 200 MB, one level past the
    // 64 MiB cap.
    let nested = (0..6).fold("message".to_owned(), |inner, _| {
        format!("replace({inner}, 'a', 'aaaaaaaaaa')")
    });
    let reply = h
        .sql_as(&token, &format!("SELECT length({nested}) AS v FROM events"))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    assert!(
        detail(&reply).starts_with("function replace produced ")
            && detail(&reply).ends_with("more than query.max_function_output (67108864 bytes)"),
        "{}",
        detail(&reply)
    );

    // 1,600 rows of 4 KB: far under the row limit, over the 1 MiB memory limit.
    let reply = h
        .sql_as(
            &token,
            "SELECT a.message, b.message FROM events a, events b LIMIT 1000000000",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    assert!(
        detail(&reply).starts_with("the query used more than the memory limit of 1048576 bytes"),
        "{}",
        detail(&reply)
    );
    let reply = h
        .sql_as(&token, "SELECT count(*) AS v FROM events a, events b")
        .await;
    assert_eq!(reply.body, json!([{ "v": 1600 }]));
}

#[tokio::test]
async fn quadratic_functions_refuse_values_over_their_cap() {
    // Messages are trimmed at ingest; three of them make a value over the cap.
    let (h, token) = node_with(|_| {}, ["c".repeat(5000)]).await;
    let reply = h
        .sql_as(
            &token,
            "SELECT levenshtein(concat(message, message, message), 'x') AS v FROM events",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    assert_eq!(
        detail(&reply),
        "function levenshtein was given a value of 15000 bytes, more than \
         query.max_quadratic_input (10000 bytes)"
    );
    let reply = h
        .sql_as(
            &token,
            "SELECT levenshtein(substr(concat(message, message), 1, 10000), 'x') AS v \
             FROM events",
        )
        .await;
    assert_eq!(reply.body, json!([{ "v": 10000 }]));
}

#[tokio::test]
async fn long_functions_end_at_the_time_limit() {
    let (h, token) = node_with(
        |c| c.query.timeout = std::time::Duration::from_secs(1),
        (0..30).map(|i| format!("{i:02} {}", "b".repeat(2000))),
    )
    .await;
    // 27,000 distances of 2 KB x 4 KB strings: minutes of work, stopped at the deadline.
    let reply = h
        .sql_as(
            &token,
            "SELECT count(*) AS v FROM events a, events b, events c \
             WHERE levenshtein(a.message, b.message || c.message) > 0",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::REQUEST_TIMEOUT,
        "{:?}",
        reply.body
    );
    assert_eq!(
        reply.body,
        json!({"detail": "the query ran longer than the time limit of 1s"})
    );
    let reply = h.sql_as(&token, "SELECT 1 AS one").await;
    assert_eq!(reply.body, json!([{ "one": 1 }]));
}

#[tokio::test]
async fn queries_beyond_the_concurrency_cap_are_told_to_retry() {
    let (h, token) = node_with(
        |c| {
            c.query.max_concurrent_per_token = 2;
            c.query.timeout = std::time::Duration::from_secs(3);
        },
        (0..30).map(|i| format!("{i:02} {}", "b".repeat(1000))),
    )
    .await;
    let slow = "SELECT count(*) AS v FROM events a, events b, events c \
                WHERE levenshtein(a.message, b.message || c.message) > 0";
    let h = std::sync::Arc::new(h);
    let running: Vec<_> = (0..2)
        .map(|_| {
            let (h, token) = (std::sync::Arc::clone(&h), token.clone());
            tokio::spawn(async move { h.sql_as(&token, slow).await })
        })
        .collect();
    while h.node.query.running() < 2 {
        tokio::task::yield_now().await;
    }
    let reply = h.sql_as(&token, "SELECT 1 AS one").await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert_eq!(
        detail(&reply),
        "too busy, retry shortly: this API token already runs 2 queries, the most \
         query.max_concurrent_per_token allows"
    );
    assert_eq!(reply.headers["retry-after"], "1");
    // Another token has its own share.
    let other = h.token(&["events:read"], None).await;
    let reply = h.sql_as(&other, "SELECT 1 AS one").await;
    assert_eq!(reply.body, json!([{ "one": 1 }]));
    for task in running {
        let reply = task.await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::REQUEST_TIMEOUT,
            "{:?}",
            reply.body
        );
    }
    let reply = h.sql_as(&token, "SELECT 1 AS one").await;
    assert_eq!(reply.body, json!([{ "one": 1 }]));
}
