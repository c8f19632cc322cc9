//! One stored event (the normalized JSON of the `event` column) as the event view shows it:
//! exception chain with frames, breadcrumbs, request, user, tags, contexts and SDK.

use serde_json::{Map, Value};

/// A line of source around a frame.
pub(crate) struct ContextLine {
    pub(crate) lineno: String,
    pub(crate) code: String,
    pub(crate) current: bool,
}

pub(crate) struct Frame {
    pub(crate) function: String,
    pub(crate) location: String,
    pub(crate) in_app: bool,
    pub(crate) context: Vec<ContextLine>,
    pub(crate) vars: Vec<(String, String)>,
}

pub(crate) struct Exception {
    pub(crate) kind: String,
    pub(crate) value: String,
    pub(crate) module: String,
    pub(crate) mechanism: String,
    pub(crate) handled: String,
    /// In display order (see [`EventView::parse`]).
    pub(crate) frames: Vec<Frame>,
    /// Frames left out by the in-app filter.
    pub(crate) hidden: usize,
}

pub(crate) struct Crumb {
    pub(crate) time: String,
    pub(crate) kind: String,
    pub(crate) category: String,
    pub(crate) level: String,
    pub(crate) message: String,
    pub(crate) data: String,
}

/// A named group of key/value pairs (a context, the request, the user, the SDK).
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) pairs: Vec<(String, String)>,
}

pub(crate) struct EventView {
    pub(crate) message: String,
    pub(crate) platform: String,
    pub(crate) release: String,
    pub(crate) environment: String,
    pub(crate) exceptions: Vec<Exception>,
    pub(crate) crumbs: Vec<Crumb>,
    /// Breadcrumbs before the level/text filter.
    pub(crate) crumbs_total: usize,
    pub(crate) request: Vec<(String, String)>,
    pub(crate) user: Vec<(String, String)>,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) contexts: Vec<Section>,
    pub(crate) sdk: Vec<(String, String)>,
}

/// How the view is narrowed: from the URL (`frames`, `order`, `crumb_level`, `crumb_q`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ViewOptions {
    pub(crate) app_only: bool,
    pub(crate) oldest_first: bool,
    pub(crate) crumb_level: String,
    pub(crate) crumb_text: String,
}

/// A scalar as text; objects and arrays as compact JSON.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn str_at(value: &Value, key: &str) -> String {
    value.get(key).map(text).unwrap_or_default()
}

fn values(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Object(o)) => match o.get("values") {
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        },
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

fn pairs(value: Option<&Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::Object(o)) => o
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
        // `[[key, value], ...]` (normalized tags and headers)
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|p| Some((text(p.get(0)?), text(p.get(1)?))))
            .collect(),
        _ => Vec::new(),
    }
}

fn frame(value: &Value) -> Frame {
    let file = [&"filename", &"abs_path", &"module"]
        .iter()
        .map(|k| str_at(value, k))
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "?".to_owned());
    let mut location = file;
    if let Some(line) = value.get("lineno").filter(|v| !v.is_null()) {
        location.push_str(&format!(":{}", text(line)));
        if let Some(col) = value.get("colno").filter(|v| !v.is_null()) {
            location.push_str(&format!(":{}", text(col)));
        }
    }
    let lineno = value.get("lineno").and_then(Value::as_i64);
    let mut context = Vec::new();
    let pre: Vec<Value> = values(value.get("pre_context"));
    let post: Vec<Value> = values(value.get("post_context"));
    if let Some(current) = value.get("context_line").filter(|v| !v.is_null()) {
        let n = |offset: i64| lineno.map(|l| (l + offset).to_string()).unwrap_or_default();
        for (i, line) in pre.iter().enumerate() {
            context.push(ContextLine {
                lineno: n(i as i64 - pre.len() as i64),
                code: text(line),
                current: false,
            });
        }
        context.push(ContextLine {
            lineno: n(0),
            code: text(current),
            current: true,
        });
        for (i, line) in post.iter().enumerate() {
            context.push(ContextLine {
                lineno: n(i as i64 + 1),
                code: text(line),
                current: false,
            });
        }
    }
    let vars = match value.get("vars") {
        Some(Value::Object(vars)) => vars
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(s) => s.clone(),
                    other => serde_json::to_string_pretty(other).unwrap_or_default(),
                };
                (k.clone(), shown)
            })
            .collect(),
        _ => Vec::new(),
    };
    Frame {
        function: value
            .get("function")
            .map(text)
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "?".to_owned()),
        location,
        in_app: value
            .get("in_app")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        context,
        vars,
    }
}

