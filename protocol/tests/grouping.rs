//! Grouping over realistic events, as Sentry's `newstyle:2026-01-20` groups them: what must
//! group together, what must split, and hashes derived by hand from Sentry's algorithm (md5
//! over the contributing values, concatenated without separator).

use faultline_protocol::grouping::{
    FALLBACK_HASH, Grouping, GroupingConfig, GroupingMethod, explain, explain_stored, group,
    group_full, group_with, grouping_of, hash_values, issue_id,
};
use faultline_protocol::normalize::normalize_event;
use serde_json::{Value, json};

use crate::fixtures::ctx;

fn grouping(event: &Value) -> Grouping {
    let event = normalize_event(event.to_string().as_bytes(), &ctx()).unwrap();
    let full = group(&event);
    // what ingest computes has the same hashes and method
    let at_ingest = grouping_of(&event);
    assert_eq!(
        (&at_ingest.hash, &at_ingest.hashes, at_ingest.method),
        (&full.hash, &full.hashes, full.method)
    );
    full
}

fn grouping_with(event: &Value, config: &GroupingConfig) -> Grouping {
    let event = normalize_event(event.to_string().as_bytes(), &ctx()).unwrap();
    let full = group_full(&event, config);
    // what ingest computes has the same hashes
    let at_ingest = group_with(&event, config);
    assert_eq!(
        (&at_ingest.hash, &at_ingest.hashes),
        (&full.hash, &full.hashes)
    );
    full
}

fn same(a: &Value, b: &Value) -> bool {
    grouping(a).hash == grouping(b).hash
}

/// A Python error as sentry-python sends it from a Django view, raised at `line`.
fn python_error(ty: &str, value: &str, view_function: &str, line: u64) -> Value {
    json!({
        "platform": "python",
        "exception": {"values": [{
            "type": ty,
            "value": value,
            "mechanism": {"type": "django", "handled": false},
            "stacktrace": {"frames": [
                {"module": "django.core.handlers.exception", "function": "inner",
                 "filename": "django/core/handlers/exception.py",
                 "abs_path": "/venv/lib/python3.12/site-packages/django/core/handlers/exception.py",
                 "lineno": 34, "in_app": false, "context_line": "response = get_response(request)"},
                {"module": "shop.views", "function": view_function,
                 "filename": "shop/views.py", "abs_path": "/srv/shop/views.py",
                 "lineno": line, "colno": 8, "in_app": true,
                 "context_line": "    return total / count"},
                {"module": "shop.pricing", "function": "average",
                 "filename": "shop/pricing.py", "abs_path": "/srv/shop/pricing.py",
                 "lineno": line + 20, "in_app": true}
            ]}
        }]}
    })
}

#[test]
fn python_errors_group_by_type_in_app_modules_functions_and_source_lines() {
    // Sentry's app variant: the type, then per in-app frame its module (the file name is
    // ignored because the module takes precedence), its function and, for Python, the source
    // line with whitespace collapsed. Line numbers and the value do not count.
    let a = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    let b = python_error(
        "ZeroDivisionError",
        "float division by zero",
        "checkout",
        57,
    );
    let g = grouping(&a);
    assert_eq!(g.method, GroupingMethod::Exception);
    assert_eq!(
        g.components,
        [
            "ZeroDivisionError",
            "shop.views",
            "checkout",
            "return total / count",
            "shop.pricing",
            "average"
        ]
    );
    // md5("ZeroDivisionErrorshop.viewscheckoutreturn total / countshop.pricingaverage")
    assert_eq!(g.hash, "8d51c3e688edc451125ccadb2de81fa2");
    assert_eq!(g.hash, grouping(&b).hash);
    // the system variant (Django's frame too) is a secondary hash
    assert_eq!(g.hashes.len(), 2, "{:?}", g.hashes);
    assert_eq!(
        g.variants.iter().map(|v| v.name).collect::<Vec<_>>(),
        ["app", "system"]
    );
}

#[test]
fn different_types_or_call_paths_split() {
    let base = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    assert!(!same(
        &base,
        &python_error("TypeError", "division by zero", "checkout", 10)
    ));
    assert!(!same(
        &base,
        &python_error("ZeroDivisionError", "division by zero", "refund", 10)
    ));
}

