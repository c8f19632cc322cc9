//! The strategies of Sentry's grouping config `newstyle:2026-01-20`: each builds, for the
//! variants it knows (`app`: in-app frames only, `system`: all frames, `default`: no frames
//! involved), a component tree of what the event contributes. The strategies are tried in
//! Sentry's priority order; the first whose components contribute wins.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::component::{Component, Hint, Node};
use super::enhancers::{Enhancements, ExceptionData, Hits, MatchFrame, family};
use super::message;
use crate::view::EventView;

/// Platforms whose source lines are reliable enough to group by.
const CONTEXT_LINE_PLATFORMS: &[&str] = &["javascript", "node", "python", "php", "ruby"];

/// Longest source line that counts, in characters.
const MAX_CONTEXT_LINE: usize = 120;

/// Deepest exception group nesting followed.
const MAX_GROUP_DEPTH: usize = 64;

/// The components of one strategy, per variant (`app`, `system` or `default`), in the order
/// Sentry produces them; the first is the priority variant.
pub(crate) type Variants = Vec<(&'static str, Component)>;

pub(crate) struct Ctx<'a> {
    pub(crate) root: &'a Map<String, Value>,
    pub(crate) view: &'a EventView<'a>,
    pub(crate) platform: &'a str,
    pub(crate) enhancements: &'a Enhancements,
    /// Whether the parts that cannot count are still worked out ("why grouped"); otherwise
    /// they are left empty.
    pub(crate) explain: bool,
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key).and_then(Value::as_str)
}

fn non_empty<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    text(map, key).filter(|s| !s.is_empty())
}

fn filled(text: Option<&str>) -> Option<&str> {
    text.filter(|s| !s.is_empty())
}

/// The members of a frame that grouping reads, found in one pass over the frame (looking each
/// up costs more: a frame has a dozen members).
#[derive(Debug, Clone, Copy, Default)]
struct Fields<'a> {
    platform: Option<&'a str>,
    abs_path: Option<&'a str>,
    filename: Option<&'a str>,
    module: Option<&'a str>,
    function: Option<&'a str>,
    raw_function: Option<&'a str>,
    package: Option<&'a str>,
    context_line: Option<&'a str>,
    in_app: Option<bool>,
    data: Option<&'a Value>,
    /// `abs_path`, `package`, `module`, `filename`, `function`, `lineno` and `colno` as sent:
    /// the same in two frames in a row is recursion (as Sentry has it).
    place: [Option<&'a Value>; 7],
}

impl<'a> Fields<'a> {
    fn of(frame: &'a Map<String, Value>) -> Self {
        let mut f = Self::default();
        for (key, value) in frame {
            let text = value.as_str();
            match key.as_str() {
                "platform" => f.platform = text,
                "abs_path" => (f.abs_path, f.place[0]) = (text, Some(value)),
                "package" => (f.package, f.place[1]) = (text, Some(value)),
                "module" => (f.module, f.place[2]) = (text, Some(value)),
                "filename" => (f.filename, f.place[3]) = (text, Some(value)),
                "function" => (f.function, f.place[4]) = (text, Some(value)),
                "lineno" => f.place[5] = Some(value),
                "colno" => f.place[6] = Some(value),
                "raw_function" => f.raw_function = text,
                "context_line" => f.context_line = text,
                "in_app" => f.in_app = value.as_bool(),
                "data" => f.data = Some(value),
                _ => {}
            }
        }
        f
    }
}

/// Sentry's test for a frame whose file is a URL (`blob:` included; `file:` when asked).
pub(crate) fn has_url_origin(path: Option<&str>, files_count_as_urls: bool) -> bool {
    let Some(path) = path else {
        return false;
    };
    if ["http:", "https:", "applewebdata:", "blob:"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return true;
    }
    path.starts_with("file:") && files_count_as_urls
}

// ---------------------------------------------------------------------------------------------
// frames

