// Capture the events the official @sentry/node SDK sends, as files, without a server.
//
// Usage: node capture_events.js OUTDIR   (with NODE_PATH set to the node_modules of this folder)
//
// Runs the scenarios of send_events.js (exception, message, types, fingerprint) with a transport
// that parses every envelope and keeps its `event` items instead of sending them, and writes each
// one to OUTDIR/node-<label>.json as the SDK serialized it, except that the paths of this checkout
// are replaced by fixed ones (`/srv/shop-node`), so that a capture does not depend on where it was
// made. The committed captures in protocol/tests/fixtures/sdk/ were written by this script; run it
// again (through protocol/tests/fixtures/capture.sh) after upgrading @sentry/node.
'use strict';

const fs = require('fs');
const path = require('path');
const Sentry = require('@sentry/node');
const { createTransport, parseEnvelope } = require('@sentry/core');
const { scenarios } = require('./send_events');

const SCENARIOS = ['exception', 'message', 'types', 'fingerprint'];

const events = new Map();

function captureTransport(options) {
  return createTransport(options, async (request) => {
    const [, items] = parseEnvelope(request.body);
    for (const [header, payload] of items) {
      if (header.type === 'event') {
        events.set(payload.event_id, payload);
      }
    }
    return { statusCode: 200 };
  });
}

function scrubber(replacements) {
  // longest first: node_modules may live inside the checkout
  const pairs = replacements.filter(([from]) => from && from !== '/').sort((a, b) => b[0].length - a[0].length);
  const scrub = (value) => {
    if (typeof value === 'string') {
      return pairs.reduce((text, [from, to]) => text.split(from).join(to), value);
    }
    if (Array.isArray(value)) {
      return value.map(scrub);
    }
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [scrub(k), scrub(v)]));
    }
    return value;
  };
  return scrub;
}

async function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node capture_events.js OUTDIR\n');
    return 2;
  }
  const outdir = argv[0];
  fs.mkdirSync(outdir, { recursive: true });
  const modules = path.resolve(require.resolve('@sentry/node/package.json'), '../../..');
  const scrub = scrubber([
    [modules, '/srv/shop-node/node_modules'],
    [fs.realpathSync(modules), '/srv/shop-node/node_modules'],
    [__dirname, '/srv/shop-node'],
    [fs.realpathSync(__dirname), '/srv/shop-node'],
    [process.cwd(), '/srv/shop-node'],
  ]);
  Sentry.init({
    dsn: 'http://public@127.0.0.1:9/1',
    transport: captureTransport,
    release: 'shop-node@2.0.1',
    environment: 'production',
    serverName: 'shop-node-1',
    sendDefaultPii: true,
    sampleRate: 1.0,
  });
  const labels = {};
  for (const name of SCENARIOS) {
    for (const [label, entry] of scenarios[name]()) {
      labels[label] = entry.id;
    }
  }
  if (!(await Sentry.flush(10000))) {
    process.stderr.write('flush timed out\n');
    return 1;
  }
  const missing = Object.keys(labels).filter((label) => !events.has(labels[label]));
  if (missing.length > 0) {
    process.stderr.write(`the SDK sent no event for ${missing.join(', ')}\n`);
    return 1;
  }
  for (const label of Object.keys(labels).sort()) {
    const event = scrub(events.get(labels[label]));
    fs.writeFileSync(path.join(outdir, `node-${label}.json`), `${JSON.stringify(event, null, 2)}\n`);
  }
  process.stdout.write(`${JSON.stringify(Object.keys(labels).sort())}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  },
);
