// The web UI in real headless Chromium (Debian's `chromium`, driven by playwright-core). The first
// owner is created through the first-start link the server prints, and every scenario logs in
// through the login form and runs on the session cookie: a user finds an issue by search, opens it
// with the keyboard, reads the stack trace and breadcrumbs, resolves it, sees a new event reopen it
// as a regression, runs SQL and downloads the CSV; then the same pages with JavaScript off, a phone
// in dark mode, and TOTP enrolment on the account page followed by a login with a code computed
// here (RFC 6238). Every page must come with the server's strict Content-Security-Policy header,
// log no console error and no CSP violation, and axe-core must find no serious or critical
// accessibility violation. Screenshots of each page go to docs/screenshots/.
//
// Needs: FAULTLINE_BIN (the faultline binary; default target/debug/faultline under
// CARGO_TARGET_DIR), FAULTLINE_CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { createHmac } from "node:crypto";
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

// The server's Content-Security-Policy must be at least this strict (docs/security.md).
const CSP_PARTS = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
];

const OWNER = { email: "owner@example.com", name: "Ada Owner", password: "correct horse battery staple" };

let server;
let dir;
let base;
let dsn;
let browser;
let setupLink;
// The owner's TOTP seed once the TOTP scenario has enrolled one.
let totpSecret;