static RUBY_ERB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"__\d{4,}_\d{4,}$").expect("valid regex"));
static JAVA_REFLECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(sun\.reflect\.Generated(?:Serialization)?ConstructorAccessor)\d+")
        .expect("valid regex")
});
static JAVA_CGLIB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\$\$[\w_]+?CGLIB\$\$)[a-fA-F0-9]+(_[0-9]+)?").expect("valid regex")
});
static JAVA_ASSIST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?").expect("valid regex"));
static CLOJURE_FN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\$fn__)\d+").expect("valid regex"));
static JAVA_ENHANCER_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\$\$?EnhancerBy[\w_]+?\$?\$)[a-fA-F0-9]+(_[0-9]+)?").expect("valid regex")
});
static JAVA_FAST_CLASS_BY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(\$\$?FastClassBy[\w_]+?\$?\$)[a-fA-F0-9]+(_[0-9]+)?").expect("valid regex")
});
static JAVA_HIBERNATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\$\$?HibernateProxy\$?\$)\w+(_[0-9]+)?").expect("valid regex"));

/// Replaces the generated part after the marker with `<auto>`.
fn auto_marker(re: &Regex, value: &str) -> String {
    re.replace_all(value, "${1}<auto>").into_owned()
}

fn filename_component(abs_path: Option<&str>, filename: Option<&str>, platform: &str) -> Component {
    let Some(filename) = filename else {
        return Component::empty("filename");
    };
    let base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(filename)
        .to_lowercase();
    let mut c = Component::of("filename", base.clone());
    if has_url_origin(abs_path, false) {
        c.set(false, "ignored because frame points to a URL");
    } else if base == "<anonymous>" {
        c.set(false, "ignored because filename is anonymous");
    } else if base == "[native code]" {
        c.set(false, "ignored because filename suggests native code");
    } else if platform == "java" {
        let cleaned = auto_marker(&JAVA_ASSIST, &base);
        if cleaned != base {
            c.set_value(cleaned, "cleaned javassist parts");
        }
    }
    c
}

fn module_component(abs_path: Option<&str>, module: Option<&str>, platform: &str) -> Component {
    let Some(module) = module else {
        return Component::empty("module");
    };
    let mut c = Component::of("module", module);
    if platform == "javascript"
        && module.contains('/')
        && abs_path.is_some_and(|p| p.ends_with(module))
    {
        c.set(false, "ignored bad javascript module");
    } else if platform == "java" {
        if module.contains("$$Lambda$") {
            c.set(false, "ignored java lambda");
        }
        if module.starts_with("sun.reflect.GeneratedMethodAccessor") {
            c.set_value(
                "sun.reflect.GeneratedMethodAccessor".to_owned(),
                "removed reflection marker",
            );
        } else if module.starts_with("jdk.internal.reflect.GeneratedMethodAccessor") {
            c.set_value(
                "jdk.internal.reflect.GeneratedMethodAccessor".to_owned(),
                "removed reflection marker",
            );
        } else {
            let mut cleaned = module.to_owned();
            for re in [
                &*JAVA_REFLECT,
                &*JAVA_CGLIB,
                &*JAVA_ASSIST,
                &*CLOJURE_FN,
                &*JAVA_ENHANCER_BY,
                &*JAVA_FAST_CLASS_BY,
                &*JAVA_HIBERNATE,
            ] {
                cleaned = auto_marker(re, &cleaned);
            }
            if cleaned != module {
                let contributes = c.contributes;
                c.set_value(cleaned, "removed codegen marker");
                c.contributes = contributes;
            }
        }
    }
    c
}

/// Native function names without argument list and return type (for SDKs that send the
/// full signature and no separate raw name).
fn trim_native_function(function: &str) -> &str {
    if function.starts_with("-[") || function.starts_with("+[") || function.contains("]_block") {
        return function;
    }
    let bytes = function.as_bytes();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b' ' if depth == 0 => start = i + 1,
            b'(' if depth == 0 && i > start => return &function[start..i],
            b'(' if depth == 0 => {
                if let Some(close) = function[i..].find(')') {
                    let from = i + close + 1;
                    return match function[from..].find('(') {
                        Some(open) if open > 0 => &function[start..from + open],
                        _ => &function[start..],
                    };
                }
            }
            _ => {}
        }
    }
    &function[start..]
}

