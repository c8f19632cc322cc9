//! Grouping: which issue an event belongs to, computed as Sentry's grouping config
//! `newstyle:2026-01-20` does (see `docs/grouping.md`).
//!
//! - [`strategies`]: the component tree of an event per variant (`app`: in-app frames only,
//!   `system`: all frames, `default`: no frames involved). The first strategy that contributes
//!   decides: exception chain (with exception groups), threads, stack trace, template, CSP /
//!   HPKP / Expect-CT / Expect-Staple report, message.
//! - [`enhancers`]: stack trace rules (built-in and per project) that decide which frames are
//!   in-app and which count.
//! - [`fingerprinting`]: fingerprint rules (built-in and per project) that set a fingerprint on
//!   the server; the SDK's own `fingerprint` and its variables.
//! - The hash of a variant is the md5 of its contributing values concatenated
//!   ([`component::hash_values`]), as Sentry computes it. An event has one hash per
//!   contributing variant, the primary first; faultline's earlier hash ([`Grouping::legacy_hash`])
//!   is kept beside them so issues created before keep their events.

pub mod component;
pub mod enhancers;
pub mod fingerprinting;
mod glob;
mod legacy;
pub mod message;
mod strategies;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use component::{Component, Node, hash_values};
pub use enhancers::{Enhancements, RuleError};
pub use fingerprinting::FingerprintRules;

use crate::Event;
use crate::view::EventView;
use strategies::{Ctx, Variants};

/// The name of the grouping config implemented here.
pub const CONFIG_ID: &str = "newstyle:2026-01-20";

/// The hash of an event with nothing to group by: md5 of nothing.
pub const FALLBACK_HASH: &str = "d41d8cd98f00b204e9800998ecf8427e";

static BUILTIN_ENHANCEMENTS: LazyLock<Enhancements> = LazyLock::new(|| {
    Enhancements::parse(include_str!("builtin/enhancements.txt"))
        .expect("the built-in stack trace rules parse")
});

static BUILTIN_FINGERPRINTS: LazyLock<FingerprintRules> = LazyLock::new(FingerprintRules::builtin);

static DEFAULT_CONFIG: LazyLock<GroupingConfig> = LazyLock::new(|| GroupingConfig {
    enhancements: BUILTIN_ENHANCEMENTS.clone(),
    fingerprints: BUILTIN_FINGERPRINTS.clone(),
});

/// The rules grouping applies: the built-in ones, then a project's own.
#[derive(Debug, Clone)]
pub struct GroupingConfig {
    enhancements: Enhancements,
    fingerprints: FingerprintRules,
}

/// The built-in rules alone (what a project without rules of its own groups by).
pub fn default_config() -> &'static GroupingConfig {
    &DEFAULT_CONFIG
}

impl Default for GroupingConfig {
    fn default() -> Self {
        DEFAULT_CONFIG.clone()
    }
}

impl GroupingConfig {
    /// The built-in rules followed by a project's stack trace rules (which win where both
    /// match) and its fingerprint rules (tried before the built-in ones). Errors name the line
    /// and column; `field` says which of the two texts was wrong.
    pub fn for_project(
        enhancements: &str,
        fingerprinting: &str,
    ) -> Result<Self, (&'static str, RuleError)> {
        let own = Enhancements::parse(enhancements).map_err(|e| ("grouping_enhancements", e))?;
        let fps =
            FingerprintRules::parse(fingerprinting).map_err(|e| ("fingerprinting_rules", e))?;
        Ok(Self {
            enhancements: BUILTIN_ENHANCEMENTS.extended_by(&own),
            fingerprints: fps.followed_by(&BUILTIN_FINGERPRINTS),
        })
    }

    /// Whether this is the default config (no project rules).
    pub fn is_default(&self) -> bool {
        self.enhancements.len() == BUILTIN_ENHANCEMENTS.len()
            && self.fingerprints.len() == BUILTIN_FINGERPRINTS.len()
    }
}