fn exception(value: &Value, options: &ViewOptions) -> Exception {
    let stacktrace = value.get("stacktrace");
    let mut frames: Vec<Frame> = values(stacktrace.and_then(|s| s.get("frames")))
        .iter()
        .map(frame)
        .collect();
    // Stored oldest call first (as SDKs send them); newest first unless asked otherwise.
    if !options.oldest_first {
        frames.reverse();
    }
    let total = frames.len();
    if options.app_only && frames.iter().any(|f| f.in_app) {
        frames.retain(|f| f.in_app);
    }
    let mechanism = value.get("mechanism");
    Exception {
        kind: str_at(value, "type"),
        value: str_at(value, "value"),
        module: str_at(value, "module"),
        mechanism: mechanism.map(|m| str_at(m, "type")).unwrap_or_default(),
        handled: mechanism
            .and_then(|m| m.get("handled"))
            .and_then(Value::as_bool)
            .map(|h| if h { "yes" } else { "no" }.to_owned())
            .unwrap_or_default(),
        hidden: total - frames.len(),
        frames,
    }
}

fn crumb(value: &Value) -> Crumb {
    let time = match value.get("timestamp") {
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(|s| chrono::DateTime::from_timestamp_millis((s * 1000.0) as i64))
            .map(|t| t.format("%H:%M:%S%.3f").to_string())
            .unwrap_or_default(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    Crumb {
        time,
        kind: str_at(value, "type"),
        category: str_at(value, "category"),
        level: value
            .get("level")
            .map(text)
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "info".to_owned()),
        message: str_at(value, "message"),
        data: value
            .get("data")
            .filter(|d| !d.is_null())
            .map(Value::to_string)
            .unwrap_or_default(),
    }
}

fn request(value: Option<&Value>) -> Vec<(String, String)> {
    let Some(request) = value else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in ["method", "url", "query_string", "data", "cookies", "env"] {
        if let Some(v) = request.get(key).filter(|v| !v.is_null()) {
            out.push((key.to_owned(), text(v)));
        }
    }
    for (k, v) in pairs(request.get("headers")) {
        out.push((format!("header {k}"), v));
    }
    out
}

impl EventView {
    /// The view of the event JSON `event`, narrowed by `options`.
    pub(crate) fn parse(event: &str, options: &ViewOptions) -> Self {
        let root: Value = serde_json::from_str(event).unwrap_or(Value::Null);
        let empty = Map::new();
        let object = root.as_object().unwrap_or(&empty);
        let mut exceptions: Vec<Exception> = values(object.get("exception"))
            .iter()
            .map(|e| exception(e, options))
            .collect();
        // The last exception is the one raised last: show it first.
        exceptions.reverse();
        let all_crumbs: Vec<Crumb> = values(object.get("breadcrumbs"))
            .iter()
            .map(crumb)
            .collect();
        let crumbs_total = all_crumbs.len();
        let needle = options.crumb_text.to_lowercase();
        let crumbs = all_crumbs
            .into_iter()
            .filter(|c| options.crumb_level.is_empty() || c.level == options.crumb_level)
            .filter(|c| {
                needle.is_empty()
                    || [&c.message, &c.category, &c.data, &c.kind]
                        .iter()
                        .any(|t| t.to_lowercase().contains(&needle))
            })
            .collect();
        let contexts = match object.get("contexts") {
            Some(Value::Object(contexts)) => contexts
                .iter()
                .map(|(name, value)| Section {
                    name: name.clone(),
                    pairs: pairs(Some(value))
                        .into_iter()
                        .filter(|(k, _)| k != "type")
                        .collect(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut sdk = Vec::new();
        if let Some(s) = object.get("sdk") {
            for key in ["name", "version"] {
                let v = str_at(s, key);
                if !v.is_empty() {
                    sdk.push((key.to_owned(), v));
                }
            }
            if let Some(Value::Array(integrations)) = s.get("integrations") {
                let names: Vec<String> = integrations.iter().map(text).collect();
                sdk.push(("integrations".to_owned(), names.join(", ")));
            }
        }
        let message = object
            .get("logentry")
            .map(|l| {
                let formatted = str_at(l, "formatted");
                if formatted.is_empty() {
                    str_at(l, "message")
                } else {
                    formatted
                }
            })
            .or_else(|| object.get("message").map(text))
            .unwrap_or_default();
        Self {
            message,
            platform: object.get("platform").map(text).unwrap_or_default(),
            release: object.get("release").map(text).unwrap_or_default(),
            environment: object.get("environment").map(text).unwrap_or_default(),
            exceptions,
            crumbs,
            crumbs_total,
            request: request(object.get("request")),
            user: pairs(object.get("user")),
            tags: pairs(object.get("tags")),
            contexts,
            sdk,
        }
    }
}

/// A Markdown code fence longer than any run of backticks in `text`.
pub(crate) fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat(longest.max(2) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{
        "platform": "python",
        "exception": {"values": [
            {"type": "KeyError", "value": "'a'"},
            {"type": "ValueError", "value": "bad", "mechanism": {"type": "generic", "handled": false},
             "stacktrace": {"frames": [
                {"function": "main", "filename": "lib.py", "lineno": 3, "in_app": false},
                {"function": "handler", "filename": "app.py", "lineno": 10, "in_app": true,
                 "context_line": "raise ValueError()", "pre_context": ["a", "b"], "post_context": ["c"],
                 "vars": {"x": 1, "name": "bob"}}
             ]}}
        ]},
        "breadcrumbs": {"values": [
            {"timestamp": 1700000000.5, "category": "http", "level": "info", "message": "GET /"},
            {"timestamp": 1700000001, "category": "db", "level": "error", "message": "timeout"}
        ]},
        "tags": [["browser", "Firefox"]],
        "user": {"id": "7", "email": "a@b.c"},
        "request": {"method": "GET", "url": "http://x/", "headers": [["Host", "x"]]},
        "contexts": {"os": {"type": "os", "name": "Linux"}},
        "sdk": {"name": "sentry.python", "version": "2.0"}
    }"#;

    #[test]
    fn newest_exception_and_frame_first_with_context_marked() {
        let view = EventView::parse(EVENT, &ViewOptions::default());
        assert_eq!(view.exceptions[0].kind, "ValueError");
        assert_eq!(view.exceptions[0].handled, "no");
        assert_eq!(view.exceptions[1].kind, "KeyError");
        let top = &view.exceptions[0].frames[0];
        assert_eq!(top.function, "handler");
        assert!(top.in_app);
        assert_eq!(top.location, "app.py:10");
        let lines: Vec<_> = top
            .context
            .iter()
            .map(|l| (l.lineno.as_str(), l.current))
            .collect();
        assert_eq!(
            lines,
            [("8", false), ("9", false), ("10", true), ("11", false)]
        );
        assert_eq!(top.vars[0], ("name".into(), "bob".into()));
        assert_eq!(view.tags, [("browser".into(), "Firefox".into())]);
        assert_eq!(view.request[2], ("header Host".into(), "x".into()));
        assert_eq!(view.contexts[0].pairs, [("name".into(), "Linux".into())]);
    }

    #[test]
    fn app_only_and_oldest_first() {
        let options = ViewOptions {
            app_only: true,
            oldest_first: true,
            ..Default::default()
        };
        let view = EventView::parse(EVENT, &options);
        let e = &view.exceptions[0];
        assert_eq!(e.frames.len(), 1);
        assert_eq!(e.hidden, 1);
        let all = EventView::parse(
            EVENT,
            &ViewOptions {
                oldest_first: true,
                ..Default::default()
            },
        );
        assert_eq!(all.exceptions[0].frames[0].function, "main");
    }

    #[test]
    fn breadcrumbs_filter_by_level_and_text() {
        let by_level = EventView::parse(
            EVENT,
            &ViewOptions {
                crumb_level: "error".into(),
                ..Default::default()
            },
        );
        assert_eq!(by_level.crumbs.len(), 1);
        assert_eq!(by_level.crumbs_total, 2);
        let by_text = EventView::parse(
            EVENT,
            &ViewOptions {
                crumb_text: "get /".into(),
                ..Default::default()
            },
        );
        assert_eq!(by_text.crumbs[0].message, "GET /");
        assert_eq!(by_text.crumbs[0].time, "22:13:20.500");
    }

    #[test]
    fn fences_outgrow_backticks() {
        assert_eq!(fence("plain"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }
}
