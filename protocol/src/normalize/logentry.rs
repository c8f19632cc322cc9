//! The log message: `logentry` (or its legacy aliases `sentry.interfaces.Message` and
//! `message`), formatted into `logentry.formatted` as Relay does.
//!
//! A plain string becomes `{"formatted": ..}`. When `formatted` is missing and `params` are
//! given, `message` is formatted with them: printf style (`%s`, `%d`, `%(name)s`, `%%`) when
//! the message contains `%`, else brace style (`{}`, `{0}`, `{name}`). A message that cannot
//! be formatted (missing parameters) is used as is. `message` is dropped when it equals
//! `formatted`. Both are cut to 8192 characters, Relay's limit.

use serde_json::{Map, Value};

/// Normalizes a `logentry` value in place; returns false if it should be removed.
pub(crate) fn normalize(value: &mut Value) -> bool {
    match value {
        Value::String(s) => {
            let mut formatted = std::mem::take(s);
            super::truncate_string(&mut formatted, super::MAX_MESSAGE_CHARS);
            let mut map = Map::new();
            map.insert("formatted".into(), Value::String(formatted));
            *value = Value::Object(map);
            value_has_text(value)
        }
        Value::Object(map) => normalize_object(map),
        _ => false,
    }
}

fn value_has_text(value: &Value) -> bool {
    value
        .get("formatted")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

fn normalize_object(map: &mut Map<String, Value>) -> bool {
    for key in ["message", "formatted"] {
        if map.get(key).is_some_and(|v| !v.is_string()) {
            map.remove(key);
        }
    }
    if map
        .get("params")
        .is_some_and(|p| !p.is_array() && !p.is_object())
    {
        map.remove("params");
    }
    let message = map.get("message").and_then(Value::as_str);
    if map.get("formatted").is_none() {
        let Some(message) = message else {
            return false;
        };
        let formatted = map
            .get("params")
            .and_then(|params| format(message, params))
            .unwrap_or_else(|| message.to_owned());
        map.insert("formatted".into(), Value::String(formatted));
    }
    for key in ["message", "formatted"] {
        if let Some(Value::String(text)) = map.get_mut(key) {
            super::truncate_string(text, super::MAX_MESSAGE_CHARS);
        }
    }
    if map.get("message") == map.get("formatted") {
        map.remove("message");
    }
    map.get("formatted")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

/// Formats `message` with `params` (a list or an object); `None` if it does not fit.
pub(crate) fn format(message: &str, params: &Value) -> Option<String> {
    if message.contains('%') {
        format_printf(message, params)
    } else if message.contains('{') {
        format_braces(message, params)
    } else {
        None
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

fn format_printf(message: &str, params: &Value) -> Option<String> {
    let mut out = String::with_capacity(message.len() + 16);
    let mut next = 0usize;
    let mut rest = message;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let spec = &rest[pos + 1..];
        if let Some(after) = spec.strip_prefix('%') {
            out.push('%');
            rest = after;
            continue;
        }
        let (name, spec) = match spec.strip_prefix('(') {
            Some(named) => {
                let end = named.find(')')?;
                (Some(&named[..end]), &named[end + 1..])
            }
            None => (None, spec),
        };
        // flags, width and precision are accepted and ignored
        let body_len = spec
            .find(|c: char| !matches!(c, '-' | '+' | ' ' | '#' | '0'..='9' | '.'))
            .unwrap_or(spec.len());
        let conversion = spec[body_len..].chars().next()?;
        if !"sdiouxXeEfFgGcra".contains(conversion) {
            return None;
        }
        let arg = match name {
            Some(name) => params.as_object()?.get(name)?,
            None => {
                let arg = params.as_array()?.get(next)?;
                next += 1;
                arg
            }
        };
        out.push_str(&display(arg));
        rest = &spec[body_len + conversion.len_utf8()..];
    }
    out.push_str(rest);
    Some(out)
}

fn format_braces(message: &str, params: &Value) -> Option<String> {
    let mut out = String::with_capacity(message.len() + 16);
    let mut next = 0usize;
    let mut chars = message.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let end = i + 1 + message[i + 1..].find('}')?;
                let key = &message[i + 1..end];
                let arg = if key.is_empty() {
                    let arg = params.as_array()?.get(next)?;
                    next += 1;
                    arg
                } else if let Ok(index) = key.parse::<usize>() {
                    params.as_array()?.get(index)?
                } else {
                    params.as_object()?.get(key)?
                };
                out.push_str(&display(arg));
                while chars.peek().is_some_and(|(j, _)| *j <= end) {
                    chars.next();
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalized(mut v: Value) -> Value {
        assert!(normalize(&mut v), "{v}");
        v
    }

    #[test]
    fn formats_printf_positional_and_named() {
        assert_eq!(
            format("This is a warning: %s", &json!(["warning"])).as_deref(),
            Some("This is a warning: warning")
        );
        assert_eq!(
            format("%d%% of %(who)s", &json!({"who": "users"})),
            None,
            "mixing positional and named fails"
        );
        assert_eq!(
            format(
                "100%% of %(who)s, %(n)05d",
                &json!({"who": "users", "n": 7})
            )
            .as_deref(),
            Some("100% of users, 7")
        );
        assert_eq!(format("%s and %s", &json!(["one"])), None);
    }

    #[test]
    fn formats_brace_styles() {
        assert_eq!(
            format("hello, {}!", &json!(["world"])).as_deref(),
            Some("hello, world!")
        );
        assert_eq!(
            format("{1} {0}", &json!(["a", "b"])).as_deref(),
            Some("b a")
        );
        assert_eq!(
            format("Here is a new {foo} {{x}}", &json!({"foo": "error"})).as_deref(),
            Some("Here is a new error {x}")
        );
        assert_eq!(format("{missing}", &json!({})), None);
    }

    #[test]
    fn string_becomes_formatted() {
        assert_eq!(normalized(json!("hi")), json!({"formatted": "hi"}));
    }

    #[test]
    fn message_with_params_is_formatted_and_kept() {
        assert_eq!(
            normalized(json!({"message": "a %s", "params": ["b"]})),
            json!({"message": "a %s", "params": ["b"], "formatted": "a b"})
        );
    }

    #[test]
    fn existing_formatted_wins_and_equal_message_is_dropped() {
        assert_eq!(
            normalized(json!({"message": "x {foo}", "params": {"foo": 1}, "formatted": "x {foo}"})),
            json!({"params": {"foo": 1}, "formatted": "x {foo}"})
        );
    }

    #[test]
    fn unusable_logentries_are_removed() {
        for v in [
            json!({"params": ["bogus"], "formatted": 42}),
            json!(7),
            json!(""),
            json!({}),
        ] {
            let mut v = v;
            assert!(!normalize(&mut v), "{v}");
        }
    }

    #[test]
    fn long_messages_are_cut_to_relays_limit() {
        let long = "é".repeat(10_000);
        let v = normalized(json!({ "message": long }));
        let formatted = v["formatted"].as_str().unwrap();
        assert_eq!(formatted.chars().count(), 8192);
        assert!(formatted.ends_with("..."));
        assert_eq!(normalized(v.clone()), v);
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for v in [
            json!("hi"),
            json!({"message": "a %s", "params": ["b"]}),
            json!({"message": "{0}"}),
        ] {
            let once = normalized(v);
            assert_eq!(normalized(once.clone()), once);
        }
    }
}