fn function_component(
    function: Option<&str>,
    raw_function: Option<&str>,
    platform: &str,
    sourcemap_used: bool,
    context_line_contributes: bool,
) -> Component {
    let fam = family(platform);
    let func = if platform == "csharp" {
        raw_function.or(function)
    } else {
        match (function, raw_function) {
            (Some(f), None) if fam == "native" => Some(trim_native_function(f)),
            (f, raw) => f.or(raw),
        }
    };
    let Some(func) = func.filter(|f| !f.is_empty()) else {
        return Component::empty("function");
    };
    let mut c = Component::of("function", func);
    match platform {
        "ruby" => {
            if func.starts_with("block ") {
                c.set_value("block".to_owned(), "ruby block");
            } else {
                let cleaned = RUBY_ERB.replace(func, "");
                if cleaned != func {
                    c.set_value(
                        cleaned.into_owned(),
                        "removed generated erb template suffix",
                    );
                }
            }
        }
        "php" => {
            if func.starts_with("[Anonymous") || func.starts_with("class@anonymous\0") {
                c.set(false, "ignored anonymous function");
            }
            if func.starts_with("class@anonymous") {
                let method = func.rsplit("::").next().unwrap_or(func);
                if method != func {
                    let contributes = c.contributes;
                    c.set_value(method.to_owned(), "anonymous class method");
                    c.contributes = contributes;
                }
            }
        }
        "java" if func.starts_with("lambda$") => {
            c.set(false, "ignored lambda function");
        }
        "java" => {}
        _ if fam == "native" => {
            if matches!(func, "<redacted>" | "<unknown>") {
                c.set(false, "ignored unknown function");
            }
        }
        _ if fam == "javascript" => {
            let last = func.rsplit('.').next().unwrap_or(func);
            if last != func {
                c.set_value(last.to_owned(), "trimmed javascript function");
            }
            if sourcemap_used && context_line_contributes {
                c.set(
                    false,
                    "ignored because sourcemap used and context line available",
                );
            }
        }
        _ => {}
    }
    c
}

fn context_line_component(frame: &Fields<'_>, platform: &str) -> Component {
    let raw = frame.context_line.unwrap_or("");
    let line = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return Component::empty("context-line");
    }
    let mut c = Component::of("context-line", line);
    if raw.chars().count() > MAX_CONTEXT_LINE {
        c.set(false, "ignored because line is too long");
    } else if family(platform) == "javascript"
        && filled(frame.function).is_none()
        && has_url_origin(frame.abs_path, true)
    {
        c.set(
            false,
            "ignored because file path is a URL and function name is missing",
        );
    }
    c
}

/// The component of one frame (Sentry's `frame:v1`).
fn frame_component(frame: &Fields<'_>, event_platform: &str, in_app: bool) -> Component {
    let platform = filled(frame.platform).unwrap_or(event_platform);
    let abs_path = frame.abs_path;
    let mut filename = filename_component(abs_path, frame.filename, platform);
    let module = module_component(abs_path, frame.module, platform);
    if module.contributes && filename.contributes {
        filename.set(false, "ignored because module takes precedence");
    }
    let context_line = (filled(frame.context_line).is_some()
        && CONTEXT_LINE_PLATFORMS.contains(&platform))
    .then(|| context_line_component(frame, platform));
    let sourcemap_used = frame
        .data
        .and_then(|d| d.get("sourcemap"))
        .is_some_and(|s| !s.is_null());
    let function = function_component(
        filled(frame.function),
        filled(frame.raw_function),
        platform,
        sourcemap_used,
        context_line.as_ref().is_some_and(|c| c.contributes),
    );
    let mut children = vec![module, filename, function];
    children.extend(context_line);
    let mut c = Component::of_children("frame", children);
    c.in_app = in_app;
    if family(platform) == "javascript" {
        let func = filled(frame.raw_function).or_else(|| filled(frame.function));
        let func = func
            .map(|f| f.rsplit('.').next().unwrap_or(f))
            .unwrap_or("");
        // as in Sentry, the frame keeps the contribution it had when it was built
        if let Some(function) = c.child_mut("function") {
            if func.is_empty() {
                function.contributes = false;
            } else if matches!(
                func,
                "?" | "<anonymous function>" | "<anonymous>" | "Anonymous function"
            ) || func.ends_with("/<")
            {
                function.set(false, "ignored unknown function name");
            }
        }
        if func == "eval"
            || abs_path.is_some_and(|p| {
                matches!(
                    p,
                    "[native code]" | "native code" | "eval code" | "<anonymous>"
                )
            })
        {
            c.set(false, "ignored low quality javascript frame");
        }
    }
    c
}

