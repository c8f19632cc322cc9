// Send real events to a Sentry-compatible server with the official @sentry/node SDK.
//
// Usage: node send_events.js DSN SCENARIO [SCENARIO ...]
//
// Prints one JSON object on stdout: for every event sent, a label mapped to `id` (the event id the
// SDK returned) and, for exceptions, `type`, `value` and `frames` (the stack frames of the main
// exception as the SDK sent them, recorded in `beforeSend`). Scenarios:
//   exception    a TypeError thrown several frames deep, with tags, user, breadcrumbs
//   message      captureMessage at level warning
//   types        a RangeError from another code path
//   fingerprint  two different errors sharing one custom fingerprint
'use strict';

const Sentry = require('@sentry/node');

const sentFrames = new Map();

function formatAddress(address) {
  return address.street.toUpperCase(); // throws: `street` is missing
}

function buildLabel(order) {
  const lines = [order.customer.name, formatAddress(order.customer.address)];
  return lines.join('\n');
}

function shipOrder(orderId) {
  const order = { id: orderId, customer: { name: 'Grace', address: {} } };
  return buildLabel(order);
}

function reserveStock(quantity) {
  if (quantity > 100) {
    throw new RangeError(`cannot reserve ${quantity} items, at most 100`);
  }
}

function placeBulkOrder() {
  reserveStock(250);
}

function openQueue() {
  throw new Error('queue broker unreachable at mq-1:5672');
}

function publishEvent() {
  throw new Error('publish to mq-2:5672 timed out');
}

function describe(label, id, error) {
  const entry = { id };
  if (error) {
    entry.type = error.name;
    entry.value = error.message;
    entry.frames = sentFrames.get(id);
  }
  return [label, entry];
}

function capture(fn) {
  try {
    fn();
  } catch (error) {
    return [Sentry.captureException(error), error];
  }
  throw new Error('expected the scenario to throw');
}

const scenarios = {
  exception() {
    Sentry.addBreadcrumb({ category: 'auth', message: 'user logged in', level: 'info' });
    Sentry.addBreadcrumb({ category: 'navigation', message: '/orders -> /ship', level: 'info' });
    return Sentry.withScope((scope) => {
      scope.setTag('runtime_check', 'node');
      scope.setTag('region', 'us-east');
      scope.setUser({ id: 'u-2002', email: 'grace@example.com', username: 'grace' });
      const [id, error] = capture(() => shipOrder('order-9'));
      return [describe('exception', id, error)];
    });
  },
  message() {
    const id = Sentry.captureMessage('inventory sync lagging by 120 s', 'warning');
    return [describe('message', id)];
  },
  types() {
    const [id, error] = capture(() => placeBulkOrder());
    return [describe('range', id, error)];
  },
  fingerprint() {
    return [
      ['fingerprint_open', openQueue],
      ['fingerprint_publish', publishEvent],
    ].map(([label, fn]) =>
      Sentry.withScope((scope) => {
        scope.setFingerprint(['queue-down']);
        const [id, error] = capture(fn);
        return describe(label, id, error);
      }),
    );
  },
};

async function main(argv) {
  if (argv.length < 2) {
    process.stderr.write('usage: node send_events.js DSN SCENARIO [SCENARIO ...]\n');
    return 2;
  }
  const [dsn, ...names] = argv;
  Sentry.init({
    dsn,
    release: 'shop-node@2.0.1',
    environment: 'production',
    serverName: 'shop-node-1',
    sendDefaultPii: true,
    sampleRate: 1.0,
    beforeSend(event) {
      const values = (event.exception && event.exception.values) || [];
      const main = values[values.length - 1];
      if (main && main.stacktrace && main.stacktrace.frames) {
        sentFrames.set(event.event_id, main.stacktrace.frames.length);
      }
      return event;
    },
  });
  const sent = {};
  for (const name of names) {
    const scenario = scenarios[name];
    if (!scenario) {
      process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}\n`);
      return 2;
    }
    for (const [label, entry] of scenario()) {
      sent[label] = entry;
    }
  }
  if (!(await Sentry.flush(30000))) {
    process.stderr.write('flush timed out: not every event was delivered\n');
    return 1;
  }
  // beforeSend runs during processing, which has finished once flush returns.
  for (const entry of Object.values(sent)) {
    if (entry.type && entry.frames === undefined) {
      entry.frames = sentFrames.get(entry.id);
    }
  }
  process.stdout.write(`${JSON.stringify(sent, null, 1)}\n`);
  return 0;
}

// The scenarios are shared with capture_events.js, which requires this file.
module.exports = { scenarios, sentFrames };

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      process.stderr.write(`${error.stack}\n`);
      process.exit(1);
    },
  );
}
