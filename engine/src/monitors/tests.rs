//! The monitor checker's rules with a fixed "now": what a check-in does to its monitor, and
//! which `missed` and `timeout` check-ins are due when.

use serde_json::json;

use super::*;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

const RUN: &str = "83a7c03ed1ab4a2e9f0c2c4f6f1b8a11";

fn seen(status: &str, id: &str, time: &str, config: Option<Value>) -> SeenCheckIn {
    let ms = at(time).timestamp_millis();
    SeenCheckIn {
        project_id: 1,
        project: "shop".into(),
        monitor_slug: "nightly".into(),
        check_in_id: id.into(),
        status: status.into(),
        at_ms: ms,
        received_ms: ms,
        environment: Some("prod".into()),
        release: Some("shop@1.0".into()),
        monitor_config: config.map(|c| c.to_string()),
    }
}

fn hourly() -> Option<Value> {
    Some(
        json!({"schedule": {"type": "crontab", "value": "0 * * * *"},
                "checkin_margin": 5, "max_runtime": 10}),
    )
}

fn monitor(monitors: &Monitors) -> &Monitor {
    monitors.get(&(1, "nightly".to_owned())).unwrap()
}

#[test]
fn a_check_in_without_a_config_makes_no_monitor() {
    let mut monitors = Monitors::new();
    let now = at("2026-12-05T10:00:00Z");
    assert!(!apply(
        &mut monitors,
        &seen("ok", RUN, "2026-12-05T10:00:00Z", None),
        now
    ));
    assert!(monitors.is_empty());
}

#[test]
fn a_check_in_with_a_config_upserts_its_monitor_and_sets_the_next_expected_time() {
    let mut monitors = Monitors::new();
    let now = at("2026-12-05T10:00:30Z");
    assert!(apply(
        &mut monitors,
        &seen("ok", RUN, "2026-12-05T10:00:10Z", hourly()),
        now
    ));
    let m = monitor(&monitors);
    assert_eq!(m.status, "ok");
    assert_eq!(m.last_check_in, Some(at("2026-12-05T10:00:10Z")));
    assert_eq!(m.next_expected, Some(at("2026-12-05T11:00:00Z")));
    // the same check-in again changes nothing
    assert!(!apply(
        &mut monitors,
        &seen("ok", RUN, "2026-12-05T10:00:10Z", hourly()),
        now
    ));
    // a later config replaces the schedule
    let daily = json!({"schedule": {"type": "crontab", "value": "0 3 * * *"}});
    assert!(apply(
        &mut monitors,
        &seen(
            "ok",
            "93a7c03ed1ab4a2e9f0c2c4f6f1b8a11",
            "2026-12-05T10:30:00Z",
            Some(daily)
        ),
        now
    ));
    assert_eq!(
        monitor(&monitors).next_expected,
        Some(at("2026-12-06T03:00:00Z"))
    );
}

#[test]
fn a_missed_run_is_added_at_its_expected_time_once_the_margin_has_passed() {
    let mut monitors = Monitors::new();
    apply(
        &mut monitors,
        &seen("ok", RUN, "2026-12-05T10:00:10Z", hourly()),
        at("2026-12-05T10:00:10Z"),
    );
    let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
    // 11:00 expected, 5 minutes of margin: nothing due at 11:04:59
    assert!(due(m, at("2026-12-05T11:04:59Z")).is_empty());
    let added = due(m, at("2026-12-05T11:05:00Z"));
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].status, "missed");
    assert_eq!(added[0].at, at("2026-12-05T11:00:00Z"));
    assert_eq!(added[0].expected, Some(at("2026-12-05T11:00:00Z")));
    assert_eq!(added[0].environment.as_deref(), Some("prod"));
    assert_eq!(m.status, "missed");
    assert_eq!(m.next_expected, Some(at("2026-12-05T12:00:00Z")));
    // not added twice
    assert!(due(m, at("2026-12-05T11:30:00Z")).is_empty());
    // three hours later: 12:00, 13:00 and 14:00 were missed (15:00 is still within its margin)
    let added = due(m, at("2026-12-05T15:04:00Z"));
    let times: Vec<DateTime<Utc>> = added.iter().map(|a| a.at).collect();
    assert_eq!(
        times,
        [
            at("2026-12-05T12:00:00Z"),
            at("2026-12-05T13:00:00Z"),
            at("2026-12-05T14:00:00Z")
        ]
    );
    // a late check-in of a run already called missed does not bring the missed one back
    apply(
        &mut monitors,
        &seen(
            "ok",
            "a3a7c03ed1ab4a2e9f0c2c4f6f1b8a11",
            "2026-12-05T10:59:00Z",
            None,
        ),
        at("2026-12-05T15:04:00Z"),
    );
    let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
    assert_eq!(m.next_expected, Some(at("2026-12-05T15:00:00Z")));
    assert!(due(m, at("2026-12-05T15:04:59Z")).is_empty());
}