/// What decided an event's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupingMethod {
    /// A fingerprint (the SDK's, or set by a fingerprint rule) without `{{ default }}`.
    Fingerprint,
    /// The exception chain.
    Exception,
    /// The stack trace of the crashed (or only) thread.
    Threads,
    /// A stack trace without exception.
    Stacktrace,
    /// A template error.
    Template,
    /// A CSP report.
    Csp,
    /// An HPKP report.
    Hpkp,
    /// An Expect-CT report.
    ExpectCt,
    /// An Expect-Staple report.
    ExpectStaple,
    /// The normalized message.
    Message,
    /// Nothing to group by: all such events of a project share one issue.
    #[default]
    Fallback,
}

impl GroupingMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fingerprint => "fingerprint",
            Self::Exception => "exception",
            Self::Threads => "threads",
            Self::Stacktrace => "stacktrace",
            Self::Template => "template",
            Self::Csp => "csp",
            Self::Hpkp => "hpkp",
            Self::ExpectCt => "expect_ct",
            Self::ExpectStaple => "expect_staple",
            Self::Message => "message",
            Self::Fallback => "fallback",
        }
    }
}

impl std::fmt::Display for GroupingMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One variant of an event's grouping, as Sentry names them: `app`, `system`, `default`,
/// `custom_fingerprint`, `built_in_fingerprint`, `fallback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub name: &'static str,
    /// `None` when the variant does not contribute.
    pub hash: Option<String>,
    /// The values hashed when the variant is a fingerprint (resolved variables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Vec<String>>,
    /// The fingerprint rule that set the fingerprint, when a rule did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_rule: Option<String>,
    /// The component tree (absent for fingerprint and fallback variants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    /// Why the variant does not count, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<component::Hint>,
}

/// The grouping result of one event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Grouping {
    /// The primary hash: the first of [`Self::hashes`].
    pub hash: String,
    /// Every hash Sentry would keep for the event, primary first, no duplicates.
    pub hashes: Vec<String>,
    /// faultline's hash before this grouping (md5 of NUL-terminated components): a secondary
    /// hash so that issues created before keep receiving their events. Only the full grouping
    /// ([`group`], [`explain_stored`]) has it; ingest asks [`legacy_hash`] when a project has
    /// such issues.
    pub legacy_hash: Option<String>,
    pub method: GroupingMethod,
    /// The contributing values of the primary variant, for display.
    pub components: Vec<String>,
    pub variants: Vec<Variant>,
    /// A title set by a fingerprint rule (`title="..."`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Grouping {
    /// Every hash the event is known by: Sentry's, then the legacy one (when known and
    /// different).
    pub fn all_hashes(&self) -> impl Iterator<Item = &str> {
        let legacy = self
            .legacy_hash
            .as_deref()
            .filter(|legacy| !self.hashes.iter().any(|h| h == legacy));
        self.hashes.iter().map(String::as_str).chain(legacy)
    }
}

/// How much of the grouping is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// What ingest needs: the hashes, the method, the title. Strategies after the one that
    /// decides are not run, the component trees are dropped once hashed, and the legacy hash is
    /// not computed (none of these change a hash).
    Hashes,
    /// Everything "why grouped" shows: every strategy's tree, and the legacy hash.
    Full,
}

/// The full grouping of a normalized event with the built-in rules: every variant with its
/// component tree and the legacy hash ("why grouped"). Reads the stored JSON again; ingest uses
/// [`grouping_of`].
pub fn group(event: &Event) -> Grouping {
    group_full(event, &DEFAULT_CONFIG)
}

/// [`group`] under a project's rules.
pub fn group_full(event: &Event, config: &GroupingConfig) -> Grouping {
    match serde_json::from_str::<Map<String, Value>>(&event.json) {
        Ok(root) => {
            let view = EventView::new(&root);
            compute_with(&root, &view, config, Detail::Full)
        }
        Err(_) => event.grouping.clone(),
    }
}

/// The grouping computed during normalization with the built-in rules: the hashes, without
/// component trees.
pub fn grouping_of(event: &Event) -> &Grouping {
    &event.grouping
}

