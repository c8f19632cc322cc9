//! Grouping over realistic events: what must group together and what must split.

use faultline_protocol::grouping::{Grouping, GroupingMethod, group, issue_id};
use faultline_protocol::normalize::normalize_event;
use serde_json::{Value, json};

use crate::fixtures::ctx;

fn grouping(event: &Value) -> Grouping {
    let event = normalize_event(event.to_string().as_bytes(), &ctx()).unwrap();
    group(&event)
}

fn same(a: &Value, b: &Value) -> bool {
    grouping(a).hash == grouping(b).hash
}

/// A Python ZeroDivisionError as sentry-python sends it, raised at `line`.
fn python_error(ty: &str, value: &str, view_function: &str, line: u64) -> Value {
    json!({
        "platform": "python",
        "exception": {"values": [{
            "type": ty,
            "value": value,
            "module": null,
            "mechanism": {"type": "django", "handled": false},
            "stacktrace": {"frames": [
                {"module": "django.core.handlers.exception", "function": "inner",
                 "filename": "django/core/handlers/exception.py", "lineno": 34, "in_app": false},
                {"module": "django.core.handlers.base", "function": "_get_response",
                 "filename": "django/core/handlers/base.py", "lineno": 115, "in_app": false},
                {"module": "shop.views", "function": view_function,
                 "filename": "shop/views.py", "lineno": line, "colno": 8, "in_app": true,
                 "context_line": "    return total / count"},
                {"module": "shop.pricing", "function": "average",
                 "filename": "shop/pricing.py", "lineno": line + 20, "in_app": true}
            ]}
        }]}
    })
}

#[test]
fn same_code_path_on_other_lines_groups_together() {
    let a = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    let b = python_error("ZeroDivisionError", "division by zero", "checkout", 57);
    assert!(same(&a, &b));
    let g = grouping(&a);
    assert_eq!(g.method, GroupingMethod::Exception);
    assert_eq!(
        g.components,
        vec![
            "type:ZeroDivisionError",
            "frame:shop.views|checkout",
            "frame:shop.pricing|average"
        ],
        "only in-app frames, no line numbers"
    );
}

#[test]
fn exception_values_do_not_split_when_there_are_frames() {
    let a = python_error("KeyError", "'user_17'", "checkout", 10);
    let b = python_error("KeyError", "'order_99'", "checkout", 10);
    assert!(same(&a, &b));
}

#[test]
fn different_types_or_call_paths_split() {
    let base = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    let other_type = python_error("TypeError", "division by zero", "checkout", 10);
    let other_path = python_error("ZeroDivisionError", "division by zero", "refund", 10);
    assert!(!same(&base, &other_type));
    assert!(!same(&base, &other_path));
}

#[test]
fn without_in_app_frames_all_frames_count() {
    let mut event = python_error("OSError", "disk full", "checkout", 10);
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array_mut()
        .unwrap()
    {
        frame["in_app"] = json!(false);
    }
    let g = grouping(&event);
    assert_eq!(g.components.len(), 5, "{:?}", g.components);
    assert_eq!(
        g.components[1],
        "frame:django.core.handlers.exception|inner"
    );
}

#[test]
fn frames_without_in_app_flags_all_count_as_in_app() {
    let mut event = python_error("OSError", "disk full", "checkout", 10);
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array_mut()
        .unwrap()
    {
        frame.as_object_mut().unwrap().remove("in_app");
    }
    let normalized = normalize_event(event.to_string().as_bytes(), &ctx()).unwrap();
    assert_eq!(
        normalized.culprit.as_deref(),
        Some("shop.pricing in average")
    );
    assert_eq!(group(&normalized).components.len(), 5);
}

#[test]
fn exceptions_without_frames_group_by_type_and_normalized_value() {
    let event = |value: &str| json!({"exception": [{"type": "TimeoutError", "value": value}]});
    let a = event("timed out after 30.5s connecting to 10.0.0.7:5432");
    let b = event("timed out after 12.0s connecting to 10.0.0.9:5432");
    let c = event("connection reset by peer");
    assert!(same(&a, &b));
    assert!(!same(&a, &c));
    assert_eq!(
        grouping(&a).components,
        vec![
            "type:TimeoutError",
            "value:timed out after <float>s connecting to <ip>"
        ]
    );
}

