//! Release health and cron monitors over the real router: sessions counted once by their final
//! status in `release_health`, check-ins and their monitors, and the `missed` and `timeout`
//! check-ins the monitor checker adds at a fixed "now".

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::{Harness, harness};

fn envelope(items: &[(&str, Value)]) -> String {
    let mut envelope = "{}\n".to_owned();
    for (ty, payload) in items {
        envelope.push_str(&format!("{{\"type\":\"{ty}\"}}\n{payload}\n"));
    }
    envelope
}

fn session(sid: &str, did: &str, init: bool, status: &str, started: &str) -> (&'static str, Value) {
    (
        "session",
        json!({"sid": sid, "did": did, "init": init, "status": status, "started": started,
               "timestamp": started, "errors": 0,
               "attrs": {"release": "shop@1.0", "environment": "prod"}}),
    )
}

const A: &str = "7c7b6585-f901-4351-bf8d-c7e8c3e7b5a1";
const B: &str = "8c7b6585-f901-4351-bf8d-c7e8c3e7b5a2";

#[tokio::test]
async fn release_health_counts_each_session_once_by_its_final_status() {
    let h = harness().await;
    let started = "2026-12-05T10:15:00Z";
    // session A: started, then exited; session B (another user): started, an error, crashed
    let items = [
        session(A, "ann", true, "ok", started),
        session(A, "ann", false, "exited", started),
        session(B, "bo", true, "ok", started),
        session(B, "bo", false, "crashed", started),
        (
            "session",
            json!({"sid": "not a uuid", "started": started,
                           "attrs": {"release": "shop@1.0"}}),
        ),
        (
            "session",
            json!({"sid": A, "started": started, "status": "sleeping",
                           "attrs": {"release": "shop@1.0"}}),
        ),
    ];
    let reply = h.envelope(envelope(&items)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM sessions").await,
        json!([{"n": 4}]),
        "the two malformed updates are skipped alone"
    );
    let health = "SELECT release, environment, sessions, crashed, crash_free_sessions, users, \
                  crashed_users, crash_free_users FROM release_health";
    assert_eq!(
        h.sql(health).await,
        json!([{"release": "shop@1.0", "environment": "prod", "sessions": 2, "crashed": 1,
                "crash_free_sessions": 0.5, "users": 2, "crashed_users": 1,
                "crash_free_users": 0.5}])
    );

    // aggregates of a server SDK: 3 sessions in one bucket, one of them crashed, one user more
    let aggregate = (
        "sessions",
        json!({"attrs": {"release": "shop@1.0", "environment": "prod"},
               "aggregates": [{"started": "2026-12-05T10:16:00Z", "did": "cy", "exited": 1,
                               "errored": 1, "crashed": 1}]}),
    );
    let reply = h.envelope(envelope(&[aggregate])).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let expected = json!([{"release": "shop@1.0", "environment": "prod", "sessions": 5,
                           "crashed": 2, "crash_free_sessions": 0.6, "users": 3,
                           "crashed_users": 2, "crash_free_users": 1.0 - 2.0 / 3.0}]);
    assert_eq!(h.sql(health).await, expected);
    let hourly = h
        .sql(
            "SELECT CAST(hour AS VARCHAR) AS hour, sessions, crashed, errored \
             FROM release_health_hourly",
        )
        .await;
    assert_eq!(
        hourly,
        json!([{"hour": "2026-12-05T10:00:00Z", "sessions": 5, "crashed": 2, "errored": 1}])
    );

    // the same after the rows moved to Parquet
    h.node.flush().await.unwrap();
    assert_eq!(h.sql(health).await, expected);
}

fn check_in(id: &str, status: &str, config: Option<Value>) -> (&'static str, Value) {
    let mut payload = json!({"check_in_id": id, "monitor_slug": "Nightly Report",
                             "status": status, "environment": "prod", "release": "shop@1.0"});
    if let Some(config) = config {
        payload["monitor_config"] = config;
    }
    ("check_in", payload)
}

const RUN: &str = "83a7c03e-d1ab-4a2e-9f0c-2c4f6f1b8a11";

