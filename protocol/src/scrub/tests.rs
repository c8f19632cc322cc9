use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use super::path::{Path, Step, ValueType};
use super::selector::{Automaton, Selector};
use super::{ScrubSettings, Scrubber};
use crate::normalize::{NormalizeContext, Processing, normalize_stored, process_event};

fn ctx() -> NormalizeContext {
    NormalizeContext {
        received: Utc.with_ymd_and_hms(2024, 5, 20, 9, 0, 0).unwrap(),
        client_ip: Some("198.51.100.7".parse().unwrap()),
        event_id: None,
    }
}

fn with(settings: &ScrubSettings, event: Value) -> Value {
    let scrubber = Scrubber::new(settings).unwrap();
    let event = process_event(
        event.to_string().as_bytes(),
        &ctx(),
        &Processing {
            scrubber: Some(&scrubber),
            sent_at: None,
        },
    )
    .unwrap();
    // what is stored normalizes to the same row on replay
    let replayed = normalize_stored(event.json.as_bytes(), &ctx()).unwrap();
    assert_eq!(replayed.json, event.json, "replay keeps the scrubbed event");
    serde_json::from_str(&event.json).unwrap()
}

fn scrub(event: Value) -> Value {
    with(&ScrubSettings::default(), event)
}

#[test]
fn password_keys_are_filtered_at_any_depth_with_meta() {
    let out = scrub(json!({"message": "m", "extra": {
        "db": {"settings": {"password": "hunter2", "user": "bob"}},
        "API_KEY": "k1", "author_token": 5, "credentials": {"a": 1}, "plain": "hello"
    }}));
    let extra = &out["extra"];
    assert_eq!(extra["db"]["settings"]["password"], "[Filtered]");
    assert_eq!(extra["db"]["settings"]["user"], "bob");
    assert_eq!(extra["API_KEY"], "[Filtered]");
    assert_eq!(extra["author_token"], Value::Null, "a number is removed");
    assert_eq!(extra["credentials"], Value::Null, "an object is removed");
    assert_eq!(extra["plain"], "hello");
    assert_eq!(
        out["_meta"]["extra"]["db"]["settings"]["password"][""],
        json!({"rem": [["@password:filter", "s", 0, 10]], "len": 7})
    );
    assert_eq!(
        out["_meta"]["extra"]["credentials"][""],
        json!({"rem": [["@password:filter", "x"]]})
    );
}

#[test]
fn credit_cards_need_a_valid_checksum() {
    let out = scrub(json!({"message": "m", "extra": {
        "card": "paid with 4111 1111 1111 1111 today",
        "dashed": "4111-1111-1111-1111",
        "bad_checksum": "4111 1111 1111 1112",
        "thirteen": "1234567890123",
        "amex": "378282246310005"
    }}));
    let extra = &out["extra"];
    assert_eq!(extra["card"], "paid with [Filtered] today");
    assert_eq!(extra["dashed"], "[Filtered]");
    assert_eq!(extra["bad_checksum"], "4111 1111 1111 1112");
    assert_eq!(extra["thirteen"], "1234567890123");
    assert_eq!(extra["amex"], "[Filtered]");
    assert_eq!(
        out["_meta"]["extra"]["card"][""]["rem"],
        json!([["@creditcard:filter", "s", 10, 20]])
    );
}

#[test]
fn ibans_pem_keys_url_passwords_ssns_and_user_paths() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
    let out = scrub(json!({"message": "m", "extra": {
        "iban": "DE89370400440532013000",
        "pem": pem,
        "dsn": "postgres://admin:s3cr3t@db.internal/app",
        "ssn": "ssn 078-05-1120",
        "home": "/home/alice/app/main.py",
        "date": "2024-05-20"
    }}));
    let extra = &out["extra"];
    assert_eq!(extra["iban"], "[Filtered]");
    assert_eq!(
        extra["pem"],
        "-----BEGIN RSA PRIVATE KEY-----[Filtered]-----END RSA PRIVATE KEY-----"
    );
    assert_eq!(extra["dsn"], "postgres://admin:[Filtered]@db.internal/app");
    assert_eq!(extra["ssn"], "ssn [Filtered]");
    assert_eq!(extra["home"], "/home/[Filtered]/app/main.py");
    assert_eq!(extra["date"], "2024-05-20");
}