#[test]
fn without_in_app_frames_the_system_variant_decides() {
    // No frame is in-app: the app variant has no contributing stack trace, so it does not count;
    // the system variant (all frames) gives the one hash.
    let mut event = python_error("KeyError", "'x'", "checkout", 10);
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array_mut()
        .unwrap()
    {
        frame["in_app"] = json!(false);
    }
    let g = grouping(&event);
    assert_eq!(g.hashes.len(), 1);
    let app = g.variants.iter().find(|v| v.name == "app").unwrap();
    assert!(app.hash.is_none());
    assert_eq!(
        g.components[..3],
        ["KeyError", "django.core.handlers.exception", "inner"]
    );
}

#[test]
fn frames_without_in_app_flags_are_system_frames_as_in_sentry() {
    // Sentry: a frame the SDK and the rules say nothing about is not in-app. An event whose
    // frames never set the flag groups by all its frames (the system variant).
    let event = json!({
        "platform": "go",
        "exception": {"values": [{"type": "*errors.errorString", "value": "boom",
            "stacktrace": {"frames": [
                {"module": "main", "function": "main", "filename": "main.go", "lineno": 10},
                {"module": "main", "function": "run", "filename": "main.go", "lineno": 20}
            ]}}]}
    });
    let g = grouping(&event);
    assert_eq!(
        g.components,
        ["*errors.errorString", "main", "main", "main", "run"]
    );
    assert_eq!(g.variants.iter().filter(|v| v.hash.is_some()).count(), 1);
}

#[test]
fn exceptions_without_frames_group_by_type_and_parameterized_value() {
    // No stack trace: the value counts, with Sentry's parameterization.
    let event = |value: &str| json!({"platform": "python", "exception": {"values": [{"type": "TimeoutError", "value": value}]}});
    let a = grouping(&event("timed out after 30.5s connecting to 10.0.0.7"));
    let b = grouping(&event("timed out after 2s connecting to 10.0.0.9"));
    assert_eq!(
        a.components,
        [
            "TimeoutError",
            "timed out after <duration> connecting to <ip>"
        ]
    );
    assert_eq!(
        a.hash,
        hash_values([
            "TimeoutError",
            "timed out after <duration> connecting to <ip>"
        ])
    );
    assert_eq!(a.hash, "eef5e823cba2ddece16e80a11b336ea3");
    assert_eq!(a.hash, b.hash);
    assert_eq!(
        a.hashes.len(),
        1,
        "a frameless exception only has the app variant"
    );
}

#[test]
fn chained_exceptions_contribute_each_exception() {
    let chain = |outer: &str| {
        json!({"platform": "python", "exception": {"values": [
            {"type": "KeyError", "value": "'id'"},
            {"type": outer, "value": "lookup failed"}
        ]}})
    };
    let g = grouping(&chain("LookupFailed"));
    assert_eq!(
        g.components,
        ["KeyError", "'id'", "LookupFailed", "lookup failed"]
    );
    assert_ne!(g.hash, grouping(&chain("OtherError")).hash);
}

#[test]
fn exception_groups_with_one_distinct_leaf_group_as_that_leaf() {
    // Sentry's exception group rules: a group of copies of one error is that error, so it
    // groups with the error raised alone; two different leaves keep the group apart.
    let leaf = |id: i64, ty: &str| json!({"type": ty, "value": "x", "mechanism": {"type": "chained", "exception_id": id, "parent_id": 0}});
    let group_of = |leaves: Vec<Value>| {
        let mut values = leaves;
        values.push(json!({"type": "ExceptionGroup", "value": "2 errors",
            "mechanism": {"type": "generic", "exception_id": 0, "is_exception_group": true}}));
        json!({"platform": "javascript", "exception": {"values": values}})
    };
    let alone = json!({"platform": "javascript", "exception": {"values": [{"type": "DbError", "value": "x"}]}});
    let copies = group_of(vec![leaf(1, "DbError"), leaf(2, "DbError")]);
    assert_eq!(grouping(&copies).hash, grouping(&alone).hash);
    let mixed = group_of(vec![leaf(1, "DbError"), leaf(2, "HttpError")]);
    let g = grouping(&mixed);
    assert_eq!(
        g.components,
        [
            "HttpError",
            "x",
            "DbError",
            "x",
            "ExceptionGroup",
            "<int> errors"
        ]
    );
}

