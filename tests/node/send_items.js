// Send the items other than error events with the official @sentry/node SDK: a trace of a
// root span with two child spans and an error inside it, logs, and user feedback about the
// error.
//
// Usage: node send_items.js DSN LIFECYCLE
//
// LIFECYCLE is `static` (the trace is sent as a `transaction` item) or `stream` (as `span`
// items, span streaming). Prints one JSON object on stdout: `trace_id`, the error's
// `event_id` and the `feedback_id`.
'use strict';

const Sentry = require('@sentry/node');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(argv) {
  if (argv.length !== 2) {
    process.stderr.write('usage: node send_items.js DSN static|stream\n');
    return 2;
  }
  const [dsn, lifecycle] = argv;
  Sentry.init({
    dsn,
    release: 'shop-node@2.0.1',
    environment: 'production',
    tracesSampleRate: 1.0,
    enableLogs: true,
    traceLifecycle: lifecycle,
  });
  let traceId;
  let eventId;
  await Sentry.startSpan({ name: 'checkout', op: 'task' }, async (span) => {
    traceId = span.spanContext().traceId;
    await Sentry.startSpan({ name: 'SELECT cart', op: 'db' }, () => sleep(20));
    await Sentry.startSpan({ name: 'POST /pay', op: 'http.client' }, () => sleep(30));
    eventId = Sentry.captureException(new Error('payment declined'));
  });
  Sentry.logger.info(Sentry.logger.fmt`cart ${42} checked out`);
  Sentry.logger.warn('payment provider slow');
  const feedbackId = Sentry.captureFeedback({
    message: 'the pay button does nothing',
    name: 'Ann',
    email: 'ann@example.com',
    associatedEventId: eventId,
  });
  if (!(await Sentry.flush(30000))) {
    process.stderr.write('flush timed out: not every item was delivered\n');
    return 1;
  }
  process.stdout.write(
    `${JSON.stringify({ trace_id: traceId, event_id: eventId, feedback_id: feedbackId })}\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  },
);