#[test]
fn request_headers_cookies_query_and_body() {
    let out = scrub(json!({"message": "m", "request": {
        "url": "https://shop.example/pay?api_key=SECRETQ&page=2",
        "query_string": "api_key=SECRETQ&page=2",
        "headers": [["Authorization", "Bearer abc.def"], ["X-Trace", "Bearer xyz1"],
                    ["Cookie", "symfony=S1; theme=dark"], ["User-Agent", "curl/8.0 token"]],
        "cookies": {"sessionid": "S1", "csrftoken": "C1", "theme": "dark"},
        "data": "{\"password\": \"p\", \"note\": \"ok\"}",
        "env": {"REMOTE_ADDR": "203.0.113.9"}
    }}));
    let request = &out["request"];
    assert_eq!(
        request["url"],
        "https://shop.example/pay?api_key=[Filtered]&page=2"
    );
    assert_eq!(request["query_string"], "api_key=[Filtered]&page=2");
    assert_eq!(request["headers"][0][1], "[Filtered]");
    assert_eq!(request["headers"][1][1], "Bearer [Filtered]");
    assert_eq!(request["headers"][2][1], "symfony=[Filtered]; theme=dark");
    assert_eq!(
        request["headers"][3][1], "curl/8.0 token",
        "the user agent stays"
    );
    assert_eq!(
        request["cookies"],
        json!({"sessionid": "[Filtered]", "csrftoken": "[Filtered]", "theme": "dark"})
    );
    assert_eq!(
        request["data"],
        json!({"password": "[Filtered]", "note": "ok"})
    );
    assert_eq!(
        request["env"]["REMOTE_ADDR"], "203.0.113.9",
        "IPs stay by default"
    );
    let meta = &out["_meta"]["request"];
    assert_eq!(
        meta["headers"]["0"]["1"][""],
        json!({"rem": [["@password:filter", "s", 0, 10]], "len": 14})
    );
    assert_eq!(
        meta["query_string"][""]["rem"],
        json!([["@password:filter", "s", 8, 18]])
    );
    assert_eq!(
        meta["headers"]["2"]["1"][""]["rem"],
        json!([["@anything:filter", "s", 8, 18]])
    );
}