/// Frames as the browser SDK makes them from a stack string in Chrome's (`at f (url:l:c)`) or
/// Firefox's and Safari's (`f@url:l:c`) format, oldest call first.
fn frames_from_stack(stack: &str) -> Value {
    let mut frames: Vec<Value> = Vec::new();
    for line in stack.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (function, location) = if let Some(rest) = line.strip_prefix("at ") {
            match rest.rsplit_once(" (") {
                Some((f, loc)) => (f.to_owned(), loc.trim_end_matches(')').to_owned()),
                None => ("?".to_owned(), rest.to_owned()),
            }
        } else {
            match line.split_once('@') {
                Some((f, loc)) => (
                    if f.is_empty() {
                        "?".into()
                    } else {
                        f.to_owned()
                    },
                    loc.to_owned(),
                ),
                None => ("?".to_owned(), line.to_owned()),
            }
        };
        let mut parts = location.rsplitn(3, ':');
        let (col, row, url) = (parts.next(), parts.next(), parts.next());
        let (url, lineno, colno) = match (
            url,
            row.and_then(|r| r.parse::<u64>().ok()),
            col.and_then(|c| c.parse::<u64>().ok()),
        ) {
            (Some(url), Some(l), Some(c)) => (url.to_owned(), Some(l), Some(c)),
            _ => (location.clone(), None, None),
        };
        frames.push(
            json!({"function": function, "abs_path": url, "filename": url,
            "lineno": lineno, "colno": colno, "in_app": true}),
        );
    }
    frames.reverse();
    Value::Array(frames)
}

fn browser_error(value: &str, stack: &str) -> Value {
    json!({"platform": "javascript", "exception": {"values": [{"type": "TypeError", "value": value,
        "stacktrace": {"frames": frames_from_stack(stack)}}]}})
}

#[test]
fn one_error_in_chrome_firefox_and_safari_is_one_issue() {
    // The same click handler failing in three browsers. Each browser words the message and
    // names frames differently: Chrome qualifies methods (`HTMLButtonElement.onClick`) and
    // shows `Array.forEach (<anonymous>)`, Firefox names the callback `onClick/<`, Safari shows
    // `forEach@[native code]`. Sentry keeps the last part of a name, ignores unknown names,
    // native-code and anonymous frames, file names that are URLs, and the value.
    let url = "https://shop.example.com/static/js/main.3f2a1b9c.js";
    let chrome = browser_error(
        "Cannot read properties of undefined (reading 'price')",
        &format!(
            "at Cart.total ({url}:1:2345)\n at {url}:1:1200\n at Array.forEach (<anonymous>)\n \
             at HTMLButtonElement.onClick ({url}:1:999)"
        ),
    );
    let firefox = browser_error(
        "can't access property \"price\", item is undefined",
        &format!("total@{url}:1:2350\nonClick/<@{url}:1:1203\nonClick@{url}:1:1001"),
    );
    let safari = browser_error(
        "undefined is not an object (evaluating 'item.price')",
        &format!("total@{url}:1:2345\n@{url}:1:1200\nforEach@[native code]\nonClick@{url}:1:999"),
    );
    let g = grouping(&chrome);
    assert_eq!(g.components, ["TypeError", "onClick", "total"]);
    assert_eq!(g.hash, grouping(&firefox).hash, "Firefox");
    assert_eq!(g.hash, grouping(&safari).hash, "Safari");
    // md5("TypeErroronClicktotal")
    assert_eq!(g.hash, "5a6bd92b7edf1e415a55e2b683cb7a84");
}

