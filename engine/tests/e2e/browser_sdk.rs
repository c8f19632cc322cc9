//! The browser SDK in a real browser: a small shop page using `@sentry/browser`, bundled and
//! minified by npm `esbuild` with source maps, `sentry-cli sourcemaps inject` + `upload`
//! (debug-id bundles) against faultline, the page served from its own loopback origin and opened
//! in headless Chromium (`tests/browser/sdk_page.mjs`). The error it throws arrives through the
//! browser's CORS rules, and the stored event and the event API show the original files, lines
//! and function names; the page's session is counted in `release_health`, its page load is a
//! span in the trace of the error, and the feedback it sends is in `feedback`.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::harness::{Setup, workspace_root};
use crate::sourcemaps::{bundle, innermost, node_modules, run, sentry_cli};

const CHECKOUT: &str = r#"// The checkout of the shop.
export function applyCoupon(cart, code) {
  if (!cart.coupons.includes(code)) {
    throw new TypeError(`unknown coupon ${code}`);
  }
  return cart.total * 0.9;
}
"#;

const MAIN: &str = r#"import * as Sentry from "@sentry/browser";
import { applyCoupon } from "./checkout.js";

Sentry.init({
  dsn: window.FAULTLINE_DSN,
  release: "shop-web@1.0.0",
  integrations: [Sentry.browserTracingIntegration()],
  tracesSampleRate: 1.0,
  beforeSend(event) {
    window.sentEventId = event.event_id;
    return event;
  },
});

function onCheckout() {
  return applyCoupon({ total: 10, coupons: [] }, "SPRING");
}