/// The TOTP code (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps) of a base32 seed at `seconds`.
function totpCode(secretB32, seconds) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secretB32.replace(/=+$/, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    assert.ok(v >= 0, `not base32: ${secretB32}`);
    bits += v.toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(seconds / 30)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

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
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ["--data-dir", dir, "serve", "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  // the first-start link, printed on stderr (the rest of stderr goes on to ours)
  let log = "";
  const linked = new Promise((ok, fail) => {
    server.stderr.on("data", (chunk) => {
      process.stderr.write(chunk);
      log += chunk.toString();
      const found = log.match(/https?:\/\/\S+\/setup\/[A-Za-z0-9_-]+/);
      if (found) ok(found[0]);
    });
    server.once("exit", (code) => fail(new Error(`the server exited (${code}) without a setup link`)));
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
  setupLink = await linked;
  assert.equal(new URL(setupLink).origin, base);
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

/// Fails unless a page's response carries the server's strict Content-Security-Policy.
function assertCsp(response, what) {
  assert.ok(response, `${what}: no response`);
  const csp = response.headers()["content-security-policy"] || "";
  for (const part of CSP_PARTS) assert.ok(csp.includes(part), `${what}: CSP ${csp} lacks ${part}`);
  assert.ok(!csp.includes("unsafe-inline"), `${what}: CSP allows inline code: ${csp}`);
}

/// A browser context with a record of console errors, CSP violations and pages served without
/// the strict CSP.
async function context(options = {}) {
  const ctx = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    ...options,
  });
  const problems = [];
  ctx.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  ctx.on("weberror", (error) => problems.push(`page error: ${error.error().message}`));
  ctx.on("response", (response) => {
    if (response.request().resourceType() !== "document" || response.status() >= 300 && response.status() < 400) return;
    try {
      assertCsp(response, response.url());
    } catch (err) {
      problems.push(err.message);
    }
  });
  return { ctx, problems };
}

/// Logs in through the login form (with a TOTP code when the owner has enrolled one).
async function logIn(page, code) {
  const response = await page.goto(`${base}/login`);
  assertCsp(response, "login");
  await page.fill("#email", OWNER.email);
  await page.fill("#password", OWNER.password);
  if (code) await page.fill("#code", code);
  await page.click("form[action='/auth/login'] button[type=submit]");
  await page.waitForURL(/\/organizations\/default\/issues\/$/);
}

/// A context logged in as the owner, on the session cookie.
async function loggedIn(options = {}) {
  const { ctx, problems } = await context(options);
  const page = await ctx.newPage();
  await logIn(page, totpSecret ? totpCode(totpSecret, Date.now() / 1000) : undefined);
  const cookies = await ctx.cookies(base);
  assert.ok(
    cookies.some((c) => c.name === "faultline_session" && c.httpOnly && c.sameSite === "Lax"),
    JSON.stringify(cookies),
  );
  return { ctx, problems, page };
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

test("first start: the link the server printed creates the owner and logs in", async () => {
  const { ctx, problems } = await context();
  const page = await ctx.newPage();
  assertCsp(await page.goto(setupLink), "setup");
  assert.equal(await page.textContent("h1"), "Create the first owner");
  await checkAccessibility(page, "setup");
  await shot(page, "setup");
  await page.fill("#email", OWNER.email);
  await page.fill("#name", OWNER.name);
  await page.fill("#password", OWNER.password);
  await page.click("button:has-text('Create owner and log in')");
  await page.waitForURL(/\/organizations\/default\/issues\/$/);
  // the header names the person and logs out
  assert.ok((await page.textContent("header.top")).includes(`Signed in as ${OWNER.email}`));
  await page.click("details.account summary");
  await page.click("button:has-text('Log out')");
  await page.waitForURL(/\/login\?next=/);
  // the link works once
  const used = await page.goto(setupLink);
  assert.equal(used.status(), 404);
  assert.deepEqual(problems.filter((p) => !p.includes("404")), []);
  await ctx.close();
});

test("find, read, resolve, regress, query: with JavaScript", async () => {
  const { ctx, problems, page } = await loggedIn();

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
  // event links carry the event's time (`?at=`): the Markdown link keeps it
  assert.match(page.url(), /\?.*at=\d+/);
  const mdHref = await page.getAttribute("a:has-text('Markdown')", "href");
  assert.match(mdHref, /event\.md\?at=\d+$/);
  const md = await (await ctx.request.get(new URL(mdHref, page.url()).href)).text();
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
  // the browser's own download, on the session cookie
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Download CSV")]);
  assert.equal(download.suggestedFilename(), "faultline-query.csv");
  assert.equal(readFileSync(await download.path(), "utf8"), "project,n\nshop,2\n");

  await page.goto(`${base}/organizations/default/projects/`);
  await checkAccessibility(page, "projects");

  assert.deepEqual(problems, []);
  await ctx.close();
});

test("the same flow with JavaScript off", async () => {
  const { ctx, problems, page } = await loggedIn({ javaScriptEnabled: false });
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

test("delete an issue from its page, with its events", async () => {
  const { ctx, problems, page } = await loggedIn();
  const coupon = structuredClone(EVENT);
  coupon.exception.values[0].type = "CouponExpired";
  coupon.exception.values[0].value = "coupon SUMMER expired";
  await sendEvent("5b2cbd0d6f4a4c8e9a0b1c2d3e4f5a6b", coupon);
  await page.goto(`${base}/organizations/default/issues/?query=CouponExpired`);
  await page.click("a[data-open]");
  await page.waitForURL(/\/issues\/-?\d+\/$/);
  const issueUrl = page.url();
  // the form asks to confirm that the events go too
  await page.click("button:has-text('Delete issue')");
  assert.equal(page.url(), issueUrl, "nothing happens without ticking the box");
  await page.check("text=Erase its events (1)");
  await page.click("button:has-text('Delete issue')");
  await page.waitForURL(/\/organizations\/default\/issues\/$/);
  await page.goto(`${base}/organizations/default/issues/?query=CouponExpired`);
  assert.ok((await page.textContent("main")).includes("No issues match"));
  const gone = await ctx.request.get(issueUrl);
  assert.equal(gone.status(), 404);
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("on a phone in dark mode", async () => {
  const { ctx, problems, page } = await loggedIn({
    viewport: { width: 375, height: 800 },
    colorScheme: "dark",
  });
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

test("organization settings: invite a member who accepts, a team, the audit log", async () => {
  const { ctx, problems, page } = await loggedIn();
  assertCsp(await page.goto(`${base}/organizations/default/settings/`), "settings");
  await page.fill("#invite-email", "grace@example.com");
  await page.selectOption("#invite-role", "admin");
  await page.click("button:has-text('Invite')");
  await page.waitForSelector("#invite-link");
  const link = (await page.textContent("#invite-link")).trim();
  assert.match(link, new RegExp(`^${base}/accept/`));

  // Grace accepts in her own browser and is logged in
  const grace = await context();
  const gracePage = await grace.ctx.newPage();
  assertCsp(await gracePage.goto(link), "accept");
  assert.ok((await gracePage.textContent("main")).includes("grace@example.com"));
  await checkAccessibility(gracePage, "accept");
  await gracePage.fill("#name", "Grace");
  await gracePage.fill("#password", "long winter evenings by the sea");
  await gracePage.click("button:has-text('Accept and log in')");
  await gracePage.waitForURL(/\/organizations\/default\/issues\/$/);
  assert.ok((await gracePage.textContent("header.top")).includes("grace@example.com"));
  assert.deepEqual(grace.problems, []);
  await grace.ctx.close();

  // the owner sees her, makes a team of her and the shop project
  await page.goto(`${base}/organizations/default/settings/`);
  const row = page.locator("tr[data-member='grace@example.com']");
  assert.equal(await row.locator("td").nth(2).textContent(), "admin");
  assert.equal(await row.locator("td").nth(3).textContent(), "active");
  await page.fill("#team-slug", "web");
  await page.click("button:has-text('Create team')");
  await page.waitForURL(/done=team$/);
  await page.selectOption("#team-member-web", { label: "grace@example.com" });
  await page.click("tr[data-team='web'] button:has-text('Add member')");
  await page.waitForURL(/done=team-member$/);
  await page.selectOption("#team-project-web", "shop");
  await page.click("tr[data-team='web'] button:has-text('Add project')");
  await page.waitForURL(/done=team-project$/);
  const team = await page.textContent("tr[data-team='web']");
  assert.ok(team.includes("grace@example.com (contributor)") && team.includes("shop"), team);
  await checkAccessibility(page, "settings");
  await shot(page, "settings");

  await page.click("text=Audit log");
  await page.waitForURL(/\/settings\/audit\/$/);
  const audit = await page.textContent("main");
  for (const event of ["project-team.add", "member.join-team", "team.create", "member.accept-invite", "member.invite", "user.login"]) {
    assert.ok(audit.includes(event), `audit log lacks ${event}`);
  }
  await checkAccessibility(page, "audit log");
  await shot(page, "audit");
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("alerts: a channel, a rule and a test notification through the forms", async () => {
  const { ctx, problems, page } = await loggedIn();
  assertCsp(await page.goto(`${base}/organizations/default/alerts/`), "alerts");
  await checkAccessibility(page, "alerts (empty)");
  await page.fill("#channel-name", "ops-mail");
  await page.selectOption("#channel-kind", "email");
  await page.fill("#channel-to", "ops@example.com");
  await page.click("button:has-text('Create channel')");
  await page.waitForURL(/done=channel$/);
  await page.fill("#rule-name", "shop-errors");
  await page.fill("#rule-projects", "shop");
  await page.fill("#rule-levels", "error, fatal");
  await page.check("input[name=channel][value='ops-mail']");
  await page.click("button:has-text('Create rule')");
  await page.waitForURL(/done=rule$/);
  const rule = await page.textContent("tr[data-rule='shop-errors']");
  assert.ok(rule.includes("new issue; regression") && rule.includes("level: error, fatal"), rule);
  // the test notification's outcome (delivered, or why not) is shown, and the channel's last state
  await page.click("tr[data-channel='ops-mail'] button:has-text('Send test notification')");
  await page.waitForSelector("text=Test notification to ops-mail");
  const channel = await page.textContent("tr[data-channel='ops-mail']");
  assert.ok(!channel.includes("never sent"), channel);
  await checkAccessibility(page, "alerts");
  await shot(page, "alerts");
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("TOTP: enrol on the account page, then log in with a code", async () => {
  const { ctx, problems, page } = await loggedIn();
  assertCsp(await page.goto(`${base}/account/`), "account");
  assert.ok((await page.textContent("main")).includes(OWNER.email));
  await checkAccessibility(page, "account");
  await shot(page, "account");

  await page.click("button:has-text('Set up an authenticator app')");
  await page.waitForSelector("#totp-secret");
  const secret = (await page.textContent("#totp-secret")).trim();
  assert.match(await page.textContent("#totp-uri"), /^otpauth:\/\/totp\/.*secret=/);
  await checkAccessibility(page, "account (TOTP enrolment)");
  // a wrong code is refused and the key is offered again
  await page.fill("#totp-code", totpCode(secret, Date.now() / 1000 - 600));
  await page.click("button:has-text('Turn on')");
  await page.waitForSelector("p.error");
  assert.equal((await page.textContent("#totp-secret")).trim(), secret);
  // that answer is a 401 page, which Chromium logs; nothing else may have been logged
  assert.deepEqual(problems.splice(0).filter((p) => !p.includes("status of 401")), []);
  const confirmedAt = Date.now() / 1000;
  await page.fill("#totp-code", totpCode(secret, confirmedAt));
  await page.click("button:has-text('Turn on')");
  await page.waitForSelector("#recovery-codes");
  assert.equal(await page.locator("#recovery-codes li").count(), 10);
  assert.ok((await page.textContent("main")).includes("Two-factor authentication is on."));
  totpSecret = secret;

  // log out, then a password alone is not enough
  await page.click("details.account summary");
  await page.click("button:has-text('Log out')");
  await page.waitForURL(/\/login/);
  await page.fill("#email", OWNER.email);
  await page.fill("#password", OWNER.password);
  await page.click("form[action='/auth/login'] button[type=submit]");
  await page.waitForSelector("p.error");
  assert.equal(new URL(page.url()).pathname, "/login");
  await shot(page, "login-code-required");
  // with the code of the next time step (each step's code works once; one step of skew is
  // accepted, so the next step's code is valid now)
  await logIn(page, totpCode(secret, confirmedAt + 30));
  await page.goto(`${base}/account/`);
  assert.ok(await page.isVisible("button:has-text('Turn off two-factor authentication')"));
  assert.deepEqual(problems, []);
  await ctx.close();
});

test("passkeys: register on the account page, log in without a password, and as second factor", async () => {
  // Browsers accept passkeys on localhost over plain HTTP, never on an IP address; without a
  // public URL the server's relying party is http://localhost:<port>.
  const local = base.replace("127.0.0.1", "localhost");
  const PIA = { email: "pia@example.com", password: "a passkey keeps the rain out" };

  // an account made on the command line; its set-password link, opened on localhost
  const printed = cli("user", "create", PIA.email, "--name", "Pia");
  const link = `${local}/setup/${printed.split("/setup/")[1]}`;

  const { ctx, problems } = await context();
  const page = await ctx.newPage();
  const cdp = await ctx.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  assertCsp(await page.goto(link), "setup (localhost)");
  await page.fill("#password", PIA.password);
  await page.click("button:has-text('Set password and log in')");
  await page.waitForURL(/\/organizations\/default\/issues\/$/);

  // register a passkey on the account page
  assertCsp(await page.goto(`${local}/account/`), "account (localhost)");
  assert.ok(await page.isHidden("[data-passkey-needs-js]"));
  await page.fill("#passkey-name", "laptop");
  await page.click("button:has-text('Add a passkey')");
  await page.waitForURL(/done=passkey-added$/);
  assert.equal(await page.textContent("#passkey-list tbody td"), "laptop");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true);
  await checkAccessibility(page, "account (passkey)");
  await page.evaluate(() => document.getElementById("passkeys-h").scrollIntoView());
  await shot(page, "account-passkey");

  // log out; then sign in with the passkey alone
  await page.click("details.account summary");
  await page.click("button:has-text('Log out')");
  await page.waitForURL(/\/login/);
  await checkAccessibility(page, "login (passkey)");
  await page.click("button:has-text('Sign in with a passkey')");
  await page.waitForURL(/\/organizations\/default\/issues\/$/);
  assert.ok((await page.textContent("header.top")).includes(PIA.email));

  // a password alone is no longer enough; the password and the passkey are
  await page.click("details.account summary");
  await page.click("button:has-text('Log out')");
  await page.waitForURL(/\/login/);
  await page.fill("#email", PIA.email);
  await page.fill("#password", PIA.password);
  await page.click("form[action='/auth/login'] button[type=submit]");
  await page.waitForSelector("p.error");
  assert.ok((await page.textContent("p.error")).includes("needs its passkey"));
  await page.fill("#email", PIA.email);
  await page.fill("#password", PIA.password);
  await page.click("button:has-text('Log in with password and passkey')");
  await page.waitForURL(/\/organizations\/default\/issues\/$/);
  assert.ok((await page.textContent("header.top")).includes(PIA.email));
  const { credentials: used } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.ok(used[0].signCount >= 2, JSON.stringify(used));
  // the redirect with the error is a plain page; nothing may have been logged
  assert.deepEqual(problems, []);
  await ctx.close();

  // the audit log has the registration and both passkey logins
  const auditor = cli("token", "create", "--name", "auditor", "--scope", "event:read", "--scope", "org:admin");
  const audit = await fetch(`${base}/api/sql`, {
    method: "POST",
    headers: { authorization: `Bearer ${auditor}` },
    body: "SELECT event, data FROM audit_log WHERE actor_label = 'pia@example.com' ORDER BY ts",
  });
  const rows = await audit.text();
  assert.equal(audit.status, 200, rows);
  const entries = JSON.parse(rows).map((r) => ({
    event: r.event,
    data: typeof r.data === "string" ? JSON.parse(r.data) : r.data,
  }));
  const added = entries.find((e) => e.event === "user.mfa.enable");
  assert.deepEqual([added?.data.type, added?.data.name], ["passkey", "laptop"], rows);
  const logins = entries.filter((e) => e.event === "user.login").map((e) => e.data.method);
  assert.deepEqual(logins, ["passkey", "password+passkey"], rows);

  // without JavaScript the login page says passkeys need it, and hides the buttons
  const off = await context({ javaScriptEnabled: false });
  const offPage = await off.ctx.newPage();
  await offPage.goto(`${local}/login`);
  assert.ok((await offPage.textContent("main")).includes("Signing in with a passkey needs JavaScript"));
  assert.ok(await offPage.isHidden("#passkey-login"));
  assert.deepEqual(off.problems, []);
  await off.ctx.close();
});