#[test]
fn java_generated_names_do_not_split() {
    // Lambda classes and lambda methods are ignored, CGLIB and reflection markers replaced.
    let event = |lambda: &str, cglib: &str, accessor: &str| {
        json!({"platform": "java", "exception": {"values": [{"type": "IllegalStateException", "value": "x",
        "stacktrace": {"frames": [
            {"module": accessor, "function": "invoke", "in_app": true},
            {"module": format!("com.shop.Service$$EnhancerBySpringCGLIB$${cglib}"), "function": "pay", "in_app": true},
            {"module": format!("com.shop.Cart$$Lambda${lambda}/0x0000000800066840"), "function": "apply", "in_app": true},
            {"module": "com.shop.Cart", "function": format!("lambda$total${lambda}"), "in_app": true}
        ]}}]}})
    };
    let a = grouping(&event(
        "14",
        "1a2b3c4d",
        "sun.reflect.GeneratedMethodAccessor12",
    ));
    let b = grouping(&event(
        "15",
        "99ffee00",
        "sun.reflect.GeneratedMethodAccessor7",
    ));
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.hashes, b.hashes, "the system variant too");
    // `sun.*` is framework code (not in-app): it only counts in the system variant, there
    // without its number
    let system = a.variants.iter().find(|v| v.name == "system").unwrap();
    let system_values = system.component.as_ref().unwrap().contributing_values();
    assert_eq!(
        system_values[1..3],
        ["sun.reflect.GeneratedMethodAccessor", "invoke"]
    );
    assert_eq!(
        a.components,
        [
            "IllegalStateException",
            "com.shop.Service$$EnhancerBySpringCGLIB$$<auto>",
            "pay",
            "apply",
            "com.shop.Cart"
        ]
    );
}

#[test]
fn recursion_counts_once() {
    let event = |depth: usize| {
        let mut frames = vec![
            json!({"function": "main", "filename": "main.py", "module": "main", "lineno": 1, "in_app": true}),
        ];
        frames.extend((0..depth).map(|_| json!({"function": "walk", "module": "tree", "filename": "tree.py", "lineno": 7, "in_app": true})));
        json!({"platform": "python", "exception": {"values": [{"type": "RecursionError", "value": "too deep", "stacktrace": {"frames": frames}}]}})
    };
    assert_eq!(grouping(&event(3)).hash, grouping(&event(40)).hash);
}

#[test]
fn native_frames_group_by_file_basename_and_function_without_addresses() {
    // Native: the file name's basename (lowercased), the function without signature; paths,
    // addresses and line numbers do not count. No frame says in_app, so the system variant.
    let event = |dir: &str, addr: &str| {
        json!({"platform": "native", "exception": {"values": [{"type": "EXC_BAD_ACCESS", "value": format!("crash at {addr}"),
        "stacktrace": {"frames": [
            {"function": "main", "filename": format!("{dir}/main.cpp"), "instruction_addr": addr},
            {"function": "void Engine::tick(float) const", "filename": format!("{dir}/Engine.cpp"), "instruction_addr": addr, "lineno": 88}
        ]}}]}})
    };
    let a = grouping(&event("/build/1/src", "0x1000"));
    assert_eq!(
        a.components,
        [
            "EXC_BAD_ACCESS",
            "main.cpp",
            "main",
            "engine.cpp",
            "Engine::tick"
        ]
    );
    // md5("EXC_BAD_ACCESSmain.cppmainengine.cppEngine::tick")
    assert_eq!(a.hash, "900afaa23c141dc03f7767daf5f343ad");
    assert_eq!(a.hash, grouping(&event("C:\\ci\\work", "0x2000")).hash);
}

#[test]
fn native_throw_frames_and_what_they_call_do_not_count() {
    // Built-in rule: `category:throw ^-group -group`: abort() and the frames it called are
    // noise; the frames before it decide.
    let event = |inner: &str| {
        json!({"platform": "native", "exception": {"values": [{"type": "SIGABRT", "stacktrace": {"frames": [
            {"function": "main", "filename": "main.c"},
            {"function": "crash_here", "filename": "app.c"},
            {"function": "abort", "package": "/usr/lib/libc.so.6"},
            {"function": inner, "package": "/usr/lib/libc.so.6"}
        ]}}]}})
    };
    let a = grouping(&event("raise"));
    assert_eq!(
        a.components,
        ["SIGABRT", "main.c", "main", "app.c", "crash_here"]
    );
    assert_eq!(a.hash, grouping(&event("pthread_kill")).hash);
}