#[test]
fn a_check_in_within_the_margin_is_not_missed() {
    let mut monitors = Monitors::new();
    apply(
        &mut monitors,
        &seen("ok", RUN, "2026-12-05T10:00:10Z", hourly()),
        at("2026-12-05T10:00:10Z"),
    );
    // the 11:00 run reports at 11:04, within its margin
    apply(
        &mut monitors,
        &seen(
            "in_progress",
            "b3a7c03ed1ab4a2e9f0c2c4f6f1b8a11",
            "2026-12-05T11:04:00Z",
            None,
        ),
        at("2026-12-05T11:04:00Z"),
    );
    let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
    assert_eq!(m.status, "in_progress");
    assert!(due(m, at("2026-12-05T11:10:00Z")).is_empty());
    assert_eq!(m.next_expected, Some(at("2026-12-05T12:00:00Z")));
}

#[test]
fn a_run_not_closed_within_max_runtime_times_out_at_its_deadline() {
    let mut monitors = Monitors::new();
    apply(
        &mut monitors,
        &seen("in_progress", RUN, "2026-12-05T10:00:00Z", hourly()),
        at("2026-12-05T10:00:00Z"),
    );
    let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
    assert_eq!(m.open.len(), 1);
    // max_runtime 10 minutes
    assert!(due(m, at("2026-12-05T10:09:59Z")).is_empty());
    let added = due(m, at("2026-12-05T10:10:00Z"));
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].status, "timeout");
    assert_eq!(added[0].at, at("2026-12-05T10:10:00Z"));
    assert_eq!(added[0].check_in_id.simple().to_string(), RUN);
    assert_eq!(added[0].duration, Some(600.0));
    assert_eq!(m.status, "timeout");
    assert!(m.open.is_empty());
    // a replay of the opening check-in does not open the run again
    apply(
        &mut monitors,
        &seen("in_progress", RUN, "2026-12-05T10:00:00Z", None),
        at("2026-12-05T10:11:00Z"),
    );
    assert!(monitor(&monitors).open.is_empty());
}

#[test]
fn a_check_in_with_the_empty_id_closes_the_latest_open_run() {
    let mut monitors = Monitors::new();
    let first = "c3a7c03ed1ab4a2e9f0c2c4f6f1b8a11";
    apply(
        &mut monitors,
        &seen("in_progress", first, "2026-12-05T10:00:00Z", hourly()),
        at("2026-12-05T10:00:00Z"),
    );
    apply(
        &mut monitors,
        &seen("in_progress", RUN, "2026-12-05T10:01:00Z", None),
        at("2026-12-05T10:01:00Z"),
    );
    // `curl ...?status=ok` without a check-in id, as the HTTP endpoint stores it
    apply(
        &mut monitors,
        &seen("ok", NIL_ID, "2026-12-05T10:02:00Z", None),
        at("2026-12-05T10:02:00Z"),
    );
    let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
    assert_eq!(m.status, "ok");
    let open: Vec<&str> = m.open.iter().map(|r| r.check_in_id.as_str()).collect();
    assert_eq!(
        open,
        [first],
        "the latest run is closed, the earlier one stays open"
    );
    let added = due(m, at("2026-12-05T10:10:00Z"));
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].check_in_id.simple().to_string(), first);
    // with no run open, it is a run of its own and closes nothing
    apply(
        &mut monitors,
        &seen("error", NIL_ID, "2026-12-05T10:20:00Z", None),
        at("2026-12-05T10:20:00Z"),
    );
    let m = monitor(&monitors);
    assert_eq!(m.status, "error");
    assert!(m.open.is_empty());
}

