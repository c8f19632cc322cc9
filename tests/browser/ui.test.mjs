// The web UI in real headless Chromium (Debian's `chromium`, driven by playwright-core): a user
// finds an issue by search, opens it with the keyboard, reads the stack trace and breadcrumbs,
// resolves it, sees a new event reopen it as a regression, runs SQL and downloads the CSV; then
// the same pages with JavaScript off. Every page is served under the strict Content-Security-Policy
// the server is to send, must log no console error and no CSP violation, and axe-core must find
// no serious or critical accessibility violation. Screenshots of each page go to docs/screenshots/.
//
// Needs: FAULTLINE_BIN (the faultline binary; default target/debug/faultline under
// CARGO_TARGET_DIR), FAULTLINE_CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const bin =
  process.env.FAULTLINE_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug", "faultline");
const chromiumPath = process.env.FAULTLINE_CHROMIUM || "/usr/bin/chromium";
const shots = process.env.FAULTLINE_SCREENSHOTS || join(root, "docs", "screenshots");

// What the server's security headers are to hold (docs/ui.md); applied here to every response.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

let server;
let dir;
let base;
let token;
let dsn;
let browser;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

function cli(...args) {
  return execFileSync(bin, ["--data-dir", dir, ...args], { encoding: "utf8" }).trim();
}

async function sendEvent(eventId, payload) {
  const body = `{"event_id":"${eventId}"}\n{"type":"event"}\n${JSON.stringify(payload)}\n`;
  const response = await fetch(`${base}/api/${dsn.project}/envelope/`, {
    method: "POST",
    headers: { "x-sentry-auth": `Sentry sentry_key=${dsn.key}, sentry_version=7` },
    body,
  });
  assert.equal(response.status, 200, await response.text());
}

const EVENT = {
  level: "error",
  platform: "python",
  release: "shop@1.0",
  environment: "prod",
  tags: { browser: "Firefox" },
  exception: {
    values: [
      {
        type: "ValueError",
        value: "<script>alert(1)</script> cart total",
        stacktrace: {
          frames: [
            { function: "main", filename: "lib.py", lineno: 3, in_app: false },
            {
              function: "checkout_handler",
              filename: "app.py",
              lineno: 10,
              in_app: true,
              context_line: "raise ValueError(total)",
              pre_context: ["def checkout_handler(total):"],
              post_context: [""],
              vars: { total: "42" },
            },
          ],
        },
      },
    ],
  },
  breadcrumbs: {
    values: [
      { timestamp: Date.now() / 1000 - 5, category: "http", level: "info", message: "GET /cart" },
      { timestamp: Date.now() / 1000 - 1, category: "db", level: "error", message: "deadlock found" },
    ],
  },
  user: { id: "u1", email: "ada@example.com" },
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "faultline-ui-"));
  const url = new URL(cli("project", "create", "shop"));
  dsn = { key: url.username, project: url.pathname.slice(1) };
  token = cli("token", "create", "--name", "browser", "--scope", "events:read", "--scope", "projects:admin");
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["--data-dir", dir, "serve", "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/health/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 200) throw new Error("the server did not become ready");
    await new Promise((ok) => setTimeout(ok, 100));
  }
  await sendEvent("9ec79c33ec9942ab8353589fcb2e04dc", EVENT);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
  mkdirSync(shots, { recursive: true });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((ok) => server.once("exit", ok));
    server.kill("SIGTERM");
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/// A browser context as a signed-in user would have it, with the CSP on every response and a
/// record of console errors and CSP violations.
async function context(options = {}) {
  const ctx = await browser.newContext({
    extraHTTPHeaders: { authorization: `Bearer ${token}` },
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    ...options,
  });
  await ctx.route("**/*", async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    await route.fulfill({
      response,
      headers: { ...response.headers(), "content-security-policy": CSP },
    });
  });
  const problems = [];
  ctx.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  ctx.on("weberror", (error) => problems.push(`page error: ${error.error().message}`));
  return { ctx, problems };
}