#[test]
fn messages_are_parameterized_and_templates_preferred() {
    let msg = |text: &str| json!({"platform": "python", "logentry": {"formatted": text}});
    let a = grouping(&msg(
        "Payment 4711 for bob@example.com failed after 3 retries at 2024-05-01T10:00:00Z",
    ));
    let b = grouping(&msg(
        "Payment 815 for alice@example.org failed after 5 retries at 2024-05-02T11:30:00Z",
    ));
    assert_eq!(a.method, GroupingMethod::Message);
    assert_eq!(
        a.components,
        ["Payment <int> for <email> failed after <int> retries at <date>"]
    );
    // md5 of that one value
    assert_eq!(a.hash, "6460059ceb004e89b671e3cdb152f36e");
    assert_eq!(a.hash, b.hash);
    let t1 = json!({"logentry": {"message": "user %s not found", "params": ["bob"]}});
    let t2 = json!({"logentry": {"message": "user %s not found", "params": ["alice"]}});
    assert!(same(&t1, &t2));
}

#[test]
fn a_stack_trace_without_exception_groups_by_frames() {
    let event = json!({"platform": "python", "logentry": {"formatted": "slow request 1234 ms"},
        "stacktrace": {"frames": [{"module": "app", "function": "handle", "in_app": true}]}});
    let g = grouping(&event);
    assert_eq!(g.method, GroupingMethod::Stacktrace);
    assert_eq!(g.components, ["app", "handle"]);
    let message = g.variants.iter().find(|v| v.name == "default").unwrap();
    assert!(
        message.hash.is_none(),
        "the message yields to the stack trace"
    );
}

#[test]
fn threads_only_events_group_by_the_crashed_thread() {
    // An event with only a thread list no longer falls into one shared issue.
    let event = |function: &str| {
        json!({"platform": "cocoa", "threads": {"values": [
            {"id": 1, "crashed": false, "stacktrace": {"frames": [{"function": "idle", "in_app": true}]}},
            {"id": 2, "crashed": true, "stacktrace": {"frames": [{"function": function, "in_app": true}]}}
        ]}})
    };
    let g = grouping(&event("-[Checkout pay]"));
    assert_eq!(g.method, GroupingMethod::Threads);
    assert_eq!(g.components, ["-[Checkout pay]"]);
    assert_ne!(g.hash, grouping(&event("-[Cart add]")).hash);
}

#[test]
fn security_reports_and_templates_have_their_own_components() {
    let csp = |uri: &str| json!({"csp": {"effective_directive": "script-src", "blocked_uri": uri, "violated_directive": "script-src 'self'"}});
    let a = grouping(&csp("https://evil.example.com/x.js"));
    assert_eq!(a.method, GroupingMethod::Csp);
    assert_eq!(a.components, ["script-src", "https://evil.example.com"]);
    assert_eq!(
        a.hash,
        grouping(&csp("https://evil.example.com/other.js?v=2")).hash
    );
    assert_ne!(a.hash, grouping(&csp("https://ads.example.net/y.js")).hash);
    let hpkp = |host: &str| json!({"hpkp": {"hostname": host}});
    assert_eq!(
        grouping(&hpkp("a.example.com")).components,
        ["hpkp", "a.example.com"]
    );
    assert_ne!(
        grouping(&hpkp("a.example.com")).hash,
        grouping(&hpkp("b.example.com")).hash
    );
    let ct = json!({"expectct": {"hostname": "a.example.com"}});
    assert_eq!(grouping(&ct).components, ["expect-ct", "a.example.com"]);
    let template = json!({"template": {"filename": "cart.html", "context_line": "{{ cart.total }}", "lineno": 3}});
    let g = grouping(&template);
    assert_eq!(g.method, GroupingMethod::Template);
    assert_eq!(g.components, ["cart.html", "{{ cart.total }}"]);
}