#[test]
fn a_closed_run_does_not_time_out_whatever_order_its_check_ins_come_in() {
    for order in [["in_progress", "ok"], ["ok", "in_progress"]] {
        let mut monitors = Monitors::new();
        let times = ["2026-12-05T10:00:00Z", "2026-12-05T10:03:00Z"];
        for (status, time) in order.iter().zip(if order[0] == "ok" {
            [times[1], times[0]]
        } else {
            times
        }) {
            apply(
                &mut monitors,
                &seen(status, RUN, time, hourly()),
                at("2026-12-05T10:03:00Z"),
            );
        }
        let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
        assert!(m.open.is_empty(), "{order:?}");
        assert_eq!(m.status, "ok", "{order:?}");
        assert!(due(m, at("2026-12-05T10:30:00Z")).is_empty(), "{order:?}");
    }
}

#[test]
fn a_long_backlog_is_added_a_bounded_number_at_a_time() {
    let mut monitors = Monitors::new();
    let every_minute = json!({"schedule": {"type": "interval", "value": 1, "unit": "minute"}});
    apply(
        &mut monitors,
        &seen("ok", RUN, "2026-12-05T00:00:00Z", Some(every_minute)),
        at("2026-12-05T00:00:00Z"),
    );
    let m = monitors.get_mut(&(1, "nightly".to_owned())).unwrap();
    let first = due(m, at("2026-12-06T00:00:00Z"));
    assert_eq!(first.len(), MAX_MISSED_PER_RUN);
    let second = due(m, at("2026-12-06T00:00:00Z"));
    assert_eq!(second.len(), MAX_MISSED_PER_RUN);
    assert_eq!(
        second[0].at,
        first[MAX_MISSED_PER_RUN - 1].at + chrono::Duration::minutes(1),
        "the next run continues where the last stopped"
    );
    assert_ne!(first[0].check_in_id, first[1].check_in_id);
}

#[test]
fn a_run_that_starts_and_ends_in_the_same_millisecond_ends_whatever_the_order() {
    for order in [["in_progress", "error"], ["error", "in_progress"]] {
        let mut monitors = Monitors::new();
        for status in order {
            apply(
                &mut monitors,
                &seen(status, RUN, "2026-12-05T10:00:00Z", hourly()),
                at("2026-12-05T10:00:00Z"),
            );
        }
        let m = monitor(&monitors);
        assert_eq!(m.status, "error", "{order:?}");
        assert_eq!(
            m.last_check_in_status.as_deref(),
            Some("error"),
            "{order:?}"
        );
        assert!(m.open.is_empty(), "{order:?}");
    }
}

#[test]
fn the_start_of_a_run_that_arrives_after_its_end_changes_nothing() {
    let mut monitors = Monitors::new();
    apply(
        &mut monitors,
        &seen("error", RUN, "2026-12-05T10:00:00.100Z", hourly()),
        at("2026-12-05T10:00:01Z"),
    );
    apply(
        &mut monitors,
        &seen("in_progress", RUN, "2026-12-05T10:00:00.200Z", hourly()),
        at("2026-12-05T10:00:01Z"),
    );
    let m = monitor(&monitors);
    assert_eq!(m.status, "error");
    assert_eq!(m.last_check_in_status.as_deref(), Some("error"));
    assert!(m.open.is_empty());
}