fn is_recursion(frame: &Fields<'_>, previous: Option<&Fields<'_>>) -> bool {
    previous.is_some_and(|prev| frame.place == prev.place)
}

/// What the rules see of a frame.
fn match_frame(frame: &Fields<'_>, event_platform: &str) -> MatchFrame {
    let platform = filled(frame.platform).unwrap_or(event_platform);
    let lower_path = |s: &str| s.replace('\\', "/").to_lowercase();
    MatchFrame {
        family: family(platform),
        path: filled(frame.abs_path)
            .or_else(|| filled(frame.filename))
            .map(lower_path),
        module: filled(frame.module).map(str::to_owned),
        function: filled(frame.function)
            .or_else(|| filled(frame.raw_function))
            .map(str::to_owned),
        package: filled(frame.package).map(lower_path),
        in_app: frame.in_app,
        category: frame
            .data
            .and_then(|d| d.get("category"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// The frames of a stack trace after the stack trace rules: whether each is in-app, as Sentry
/// decides it (the SDK's flag, changed by the rules; frames that say nothing are not in-app).
fn in_app_flags(
    frames: &[Fields<'_>],
    exc: &ExceptionData<'_>,
    ctx: &Ctx<'_>,
) -> (Vec<MatchFrame>, Vec<bool>, Hits) {
    let mut matched: Vec<MatchFrame> = frames
        .iter()
        .map(|f| match_frame(f, ctx.platform))
        .collect();
    let hits = ctx.enhancements.hits(&matched);
    ctx.enhancements
        .apply_modifications(&mut matched, exc, &hits);
    let in_app = matched.iter().map(|f| f.in_app.unwrap_or(false)).collect();
    (matched, in_app, hits)
}

/// Sentry's `stacktrace:v1`: the `app` and `system` components of one stack trace.
fn stacktrace_variants(frames: &[Value], exc: &ExceptionData<'_>, ctx: &Ctx<'_>) -> Variants {
    let objects: Vec<Fields<'_>> = frames
        .iter()
        .filter_map(Value::as_object)
        .map(Fields::of)
        .collect();
    let (matched, in_app, hits) = in_app_flags(&objects, exc, ctx);
    // The frames are built and the rules applied once, for the system variant; the app variant
    // is the same with the frames that are not in-app left out. (Built for each variant on its
    // own, a non-app frame would end as "non app frame" whatever a rule did to it, and an in-app
    // frame goes through the same steps in both.)
    let mut system: Vec<Component> = Vec::with_capacity(objects.len());
    let mut previous = None;
    for (i, frame) in objects.iter().enumerate() {
        let mut c = frame_component(frame, ctx.platform, in_app[i]);
        if is_recursion(frame, previous) {
            c.set(false, "ignored due to recursion");
        }
        system.push(c);
        previous = Some(frame);
    }
    if let ([frame], [c]) = (objects.as_slice(), system.as_mut_slice()) {
        let platform = filled(frame.platform).unwrap_or(ctx.platform);
        if c.contributes
            && family(platform) == "javascript"
            && filled(frame.function).is_none()
            && !has_url_origin(frame.abs_path, true)
        {
            c.set(false, "ignored single non-URL JavaScript frame");
        }
    }
    let limits = ctx
        .enhancements
        .apply_contributions(&matched, exc, &hits, &mut system);
    let app: Vec<Component> = system
        .iter()
        .zip(&in_app)
        .map(|(c, &in_app)| match (in_app, ctx.explain) {
            (true, _) => c.clone(),
            (false, true) => {
                let mut c = c.clone();
                c.set(false, "non app frame");
                c
            }
            (false, false) => c.not_counted("non app frame"),
        })
        .collect();
    let mut out: Variants = Vec::with_capacity(2);
    for (variant, mut components) in [("app", app), ("system", system)] {
        if let Some(max) = limits.max_frames {
            let mut kept = 0;
            for c in components.iter_mut().rev().filter(|c| c.contributes) {
                if kept >= max {
                    c.set(
                        false,
                        format!("ignored because only {max} frames are considered"),
                    );
                } else {
                    kept += 1;
                }
            }
        }
        let mut stacktrace = Component::of_children("stacktrace", components);
        if let Some(min) = limits.min_frames {
            let count = stacktrace.children().filter(|c| c.contributes).count();
            if count < min {
                stacktrace.set(
                    false,
                    format!(
                        "discarded because stack trace only contains {count} frame(s) which is \
                         under the configured threshold"
                    ),
                );
            }
        }
        out.push((variant, stacktrace));
    }
    // hints on stack traces that do not count (from the system variant's view of the frames)
    let (app, system) = out.split_at_mut(1);
    let (app, system) = (&mut app[0].1, &mut system[0].1);
    let frames: Vec<&Component> = system.children().collect();
    let total_in_app = frames.iter().filter(|f| f.in_app).count();
    let total_contributing = frames.iter().filter(|f| f.contributes).count();
    let in_app_contributing = frames.iter().filter(|f| f.in_app && f.contributes).count();
    if frames.is_empty() {
        system.set(false, "ignored because it contains no frames");
        app.set(false, "ignored because it contains no frames");
    } else {
        if total_contributing == 0 {
            system.set(false, "ignored because it contains no contributing frames");
        }
        if total_in_app == 0 {
            app.set(false, "ignored because it contains no in-app frames");
        } else if in_app_contributing == 0 {
            app.set(false, "ignored because it contains no contributing frames");
        }
    }
    out
}

/// Variants without a contributing stack trace do not count when another has one.
fn remove_non_stacktrace_variants(variants: &mut Variants) {
    if variants.len() <= 1 {
        return;
    }
    let with: Vec<bool> = variants
        .iter()
        .map(|(_, c)| c.id == "stacktrace" && c.contributes || c.has_contributing("stacktrace"))
        .collect();
    if !with.iter().any(|w| *w) {
        return;
    }
    let names: Vec<&str> = variants
        .iter()
        .zip(&with)
        .filter(|(_, w)| **w)
        .map(|((n, _), _)| *n)
        .collect();
    let suffix = match names.as_slice() {
        [one] => format!("the {one} variant does"),
        _ => "others do".to_owned(),
    };
    for ((_, c), w) in variants.iter_mut().zip(&with) {
        if !w {
            c.set(
                false,
                format!(
                    "ignored because this variant does not have a contributing stacktrace, but {suffix}"
                ),
            );
        }
    }
}

pub(crate) fn stacktrace_strategy(frames: &[Value], ctx: &Ctx<'_>) -> Variants {
    let mut variants = stacktrace_variants(frames, &ExceptionData::default(), ctx);
    remove_non_stacktrace_variants(&mut variants);
    variants
}

// ---------------------------------------------------------------------------------------------
// exceptions

fn exception_frames(exc: &Map<String, Value>) -> Option<&[Value]> {
    exc.get("stacktrace")
        .and_then(|s| s.get("frames"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
}

/// Sentry's `single-exception:v1`.
fn single_exception(exc: &Map<String, Value>, ctx: &Ctx<'_>) -> Variants {
    let mut ty = match non_empty(exc, "type") {
        Some(t) => Component::of("type", t),
        None => Component::empty("type"),
    };
    let mechanism = exc.get("mechanism").and_then(Value::as_object);
    let mut ns_error = None;
    if let Some(mechanism) = mechanism {
        if mechanism.get("synthetic") == Some(&Value::Bool(true)) {
            ty.set(false, "ignored because exception is synthetic");
        }
        if let Some(ns) = mechanism
            .get("meta")
            .and_then(|m| m.get("ns_error"))
            .and_then(Value::as_object)
        {
            let part = |id: &'static str, v: Option<&Value>| match v {
                Some(Value::String(s)) => Component::of(id, s.clone()),
                Some(Value::Number(n)) => Component::of(id, n.to_string()),
                _ => Component::empty(id),
            };
            ns_error = Some(Component::of_children(
                "ns-error",
                vec![
                    part("domain", ns.get("domain")),
                    part("code", ns.get("code")),
                ],
            ));
        }
    }
    let stacktraces: Variants = match exception_frames(exc) {
        Some(frames) => stacktrace_variants(frames, &ExceptionData::of(exc), ctx),
        None => vec![("app", Component::empty("stacktrace"))],
    };
    let raw = text(exc, "value");
    // the value counts only beside a stack trace (or ns-error) that does not
    let value_can_count = ctx.explain
        || !ns_error.as_ref().is_some_and(|n| n.contributes)
            && stacktraces.iter().any(|(_, s)| !s.contributes);
    let normalized = raw.filter(|_| value_can_count).map(message::normalize);
    stacktraces
        .into_iter()
        .map(|(variant, stacktrace)| {
            let mut value = Component::empty("value");
            if let (Some(raw), Some(normalized)) = (raw, &normalized)
                && !normalized.is_empty()
            {
                let hint =
                    (raw != normalized).then_some(Hint::Borrowed("stripped event-specific values"));
                value.set_values(vec![Node::Value(normalized.clone())], hint);
            }
            if stacktrace.contributes && value.contributes {
                value.set(false, "ignored because stacktrace takes precedence");
            }
            if ns_error.as_ref().is_some_and(|n| n.contributes) && value.contributes {
                value.set(false, "ignored because ns-error info takes precedence");
            }
            let mut children = vec![ty.clone(), value];
            children.extend(ns_error.clone());
            children.push(stacktrace);
            (variant, Component::of_children("exception", children))
        })
        .collect()
}

fn mechanism_id(exc: &Map<String, Value>, key: &str) -> Option<i64> {
    exc.get("mechanism")?.get(key)?.as_i64()
}

fn is_exception_group(exc: &Map<String, Value>) -> bool {
    exc.get("mechanism")
        .and_then(|m| m.get("is_exception_group"))
        == Some(&Value::Bool(true))
}

/// Sentry's rules for exception groups: the distinct leaf exceptions decide, not the group.
/// Returns indexes into `exceptions`.
fn filter_exception_groups(
    exceptions: &[&Map<String, Value>],
    components: &[Variants],
    ctx: &Ctx<'_>,
) -> Vec<usize> {
    let all: Vec<usize> = (0..exceptions.len()).collect();
    if exceptions.len() <= 1 {
        return all;
    }
    // Sentry keeps the old behaviour for version 3 of the Python SDK
    let sdk_version = ctx
        .root
        .get("sdk")
        .and_then(|s| s.get("version"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if ctx.platform == "python" && sdk_version.starts_with('3') {
        return all;
    }
    let mut node_exception: HashMap<i64, usize> = HashMap::new();
    let mut children: HashMap<i64, Vec<usize>> = HashMap::new();
    for (index, exc) in exceptions.iter().enumerate().rev() {
        let Some(id) = mechanism_id(exc, "exception_id") else {
            return all;
        };
        let parent = mechanism_id(exc, "parent_id");
        if parent == Some(id) || node_exception.contains_key(&id) {
            return all;
        }
        node_exception.insert(id, index);
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(index);
        }
    }
    let kids = |index: usize| -> &[usize] {
        mechanism_id(exceptions[index], "exception_id")
            .and_then(|id| children.get(&id))
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let Some(&root) = node_exception.get(&0) else {
        return all;
    };
    fn top_level(
        index: usize,
        depth: usize,
        exceptions: &[&Map<String, Value>],
        kids: &dyn Fn(usize) -> Vec<usize>,
        out: &mut Vec<usize>,
    ) {
        if depth > MAX_GROUP_DEPTH {
            return;
        }
        if is_exception_group(exceptions[index]) {
            for child in kids(index) {
                top_level(child, depth + 1, exceptions, kids, out);
            }
        } else {
            out.push(index);
        }
    }
    let kids_vec = |i: usize| kids(i).to_vec();
    let mut tops = Vec::new();
    top_level(root, 0, exceptions, &kids_vec, &mut tops);
    if tops.is_empty() {
        return all;
    }
    let type_of = |i: usize| {
        exceptions[i]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("None")
            .to_owned()
    };
    tops.sort_by_key(|i| std::cmp::Reverse(type_of(*i)));
    let key = |i: usize| serde_json::to_string(&components[i]).unwrap_or_default();
    let mut distinct: Vec<usize> = Vec::new();
    let mut last_key = None;
    for i in tops {
        let k = key(i);
        if last_key.as_ref() != Some(&k) {
            distinct.push(i);
            last_key = Some(k);
        }
    }
    if let [only] = distinct.as_slice() {
        let mut path = vec![*only];
        let mut current = *only;
        while let Some(&first) = kids(current).first() {
            if path.len() > MAX_GROUP_DEPTH || path.contains(&first) {
                break;
            }
            path.push(first);
            current = first;
        }
        return path;
    }
    distinct.push(root);
    distinct
}

/// Sentry's `chained-exception:v1`: every exception of the chain (after the exception group
/// rules), each with its type, value and stack trace.
pub(crate) fn chained_exception_strategy(ctx: &Ctx<'_>) -> Variants {
    let exceptions = &ctx.view.exceptions;
    let components: Vec<Variants> = exceptions
        .iter()
        .map(|e| single_exception(e, ctx))
        .collect();
    let chosen = filter_exception_groups(exceptions, &components, ctx);
    let mut components: Vec<Option<Variants>> = components.into_iter().map(Some).collect();
    if let [only] = chosen.as_slice() {
        let mut variants = components[*only].take().unwrap_or_default();
        remove_non_stacktrace_variants(&mut variants);
        return variants;
    }
    let mut by_variant: Variants = Vec::new();
    for index in chosen {
        for (variant, component) in components[index].take().unwrap_or_default() {
            match by_variant.iter_mut().find(|(v, _)| *v == variant) {
                Some((_, chain)) => chain.values.push(Node::Component(component)),
                None => by_variant.push((
                    variant,
                    Component::new("chained-exception", vec![Node::Component(component)]),
                )),
            }
        }
    }
    for (_, chain) in &mut by_variant {
        let values = std::mem::take(&mut chain.values);
        *chain = Component::new("chained-exception", values);
    }
    remove_non_stacktrace_variants(&mut by_variant);
    by_variant
}

// ---------------------------------------------------------------------------------------------
// threads, template, security reports, message

/// Sentry's `threads:v1`: the stack trace of the one crashed thread, else the one current
/// thread, else the only thread.
pub(crate) fn threads_strategy(threads: &[Value], ctx: &Ctx<'_>) -> Variants {
    let objects: Vec<&Map<String, Value>> = threads.iter().filter_map(Value::as_object).collect();
    let flagged = |key: &str| -> Vec<&Map<String, Value>> {
        objects
            .iter()
            .copied()
            .filter(|t| t.get(key) == Some(&Value::Bool(true)))
            .collect()
    };
    let crashed = flagged("crashed");
    let current = flagged("current");
    for candidates in [&crashed, &current, &objects] {
        if let [thread] = candidates.as_slice() {
            let frames = thread
                .get("stacktrace")
                .and_then(|s| s.get("frames"))
                .and_then(Value::as_array);
            let Some(frames) = frames else {
                let mut c = Component::empty("threads");
                c.set(false, "ignored because thread has no stacktrace");
                return vec![("app", c)];
            };
            let mut variants: Variants =
                stacktrace_variants(frames, &ExceptionData::default(), ctx)
                    .into_iter()
                    .map(|(v, st)| (v, Component::of_children("threads", vec![st])))
                    .collect();
            remove_non_stacktrace_variants(&mut variants);
            return variants;
        }
    }
    let mut c = Component::empty("threads");
    c.set(
        false,
        format!(
            "ignored because it contains neither a single thread nor multiple threads with \
             exactly one crashing or current thread; instead contains {} crashing, {} current, \
             and {} total threads",
            crashed.len(),
            current.len(),
            objects.len()
        ),
    );
    vec![("app", c)]
}

pub(crate) fn template_strategy(template: &Map<String, Value>) -> Variants {
    let part = |id: &'static str, key: &str| match text(template, key) {
        Some(v) => Component::of(id, v),
        None => Component::empty(id),
    };
    vec![(
        "default",
        Component::of_children(
            "template",
            vec![
                part("filename", "filename"),
                part("context-line", "context_line"),
            ],
        ),
    )]
}

/// `expect-ct`, `expect-staple`, `hpkp`: the report kind and the host name.
pub(crate) fn hostname_report_strategy(id: &'static str, report: &Map<String, Value>) -> Variants {
    let hostname = match text(report, "hostname") {
        Some(h) => Component::of("hostname", h),
        None => Component::empty("hostname"),
    };
    vec![(
        "default",
        Component::of_children(id, vec![Component::of("salt", id), hostname]),
    )]
}

/// A CSP report's blocked URI as Sentry reduces it: `'self'`, a scheme, or scheme and host.
fn normalized_blocked_uri(uri: &str) -> String {
    if uri.is_empty() || uri == "self" || uri == "'self'" {
        return "'self'".to_owned();
    }
    for scheme in [
        "data:",
        "blob:",
        "about:",
        "chrome-extension:",
        "moz-extension:",
    ] {
        if uri.starts_with(scheme) && !uri.starts_with(&format!("{scheme}//")) {
            return scheme.to_owned();
        }
    }
    match url::Url::parse(uri) {
        Ok(url) => match url.host_str() {
            Some(host) => format!("{}://{host}", url.scheme()),
            None => format!("{}:", url.scheme()),
        },
        Err(_) => uri.to_owned(),
    }
}

pub(crate) fn csp_strategy(csp: &Map<String, Value>) -> Variants {
    let directive = text(csp, "effective_directive")
        .or_else(|| text(csp, "violated_directive").and_then(|v| v.split_whitespace().next()))
        .unwrap_or("");
    let blocked = normalized_blocked_uri(text(csp, "blocked_uri").unwrap_or(""));
    let violated = text(csp, "violated_directive").unwrap_or("");
    let local_violation = (directive == "script-src" && blocked == "'self'")
        .then(|| {
            if violated.contains("'unsafe-inline'") {
                Some("unsafe-inline")
            } else if violated.contains("'unsafe-eval'") {
                Some("unsafe-eval")
            } else {
                None
            }
        })
        .flatten();
    let mut violation = Component::empty("violation");
    let mut uri = Component::of("uri", blocked);
    match local_violation {
        Some(kind) => {
            violation = Component::of("violation", format!("'{kind}'"));
            uri.set(false, "violation takes precedence");
        }
        None => violation.set(false, "not a local script violation"),
    }
    vec![(
        "default",
        Component::of_children(
            "csp",
            vec![Component::of("salt", directive), violation, uri],
        ),
    )]
}

/// Sentry's `message:v1`: the log template (else the formatted message), normalized.
pub(crate) fn message_strategy(logentry: &Map<String, Value>) -> Variants {
    let raw = non_empty(logentry, "message")
        .or_else(|| non_empty(logentry, "formatted"))
        .unwrap_or("");
    let normalized = message::normalize(raw);
    let mut c = Component::of("message", normalized.clone());
    if normalized != raw {
        c.hint = Some("stripped event-specific values".into());
    }
    vec![("default", c)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_signatures_are_trimmed() {
        assert_eq!(
            trim_native_function("void ns::Type<int>::run(int) const"),
            "ns::Type<int>::run"
        );
        assert_eq!(
            trim_native_function("-[UIView layoutSubviews]"),
            "-[UIView layoutSubviews]"
        );
        assert_eq!(trim_native_function("main"), "main");
    }

    #[test]
    fn java_codegen_markers_become_auto() {
        let m = module_component(
            None,
            Some("com.x.Service$$EnhancerBySpringCGLIB$$1a2b3c4d"),
            "java",
        );
        assert_eq!(
            m.contributing_values(),
            ["com.x.Service$$EnhancerBySpringCGLIB$$<auto>"]
        );
        let m = module_component(None, Some("sun.reflect.GeneratedMethodAccessor123"), "java");
        assert_eq!(
            m.contributing_values(),
            ["sun.reflect.GeneratedMethodAccessor"]
        );
        let m = module_component(
            None,
            Some("com.x.Cart$$Lambda$14/0x0000000800066840"),
            "java",
        );
        assert!(!m.contributes, "lambda classes are ignored");
        let m = module_component(None, Some("myapp.core$fn__1234"), "java");
        assert_eq!(m.contributing_values(), ["myapp.core$fn__<auto>"]);
    }

    #[test]
    fn blocked_uris_reduce_to_origin() {
        assert_eq!(
            normalized_blocked_uri("https://evil.example.com/x.js?y=1"),
            "https://evil.example.com"
        );
        assert_eq!(normalized_blocked_uri("data:image/png;base64,xx"), "data:");
        assert_eq!(normalized_blocked_uri(""), "'self'");
    }
}