/// The grouping of a normalized event under a project's rules, as ingest needs it (hashes,
/// no trees). With the default config this is a copy of [`grouping_of`]; otherwise the stored
/// JSON is read again (only projects with own rules pay this).
pub fn group_with(event: &Event, config: &GroupingConfig) -> Grouping {
    if config.is_default() {
        return event.grouping.clone();
    }
    match serde_json::from_str::<Map<String, Value>>(&event.json) {
        Ok(root) => {
            let view = EventView::new(&root);
            compute_with(&root, &view, config, Detail::Hashes)
        }
        Err(_) => event.grouping.clone(),
    }
}

/// faultline's hash from before Sentry's grouping, for a project with issues from then. Reads
/// the stored JSON again (ingest asks only when none of the event's own hashes is known).
pub fn legacy_hash(event: &Event) -> String {
    match serde_json::from_str::<Map<String, Value>>(&event.json) {
        Ok(root) => legacy::compute(&root, &EventView::new(&root)).hash,
        Err(_) => FALLBACK_HASH.to_owned(),
    }
}

/// The issue id of a grouping hash in a project: a positive `i64` that every node derives
/// alike (the first 8 bytes of `sha256("<project>:<hash>")`, top bit cleared, never 0).
pub fn issue_id(project_id: u64, hash: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(project_id.to_string())
        .chain_update(b":")
        .chain_update(hash)
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let id = (u64::from_be_bytes(bytes) & (i64::MAX as u64)) as i64;
    id.max(1)
}

/// "Why grouped": the config, the hashes and each variant's component tree (name,
/// contributes, hint, values), as a JSON value an issue page can render.
pub fn explain(grouping: &Grouping) -> Value {
    json!({
        "config": CONFIG_ID,
        "method": grouping.method,
        "hash": grouping.hash,
        "hashes": grouping.hashes,
        "legacy_hash": grouping.legacy_hash,
        "variants": grouping.variants,
    })
}

/// "Why grouped" for a stored event: its normalized JSON (the `event` column) grouped again
/// under `config`, as [`explain`] renders it. Normalized events group the same way every time,
/// so this is the explanation of the issue the event was given, as long as the project's rules
/// did not change since. `None` when the text is not a JSON object.
pub fn explain_stored(event_json: &str, config: &GroupingConfig) -> Option<Value> {
    let root: Map<String, Value> = serde_json::from_str(event_json).ok()?;
    let view = EventView::new(&root);
    Some(explain(&compute_with(&root, &view, config, Detail::Full)))
}

static GROUPED_EVENTS: AtomicU64 = AtomicU64::new(0);
static GROUPING_NANOS: AtomicU64 = AtomicU64::new(0);

/// What grouping has cost this process so far: events grouped and the time spent, in
/// nanoseconds (read by the engine's `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupingCost {
    pub events: u64,
    pub nanos: u64,
}

/// The grouping cost so far.
pub fn cost() -> GroupingCost {
    GroupingCost {
        events: GROUPED_EVENTS.load(Ordering::Relaxed),
        nanos: GROUPING_NANOS.load(Ordering::Relaxed),
    }
}

/// Groups a normalized event value with the built-in rules, as ingest needs it.
pub(crate) fn compute(root: &Map<String, Value>, view: &EventView<'_>) -> Grouping {
    compute_with(root, view, &DEFAULT_CONFIG, Detail::Hashes)
}

fn compute_with(
    root: &Map<String, Value>,
    view: &EventView<'_>,
    config: &GroupingConfig,
    detail: Detail,
) -> Grouping {
    let started = Instant::now();
    let grouping = compute_timed(root, view, config, detail);
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    GROUPED_EVENTS.fetch_add(1, Ordering::Relaxed);
    GROUPING_NANOS.fetch_add(nanos, Ordering::Relaxed);
    grouping
}

