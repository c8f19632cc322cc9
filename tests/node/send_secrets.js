// Send an error with planted secrets through the official @sentry/node SDK, from inside a real
// HTTP request handled by a node `http` server on loopback (the SDK's default HTTP integration
// attaches the request's headers, cookies, query string and client IP), with the request's
// transaction and a log record with a secret attribute.
//
// Usage: node send_secrets.js DSN
// Prints `{"id": <event id>}`.
'use strict';

const Sentry = require('@sentry/node');

// Built at run time: the SDK also sends the source lines around each frame, and those must not
// hold the planted secrets themselves.
const CARD = ['4111', ...Array(3).fill('1111')].join(' ');
const planted = (name) => `NODESECRET${name}`;

async function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node send_secrets.js DSN\n');
    return 2;
  }
  const sent = [];
  Sentry.init({
    dsn: argv[0],
    sampleRate: 1.0,
    tracesSampleRate: 1.0,
    enableLogs: true,
    beforeSend(event) {
      sent.push(event.event_id);
      return event;
    },
  });
  // required after init, so the HTTP integration instruments it
  const http = require('http');
  const server = http.createServer((req, res) => {
    Sentry.addBreadcrumb({ category: 'login', message: 'signed in', data: { db_password: planted('CRUMB') } });
    Sentry.logger.info('charging card', { db_password: planted('LOG') });
    Sentry.setExtra('billing', { card_number: CARD, db_password: planted('EXTRA'), note: `charge ${CARD}` });
    Sentry.captureException(new Error('payment backend refused the charge'));
    res.end('ok');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/pay?api_key=${planted('QUERY')}&page=2`,
        headers: {
          Authorization: `Bearer ${planted('BEARER')}`,
          'X-Custom-Token': planted('HEADER'),
          Cookie: `sessionid=${planted('COOKIE')}; theme=dark`,
          'X-Forwarded-For': '203.0.113.9',
          'User-Agent':
            'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
        },
      },
      (res) => {
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', reject);
    req.end();
  });
  server.close();
  if (!(await Sentry.flush(30000))) {
    process.stderr.write('flush timed out\n');
    return 1;
  }
  if (sent.length === 0) {
    process.stderr.write('the SDK sent no event\n');
    return 1;
  }
  process.stdout.write(`${JSON.stringify({ id: sent[0] })}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  },
);
