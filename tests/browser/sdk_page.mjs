// Loads a page that runs an `@sentry/browser` bundle in headless Chromium (Debian's `chromium`,
// driven by playwright-core) and reports what the SDK sent. Used by the end-to-end test
// engine/tests/e2e/browser_sdk.rs; not a test file of its own (`node --test` skips it).
//
//   node tests/browser/sdk_page.mjs <dir with index.html and the bundle> [item types to await]
//
// The directory is served from a loopback HTTP server on its own port, so the page's origin
// differs from the DSN's and the browser applies CORS to the envelope request. The page is
// opened, its uncaught error is captured by the SDK, and the script waits for the envelope's
// answer, then for envelopes of the other item types named (comma separated, at most 30 s). It
// prints one JSON line: the event id the SDK gave, the envelope's status, the CORS header of
// its answer, whether a preflight was made, the item types posted, the status of every
// envelope answer and the console errors the page logged.
//
// Needs FAULTLINE_CHROMIUM (default /usr/bin/chromium).

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node sdk_page.mjs <dir>");
  process.exit(2);
}
const types = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

const server = createServer(async (req, res) => {
  const path = normalize(new URL(req.url, "http://x").pathname).replace(/^\/+/, "") || "index.html";
  if (path === "favicon.ico") {
    res.writeHead(204);
    res.end();
    return;
  }
  try {
    const body = await readFile(join(dir, path));
    res.writeHead(200, { "content-type": types[extname(path)] || "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.FAULTLINE_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
let exitCode = 0;
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`uncaught: ${e.message}`));
  let preflight = false;
  // the item types of every envelope the page posted, and the status of each answer
  const itemTypes = new Set();
  const statuses = [];
  page.on("request", (r) => {
    if (r.method() === "OPTIONS" && r.url().includes("/envelope/")) preflight = true;
    if (r.method() === "POST" && r.url().includes("/envelope/")) {
      for (const line of (r.postData() ?? "").split("\n")) {
        const type = /^\{"type":"([a-z_]+)"/.exec(line);
        if (type) itemTypes.add(type[1]);
      }
    }
  });
  page.on("response", (r) => {
    if (r.request().method() === "POST" && r.url().includes("/envelope/")) statuses.push(r.status());
  });
  await page.goto(`${origin}/index.html`);
  const eventId = await page.waitForFunction(() => window.sentEventId, null, { timeout: 60_000 });
  const id = await eventId.jsonValue();
  // the envelope carrying the error (the SDK also sends a session envelope on load)
  const response = await page.waitForResponse(
    (r) =>
      r.url().includes("/envelope/") &&
      r.request().method() === "POST" &&
      (r.request().postData() ?? "").includes(id),
    { timeout: 60_000 },
  );
  // the item types the test expects besides the error (a pageload transaction is sent once
  // the page has been idle for a second)
  const expected = (process.argv[3] ?? "").split(",").filter(Boolean);
  const deadline = Date.now() + 30_000;
  while (expected.some((t) => !itemTypes.has(t)) && Date.now() < deadline) {
    await page.waitForTimeout(200);
  }
  // and their answers
  await page.waitForTimeout(500);
  console.log(
    JSON.stringify({
      origin,
      itemTypes: [...itemTypes].sort(),
      statuses,
      eventId: id,
      status: response.status(),
      allowOrigin: (await response.allHeaders())["access-control-allow-origin"] ?? null,
      preflight,
      consoleErrors,
    }),
  );
} catch (e) {
  console.error(e);
  exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(exitCode);