#[test]
fn fingerprints_custom_hybrid_and_variables() {
    let base = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    let with_fp = |fp: Value| {
        let mut e = base.clone();
        e["fingerprint"] = fp;
        e["transaction"] = json!("/checkout");
        e
    };
    // custom: only the fingerprint counts
    let custom = grouping(&with_fp(json!([
        "payments",
        "{{ transaction }}",
        "{{ nonsense }}"
    ])));
    assert_eq!(custom.method, GroupingMethod::Fingerprint);
    assert_eq!(
        custom.hashes,
        [hash_values([
            "payments",
            "/checkout",
            "<unrecognized-variable-nonsense>"
        ])]
    );
    assert_eq!(custom.variants[0].name, "custom_fingerprint");
    // only `{{ default }}`: the default grouping
    assert_eq!(
        grouping(&with_fp(json!(["{{default}}"]))).hash,
        grouping(&base).hash
    );
    // hybrid: the default values take the place of `{{ default }}`
    let hybrid = grouping(&with_fp(json!(["{{ default }}", "eu-west-1"])));
    let default = grouping(&base);
    let mut values: Vec<&str> = default.components.iter().map(String::as_str).collect();
    values.push("eu-west-1");
    assert_eq!(hybrid.hash, hash_values(values));
    assert_eq!(hybrid.method, GroupingMethod::Exception);
}

#[test]
fn server_side_fingerprint_rules_and_builtin_rules() {
    let config = GroupingConfig::for_project(
        "",
        "error.type:DatabaseUnavailable -> system-down\nmessage:\"*timeout*\" -> timeouts, {{ transaction }}",
    )
    .unwrap();
    let db = json!({"platform": "python", "exception": {"values": [{"type": "DatabaseUnavailable", "value": "x"}]}});
    let g = grouping_with(&db, &config);
    assert_eq!(g.hashes, [hash_values(["system-down"])]);
    assert_eq!(
        g.variants[0].matched_rule.as_deref(),
        Some("error.type:DatabaseUnavailable -> system-down")
    );
    let slow =
        json!({"logentry": {"formatted": "upstream timeout after 3s"}, "transaction": "/pay"});
    assert_eq!(
        grouping_with(&slow, &config).hashes,
        [hash_values(["timeouts", "/pay"])]
    );
    // without the project's rules, nothing special
    assert_ne!(grouping(&db).hashes, [hash_values(["system-down"])]);
    // built-in: every ChunkLoadError of a JavaScript project is one issue
    let chunk = |file: &str| {
        json!({"platform": "javascript", "exception": {"values": [
        {"type": "ChunkLoadError", "value": format!("Loading chunk {file} failed.")}]}})
    };
    let g = grouping(&chunk("17"));
    assert_eq!(g.variants[0].name, "built_in_fingerprint");
    assert_eq!(g.hash, hash_values(["chunkloaderror"]));
    assert_eq!(g.hash, grouping(&chunk("vendors-main")).hash);
}

#[test]
fn project_stack_trace_rules_change_what_counts() {
    let event = json!({"platform": "javascript", "exception": {"values": [{"type": "Error", "value": "x",
    "stacktrace": {"frames": [
        {"function": "render", "filename": "/app/src/view.js", "abs_path": "/app/src/view.js", "in_app": true},
        {"function": "draw", "filename": "/app/vendor/chart.js", "abs_path": "/app/vendor/chart.js", "in_app": true},
        {"function": "plot", "filename": "/app/vendor/chart.js", "abs_path": "/app/vendor/chart.js", "in_app": true}
    ]}}]}});
    // the built-in `path:**/vendor/** -app` already takes the vendored frames out of the app variant
    assert_eq!(grouping(&event).components, ["Error", "view.js", "render"]);
    let config = GroupingConfig::for_project(
        "family:javascript path:**/vendor/** +app\nfunction:plot -group",
        "",
    )
    .unwrap();
    assert_eq!(
        grouping_with(&event, &config).components,
        ["Error", "view.js", "render", "chart.js", "draw"]
    );
    let config = GroupingConfig::for_project(
        "family:javascript path:**/vendor/** +app\nfamily:javascript max-frames=1",
        "",
    )
    .unwrap();
    assert_eq!(
        grouping_with(&event, &config).components,
        ["Error", "chart.js", "plot"]
    );
    let config = GroupingConfig::for_project("family:javascript min-frames=2", "").unwrap();
    let g = grouping_with(&event, &config);
    // one in-app frame is under the threshold, so the app variant does not count; the system
    // variant has three frames and decides
    assert!(
        g.variants
            .iter()
            .find(|v| v.name == "app")
            .unwrap()
            .hash
            .is_none()
    );
    assert_eq!(
        g.components,
        [
            "Error", "view.js", "render", "chart.js", "draw", "chart.js", "plot"
        ]
    );
}

