//! Normalization rules, one behaviour per test, checked on the columns and the stored JSON.

use std::net::IpAddr;

use faultline_protocol::Event;
use faultline_protocol::normalize::{NormalizeContext, NormalizeError, normalize_event};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::fixtures::{ctx, received};

fn normalize(event: Value) -> Event {
    normalize_event(event.to_string().as_bytes(), &ctx()).unwrap()
}

fn stored(event: &Event) -> Value {
    serde_json::from_str(&event.json).unwrap()
}

fn iso(event: &Event) -> String {
    event
        .timestamp
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[test]
fn only_non_json_and_non_objects_are_errors() {
    let err = normalize_event(b"{\"a\": nope}", &ctx()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("event payload is not valid JSON at line 1 column 8: "),
        "{err}"
    );
    assert!(matches!(
        err,
        NormalizeError::Json {
            line: 1,
            column: 8,
            ..
        }
    ));
    for (payload, kind) in [
        (&b"[1,2]"[..], "array"),
        (b"\"x\"", "string"),
        (b"null", "null"),
    ] {
        let err = normalize_event(payload, &ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("event payload is a JSON {kind}, expected an object")
        );
    }
    assert_eq!(normalize(json!({})).title, "<unlabeled event>");
    let with_bom = normalize_event(b"\xef\xbb\xbf{\"message\":\"bom\"}", &ctx()).unwrap();
    assert_eq!(with_bom.title, "bom");
}

#[test]
fn event_ids_in_any_spelling_and_defaults() {
    let id = Uuid::parse_str("9ec79c33ec9942ab8353589fcb2e04dc").unwrap();
    for spelling in [
        "9ec79c33ec9942ab8353589fcb2e04dc",
        "9ec79c33-ec99-42ab-8353-589fcb2e04dc",
        "9EC79C33EC9942AB8353589FCB2E04DC",
    ] {
        let event = normalize(json!({"event_id": spelling}));
        assert_eq!(event.event_id, id, "{spelling}");
        assert_eq!(
            stored(&event)["event_id"],
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
    }
    // missing or invalid: the envelope header's id
    assert_eq!(normalize(json!({})).event_id, ctx().event_id.unwrap());
    assert_eq!(
        normalize(json!({"event_id": "0123456789abcdef"})).event_id,
        ctx().event_id.unwrap()
    );
    // no header id either: a fresh one
    let no_header = NormalizeContext {
        event_id: None,
        ..ctx()
    };
    let a = normalize_event(b"{}", &no_header).unwrap();
    let b = normalize_event(b"{}", &no_header).unwrap();
    assert_ne!(a.event_id, b.event_id);
    assert_ne!(a.event_id, Uuid::nil());
}

#[test]
fn timestamps_in_sdk_forms() {
    let cases = [
        (json!(1716198000.25), "2024-05-20T09:40:00.250000Z"),
        (
            json!("2024-05-20T09:40:00.123456789Z"),
            "2024-05-20T09:40:00.123457Z",
        ),
        (
            json!("2024-05-20T11:40:00+02:00"),
            "2024-05-20T09:40:00.000000Z",
        ),
        (json!("2024-05-20T09:40:00"), "2024-05-20T09:40:00.000000Z"),
    ];
    for (ts, expected) in cases {
        let event = normalize(json!({"timestamp": ts}));
        assert_eq!(iso(&event), expected, "{ts}");
        assert!(stored(&event)["timestamp"].is_number());
    }
}

#[test]
fn missing_old_future_and_invalid_timestamps_become_received() {
    let received = received();
    for ts in [
        Value::Null,
        json!("2020-01-01T00:00:00Z"),
        json!("2099-01-01T00:00:00Z"),
        json!("not a time"),
    ] {
        let event = normalize(json!({"timestamp": ts}));
        assert_eq!(event.timestamp, received, "{ts}");
        assert_eq!(event.received, received);
    }
    let errors = stored(&normalize(json!({"timestamp": "2020-01-01T00:00:00Z"})))["errors"].clone();
    assert_eq!(
        errors,
        json!([{"type": "past_timestamp", "name": "timestamp", "value": "2020-01-01T00:00:00Z"}])
    );
    // received is kept in milliseconds, as the engine stores it
    let precise = NormalizeContext {
        received: "2024-05-20T10:00:00.123456789Z".parse().unwrap(),
        ..ctx()
    };
    assert_eq!(normalize_event(b"{}", &precise).unwrap().received, received);
}

#[test]
fn levels_and_platforms_get_defaults() {
    let event = normalize(json!({}));
    assert_eq!(
        (event.level.as_str(), event.platform.as_str()),
        ("error", "other")
    );
    let event = normalize(json!({"level": "WARN", "platform": "python"}));
    assert_eq!(
        (event.level.as_str(), event.platform.as_str()),
        ("warning", "python")
    );
    assert_eq!(normalize(json!({"level": 50})).level, "fatal");
    assert_eq!(normalize(json!({"level": "critical"})).level, "fatal");
    assert_eq!(
        normalize(json!({"level": "loud", "platform": "cobol"})).level,
        "error"
    );
    assert_eq!(normalize(json!({"platform": "cobol"})).platform, "other");
}

#[test]
fn message_forms() {
    assert_eq!(
        normalize(json!({"message": "plain"})).message.as_deref(),
        Some("plain")
    );
    let event = normalize(json!({"message": {"message": "%s of %s", "params": [3, "four"]}}));
    assert_eq!(event.message.as_deref(), Some("3 of four"));
    assert_eq!(
        stored(&event)["logentry"],
        json!({"message": "%s of %s", "params": [3, "four"], "formatted": "3 of four"})
    );
    let event =
        normalize(json!({"logentry": {"message": "hi %(name)s", "params": {"name": "ann"}}}));
    assert_eq!(event.message.as_deref(), Some("hi ann"));
    let event = normalize(json!({"sentry.interfaces.Message": {"formatted": "legacy"}}));
    assert_eq!(event.message.as_deref(), Some("legacy"));
    assert!(stored(&event).get("sentry.interfaces.Message").is_none());
    // logentry wins over the alias; the alias is not kept
    let event = normalize(json!({"logentry": {"formatted": "a"}, "message": "b"}));
    assert_eq!(event.message.as_deref(), Some("a"));
    assert!(stored(&event).get("message").is_none());
}

#[test]
fn titles_like_sentry() {
    let event = normalize(
        json!({"exception": {"values": [{"type": "ZeroDivisionError", "value": "division by zero"}]}}),
    );
    assert_eq!(event.title, "ZeroDivisionError: division by zero");
    let event = normalize(json!({"exception": [{"value": "ValueError: bad input\nmore"}]}));
    assert_eq!(event.title, "Error: ValueError: bad input");
    let event = normalize(json!({"exception": [{"value": "ValueError: bad input"}]}));
    assert_eq!(
        event.exception_type.as_deref(),
        Some("ValueError"),
        "type parsed from the value"
    );
    assert_eq!(event.title, "ValueError: bad input");
    let event = normalize(json!({"exception": [{"type": "Panic"}]}));
    assert_eq!(event.title, "Panic");
    let long = "x".repeat(300);
    let event = normalize(json!({"message": format!("first line {long}\nsecond")}));
    assert_eq!(event.title.chars().count(), 100);
    assert!(event.title.starts_with("first line xx") && event.title.ends_with("..."));
}

#[test]
fn exception_shapes_and_main_exception() {
    let values = json!([
        {"type": "KeyError", "value": "cause"},
        {"type": "RuntimeError", "value": "effect", "stacktrace": {"frames": [{"function": "f", "module": "m"}]}}
    ]);
    for shape in [
        json!({"values": values}),
        values.clone(),
        json!({"sentry.interfaces.Exception": {"values": values}}),
    ] {
        let event = if shape.get("sentry.interfaces.Exception").is_some() {
            normalize(shape)
        } else {
            normalize(json!({ "exception": shape }))
        };
        assert_eq!(event.exception_type.as_deref(), Some("RuntimeError"));
        assert_eq!(event.exception_value.as_deref(), Some("effect"));
        assert_eq!(event.frame_count, 1);
        assert_eq!(
            stored(&event)["exception"]["values"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(stored(&event)["type"], "error");
    }
    // a single legacy exception object
    let event = normalize(json!({"exception": {"type": "E", "value": "v"}}));
    assert_eq!(event.exception_type.as_deref(), Some("E"));
    // invalid entries are dropped, the event stays
    let event = normalize(json!({"exception": {"values": [{}, 3, {"type": "", "value": ""}]}}));
    assert_eq!(event.exception_type, None);
    assert!(stored(&event).get("exception").is_none());
}

#[test]
fn top_level_stacktrace_moves_into_a_lone_exception_and_threads_fill_in() {
    let frames =
        json!([{"function": "main", "module": "app"}, {"function": "crash", "module": "app.core"}]);
    let event = normalize(json!({"exception": [{"type": "E"}], "stacktrace": {"frames": frames}}));
    assert_eq!(event.frame_count, 2);
    assert_eq!(event.culprit.as_deref(), Some("app.core in crash"));
    let json = stored(&event);
    assert!(json.get("stacktrace").is_none());
    assert_eq!(
        json["exception"]["values"][0]["stacktrace"]["frames"],
        frames
    );

    let event = normalize(json!({
        "exception": {"values": [{"type": "SIGSEGV"}]},
        "threads": [{"id": 1, "stacktrace": {"frames": [{"function": "idle"}]}},
                    {"id": 2, "crashed": true, "stacktrace": {"frames": frames}}]
    }));
    assert_eq!(event.frame_count, 2);
    assert_eq!(event.culprit.as_deref(), Some("app.core in crash"));
}

#[test]
fn frames_keep_in_app_and_culprit_prefers_in_app() {
    let event = normalize(json!({
        "platform": "python",
        "exception": [{"type": "E", "stacktrace": {"frames": [
            {"module": "app.views", "function": "index", "in_app": true, "lineno": "12", "colno": -1},
            {"module": "lib.db", "function": "query", "in_app": "yes"},
            {"module": "lib.db", "function": "execute", "in_app": false, "instruction_addr": 4096}
        ]}}]
    }));
    assert_eq!(event.culprit.as_deref(), Some("app.views in index"));
    let frames = stored(&event)["exception"]["values"][0]["stacktrace"]["frames"].clone();
    assert_eq!(
        frames[0],
        json!({"module": "app.views", "function": "index", "in_app": true})
    );
    assert_eq!(frames[1], json!({"module": "lib.db", "function": "query"}));
    assert_eq!(frames[2]["instruction_addr"], "0x1000");

    let js = normalize(
        json!({"platform": "javascript", "exception": [{"type": "E", "stacktrace": {"frames": [
            {"filename": "app.js", "function": "onClick", "in_app": false}
        ]}}]}),
    );
    assert_eq!(
        js.culprit.as_deref(),
        Some("onClick(app.js)"),
        "no in-app frame: the top one"
    );

    // native frames: the function alone, as Sentry shows it; a frame without one is skipped
    for platform in ["cocoa", "native", "objc"] {
        let native = normalize(json!({"platform": platform, "exception": [{"type": "Crash",
        "stacktrace": {"frames": [
            {"filename": "foo/baz.c", "package": "/foo/bar/baz.dylib", "in_app": true,
             "function": "-[CRLCrashAsyncSafeThread crash]"},
            {"instruction_addr": "0x1000", "in_app": true}
        ]}}]}));
        assert_eq!(
            native.culprit.as_deref(),
            Some("-[CRLCrashAsyncSafeThread crash]"),
            "{platform}"
        );
    }
    let unsymbolicated = normalize(json!({"platform": "native", "exception": [{"type": "Crash",
        "stacktrace": {"frames": [{"instruction_addr": "0x1000", "package": "app.exe"}]}}]}));
    assert_eq!(unsymbolicated.culprit, None);
}

#[test]
fn tags_from_maps_and_pairs() {
    let from_map = normalize(
        json!({"tags": {"b": 2, "a": "x", "bool": true, "nested": {"no": 1}, "empty": ""}}),
    );
    // booleans and numbers as Relay's lenient strings (Python's `str()`)
    assert_eq!(
        from_map.tags,
        vec![
            ("a".to_owned(), "x".to_owned()),
            ("b".to_owned(), "2".to_owned()),
            ("bool".to_owned(), "True".to_owned())
        ]
    );
    let from_pairs =
        normalize(json!({"tags": [["k", "first"], ["k", "second"], ["n", 1.5], ["bad"], "x:y"]}));
    assert_eq!(
        from_pairs.tags,
        vec![
            ("k".to_owned(), "first".to_owned()),
            ("n".to_owned(), "1".to_owned()),
            ("x".to_owned(), "y".to_owned())
        ]
    );
    assert_eq!(
        stored(&from_pairs)["tags"],
        json!([["k", "first"], ["n", "1"], ["x", "y"]])
    );
    assert!(normalize(json!({"tags": "oops"})).tags.is_empty());
}

#[test]
fn tag_keys_and_reserved_tags_as_relay() {
    let event = normalize(json!({"tags": {
        "foo bar": "spaces become dashes",
        "gerät": "not ASCII: dropped",
        "a/b": "slash: dropped",
        "ok_key.1:x-y": "kept",
        "release": "reserved", "dist": "reserved", "user": "reserved",
        "filename": "reserved", "function": "reserved",
        "huge": 1e300,
        "off": false
    }}));
    assert_eq!(
        event.tags,
        vec![
            ("foo-bar".to_owned(), "spaces become dashes".to_owned()),
            ("off".to_owned(), "False".to_owned()),
            ("ok_key.1:x-y".to_owned(), "kept".to_owned()),
        ]
    );

    // an `environment` tag is the environment when the event has none, and leaves the tags
    let from_tag = normalize(json!({"tags": [["environment", "prod"], ["a", "b"]]}));
    assert_eq!(from_tag.environment.as_deref(), Some("prod"));
    assert_eq!(from_tag.tags, vec![("a".to_owned(), "b".to_owned())]);
    let both = normalize(json!({"environment": "staging", "tags": {"environment": "prod"}}));
    assert_eq!(both.environment.as_deref(), Some("staging"));
    assert!(both.tags.is_empty());
    assert!(stored(&both).get("tags").is_none());

    // the transaction name is cut to Relay's 200 characters
    let long = normalize(json!({"transaction": "/a".repeat(150)}));
    let transaction = long.transaction.unwrap();
    assert_eq!(transaction.chars().count(), 200);
    assert!(transaction.ends_with("..."), "{transaction}");
    let fits = normalize(json!({"transaction": "x".repeat(200)}));
    assert_eq!(fits.transaction.unwrap(), "x".repeat(200));

    // fingerprints use the same lenient strings
    let event = normalize(json!({"fingerprint": ["a", true, 3.5, 7, 1e300]}));
    assert_eq!(
        event.fingerprint,
        Some(vec![
            "a".to_owned(),
            "True".to_owned(),
            "3".to_owned(),
            "7".to_owned()
        ])
    );
}

#[test]
fn breadcrumbs_as_list_or_values() {
    for crumbs in [
        json!([{"message": "a", "timestamp": "2024-05-20T09:00:00Z", "level": "warn"}, 7]),
        json!({"values": [{"message": "a", "timestamp": 1716195600, "level": "warning"}]}),
    ] {
        let json = stored(&normalize(json!({ "breadcrumbs": crumbs })));
        assert_eq!(
            json["breadcrumbs"],
            json!({"values": [{"message": "a", "timestamp": 1716195600, "level": "warning"}]})
        );
    }
}

#[test]
fn user_ip_auto_and_inference() {
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let event = normalize(json!({"user": {"id": 42, "ip_address": "{{auto}}", "email": "a@b.c"}}));
    assert_eq!(event.user_id.as_deref(), Some("42"));
    assert_eq!(event.user_ip, Some(ip.to_string()));
    assert_eq!(event.user_email.as_deref(), Some("a@b.c"));
    // browser SDKs never send {{auto}}: their events get the client address
    assert_eq!(
        normalize(json!({"platform": "javascript"})).user_ip,
        Some(ip.to_string())
    );
    assert_eq!(normalize(json!({"platform": "python"})).user_ip, None);
    assert_eq!(
        normalize(json!({"user": {"ip_address": "not an ip"}})).user_ip,
        None
    );
    let no_client = NormalizeContext {
        client_ip: None,
        ..ctx()
    };
    let event = normalize_event(br#"{"user":{"ip_address":"{{auto}}"}}"#, &no_client).unwrap();
    assert_eq!(event.user_ip, None);
    assert!(normalize(json!({"user": null})).user_id.is_none());
}

#[test]
fn contexts_drop_non_objects_and_trace_ids_are_normalized() {
    let event = normalize(json!({"contexts": {
        "os": {"name": "Linux"}, "number": 50, "list": [1, 2],
        "trace": {"trace_id": "4EC639FC-560A-45A5-87C4-289E27CBD709", "span_id": "aa"}
    }}));
    assert_eq!(
        event.trace_id.as_deref(),
        Some("4ec639fc560a45a587c4289e27cbd709")
    );
    let contexts = stored(&event)["contexts"].clone();
    assert_eq!(contexts["os"], json!({"name": "Linux", "type": "os"}));
    assert!(contexts.get("number").is_none() && contexts.get("list").is_none());
}

#[test]
fn odd_fields_are_fixed_or_dropped_never_fatal() {
    let event = normalize(json!({
        "release": 1.2, "environment": "  prod ", "server_name": ["x"], "transaction": "",
        "request": "GET /", "sdk": {"name": "sentry.rust"}, "extra": [1], "fingerprint": [1, "a", null],
        "unknown_field": 1, "_meta": {"x": 1}, "project": 9
    }));
    // Relay's lenient strings truncate numbers that are not integers
    assert_eq!(event.release.as_deref(), Some("1"));
    assert_eq!(event.environment.as_deref(), Some("prod"));
    assert_eq!(event.server_name, None);
    assert_eq!(event.transaction, None);
    assert_eq!(event.sdk_name, None, "an SDK without version is dropped");
    assert_eq!(
        event.fingerprint,
        Some(vec!["1".to_owned(), "a".to_owned()])
    );
    let json = stored(&event);
    for gone in [
        "request",
        "extra",
        "unknown_field",
        "_meta",
        "project",
        "sdk",
    ] {
        assert!(json.get(gone).is_none(), "{gone}");
    }
    assert!(
        json["errors"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "invalid_attribute", "name": "unknown_field"}))
    );
}

#[test]
fn normalizing_twice_is_stable_for_odd_input() {
    let odd = json!({
        "message": "m", "sentry.interfaces.Exception": {"type": "A", "value": 5},
        "stacktrace": {"frames": [{"function": "f", "instruction_addr": 255}]},
        "tags": {"z": 1, "a": 2}, "breadcrumbs": [{"timestamp": "2024-05-20T09:00:00.5Z"}],
        "timestamp": "2001-01-01T00:00:00Z", "user": {"ip_address": "{{auto}}"}, "whatever": true
    });
    let first = normalize(odd);
    let replay = NormalizeContext {
        client_ip: None,
        event_id: None,
        ..ctx()
    };
    let second = normalize_event(first.json.as_bytes(), &replay).unwrap();
    assert_eq!(first, second);
    assert_eq!(first.exception_value.as_deref(), Some("5"));
}

#[test]
fn what_serde_json_rejects_is_rejected() {
    // the fast parser must not accept more than serde_json does
    for payload in [
        &b"{\"a\": \"\xff\xfe\"}"[..],
        b"{\"a\": \"\\ud800\"}",
        b"{\"a\": 1,}",
        b"{\"a\": NaN}",
        b"{\"a\": 01}",
        b"{\"a\": 1} x",
        b"{\"a\": \"tab\there\"}",
    ] {
        let err = normalize_event(payload, &ctx()).unwrap_err();
        assert!(
            matches!(err, NormalizeError::Json { .. }),
            "{}: {err}",
            String::from_utf8_lossy(payload)
        );
    }
}

/// An event whose `extra.x` holds arrays nested so the whole payload is `depth` levels deep.
fn nested_extra(depth: usize) -> String {
    let inner = depth - 2; // the event object and `extra`
    format!(
        r#"{{"message":"deep","extra":{{"x":{}1{}}}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

/// Runs `f` on a thread with the 2 MiB stack of a tokio worker: what passes here cannot
/// overflow the server's stack.
fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn nesting_up_to_the_depth_limit_is_accepted_and_reads_back() {
    use faultline_protocol::depth::MAX_JSON_DEPTH;
    assert_eq!(MAX_JSON_DEPTH, 64);
    let payload = nested_extra(MAX_JSON_DEPTH);
    let event = on_worker_stack(move || normalize_event(payload.as_bytes(), &ctx()).unwrap());
    let again = on_worker_stack({
        let json = event.json.clone();
        move || normalize_event(json.as_bytes(), &ctx()).unwrap()
    });
    assert_eq!(again, event);
}

#[test]
fn nesting_past_the_depth_limit_is_refused_naming_the_limit() {
    for depth in [65, 119, 250, 100_000] {
        let payload = nested_extra(depth);
        let err = on_worker_stack(move || normalize_event(payload.as_bytes(), &ctx()).unwrap_err());
        assert!(matches!(err, NormalizeError::TooDeep(_)), "{depth}: {err}");
        assert_eq!(
            err.to_string(),
            "event payload JSON nests deeper than max_json_depth of 64 levels of arrays and objects"
        );
    }
}

#[test]
fn an_event_that_normalization_would_push_past_the_limit_is_refused() {
    // A bare exception list becomes `{"values": [..]}`: one level more than was sent.
    let vars_depth = 64 - 7; // event, exception, exception, stacktrace, frames, frame, vars
    let vars = format!("{}1{}", "[".repeat(vars_depth), "]".repeat(vars_depth));
    let payload = format!(
        r#"{{"exception":[{{"type":"E","value":"v","stacktrace":{{"frames":[{{"function":"f","vars":{{"a":{vars}}}}}]}}}}]}}"#
    );
    assert_eq!(
        faultline_protocol::depth::check_depth(payload.as_bytes(), 64),
        Ok(64)
    );
    let err = on_worker_stack(move || normalize_event(payload.as_bytes(), &ctx()).unwrap_err());
    assert!(
        matches!(err, NormalizeError::TooDeepNormalized { limit: 64 }),
        "{err}"
    );
    assert!(err.to_string().contains("max_json_depth of 64"), "{err}");

    // one level less is kept, and its stored JSON is exactly at the limit
    let vars_depth = 64 - 8;
    let vars = format!("{}1{}", "[".repeat(vars_depth), "]".repeat(vars_depth));
    let payload = format!(
        r#"{{"exception":[{{"type":"E","value":"v","stacktrace":{{"frames":[{{"function":"f","vars":{{"a":{vars}}}}}]}}}}]}}"#
    );
    let event = on_worker_stack(move || normalize_event(payload.as_bytes(), &ctx()).unwrap());
    assert_eq!(
        faultline_protocol::depth::check_depth(event.json.as_bytes(), 64),
        Ok(64)
    );
}
