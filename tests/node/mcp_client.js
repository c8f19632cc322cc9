// Runs the real Sentry MCP server (`@sentry/mcp-server`, stdio transport) against a faultline
// on loopback and calls its tools as a coding assistant would, speaking MCP's JSON-RPC over the
// server's stdin and stdout (one JSON message per line).
//
//   node mcp_client.js <host:port> <token> <dsn for its own telemetry> '<JSON list of calls>'
//
// A call is {"name": "<tool>", "arguments": {...}}. Prints one JSON object: the names of the
// tools the server offers and, per call, whether it was an error and the text it answered.

const { spawn } = require("node:child_process");
const path = require("node:path");

const [host, token, dsn, callsJson] = process.argv.slice(2);
if (!callsJson) {
  console.error("usage: node mcp_client.js <host:port> <token> <dsn> '<calls>'");
  process.exit(2);
}
const calls = JSON.parse(callsJson);
// the package exports no package.json; find its directory on the module search path
const fs = require("node:fs");
const entry = [
  ...(process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean),
  ...require.resolve.paths("@sentry/mcp-server"),
]
  .map((dir) => path.join(dir, "@sentry", "mcp-server", "dist", "index.js"))
  .find((file) => fs.existsSync(file));
if (!entry) {
  console.error("@sentry/mcp-server is not installed (npm ci in tests/node)");
  process.exit(2);
}

const server = spawn(
  process.execPath,
  [entry, `--access-token=${token}`, `--host=${host}`, "--insecure-http", `--sentry-dsn=${dsn}`],
  { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, SENTRY_ACCESS_TOKEN: "" } },
);
let stderr = "";
server.stderr.on("data", (d) => (stderr += d));

const pending = new Map();
let buffer = "";
server.stdout.on("data", (chunk) => {
  buffer += chunk;
  let newline;
  while ((newline = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, newline).trim();
    buffer = buffer.slice(newline + 1);
    if (!line) continue;
    const message = JSON.parse(line);
    if (message.id !== undefined && pending.has(message.id)) {
      pending.get(message.id)(message);
      pending.delete(message.id);
    }
  }
});

let nextId = 1;
function request(method, params) {
  const id = nextId++;
  const answer = new Promise((resolve, reject) => {
    pending.set(id, resolve);
    setTimeout(() => reject(new Error(`no answer to ${method} in 60 s; stderr:\n${stderr}`)), 60_000);
  });
  server.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
  return answer;
}

async function main() {
  const init = await request("initialize", {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "faultline-e2e", version: "1.0.0" },
  });
  if (init.error) throw new Error(`initialize: ${JSON.stringify(init.error)}`);
  server.stdin.write(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) + "\n");
  const list = await request("tools/list", {});
  const tools = (list.result?.tools ?? []).map((t) => t.name);
  const results = [];
  for (const call of calls) {
    const answer = await request("tools/call", call);
    const content = answer.result?.content ?? [];
    results.push({
      name: call.name,
      isError: Boolean(answer.error || answer.result?.isError),
      text: answer.error
        ? JSON.stringify(answer.error)
        : content.filter((c) => c.type === "text").map((c) => c.text).join("\n"),
    });
  }
  console.log(JSON.stringify({ tools, results }));
}

main()
  .then(() => {
    server.kill();
    process.exit(0);
  })
  .catch((e) => {
    console.error(String(e.stack || e), "\nserver stderr:\n", stderr);
    server.kill();
    process.exit(1);
  });