#[test]
fn rule_errors_name_the_field_line_and_column() {
    let (field, err) =
        GroupingConfig::for_project("path:**/vendor/** -app\nfamily:javascript +frobnicate", "")
            .unwrap_err();
    assert_eq!(field, "grouping_enhancements");
    assert_eq!((err.line, err.column), (2, 19));
    let (field, err) = GroupingConfig::for_project("", "error.type:X system-down").unwrap_err();
    assert_eq!(field, "fingerprinting_rules");
    assert_eq!(err.line, 1);
}

#[test]
fn events_with_nothing_to_group_by_use_sentrys_fallback() {
    let g = grouping(&json!({"platform": "python", "level": "error"}));
    assert_eq!(g.method, GroupingMethod::Fallback);
    assert_eq!(g.hash, FALLBACK_HASH);
    assert_eq!(g.variants.last().unwrap().name, "fallback");
}

#[test]
fn the_earlier_faultline_hash_is_kept_unchanged() {
    // the hash events had before this grouping, as the snapshots recorded it
    let event = json!({"platform": "python", "logentry": {"formatted": "Payment 4711 for bob@example.com failed after 3 retries at 2024-05-01T10:00:00Z"}});
    let g = grouping(&event);
    let legacy = {
        use md5::Digest as _;
        let mut md5 = md5::Md5::new();
        md5.update(b"message:Payment <int> for <email> failed after <int> retries at <date>\0");
        hex::encode(md5.finalize())
    };
    assert_eq!(g.legacy_hash.as_deref(), Some(legacy.as_str()));
    assert!(g.all_hashes().any(|h| h == legacy));
    assert_eq!(
        g.all_hashes().next(),
        Some(g.hash.as_str()),
        "the primary hash first"
    );
}

#[test]
fn explain_shows_the_component_tree_with_hints() {
    let g = grouping(&python_error(
        "ZeroDivisionError",
        "division by zero",
        "checkout",
        10,
    ));
    let e = explain(&g);
    assert_eq!(e["config"], "newstyle:2026-01-20");
    let app = &e["variants"][0];
    assert_eq!(app["name"], "app");
    let exception = &app["component"]["values"][0];
    assert_eq!(exception["id"], "exception");
    let value = &exception["values"][1];
    assert_eq!(value["id"], "value");
    assert_eq!(value["contributes"], false);
    assert_eq!(value["hint"], "ignored because stacktrace takes precedence");
    let django_frame = &exception["values"][2]["values"][0];
    assert_eq!(django_frame["contributes"], false);
    assert_eq!(django_frame["hint"], "non app frame");
}

#[test]
fn the_explanation_of_a_stored_event_is_the_one_computed_at_ingest() {
    let payload = python_error("ZeroDivisionError", "division by zero", "checkout", 10);
    let event = normalize_event(payload.to_string().as_bytes(), &ctx()).unwrap();
    let at_ingest = explain(&group(&event));
    let later = explain_stored(&event.json, &GroupingConfig::default()).unwrap();
    assert_eq!(at_ingest, later);
    assert!(explain_stored("[1]", &GroupingConfig::default()).is_none());
}

#[test]
fn issue_ids_are_stable_positive_and_per_project() {
    let hash = "8d51c3e688edc451125ccadb2de81fa2";
    assert_eq!(issue_id(1, hash), issue_id(1, hash));
    assert_ne!(issue_id(1, hash), issue_id(2, hash));
    assert!(issue_id(1, hash) > 0);
}