#[test]
fn chained_exceptions_contribute_each_type() {
    let chain = |cause: &str| {
        json!({"exception": {"values": [
            {"type": cause, "value": "x", "stacktrace": {"frames": [{"function": "connect", "module": "db"}]}},
            {"type": "RuntimeError", "value": "y", "stacktrace": {"frames": [{"function": "load", "module": "app"}]}}
        ]}})
    };
    assert!(!same(&chain("ConnectionError"), &chain("AuthError")));
    assert_eq!(
        grouping(&chain("ConnectionError")).components,
        vec![
            "type:ConnectionError",
            "frame:db|connect",
            "type:RuntimeError",
            "frame:app|load"
        ]
    );
}

#[test]
fn javascript_bundle_hashes_hosts_and_columns_are_ignored() {
    let event = |host: &str, bundle: &str, line: u64, col: u64| {
        json!({
            "platform": "javascript",
            "exception": {"values": [{"type": "TypeError", "value": "e is undefined", "stacktrace": {"frames": [
                {"filename": format!("https://{host}/static/js/{bundle}.js"), "function": "onClick",
                 "lineno": line, "colno": col, "in_app": true},
                {"filename": format!("https://{host}/static/js/{bundle}.js?v=2"), "function": "<anonymous>",
                 "lineno": line + 1, "colno": col, "in_app": true,
                 "context_line": "throw new TypeError(msg)"}
            ]}}]}
        })
    };
    let a = event("cdn.example.com", "main.3f2a1b9c", 1, 3301);
    let b = event("static.example.net", "main.77ab01ce", 1, 9120);
    assert!(same(&a, &b));
    assert_eq!(
        grouping(&a).components,
        vec![
            "type:TypeError",
            "frame:/static/js/main.<hex>.js|onClick",
            "frame:/static/js/main.<hex>.js|line:throw new TypeError(msg)"
        ]
    );
}

#[test]
fn java_generated_names_are_stripped() {
    let event = |lambda: &str, accessor: u32| {
        json!({
            "platform": "java",
            "exception": {"values": [{"type": "java.lang.IllegalStateException", "stacktrace": {"frames": [
                {"module": format!("sun.reflect.GeneratedMethodAccessor{accessor}"), "function": "invoke", "in_app": true},
                {"module": format!("com.shop.Cart$$Lambda${lambda}"), "function": "accept", "in_app": true},
                {"module": "com.shop.Cart", "function": format!("lambda$checkout${accessor}"), "in_app": true}
            ]}}]}
        })
    };
    assert!(same(
        &event("14/0x0000000800066840", 3),
        &event("27/0x0000000800c0b440", 12)
    ));
}

#[test]
fn recursion_depth_does_not_split() {
    let event = |depth: usize| {
        let mut frames = vec![json!({"module": "app", "function": "main"})];
        frames.extend(std::iter::repeat_n(
            json!({"module": "app", "function": "walk"}),
            depth,
        ));
        json!({"exception": {"values": [{"type": "RecursionError", "stacktrace": {"frames": frames}}]}})
    };
    assert!(same(&event(998), &event(1000)));
}

#[test]
fn native_frames_group_by_function_without_addresses_or_signatures() {
    let event = |addr: &str, dir: &str| {
        json!({
            "platform": "native",
            "exception": {"values": [{"type": "EXC_BAD_ACCESS", "value": format!("crash at {addr}"), "stacktrace": {"frames": [
                {"function": "main", "instruction_addr": addr, "filename": format!("{dir}/main.cpp")},
                {"function": "void Engine::tick(float) const", "instruction_addr": addr,
                 "filename": format!("{dir}/engine.cpp"), "package": "/usr/lib/libengine.so"}
            ]}}]}
        })
    };
    let a = event("0x1000a2f0", "/home/ci/build-17/src");
    let b = event("0x7fff2025a3e9", "C:\\agent\\work\\src");
    assert!(same(&a, &b));
    assert_eq!(
        grouping(&a).components,
        vec![
            "type:EXC_BAD_ACCESS",
            "frame:main.cpp|main",
            "frame:engine.cpp|Engine::tick"
        ]
    );
}