async function checkAccessibility(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ["violations"] }),
  );
  const bad = result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  assert.deepEqual(bad, [], `${name}: accessibility violations`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

test("find, read, resolve, regress, query: with JavaScript", async () => {
  const { ctx, problems } = await context();
  const page = await ctx.newPage();

  await page.goto(`${base}/`);
  assert.match(page.url(), /\/organizations\/default\/issues\/$/);
  await checkAccessibility(page, "stream");
  await shot(page, "stream");

  // search, then open the issue with the keyboard
  await page.fill("#search", "is:unresolved ValueError browser:Firefox");
  await page.press("#search", "Enter");
  await page.waitForURL(/query=/);
  const link = page.locator("a[data-open]").first();
  assert.equal(await link.textContent(), "ValueError: <script>alert(1)</script> cart total");
  await page.locator("h1").click();
  await page.keyboard.press("j");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/issues\/-?\d+\/$/);
  const issueUrl = page.url();

  // the stack trace and breadcrumbs
  const text = await page.textContent("main");
  for (const expected of ["checkout_handler", "raise ValueError(total)", "deadlock found", "GET /cart", "ada@example.com"]) {
    assert.ok(text.includes(expected), `issue page lacks ${expected}`);
  }
  await checkAccessibility(page, "issue");
  await shot(page, "issue");
  // "Copy as Markdown" puts the event's Markdown on the clipboard
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  await page.click("button:has-text('Copy as Markdown')");
  await page.waitForSelector("button:has-text('Copied')");
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.ok(copied.startsWith("# ValueError: <script>alert(1)</script> cart total"), copied);
  // a tag value opens the stream filtered by it
  await page.click(".tag-values a:has-text('Firefox')");
  await page.waitForURL(/query=is%3Aunresolved\+browser%3A%22Firefox%22/);
  assert.equal(await page.locator("a[data-open]").count(), 1);
  await page.goto(issueUrl);
  await page.click("text=In-app frames only");
  await page.waitForURL(/frames=app/);
  assert.ok((await page.textContent("main")).includes("frames outside the app are hidden"));

  // resolve, then a new event reopens it as a regression
  await page.goto(issueUrl);
  await page.click("button:has-text('Resolve')");
  await page.waitForLoadState();
  assert.equal(await page.textContent(".issue-head .badge"), "resolved");
  await sendEvent("9ec79c33ec9942ab8353589fcb2e04dd", EVENT);
  await page.reload();
  assert.equal(await page.textContent(".issue-head .badge"), "unresolved");
  assert.ok(await page.isVisible(".issue-head .badge.regressed"));

  // the event page of the older event and its Markdown export
  await page.click("nav.pager >> text=Older");
  await page.waitForURL(/\/events\/9ec79c33ec9942ab8353589fcb2e04dc\//);
  await shot(page, "event");
  const md = await (await ctx.request.get(page.url() + "event.md")).text();
  assert.ok(md.startsWith("# ValueError: <script>alert(1)</script> cart total"), md);

  // SQL: run with Ctrl+Enter, read the table, download the CSV
  await page.goto(`${base}/organizations/default/sql/`);
  await page.fill("#sql", "SELECT project, count(*) AS n FROM events GROUP BY project");
  await page.press("#sql", "Control+Enter");
  await page.waitForURL(/sql=SELECT/);
  assert.equal(await page.textContent("table.result tbody td"), "shop");
  await checkAccessibility(page, "sql");
  await page.goto(
    `${base}/organizations/default/sql/?sql=` +
      encodeURIComponent(
        "SELECT date_trunc('minute', timestamp) AS minute, count(*) AS events FROM events GROUP BY 1 " +
          "UNION ALL SELECT date_trunc('minute', now() - INTERVAL '30 minutes'), 1 " +
          "UNION ALL SELECT date_trunc('minute', now() - INTERVAL '20 minutes'), 3 ORDER BY 1",
      ),
  );
  assert.ok(await page.isVisible("svg.chart.line"), "a chart of events over time");
  await shot(page, "sql");
  await page.goto(
    `${base}/organizations/default/sql/?sql=` +
      encodeURIComponent("SELECT project, count(*) AS n FROM events GROUP BY project"),
  );
  // A browser's download carries the session cookie, not the test's bearer header: fetch the
  // link the page offers with the header instead.
  const href = await page.getAttribute("text=Download CSV", "href");
  const csv = await ctx.request.get(new URL(href, base).href, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(csv.headers()["content-disposition"], 'attachment; filename="faultline-query.csv"');
  assert.equal(await csv.text(), "project,n\nshop,2\n");

  await page.goto(`${base}/organizations/default/projects/`);
  await checkAccessibility(page, "projects");

  assert.deepEqual(problems, []);
  await ctx.close();
});

test("the same flow with JavaScript off", async () => {
  const { ctx, problems } = await context({ javaScriptEnabled: false });
  const page = await ctx.newPage();
  await page.goto(`${base}/organizations/default/issues/`);
  // bulk: ignore the issue with a checkbox and a plain form post
  await page.check("input[name=issue]");
  await page.click("button[value=ignore]");
  await page.waitForLoadState();
  assert.ok((await page.textContent("main")).includes("No issues match"));
  await page.goto(`${base}/organizations/default/issues/?status=ignored&query=`);
  await page.click("a[data-open]");
  await page.waitForURL(/\/issues\/-?\d+\/$/);
  await page.click("button:has-text('Reopen')");
  await page.waitForLoadState();
  assert.equal(await page.textContent(".issue-head .badge"), "unresolved");
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("on a phone in dark mode", async () => {
  const { ctx, problems } = await context({
    viewport: { width: 375, height: 800 },
    colorScheme: "dark",
  });
  const page = await ctx.newPage();
  await page.goto(`${base}/organizations/default/issues/?query=`);
  await shot(page, "stream-phone-dark");
  await checkAccessibility(page, "stream (phone, dark)");
  await page.click("a[data-open]");
  await page.waitForURL(/\/issues\/-?\d+\/$/);
  await shot(page, "issue-phone-dark");
  await checkAccessibility(page, "issue (phone, dark)");
  await page.goto(`${base}/organizations/default/sql/?sql=SELECT+1+AS+one`);
  await checkAccessibility(page, "sql (phone, dark)");
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("without credentials the browser is sent to the login form", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(`${base}/organizations/default/sql/`);
  assert.equal(new URL(page.url()).pathname, "/login");
  assert.equal(await page.inputValue("input[name=next]"), "/organizations/default/sql/");
  await checkAccessibility(page, "login");
  await shot(page, "login");
  await ctx.close();
});