fn compute_timed(
    root: &Map<String, Value>,
    view: &EventView<'_>,
    config: &GroupingConfig,
    detail: Detail,
) -> Grouping {
    let platform = root
        .get("platform")
        .and_then(Value::as_str)
        .unwrap_or("other");
    let ctx = Ctx {
        root,
        view,
        platform,
        enhancements: &config.enhancements,
        explain: detail == Detail::Full,
    };
    let (method, variants) = component_variants(&ctx, detail);

    // the fingerprint: a rule's, else the SDK's
    let client: Option<Vec<String>> = root
        .get("fingerprint")
        .and_then(Value::as_array)
        .map(|fp| {
            fp.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .filter(|fp: &Vec<String>| !fp.is_empty());
    let client_is_custom = client
        .as_ref()
        .is_some_and(|fp| !(fp.len() == 1 && variable(&fp[0]) == Some("default")));
    let rule = config
        .fingerprints
        .find(root, view)
        .filter(|rule| !(rule.builtin && client_is_custom));
    let (fingerprint, matched_rule, builtin, title) = match rule {
        Some(rule) => (
            Some(rule.fingerprint.clone()),
            Some(rule.text.clone()),
            rule.builtin,
            rule.title.clone(),
        ),
        None => (client, None, false, None),
    };

    let mut out = Vec::new();
    let mut method = method;
    match fingerprint {
        Some(fp) if !(fp.len() == 1 && variable(&fp[0]) == Some("default")) => {
            let resolved: Vec<String> = fp.iter().map(|e| resolve(e, root, view)).collect();
            let hybrid = fp.iter().any(|e| variable(e) == Some("default"));
            if hybrid {
                let mut any = false;
                for (name, component) in variants {
                    let hash = component.contributes.then(|| {
                        let values = component.contributing_values();
                        hash_values(resolved.iter().flat_map(|e| {
                            if variable(e) == Some("default") {
                                values.clone()
                            } else {
                                vec![e.as_str()]
                            }
                        }))
                    });
                    any |= hash.is_some();
                    out.push(Variant {
                        name,
                        hint: hash.is_none().then(|| component.hint.clone()).flatten(),
                        hash,
                        fingerprint: Some(resolved.clone()),
                        matched_rule: matched_rule.clone(),
                        component: Some(component),
                    });
                }
                if !any {
                    let values = resolved.iter().filter(|e| variable(e) != Some("default"));
                    out.push(Variant {
                        name: "fallback",
                        hash: Some(hash_values(values.map(String::as_str))),
                        fingerprint: Some(resolved.clone()),
                        matched_rule,
                        component: None,
                        hint: None,
                    });
                }
            } else {
                method = GroupingMethod::Fingerprint;
                let name = if builtin {
                    "built_in_fingerprint"
                } else {
                    "custom_fingerprint"
                };
                out.push(Variant {
                    name,
                    hash: Some(hash_values(resolved.iter().map(String::as_str))),
                    fingerprint: Some(resolved),
                    matched_rule,
                    component: None,
                    hint: None,
                });
                let hint = if builtin {
                    "ignored because built-in fingerprint takes precedence"
                } else {
                    "ignored because custom fingerprint takes precedence"
                };
                for (name, component) in variants {
                    out.push(Variant {
                        name,
                        hash: None,
                        fingerprint: None,
                        matched_rule: None,
                        component: Some(component),
                        hint: Some(hint.into()),
                    });
                }
            }
        }
        _ => {
            for (name, component) in variants {
                let hash = component.hash();
                out.push(Variant {
                    name,
                    hint: hash.is_none().then(|| component.hint.clone()).flatten(),
                    hash,
                    fingerprint: None,
                    matched_rule: None,
                    component: Some(component),
                });
            }
        }
    }
    if !out.iter().any(|v| v.hash.is_some()) {
        method = GroupingMethod::Fallback;
        out.push(Variant {
            name: "fallback",
            hash: Some(FALLBACK_HASH.to_owned()),
            fingerprint: None,
            matched_rule: None,
            component: None,
            hint: None,
        });
    }
    // the system variant last, so the primary hash is the most specific one
    out.sort_by_key(|v| v.name == "system");
    let mut hashes: Vec<String> = Vec::with_capacity(out.len());
    for hash in out.iter().filter_map(|v| v.hash.as_ref()) {
        if !hashes.contains(hash) {
            hashes.push(hash.clone());
        }
    }
    let primary = out.iter().find(|v| v.hash.is_some());
    let components = match primary {
        _ if detail == Detail::Hashes => Vec::new(),
        Some(Variant {
            component: Some(c), ..
        }) if primary.and_then(|p| p.fingerprint.as_ref()).is_none() => c
            .contributing_values()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        Some(v) => v.fingerprint.clone().unwrap_or_default(),
        None => Vec::new(),
    };
    let legacy_hash = match detail {
        Detail::Full => Some(legacy::compute(root, view).hash),
        Detail::Hashes => {
            // the trees are only for "why grouped"; an event waiting for its flush keeps less
            for variant in &mut out {
                variant.component = None;
            }
            None
        }
    };
    Grouping {
        hash: hashes
            .first()
            .cloned()
            .unwrap_or_else(|| FALLBACK_HASH.to_owned()),
        hashes,
        legacy_hash,
        method,
        components,
        variants: out,
        title,
    }
}

/// The strategies in Sentry's order of precedence; the first that contributes wins, the
/// others are kept (for "why grouped") as not contributing. Returns the root component per
/// variant, the priority variant first and a system variant whose hash equals it marked.
fn component_variants(ctx: &Ctx<'_>, detail: Detail) -> (GroupingMethod, Variants) {
    let root = ctx.root;
    let object = |key: &str| root.get(key).and_then(Value::as_object);
    let mut strategies: Vec<(GroupingMethod, Variants)> = Vec::new();
    for method in [
        GroupingMethod::Exception,
        GroupingMethod::Threads,
        GroupingMethod::Stacktrace,
        GroupingMethod::Template,
        GroupingMethod::Csp,
        GroupingMethod::Hpkp,
        GroupingMethod::ExpectStaple,
        GroupingMethod::ExpectCt,
        GroupingMethod::Message,
    ] {
        let variants = match method {
            GroupingMethod::Exception => (!ctx.view.exceptions.is_empty())
                .then(|| strategies::chained_exception_strategy(ctx)),
            GroupingMethod::Threads => root
                .get("threads")
                .and_then(|t| t.get("values"))
                .and_then(Value::as_array)
                .filter(|t| !t.is_empty())
                .map(|threads| strategies::threads_strategy(threads, ctx)),
            GroupingMethod::Stacktrace => root
                .get("stacktrace")
                .and_then(|s| s.get("frames"))
                .and_then(Value::as_array)
                .map(|frames| strategies::stacktrace_strategy(frames, ctx)),
            GroupingMethod::Template => object("template").map(strategies::template_strategy),
            GroupingMethod::Csp => object("csp").map(strategies::csp_strategy),
            GroupingMethod::Hpkp => {
                object("hpkp").map(|report| strategies::hostname_report_strategy("hpkp", report))
            }
            GroupingMethod::ExpectStaple => object("expectstaple")
                .map(|report| strategies::hostname_report_strategy("expect-staple", report)),
            GroupingMethod::ExpectCt => object("expectct")
                .map(|report| strategies::hostname_report_strategy("expect-ct", report)),
            GroupingMethod::Message => object("logentry").map(strategies::message_strategy),
            GroupingMethod::Fingerprint | GroupingMethod::Fallback => None,
        };
        let Some(variants) = variants else { continue };
        let decides = variants.iter().any(|(_, c)| c.contributes);
        strategies.push((method, variants));
        // the strategies after the deciding one contribute nothing: only "why grouped" shows them
        if decides && detail == Detail::Hashes {
            break;
        }
    }

    let mut winner: Option<GroupingMethod> = None;
    let mut roots: Variants = Vec::new();
    for (method, mut variants) in strategies {
        // within a strategy, a non-priority variant with the priority one's hash does not count
        if let Some(first_hash) = variants.first().and_then(|(_, c)| c.hash()) {
            for (name, c) in variants.iter_mut().skip(1) {
                if *name == "system" && c.hash().as_ref() == Some(&first_hash) {
                    c.set(false, "ignored because hash matches app variant");
                }
            }
        }
        for (name, c) in variants {
            let mut c = c;
            if c.contributes {
                match winner {
                    None => winner = Some(method),
                    Some(w) if w != method => {
                        c.set(false, format!("ignored because {w} takes precedence"));
                    }
                    Some(_) => {}
                }
            }
            match roots.iter_mut().find(|(n, _)| *n == name) {
                Some((_, r)) => r.values.push(Node::Component(c)),
                None => roots.push((name, Component::new(name, vec![Node::Component(c)]))),
            }
        }
    }
    for (_, r) in &mut roots {
        let values = std::mem::take(&mut r.values);
        let id = r.id;
        *r = Component::new(id, values);
    }
    (winner.unwrap_or_default(), roots)
}

/// The name of a fingerprint variable such as `{{ default }}` or `{{transaction}}`.
fn variable(entry: &str) -> Option<&str> {
    let inner = entry.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    (!inner.is_empty() && !inner.contains(char::is_whitespace)).then_some(inner)
}

/// A fingerprint entry with its variable resolved (Sentry's names and placeholders; unknown
/// variables are flagged as Sentry's current configs do).
fn resolve(entry: &str, root: &Map<String, Value>, view: &EventView<'_>) -> String {
    let Some(name) = variable(entry) else {
        return entry.to_owned();
    };
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let main = view.main_exception();
    let crash_frame = || crash_frame(root, view);
    let frame_field = |key: &str| crash_frame().and_then(|f| text(f.get(key)));
    let (value, placeholder) = match name {
        "default" => return "{{ default }}".to_owned(),
        "transaction" => (text(root.get("transaction")), "<no-transaction>".to_owned()),
        "message" => {
            let logentry = root.get("logentry");
            (
                text(logentry.and_then(|l| l.get("formatted")))
                    .or_else(|| text(logentry.and_then(|l| l.get("message"))))
                    .or_else(|| main.and_then(|e| text(e.get("value")))),
                "<no-message>".to_owned(),
            )
        }
        "type" | "error.type" => (
            main.and_then(|e| text(e.get("type"))),
            "<no-type>".to_owned(),
        ),
        "value" | "error.value" => (
            main.and_then(|e| text(e.get("value"))),
            "<no-value>".to_owned(),
        ),
        "function" | "stack.function" => (frame_field("function"), "<no-function>".to_owned()),
        "path" | "stack.abs_path" => (
            frame_field("abs_path").or_else(|| frame_field("filename")),
            "<no-abs-path>".to_owned(),
        ),
        "stack.filename" => (
            frame_field("filename").or_else(|| frame_field("abs_path")),
            "<no-filename>".to_owned(),
        ),
        "module" | "stack.module" => (frame_field("module"), "<no-module>".to_owned()),
        "package" | "stack.package" => (
            frame_field("package").map(|p| {
                p.rsplit('/')
                    .next()
                    .unwrap_or(&p)
                    .rsplit('\\')
                    .next()
                    .unwrap_or(&p)
                    .to_owned()
            }),
            "<no-package>".to_owned(),
        ),
        "level" => (text(root.get("level")), "<no-level>".to_owned()),
        "logger" => (text(root.get("logger")), "<no-logger>".to_owned()),
        other => match other.strip_prefix("tags.") {
            Some(tag) => {
                let value = fingerprinting::tag(root, tag)
                    .map(str::to_owned)
                    .or_else(|| {
                        (tag == "transaction")
                            .then(|| text(root.get("transaction")))
                            .flatten()
                    });
                (value, format!("<no-value-for-tag-{tag}>"))
            }
            None => (None, format!("<unrecognized-variable-{other}>")),
        },
    };
    value.unwrap_or(placeholder)
}

/// Sentry's crash frame: the top-most in-app frame of the main stack trace, else its top-most
/// frame.
fn crash_frame<'a>(
    root: &'a Map<String, Value>,
    view: &EventView<'a>,
) -> Option<&'a Map<String, Value>> {
    let frames_of = |v: Option<&'a Value>| {
        v.and_then(|s| s.get("frames"))
            .and_then(Value::as_array)
            .filter(|f| !f.is_empty())
    };
    let frames = frames_of(view.main_exception().and_then(|e| e.get("stacktrace")))
        .or_else(|| frames_of(root.get("stacktrace")))
        .or_else(|| {
            let threads = root.get("threads")?.get("values")?.as_array()?;
            match threads.as_slice() {
                [only] => frames_of(only.get("stacktrace")),
                _ => None,
            }
        })?;
    let mut fallback = None;
    for frame in frames.iter().rev().filter_map(Value::as_object) {
        if frame.get("in_app") == Some(&Value::Bool(true)) {
            return Some(frame);
        }
        fallback.get_or_insert(frame);
    }
    fallback
}