#[test]
fn messages_differing_only_in_variables_group_together() {
    let message = |text: &str| json!({"message": text, "level": "warning"});
    let a =
        message("Payment 4711 for bob@example.com failed after 3 retries at 2024-05-01T10:00:00Z");
    let b =
        message("Payment 815 for alice@example.org failed after 5 retries at 2024-05-02T11:30:00Z");
    let c = message("Refund 4711 for bob@example.com failed");
    assert!(same(&a, &b));
    assert!(!same(&a, &c));
    assert_eq!(grouping(&a).method, GroupingMethod::Message);
}

#[test]
fn log_templates_group_before_formatting() {
    let a = json!({"logentry": {"message": "user %s not found", "params": ["ann"]}});
    let b = json!({"logentry": {"message": "user %s not found", "params": ["bob"]}});
    assert!(same(&a, &b));
    assert_eq!(grouping(&a).components, vec!["message:user %s not found"]);
}

#[test]
fn a_stack_trace_without_exception_groups_by_frames() {
    let event = |msg: &str| json!({"message": msg, "stacktrace": {"frames": [{"module": "jobs", "function": "run"}, {"module": "jobs.mail", "function": "send"}]}});
    let g = grouping(&event("mail queue stuck"));
    assert_eq!(g.method, GroupingMethod::Stacktrace);
    assert!(same(
        &event("mail queue stuck"),
        &event("something else entirely")
    ));
}

#[test]
fn fingerprint_wins_and_default_expands() {
    let base = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    let with = |fp: Value| {
        let mut e = base.clone();
        e["fingerprint"] = fp;
        e
    };
    let custom = grouping(&with(json!(["payments", "{{ tenant }}"])));
    assert_eq!(custom.method, GroupingMethod::Fingerprint);
    assert_eq!(custom.components, vec!["payments", "{{ tenant }}"]);
    assert!(same(
        &with(json!(["payments"])),
        &json!({"message": "other", "fingerprint": ["payments"]})
    ));

    let default_only = grouping(&with(json!(["{{ default }}"])));
    assert_eq!(
        default_only,
        grouping(&base),
        "{{ default }} alone is the default grouping"
    );
    assert_eq!(grouping(&with(json!(["{{default}}"]))), grouping(&base));

    let extended = grouping(&with(json!(["{{ default }}", "eu-west-1"])));
    assert_eq!(extended.method, GroupingMethod::Fingerprint);
    assert_eq!(
        extended.components.last().map(String::as_str),
        Some("eu-west-1")
    );
    assert_eq!(extended.components[0], "type:ZeroDivisionError");
    assert_ne!(extended.hash, grouping(&base).hash);
}

#[test]
fn fingerprint_variables_expand_to_event_values() {
    let mut event = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    event["transaction"] = json!("/cart/checkout");
    event["fingerprint"] = json!([
        "{{ transaction }}",
        "{{type}}",
        "{{ function }}",
        "{{ module }}",
        "{{ level }}",
        "{{ logger }}",
        "{{ unknown }}",
        "literal"
    ]);
    assert_eq!(
        grouping(&event).components,
        vec![
            "/cart/checkout",
            "ZeroDivisionError",
            "average",
            "shop.pricing",
            "error",
            "<no-logger>",
            "{{ unknown }}",
            "literal"
        ]
    );
    // per transaction: the same error on two endpoints splits
    let mut other = event.clone();
    other["transaction"] = json!("/cart/refund");
    assert!(!same(&event, &other));
}

#[test]
fn events_with_nothing_to_group_by_share_the_fallback() {
    let a = grouping(&json!({"level": "error"}));
    let b = grouping(&json!({"extra": {"x": 1}}));
    assert_eq!(a.method, GroupingMethod::Fallback);
    assert_eq!(a.hash, b.hash);
}

#[test]
fn issue_ids_are_stable_positive_and_per_project() {
    let hash = grouping(&python_error("E", "v", "f", 1)).hash;
    let id = issue_id(7, &hash);
    assert!(id > 0);
    assert_eq!(id, issue_id(7, &hash), "deterministic");
    assert_ne!(id, issue_id(8, &hash), "per project");
    assert_ne!(id, issue_id(7, &"0".repeat(32)));
    // pinned (checked with Python hashlib): any node, any version derives the same id
    assert_eq!(
        issue_id(1, "00000000000000000000000000000000"),
        8_170_197_610_350_392_421
    );
}