async fn check(h: &Harness, now: DateTime<Utc>) -> crate::monitors::Report {
    crate::monitors::check(&h.node, now).await.unwrap()
}

#[tokio::test]
async fn a_monitor_is_upserted_by_its_check_ins_and_its_missed_and_timed_out_runs_are_added() {
    let h = harness().await;
    // hourly, at the minute half an hour from now: the run's timeout (20 minutes) comes before
    // the next expected run's margin ends, whatever the time the test runs at
    let minute = (chrono::Timelike::minute(&Utc::now()) + 30) % 60;
    let schedule = format!("{minute} * * * *");
    let config = json!({"schedule": {"type": "crontab", "value": schedule},
                        "checkin_margin": 5, "max_runtime": 20});
    let items = [
        check_in(RUN, "in_progress", Some(config)),
        check_in(RUN, "paused", None),
        (
            "check_in",
            json!({"check_in_id": RUN, "monitor_slug": "x", "status": "ok",
                   "monitor_config": {"schedule": {"type": "crontab", "value": "* * *"}}}),
        ),
    ];
    let reply = h.envelope(envelope(&items)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rows = h
        .sql("SELECT monitor_slug, status, synthetic FROM check_ins")
        .await;
    assert_eq!(
        rows,
        json!([{"monitor_slug": "nightly-report", "status": "in_progress", "synthetic": false}]),
        "an unknown status and a bad crontab are skipped"
    );
    let received: DateTime<Utc> = {
        let v = h
            .sql("SELECT CAST(received AS BIGINT) AS ms FROM check_ins")
            .await;
        DateTime::from_timestamp_millis(v[0]["ms"].as_i64().unwrap()).unwrap()
    };

    let report = check(&h, received).await;
    assert_eq!((report.read, report.added.len()), (1, 0));
    let monitors = h
        .sql(
            "SELECT slug, status, schedule_type, schedule, checkin_margin, max_runtime, \
             in_progress, last_check_in = (SELECT max(timestamp) FROM check_ins) AS last \
             FROM monitors",
        )
        .await;
    assert_eq!(
        monitors,
        json!([{"slug": "nightly-report", "status": "in_progress", "schedule_type": "crontab",
                "schedule": schedule, "checkin_margin": 5, "max_runtime": 20,
                "in_progress": 1, "last": true}])
    );

    // 20 minutes later (and the moment a row may take to arrive) the run has not closed: a
    // timeout at its deadline; the start, read again from before the cursor, is not applied again
    let settle = crate::monitors::SETTLE;
    let report = check(
        &h,
        received + Duration::minutes(20) - Duration::milliseconds(1),
    )
    .await;
    assert_eq!(
        (report.read, report.added.len()),
        (0, 0),
        "{:?}",
        report.added
    );
    let report = check(&h, received + Duration::minutes(20) + settle).await;
    assert_eq!(
        report.read, 0,
        "read again from before the cursor, applied once"
    );
    assert_eq!(report.added.len(), 1, "{:?}", report.added);
    let deadline = received + Duration::minutes(20);
    let timeout = h
        .sql(
            "SELECT status, CAST(timestamp AS BIGINT) AS at, duration, environment, synthetic \
             FROM check_ins WHERE synthetic",
        )
        .await;
    assert_eq!(
        timeout,
        json!([{"status": "timeout", "at": deadline.timestamp_millis(), "duration": 1200.0,
                "environment": "prod", "synthetic": true}])
    );

    // nothing reported for the next expected run: missed at its time, once
    let next_hour = {
        let v = h
            .sql("SELECT CAST(next_expected AS BIGINT) AS ms FROM monitors")
            .await;
        DateTime::from_timestamp_millis(v[0]["ms"].as_i64().unwrap()).unwrap()
    };
    let ahead = next_hour - received;
    assert!(
        ahead > Duration::minutes(28) && ahead <= Duration::minutes(31),
        "{next_hour} after {received}"
    );
    assert_eq!(chrono::Timelike::minute(&next_hour), minute);
    assert!(
        check(&h, next_hour + Duration::minutes(4) + settle)
            .await
            .added
            .is_empty()
    );
    let report = check(&h, next_hour + Duration::minutes(5) + settle).await;
    assert_eq!(report.added.len(), 1, "{:?}", report.added);
    assert!(
        check(&h, next_hour + Duration::minutes(6))
            .await
            .added
            .is_empty()
    );
    let missed = h
        .sql(
            "SELECT status, CAST(timestamp AS BIGINT) AS at, CAST(expected_time AS BIGINT) AS expected \
             FROM check_ins WHERE status = 'missed'",
        )
        .await;
    let ms = next_hour.timestamp_millis();
    assert_eq!(
        missed,
        json!([{"status": "missed", "at": ms, "expected": ms}])
    );
    let state = h
        .sql("SELECT status, CAST(next_expected AS BIGINT) AS next FROM monitors")
        .await;
    assert_eq!(
        state,
        json!([{"status": "missed", "next": (next_hour + Duration::hours(1)).timestamp_millis()}])
    );

    // the added rows are in the WAL: they survive a restart
    let config = h.node.config.clone();
    let super::Harness {
        _dir: dir,
        node,
        router,
    } = h;
    drop(router);
    drop(node);
    let node = std::sync::Arc::new(crate::node::Node::open(config).await.unwrap());
    let out = node
        .query
        .run(
            &crate::query::ProjectFilter::All,
            "SELECT count(*) AS n FROM check_ins WHERE synthetic",
        )
        .await
        .unwrap();
    let n = datafusion::arrow::array::AsArray::as_primitive::<
        datafusion::arrow::datatypes::Int64Type,
    >(out.batches[0].column(0))
    .value(0);
    assert_eq!(n, 2);
    drop(node);
    drop(dir);
}

#[tokio::test]
async fn a_job_without_an_sdk_checks_in_over_http() {
    use axum::body::Body;
    use axum::http::{Method, Request};

    let h = harness().await;
    let call = |method: Method, uri: String, auth: bool, body: &str| {
        let mut request = Request::builder().method(method).uri(uri);
        if auth {
            request = request.header("x-sentry-auth", super::auth());
        }
        request.body(Body::from(body.to_owned())).unwrap()
    };
    let with_key = |query: &str| format!("/api/1/cron/db-backup/{}/?{query}", super::KEY);

    // `curl .../cron/db-backup/<key>/?status=in_progress` at the start of the job
    let reply = h
        .send(call(
            Method::GET,
            with_key("status=in_progress&environment=prod"),
            false,
            "",
        ))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body, Value::String(String::new()), "no body");
    let report = check(&h, Utc::now()).await;
    assert_eq!(
        report.read, 0,
        "no monitor yet: the start waits for its config"
    );

    // the end, posted with the key in the header and the monitor's schedule in the body
    let config = r#"{"monitor_config": {"schedule": {"type": "interval", "value": 1, "unit": "day"},
                     "max_runtime": 30}}"#;
    let reply = h
        .send(call(
            Method::POST,
            "/api/1/cron/db-backup/?status=ok&duration=42".into(),
            true,
            config,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let rows = h
        .sql(
            "SELECT monitor_slug, status, duration, environment, check_in_id = '00000000000000000000000000000000' AS closes_latest \
             FROM check_ins ORDER BY timestamp",
        )
        .await;
    assert_eq!(
        rows,
        json!([
            {"monitor_slug": "db-backup", "status": "in_progress", "duration": null,
             "environment": "prod", "closes_latest": false},
            {"monitor_slug": "db-backup", "status": "ok", "duration": 42.0, "environment": null,
             "closes_latest": true}
        ])
    );
    // the end brought the monitor: the start is applied, then the end closes the run it
    // opened, so nothing times out
    let report = check(&h, Utc::now()).await;
    assert_eq!(report.read, 2, "the start and the end");
    let monitors = h
        .sql("SELECT slug, status, schedule_type, in_progress FROM monitors")
        .await;
    assert_eq!(
        monitors,
        json!([{"slug": "db-backup", "status": "ok", "schedule_type": "interval", "in_progress": 0}])
    );
    let report = check(&h, Utc::now() + Duration::hours(1)).await;
    assert!(report.added.is_empty(), "{:?}", report.added);

    // refusals name the problem; nothing is stored for them
    let cases = [
        (with_key("status=done"), StatusCode::BAD_REQUEST, "`status`"),
        (
            with_key("status=ok&duration=soon"),
            StatusCode::BAD_REQUEST,
            "`duration`",
        ),
        (
            "/api/1/cron/db-backup/ffffffffffffffffffffffffffffffff/?status=ok".into(),
            StatusCode::UNAUTHORIZED,
            "",
        ),
        (
            "/api/1/cron/db-backup/?status=ok".into(),
            StatusCode::UNAUTHORIZED,
            "",
        ),
    ];
    for (uri, status, named) in cases {
        let reply = h.send(call(Method::GET, uri.clone(), false, "")).await;
        assert_eq!(reply.status, status, "{uri}: {:?}", reply.body);
        assert!(
            reply.body.to_string().contains(named),
            "{uri}: {:?}",
            reply.body
        );
    }
    let rows = h.sql("SELECT count(*) AS n FROM check_ins").await;
    assert_eq!(rows, json!([{"n": 2}]));
}

/// Logs a check-in as ingest does, with the `received` time given (the moment ingest stamped
/// it, which may come before rows that were logged earlier).
async fn log_check_in(h: &Harness, payload: Value, received: DateTime<Utc>) {
    use crate::items::{ItemBatch, RowContext, check_ins};
    let rows = check_ins::rows(
        payload.to_string().as_bytes(),
        RowContext {
            project_id: 1,
            project: "shop",
            received,
            scrubber: None,
        },
    )
    .unwrap();
    let mut data = Vec::new();
    for row in &rows {
        crate::wal::encode(&mut data, row.wal_fields("shop"));
    }
    let batch = check_ins::TABLE
        .decode(rows.iter().map(|r| r.json.as_slice()))
        .unwrap();
    let logged = crate::wal::Logged {
        events: Vec::new(),
        items: vec![ItemBatch {
            table: &check_ins::TABLE,
            batch,
        }],
    };
    h.node.wal.append(data, logged).await.unwrap();
}

#[tokio::test]
async fn a_check_in_stamped_before_one_already_read_is_still_applied_once() {
    let h = harness().await;
    let config = json!({"schedule": {"type": "interval", "value": 1, "unit": "hour"},
                        "max_runtime": 5});
    let received = Utc::now();
    // the start and the end of a short run, sent together: the start was stamped first but
    // reached the table after the checker had read the end
    let end = json!({"check_in_id": RUN, "monitor_slug": "sync", "status": "error",
                     "monitor_config": config});
    log_check_in(&h, end, received).await;
    let report = check(&h, received).await;
    assert_eq!(report.read, 1);
    let start = json!({"check_in_id": RUN, "monitor_slug": "sync", "status": "in_progress"});
    log_check_in(&h, start, received - Duration::milliseconds(40)).await;
    let report = check(&h, received + Duration::seconds(1)).await;
    assert_eq!(
        report.read, 1,
        "the start is read although stamped before the cursor"
    );
    let report = check(&h, received + Duration::seconds(2)).await;
    assert_eq!(report.read, 0, "and applied once");
    let monitors = h
        .sql("SELECT slug, status, in_progress FROM monitors")
        .await;
    assert_eq!(
        monitors,
        json!([{"slug": "sync", "status": "error", "in_progress": 0}])
    );
    // the run ended: it does not time out
    let report = check(&h, received + Duration::minutes(10)).await;
    assert!(report.added.is_empty(), "{:?}", report.added);
}

#[tokio::test]
async fn the_end_of_a_run_received_before_the_start_that_brings_its_monitor_counts() {
    let h = harness().await;
    let config = json!({"schedule": {"type": "interval", "value": 30, "unit": "minute"}});
    let received = Utc::now();
    // `withMonitor` of the Node SDK: the start brings the config, the end (sent without
    // waiting) does not, and was received 3 ms earlier
    let start = |id: &str| {
        json!({"check_in_id": id, "monitor_slug": "cleanup", "status": "in_progress",
               "monitor_config": config})
    };
    let end = |id: &str| json!({"check_in_id": id, "monitor_slug": "cleanup", "status": "error"});
    log_check_in(&h, end(RUN), received).await;
    log_check_in(&h, start(RUN), received + Duration::milliseconds(3)).await;
    let report = check(&h, received + Duration::seconds(1)).await;
    assert_eq!(report.read, 2, "both applied in one run");
    let state = "SELECT slug, status, in_progress, \
                 CAST(last_check_in AS BIGINT) AS last FROM monitors";
    // the monitor with no run open, its last check-in's status and time
    let ended = |status: &str, last: DateTime<Utc>| {
        json!([{"slug": "cleanup", "status": status, "in_progress": 0,
                "last": last.timestamp_millis()}])
    };
    assert_eq!(
        h.sql(state).await,
        ended("error", received),
        "the run ended"
    );

    // a second run whose end the checker reads before its start has arrived at all
    const NEXT: &str = "93a7c03e-d1ab-4a2e-9f0c-2c4f6f1b8a12";
    let later = received + Duration::minutes(30);
    log_check_in(&h, end(NEXT), later).await;
    let report = check(&h, later + Duration::milliseconds(2)).await;
    assert_eq!(report.read, 1);
    log_check_in(&h, start(NEXT), later + Duration::milliseconds(4)).await;
    let report = check(&h, later + Duration::seconds(1)).await;
    assert_eq!(report.read, 1, "the start");
    assert_eq!(
        h.sql(state).await,
        ended("error", later),
        "the start of an ended run changes nothing"
    );

    // a start read first, and an end stamped before it that arrives after the checker ran
    const THIRD: &str = "a3a7c03e-d1ab-4a2e-9f0c-2c4f6f1b8a13";
    let third = received + Duration::minutes(60);
    log_check_in(&h, start(THIRD), third).await;
    assert_eq!(check(&h, third + Duration::milliseconds(1)).await.read, 1);
    log_check_in(
        &h,
        json!({"check_in_id": THIRD, "monitor_slug": "cleanup", "status": "ok"}),
        third - Duration::milliseconds(2),
    )
    .await;
    assert_eq!(check(&h, third + Duration::seconds(1)).await.read, 1);
    assert_eq!(
        h.sql(state).await,
        ended("ok", third),
        "the end counts from the start it ends"
    );
    let report = check(&h, third + Duration::minutes(40)).await;
    assert!(
        report.added.iter().all(|a| a.status == "missed"),
        "no run times out: {:?}",
        report.added
    );
}

#[tokio::test]
async fn a_project_gets_no_more_monitors_than_its_limit_and_keeps_its_check_ins() {
    let h = super::harness_with(|c| c.limits.max_monitors_per_project = 2).await;
    let every_hour = json!({"schedule": {"type": "crontab", "value": "0 * * * *"}});
    let job = |slug: &str, status: &str| {
        (
            "check_in",
            json!({"check_in_id": uuid::Uuid::new_v4().to_string(), "monitor_slug": slug,
                   "status": status, "monitor_config": every_hour}),
        )
    };
    let reply = h
        .envelope(envelope(&[
            job("backup", "ok"),
            job("billing", "ok"),
            job("cleanup", "ok"),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    check(&h, Utc::now() + Duration::seconds(5)).await;
    assert_eq!(
        h.sql("SELECT slug FROM monitors ORDER BY slug").await,
        json!([{"slug": "backup"}, {"slug": "billing"}]),
        "the third monitor is over the limit"
    );
    // its check-in is kept as a row all the same, and the monitors within the limit go on
    let reply = h.envelope(envelope(&[job("backup", "error")])).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    check(&h, Utc::now() + Duration::seconds(5)).await;
    assert_eq!(
        h.sql("SELECT slug, status FROM monitors ORDER BY slug")
            .await,
        json!([{"slug": "backup", "status": "error"}, {"slug": "billing", "status": "ok"}])
    );
    assert_eq!(
        h.sql("SELECT monitor_slug, count(*) AS n FROM check_ins GROUP BY monitor_slug ORDER BY monitor_slug")
            .await,
        json!([{"monitor_slug": "backup", "n": 2}, {"monitor_slug": "billing", "n": 1},
               {"monitor_slug": "cleanup", "n": 1}])
    );
}