#[test]
fn breadcrumbs_frames_and_readable_text() {
    let out = scrub(json!({
        "logentry": {"formatted": "charge 4111111111111111 for a@b.co failed"},
        "exception": {"values": [{"type": "ValueError", "value": "token Bearer abc123 refused",
            "stacktrace": {"frames": [{"function": "pay", "filename": "/home/alice/pay.py",
                "vars": {"secret_token": "tok_live_1", "amount": 10, "card": "4111111111111111"}}]}}]},
        "breadcrumbs": [{"message": "login with password", "data": {"password": "p1", "user": "u"}}]
    }));
    assert_eq!(
        out["logentry"]["formatted"],
        "charge [creditcard] for [email] failed"
    );
    let exc = &out["exception"]["values"][0];
    assert_eq!(exc["value"], "token Bearer [token] refused");
    let frame = &exc["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "/home/alice/pay.py", "file names stay");
    assert_eq!(frame["vars"]["secret_token"], "[Filtered]");
    assert_eq!(frame["vars"]["amount"], 10);
    assert_eq!(frame["vars"]["card"], "[Filtered]");
    let crumb = &out["breadcrumbs"]["values"][0];
    assert_eq!(
        crumb["message"], "login with password",
        "a word is no secret"
    );
    assert_eq!(crumb["data"]["password"], "[Filtered]");
    assert_eq!(crumb["data"]["user"], "u");
    assert_eq!(
        out["_meta"]["logentry"]["formatted"][""]["rem"],
        json!([
            ["@creditcard:replace", "s", 7, 19],
            ["@email:replace", "s", 24, 31]
        ])
    );
}

#[test]
fn safe_fields_sensitive_fields_and_switching_off() {
    let event = json!({"message": "m", "extra": {"password": "p", "order": {"token": "t"},
        "my_field": "x", "card": "4111111111111111"}});
    let safe = ScrubSettings {
        safe_fields: vec!["password".into(), "order".into()],
        sensitive_fields: vec!["my_field".into()],
        ..ScrubSettings::default()
    };
    let out = with(&safe, event.clone());
    assert_eq!(out["extra"]["password"], "p");
    assert_eq!(
        out["extra"]["order"]["token"], "t",
        "below a safe field too"
    );
    assert_eq!(out["extra"]["my_field"], "[Filtered]");
    assert_eq!(
        out["_meta"]["extra"]["my_field"][""]["rem"],
        json!([["strip-fields", "s", 0, 10]])
    );

    let off = ScrubSettings {
        scrub_data: false,
        ..ScrubSettings::default()
    };
    let out = with(&off, event.clone());
    assert_eq!(out["extra"], event["extra"]);
    assert!(out.get("_meta").is_none());

    let no_defaults = ScrubSettings {
        scrub_defaults: false,
        ..ScrubSettings::default()
    };
    assert_eq!(with(&no_defaults, event.clone())["extra"], event["extra"]);
}

#[test]
fn sensitive_keys_match_in_any_case_anywhere_in_the_name() {
    let event = json!({"message": "m", "extra": {
        "DB_PASSWORD": "a", "X_API_KEY": "b", "userSessionId": "c", "Two-Factor-Code": "d",
        "my_Field_2": "e", "CONTRASEÑA": "f", "author": "g",
        "filename": "kept", "X-Api-Key": "kept: not api_key nor apikey"}});
    let settings = ScrubSettings {
        sensitive_fields: vec!["MY_FIELD".into(), "contraseña".into()],
        ..ScrubSettings::default()
    };
    let out = with(&settings, event);
    let extra = &out["extra"];
    for key in [
        "DB_PASSWORD",
        "X_API_KEY",
        "userSessionId",
        "Two-Factor-Code",
        "my_Field_2",
        "CONTRASEÑA",
        "author",
    ] {
        assert_eq!(extra[key], "[Filtered]", "{key}: {extra}");
    }
    assert_eq!(extra["filename"], "kept");
    assert_eq!(extra["X-Api-Key"], "kept: not api_key nor apikey");
}

#[test]
fn ip_addresses_are_removed_when_asked() {
    let event = json!({"message": "seen from 10.1.2.3", "user": {"ip_address": "{{auto}}", "id": "7"},
        "request": {"env": {"REMOTE_ADDR": "203.0.113.9"}, "headers": {"X-Forwarded-For": "203.0.113.9"}}});
    let kept = scrub(event.clone());
    assert_eq!(
        kept["user"]["ip_address"], "198.51.100.7",
        "{{auto}} is the client"
    );
    let settings = ScrubSettings {
        scrub_ip_addresses: true,
        ..ScrubSettings::default()
    };
    let out = with(&settings, event);
    assert!(out["user"]["ip_address"].is_null());
    assert_eq!(out["user"]["id"], "7");
    assert!(out["request"]["env"]["REMOTE_ADDR"].is_null());
    assert_eq!(out["request"]["headers"]["X-Forwarded-For"], "[ip]");
    assert_eq!(
        out["_meta"]["user"]["ip_address"][""]["rem"],
        json!([["@anything:remove", "x"]])
    );
}

#[test]
fn advanced_rules_in_relays_format() {
    let config = json!({
        "rules": {
            "order_ids": {"type": "pattern", "pattern": "ORD-\\d+", "redaction": {"method": "replace", "text": "[order]"}},
            "internal": {"type": "redact_pair", "keyPattern": "^x-internal", "redaction": {"method": "remove"}},
            "all": {"type": "anything", "redaction": {"method": "mask"}},
            "both": {"type": "multiple", "rules": ["@email", "@ip"], "hideInner": true, "redaction": {"method": "hash"}}
        },
        "applications": {
            "$string": ["order_ids"],
            "$http.headers": ["internal"],
            "$http.headers.*": ["internal"],
            "extra.pin": ["all"],
            "extra.who": ["both"],
            "$frame.vars.** && !$frame.vars.keep": ["@anything:replace"],
            "$error.value": ["@usssn:mask"]
        }
    });
    let settings = ScrubSettings {
        scrub_data: false,
        pii_config: Some(config.to_string()),
        ..ScrubSettings::default()
    };
    let out = with(
        &settings,
        json!({"message": "order ORD-123 failed",
        "request": {"headers": {"X-Internal-Id": "1", "Accept": "x"}},
        "extra": {"pin": "1234", "who": "a@b.co", "password": "p"},
        "exception": {"values": [{"type": "E", "value": "ssn 078-05-1120",
            "stacktrace": {"frames": [{"function": "f", "vars": {"a": "1", "keep": "2"}}]}}]}}),
    );
    assert_eq!(out["logentry"]["formatted"], "order [order] failed");
    assert_eq!(
        out["request"]["headers"],
        json!({"Accept": "x"}),
        "the header is removed"
    );
    assert_eq!(out["extra"]["pin"], "****");
    assert_eq!(out["extra"]["password"], "p", "the data scrubber is off");
    let who = out["extra"]["who"].as_str().unwrap();
    assert_eq!(who.len(), 64, "hashed: {who}");
    assert_eq!(
        out["_meta"]["extra"]["who"][""]["rem"][0],
        json!(["both", "p", 0, 64])
    );
    let frame = &out["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["vars"]["a"], "[Filtered]");
    assert_eq!(frame["vars"]["keep"], "2");
    assert_eq!(out["exception"]["values"][0]["value"], "ssn ***********");
}

#[test]
fn bad_advanced_rules_name_the_problem() {
    for (config, needle) in [
        ("{", "not valid JSON"),
        (r#"{"applications": {"$string": ["nope"]}}"#, "\"nope\""),
        (r#"{"applications": {"$strin": ["@ip"]}}"#, "unknown type"),
        (
            r#"{"applications": {"$string": ["@ip:fold"]}}"#,
            "no such built-in",
        ),
        (
            r#"{"rules": {"r": {"type": "pattern", "pattern": "("}}, "applications": {"$string": ["r"]}}"#,
            "invalid `pattern`",
        ),
    ] {
        let err = Scrubber::new(&ScrubSettings {
            pii_config: Some(config.to_owned()),
            ..ScrubSettings::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(needle), "{config}: {err}");
    }
}

#[test]
fn selectors_anchor_keys_at_the_top_and_types_anywhere() {
    let a = Automaton::default();
    let root = Path::root(&a);
    let extra = root.child(Step::Key("extra"), &a, ValueType::Object);
    let foo = extra.child(Step::Key("foo"), &a, ValueType::Object);
    let nested = foo.child(Step::Key("extra"), &a, ValueType::Object);
    let deep = nested.child(Step::Key("foo"), &a, ValueType::Object);
    let sel = |s: &str| Selector::parse(s).unwrap();
    assert!(sel("extra.foo").matches(&foo, ValueType::String));
    assert!(sel("EXTRA.Foo").matches(&foo, ValueType::String));
    assert!(
        !sel("extra.foo").matches(&deep, ValueType::String),
        "anchored"
    );
    assert!(sel("**.extra.foo").matches(&deep, ValueType::String));
    assert!(sel("extra.*").matches(&foo, ValueType::String));
    assert!(!sel("extra.*").matches(&deep, ValueType::String));
    assert!(sel("extra.**").matches(&deep, ValueType::String));
    assert!(
        !sel("extra.**").matches(&extra, ValueType::Object),
        "below, not itself"
    );
    assert!(sel("**").matches(&extra, ValueType::Object));
    assert!(sel("$string").matches(&deep, ValueType::String));
    assert!(!sel("$string").matches(&deep, ValueType::Number));
    assert!(sel("$string && !extra.foo").matches(&deep, ValueType::String));
    assert!(sel("extra.'foo'").matches(&foo, ValueType::String));
    assert!(sel("(extra.bar || extra.foo)").matches(&foo, ValueType::String));
    let exception = root.child(Step::Key("exception"), &a, ValueType::Object);
    let exc = exception.child(Step::Key("values"), &a, ValueType::Object);
    let error = exc.child(Step::Index(0), &a, ValueType::Object);
    let value = error.child(Step::Key("value"), &a, ValueType::Object);
    assert!(sel("$error.value").matches(&value, ValueType::String));
    assert!(!sel("$frame.value").matches(&value, ValueType::String));
    for bad in ["", "extra.", "(extra", "$nothing", "'open"] {
        assert!(Selector::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn clock_drift_is_corrected_from_sent_at() {
    let received = ctx().received;
    let sent_at = received - chrono::Duration::hours(2);
    let payload = json!({"message": "m", "timestamp": sent_at.timestamp(),
        "breadcrumbs": [{"timestamp": (sent_at - chrono::Duration::seconds(5)).timestamp(), "message": "b"}]});
    let event = process_event(
        payload.to_string().as_bytes(),
        &ctx(),
        &Processing {
            scrubber: None,
            sent_at: Some(sent_at),
        },
    )
    .unwrap();
    assert_eq!(event.timestamp, received);
    let json: Value = serde_json::from_str(&event.json).unwrap();
    assert_eq!(
        json["breadcrumbs"]["values"][0]["timestamp"],
        json!((received - chrono::Duration::seconds(5)).timestamp())
    );
    assert_eq!(json["errors"][0]["type"], "clock_drift");
    // under Relay's threshold of 55 minutes nothing moves
    let small = process_event(
        payload.to_string().as_bytes(),
        &ctx(),
        &Processing {
            scrubber: None,
            sent_at: Some(received - chrono::Duration::minutes(54)),
        },
    )
    .unwrap();
    assert_eq!(small.timestamp, sent_at);
}

#[test]
fn browser_os_and_device_from_the_user_agent() {
    let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let out = scrub(json!({"message": "m", "request": {"headers": {"User-Agent": chrome}}}));
    assert_eq!(out["contexts"]["browser"]["name"], "Chrome");
    assert_eq!(out["contexts"]["os"]["name"], "Windows 10");
    let tags: Vec<(String, String)> = serde_json::from_value(out["tags"].clone()).unwrap();
    assert!(
        tags.contains(&("browser.name".into(), "Chrome".into())),
        "{tags:?}"
    );
    assert!(
        tags.contains(&("browser".into(), "Chrome 120.0.0.0".into())),
        "{tags:?}"
    );

    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let out = scrub(
        json!({"message": "m", "contexts": {"os": {"name": "Linux"}},
        "tags": {"browser": "mine"}, "request": {"headers": [["user-agent", iphone]]}}),
    );
    assert_eq!(out["contexts"]["browser"]["name"], "Safari");
    assert_eq!(out["contexts"]["os"]["name"], "Linux", "the SDK's OS stays");
    assert_eq!(out["contexts"]["client_os"]["name"], "iPhone");
    assert_eq!(out["contexts"]["device"]["family"], "iPhone");
    let tags: Vec<(String, String)> = serde_json::from_value(out["tags"].clone()).unwrap();
    assert!(
        tags.contains(&("browser".into(), "mine".into())),
        "the SDK's tag wins"
    );
    assert!(tags.contains(&("device".into(), "iPhone".into())));

    let out = scrub(
        json!({"message": "m", "request": {"headers": {"User-Agent": "python-requests/2.31"}}}),
    );
    assert!(
        out.get("contexts")
            .is_none_or(|c| c.get("browser").is_none())
    );
}

#[test]
fn a_wsgi_environment_in_local_variables_is_scrubbed_by_its_names() {
    let out = scrub(
        json!({"message": "m", "exception": {"values": [{"type": "E",
        "stacktrace": {"frames": [{"function": "app", "vars": {"environ": {
            "QUERY_STRING": "'api_key=Q1&page=2'",
            "HTTP_COOKIE": "'sessionid=C1; theme=dark'",
            "HTTP_AUTHORIZATION": "'Bearer B1'",
            "PATH_INFO": "'/pay'"
        }}}]}}]}}),
    );
    let environ = &out["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]["environ"];
    assert_eq!(environ["QUERY_STRING"], "'api_key=[Filtered]&page=2'");
    assert_eq!(environ["HTTP_COOKIE"], "'sessionid=[Filtered]; theme=dark'");
    assert_eq!(environ["HTTP_AUTHORIZATION"], "[Filtered]");
    assert_eq!(environ["PATH_INFO"], "'/pay'");
}

#[test]
fn strings_cut_to_relays_limits_are_recorded_in_meta() {
    let long = "x".repeat(9000);
    let out = scrub(json!({"message": long, "transaction": "t".repeat(300),
        "exception": {"values": [{"type": "E", "value": "short"}, {"type": "F", "value": long}]}}));
    let formatted = out["logentry"]["formatted"].as_str().unwrap();
    assert_eq!(formatted.chars().count(), 8192);
    assert_eq!(
        out["_meta"]["logentry"]["formatted"][""]["rem"],
        json!([["!limit", "s", 8189, 8192]])
    );
    assert_eq!(
        out["_meta"]["exception"]["values"]["1"]["value"][""]["rem"],
        json!([["!limit", "s", 8189, 8192]])
    );
    assert!(out["_meta"]["exception"]["values"].get("0").is_none());
    assert_eq!(
        out["_meta"]["transaction"][""]["rem"],
        json!([["!limit", "s", 197, 200]])
    );
    // at the limit exactly, nothing was cut
    let out = scrub(json!({"message": "y".repeat(8192)}));
    assert!(out.get("_meta").is_none());
}

/// Paths compiled into the automaton select exactly what the paths select when matched from
/// the value upwards.
#[test]
fn compiled_selectors_select_what_the_paths_select() {
    let texts = [
        "debug_meta.**",
        "contexts.trace.**",
        "$error.mechanism.**",
        "**",
        "extra.**",
        "$frame.vars.**",
        "*.**",
        "$http.headers.**",
        "!(sdk.** || extra.foo.**) && $string",
        "event_id || extra.foo || contexts.trace.span_id || *.values.*",
        "**.foo || **.foo.** || extra.**.x || $error.** || **.**.x",
        "$string || $object || $object.** || extra.$string || *.*",
        "$http.headers.x || $frame.vars.** || $exception.stacktrace.frames.*.vars",
        "extra.'foo'.x.** || contexts.**.span_id || $event.extra",
    ];
    let mut automaton = Automaton::default();
    let compiled: Vec<(Selector, Selector)> = texts
        .iter()
        .map(|t| {
            let s = Selector::parse(t).unwrap();
            (s.clone(), s.compile(&mut automaton))
        })
        .collect();
    assert!(compiled.iter().all(|(a, b)| a != b), "every one compiles");
    let root = Path::root(&automaton);
    let keys = [
        "debug_meta",
        "contexts",
        "exception",
        "extra",
        "sdk",
        "request",
    ];
    let mut checked = 0;
    let mut selected = 0;
    let obj = ValueType::Object;
    for top_key in keys {
        let top = root.child(Step::Key(top_key), &automaton, obj);
        for second in ["trace", "values", "foo", "headers", "images", "x"] {
            let two = top.child(Step::Key(second), &automaton, obj);
            let three = two.child(Step::Index(0), &automaton, obj);
            for fourth in ["mechanism", "stacktrace", "vars", "span_id", "x", "foo"] {
                let four = three.child(Step::Key(fourth), &automaton, obj);
                let frames = four.child(Step::Key("frames"), &automaton, obj);
                let frame = frames.child(Step::Index(1), &automaton, obj);
                for ty in [ValueType::String, ValueType::Object] {
                    let five = four.child(Step::Key("x"), &automaton, ty);
                    let vars = frame.child(Step::Key("vars"), &automaton, obj);
                    let var = vars.child(Step::Pair(0, "x"), &automaton, ty);
                    let piece = var.child(Step::Piece("foo"), &automaton, ty);
                    let at_ty = |p: &Path<'_>| {
                        if std::ptr::eq(p, &five)
                            || std::ptr::eq(p, &var)
                            || std::ptr::eq(p, &piece)
                        {
                            ty
                        } else {
                            obj
                        }
                    };
                    for path in [
                        &root, &top, &two, &three, &four, &five, &frames, &frame, &vars, &var,
                        &piece,
                    ] {
                        for (text, (plain, fast)) in texts.iter().zip(&compiled) {
                            let want = plain.matches(path, at_ty(path));
                            assert_eq!(
                                want,
                                fast.matches(path, at_ty(path)),
                                "{text} at {:?} ({ty:?})",
                                path.meta_path()
                            );
                            checked += 1;
                            selected += usize::from(want);
                        }
                    }
                }
            }
        }
    }
    // both answers occur, so the comparison is not of two constant functions
    assert!(
        selected > 1000 && checked - selected > 1000,
        "{selected} of {checked}"
    );
}

/// The event with `settings`, once walking into every value and once leaving out what no rule
/// can reach.
fn both_ways(settings: &ScrubSettings, payload: &[u8]) -> (String, String) {
    let fast = Scrubber::new(settings).unwrap();
    let mut every = Scrubber::new(settings).unwrap();
    every.walk_everything = true;
    // an event without an id gets the same one both times
    let ctx = NormalizeContext {
        event_id: Some(uuid::Uuid::from_u128(7)),
        ..ctx()
    };
    let run = |scrubber: &Scrubber| {
        process_event(
            payload,
            &ctx,
            &Processing {
                scrubber: Some(scrubber),
                sent_at: None,
            },
        )
        .map(|e| e.json)
        .unwrap_or_default()
    };
    (run(&fast), run(&every))
}

#[test]
fn values_no_rule_can_reach_are_left_unwalked_with_the_same_result() {
    let modules = |settings: &ScrubSettings| {
        let scrubber = Scrubber::new(settings).unwrap();
        let root = Path::root(&scrubber.automaton);
        let path = root.child(Step::Key("modules"), &scrubber.automaton, ValueType::Object);
        scrubber.untouched_below(&path.states, &mut super::Memo::new())
    };
    let defaults = ScrubSettings::default();
    let advanced = ScrubSettings {
        pii_config: Some(
            r#"{"applications": {"modules.django": ["@anything:remove"],
                                 "$string": ["@email:replace"]}}"#
                .to_owned(),
        ),
        ..ScrubSettings::default()
    };
    let safe = ScrubSettings {
        safe_fields: vec!["order_id".into(), "extra.cart.**".into()],
        sensitive_fields: vec!["customer_tier".into()],
        scrub_ip_addresses: true,
        ..ScrubSettings::default()
    };
    assert!(
        modules(&defaults),
        "the default rules leave `modules` alone"
    );
    assert!(
        !modules(&advanced),
        "a rule for `modules.django` reaches into it"
    );

    // secrets where the default rules do not look, and where they do
    let planted = json!({
        "message": "m",
        "modules": {"django": "4.2", "password-hasher": "1.0", "x": "alice@example.com"},
        "sdk": {"name": "sentry.python", "integrations": ["token"],
                "packages": [{"name": "pypi:secret", "version": "1"}]},
        "contexts": {"trace": {"trace_id": "4c79f60c11214eb38604f4ae0781bfb2",
                               "data": {"password": "hunter2"}},
                     "app": {"session": "abc", "data": [["token", "t"]]}},
        "extra": {"cart": {"password": "kept"}, "q": "/x?token=abc&b=1",
                  "nested": [{"api_key": "k"}, "4111 1111 1111 1111"]},
        "user": {"ip_address": "198.51.100.9", "email": "bob@example.com"},
        "debug_meta": {"images": [{"code_file": "/home/bob/app", "secret": "s"}]},
    });
    let mut payloads = vec![planted.to_string().into_bytes()];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for sub in ["events", "sdk"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "json") {
                payloads.push(std::fs::read(entry.path()).unwrap());
            }
        }
    }
    assert!(payloads.len() > 10, "the fixtures are there");
    for settings in [&defaults, &advanced, &safe] {
        for payload in &payloads {
            let (fast, every) = both_ways(settings, payload);
            assert_eq!(
                fast,
                every,
                "{settings:?}\n{}",
                String::from_utf8_lossy(payload)
            );
        }
    }
    let (fast, _) = both_ways(&advanced, &payloads[0]);
    let fast: Value = serde_json::from_str(&fast).unwrap();
    assert_eq!(
        fast["modules"],
        json!({"password-hasher": "1.0", "x": "[email]"}),
        "the advanced rules reach into `modules`"
    );
}

#[test]
fn the_event_names_the_rules_that_changed_it_and_not_the_size_limits() {
    let scrubber = Scrubber::new(&ScrubSettings::default()).unwrap();
    let process = |payload: Value| {
        process_event(
            payload.to_string().as_bytes(),
            &ctx(),
            &Processing {
                scrubber: Some(&scrubber),
                sent_at: None,
            },
        )
        .unwrap()
    };
    let long = "x".repeat(20_000);
    let event = process(json!({"message": "card 4111 1111 1111 1111",
        "extra": {"db_password": "hunter2", "other_password": "x", "blob": long}}));
    assert_eq!(
        event.scrubbed_by,
        ["@creditcard:replace", "@password:filter"],
        "each rule once, sorted"
    );
    let json: Value = serde_json::from_str(&event.json).unwrap();
    assert!(
        json["_meta"].to_string().contains("!limit"),
        "the cut value is in _meta all the same: {}",
        json["_meta"]
    );
    let clean = process(json!({"message": "all good", "extra": {"blob": long}}));
    assert!(clean.scrubbed_by.is_empty(), "{:?}", clean.scrubbed_by);
    // replay does not scrub again, and says nothing
    let replayed = normalize_stored(event.json.as_bytes(), &ctx()).unwrap();
    assert!(replayed.scrubbed_by.is_empty());
}
