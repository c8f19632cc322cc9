//! What ingest derives from the request an event describes, as Relay does: the browser, OS and
//! device from the `User-Agent` header, and the tags Sentry shows for them.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

static PARSER: LazyLock<woothee::parser::Parser> = LazyLock::new(woothee::parser::Parser::new);

/// Longest `User-Agent` parsed, in bytes (longer ones are real browsers' only by accident).
const MAX_USER_AGENT: usize = 512;

/// Fills `contexts.browser`, `contexts.os` (or `contexts.client_os` when the SDK reported the
/// server's OS) and `contexts.device` from the request's `User-Agent`, where missing; then
/// the tags `browser`, `browser.name`, `os`, `os.name` and `device` from the contexts, where
/// missing.
pub(super) fn enrich(root: &mut Map<String, Value>) {
    if let Some(agent) = user_agent(root) {
        let derived = from_user_agent(root, &agent);
        context_tags(root, &derived);
    }
}

fn user_agent(root: &Map<String, Value>) -> Option<String> {
    let headers = root.get("request")?.get("headers")?;
    let found = match headers {
        Value::Object(map) => map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .map(|(_, v)| v),
        Value::Array(pairs) => pairs.iter().find_map(|pair| {
            let pair = pair.as_array()?;
            pair.first()?
                .as_str()
                .filter(|k| k.eq_ignore_ascii_case("user-agent"))?;
            pair.get(1)
        }),
        _ => None,
    };
    found
        .and_then(Value::as_str)
        .filter(|ua| !ua.is_empty() && ua.len() <= MAX_USER_AGENT)
        .map(str::to_owned)
}

fn known(text: &str) -> Option<&str> {
    (!text.is_empty() && text != woothee::woothee::VALUE_UNKNOWN).then_some(text)
}

/// The names of the contexts filled in.
fn from_user_agent(root: &mut Map<String, Value>, agent: &str) -> Vec<&'static str> {
    let mut derived = Vec::new();
    let Some(parsed) = PARSER.parse(agent) else {
        return derived;
    };
    let contexts = root
        .entry("contexts")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(contexts) = contexts else {
        return derived;
    };
    // HTTP libraries, crawlers and unknown agents are no browser, and tell no OS
    if !matches!(
        parsed.category,
        "pc" | "smartphone" | "mobilephone" | "appliance"
    ) {
        if contexts.is_empty() {
            root.remove("contexts");
        }
        return derived;
    }
    if let Some(name) = known(parsed.name)
        && !contexts.contains_key("browser")
    {
        let mut browser = json!({"name": name, "type": "browser"});
        if let Some(version) = known(parsed.version) {
            browser["version"] = json!(version);
        }
        contexts.insert("browser".into(), browser);
        derived.push("browser");
    }
    if let Some(os) = known(parsed.os) {
        let key = if contexts.contains_key("os") {
            "client_os"
        } else {
            "os"
        };
        if !contexts.contains_key(key) {
            let mut context = json!({"name": os, "type": "os"});
            if let Some(version) = known(&parsed.os_version) {
                context["version"] = json!(version);
            }
            contexts.insert(key.into(), context);
            derived.push(key);
        }
        if matches!(parsed.category, "smartphone" | "mobilephone")
            && !contexts.contains_key("device")
        {
            contexts.insert(
                "device".into(),
                json!({"family": os, "type": "device", "model": os}),
            );
            derived.push("device");
        }
    }
    if contexts.is_empty() {
        root.remove("contexts");
    }
    derived
}

/// `name version` of a context, or its name.
fn described(context: &Value, name_key: &str) -> Option<(String, String)> {
    let name = context.get(name_key)?.as_str()?.trim();
    if name.is_empty() {
        return None;
    }
    let full = match context.get("version").and_then(Value::as_str) {
        Some(version) if !version.is_empty() => format!("{name} {version}"),
        _ => name.to_owned(),
    };
    Some((name.to_owned(), full))
}

fn context_tags(root: &mut Map<String, Value>, derived: &[&str]) {
    let Some(Value::Object(contexts)) = root.get("contexts") else {
        return;
    };
    let context = |name: &str| {
        derived
            .contains(&name)
            .then(|| contexts.get(name))
            .flatten()
    };
    let mut add: Vec<(&str, String)> = Vec::new();
    if let Some((name, full)) = context("browser").and_then(|c| described(c, "name")) {
        add.push(("browser", full));
        add.push(("browser.name", name));
    }
    if let Some((name, full)) = context("os").and_then(|c| described(c, "name")) {
        add.push(("os", full));
        add.push(("os.name", name));
    }
    if let Some(device) = context("device")
        .and_then(|d| d.get("model").or(d.get("family")))
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    {
        add.push(("device", device.to_owned()));
    }
    if add.is_empty() {
        return;
    }
    let tags = root
        .entry("tags")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(pairs) = tags else {
        return;
    };
    for (key, value) in add {
        if pairs
            .iter()
            .any(|p| p.get(0).and_then(Value::as_str) == Some(key))
        {
            continue;
        }
        let value: String = value.chars().take(200).collect();
        pairs.push(json!([key, value.trim()]));
    }
    // as normalization keeps them: sorted by key
    pairs.sort_by(|a, b| {
        let key = |p: &Value| p.get(0).and_then(Value::as_str).map(str::to_owned);
        key(a).cmp(&key(b))
    });
}