setTimeout(onCheckout, 0);
// the user reports what went wrong, about the error just sent
const feedback = setInterval(() => {
  if (!window.sentEventId) return;
  clearInterval(feedback);
  Sentry.captureFeedback({
    name: "Ann",
    email: "ann@example.com",
    message: "The coupon field breaks the checkout",
    url: window.location.href,
    associatedEventId: window.sentEventId,
  });
}, 50);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sdk_errors_in_chromium_are_resolved_with_uploaded_source_maps() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = setup.token_with("frontend-ci", &["project:releases", "event:read"])?;
    let token = token.trim().to_owned();
    let base = setup.base_url();

    // the app, bundled for the browser and minified, with its source map
    let app = tmp.path().join("web");
    std::fs::create_dir_all(app.join("src"))?;
    std::fs::write(app.join("src/checkout.js"), CHECKOUT)?;
    std::fs::write(app.join("src/main.js"), MAIN)?;
    std::os::unix::fs::symlink(node_modules(), app.join("node_modules"))?;
    ensure!(
        node_modules().join("@sentry/browser").exists(),
        "@sentry/browser is not installed in {} (npm ci in tests/node)",
        node_modules().display()
    );
    bundle(
        &app,
        &[
            "src/main.js",
            "--bundle",
            "--platform=browser",
            "--format=iife",
            "--minify",
            "--sourcemap",
            "--outfile=dist/app.js",
        ],
    )?;
    let bundle = std::fs::read_to_string(app.join("dist/app.js"))?;
    ensure!(
        !bundle.contains("function applyCoupon"),
        "the bundle is minified"
    );
    std::fs::write(
        app.join("dist/index.html"),
        format!(
            "<!doctype html><title>shop</title><script>window.FAULTLINE_DSN = {};</script>\
             <script src=\"app.js\"></script>",
            serde_json::to_string(&dsn)?
        ),
    )?;

    let injected = sentry_cli(&base, &token, &app, &["sourcemaps", "inject", "dist"])?;
    ensure!(injected.contains("debug"), "{injected}");
    let uploaded = sentry_cli(&base, &token, &app, &["sourcemaps", "upload", "dist"])?;
    ensure!(uploaded.contains("File processing complete"), "{uploaded}");

    // the page in Chromium, from an origin other than faultline's
    let mut command = Command::new("node");
    command
        .arg(workspace_root().join("tests/browser/sdk_page.mjs"))
        .arg(app.join("dist"))
        .arg("session,span,feedback");
    let report = run(command, "node tests/browser/sdk_page.mjs")
        .with_context(|| format!("server log:\n{}", server.log_text()))?;
    let report: Value = serde_json::from_str(report.trim()).context("sdk_page.mjs report")?;
    assert_eq!(report["status"], 200, "{report}");
    let origin = report["origin"].as_str().context("origin")?;
    assert!(!dsn.contains(origin), "the page is cross-origin: {report}");
    assert_eq!(
        report["allowOrigin"], origin,
        "faultline allows the page's origin: {report}"
    );
    // the only console error is the uncaught error itself: no CORS or network error
    let errors: Vec<&str> = report["consoleErrors"]
        .as_array()
        .context("consoleErrors")?
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| !e.contains("unknown coupon SPRING"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let id = report["eventId"].as_str().context("eventId")?.to_owned();

    let rows = setup.query(&format!(
        "SELECT issue_id, platform, sdk_name, release, event FROM events WHERE event_id = '{id}'"
    ))?;
    let row = rows
        .first()
        .with_context(|| format!("no event {id}; server log:\n{}", server.log_text()))?;
    assert_eq!(row["platform"], "javascript");
    assert_eq!(row["sdk_name"], "sentry.javascript.browser");
    assert_eq!(row["release"], "shop-web@1.0.0");
    let issue = row["issue_id"].as_i64().context("issue_id")?;
    let event: Value = serde_json::from_str(row["event"].as_str().context("event")?)?;
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "TypeError");
    assert_eq!(exception["value"], "unknown coupon SPRING");
    let frame = innermost(&exception["stacktrace"]["frames"])?;
    assert_eq!(frame["function"], "applyCoupon", "{frame}");
    assert_eq!(frame["filename"], "src/checkout.js", "{frame}");
    assert_eq!(frame["lineno"], 4, "{frame}");
    assert_eq!(
        frame["context_line"],
        "    throw new TypeError(`unknown coupon ${code}`);"
    );
    let frames = exception["stacktrace"]["frames"]
        .as_array()
        .context("frames")?;
    assert!(
        frames
            .iter()
            .any(|f| f["function"] == "onCheckout" && f["filename"] == "src/main.js"),
        "{frames:?}"
    );
    let raw = innermost(&exception["raw_stacktrace"]["frames"])?;
    assert!(
        raw["filename"]
            .as_str()
            .is_some_and(|p| p.starts_with(origin) && p.ends_with("/app.js")),
        "the frame as the browser reported it is kept: {raw}"
    );
    assert_ne!(raw["function"], "applyCoupon", "{raw}");
    assert!(event.get("errors").is_none(), "{}", event["errors"]);

    let types = &report["itemTypes"];
    for ty in ["event", "session", "span", "feedback"] {
        assert!(
            types.as_array().is_some_and(|t| t.iter().any(|x| x == ty)),
            "the page sent no {ty}: {report}"
        );
    }
    assert!(
        report["statuses"]
            .as_array()
            .is_some_and(|s| s.iter().all(|status| status == 200)),
        "every envelope is accepted: {report}"
    );

    // the page load as a span (the browser SDK streams spans), in the trace of the error
    let pageloads = setup.query(&format!(
        "SELECT s.description, s.transaction, s.is_segment, s.release, e.event_id, s.data['url.full'] AS url FROM spans s \
         LEFT JOIN events e ON e.trace_id = s.trace_id AND e.event_id = '{id}' \
         WHERE s.op = 'pageload'"
    ))?;
    let pageload = pageloads
        .first()
        .with_context(|| format!("no pageload span; server log:\n{}", server.log_text()))?;
    assert_eq!(
        pageload["url"],
        format!("{origin}/index.html"),
        "{pageload:?}"
    );
    assert_eq!(pageload["is_segment"], true, "{pageload:?}");
    assert_eq!(pageload["release"], "shop-web@1.0.0", "{pageload:?}");
    assert_eq!(
        pageload["event_id"],
        id.as_str(),
        "the error is in the page load's trace"
    );
    // the user's feedback
    let feedback = setup.query(
        "SELECT name, contact_email, message, release, url, associated_event_id FROM feedback",
    )?;
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0]["name"], "Ann");
    assert_eq!(feedback[0]["contact_email"], "ann@example.com");
    assert_eq!(
        feedback[0]["message"],
        "The coupon field breaks the checkout"
    );
    assert_eq!(feedback[0]["url"], format!("{origin}/index.html"));
    assert_eq!(
        feedback[0]["associated_event_id"],
        id.as_str(),
        "the feedback is linked to the error"
    );

    // release health: the SDK opened a session when the page loaded; the uncaught error made
    // it `unhandled` (an error, not a crash: the page lives on)
    let health = setup.query(
        "SELECT sessions, errored, crashed, crash_free_sessions FROM release_health \
         WHERE release = 'shop-web@1.0.0'",
    )?;
    let health = health
        .first()
        .with_context(|| format!("no session of the page; server log:\n{}", server.log_text()))?;
    assert_eq!(health["sessions"], 1, "{health:?}");
    assert_eq!(health["errored"], 1, "{health:?}");
    assert_eq!(health["crashed"], 0, "{health:?}");
    assert_eq!(health["crash_free_sessions"], 1.0, "{health:?}");

    // the same through Sentry's event API
    let view: Value = reqwest::Client::new()
        .get(format!(
            "{base}/api/0/organizations/default/issues/{issue}/events/latest/"
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(view["eventID"], id.as_str());
    let frame = innermost(&view["entries"][0]["data"]["values"][0]["stacktrace"]["frames"])?;
    assert_eq!(frame["function"], "applyCoupon", "{frame}");
    assert_eq!(frame["filename"], "src/checkout.js");
    assert_eq!(frame["lineNo"], 4);

    // the preflight a browser sends before an envelope with its own headers
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/1/envelope/"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,sentry-trace,baggage",
        )
        .send()
        .await?;
    assert_eq!(preflight.status(), 200);
    let header = |name: &str| {
        preflight
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), origin);
    assert!(header("access-control-allow-methods").contains("post"));
    for wanted in ["content-type", "sentry-trace", "baggage"] {
        assert!(
            header("access-control-allow-headers").contains(wanted),
            "{wanted}: {}",
            header("access-control-allow-headers")
        );
    }
    Ok(())
}
