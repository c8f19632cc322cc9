// Cron check-ins with the official @sentry/node SDK: `Sentry.captureCheckIn` (in progress,
// then ok, with a crontab monitor config) and `Sentry.withMonitor` around a job that fails
// (an interval monitor config), so its check-in is `error`. The process's own session
// (processSessionIntegration) is ended and sent too.
//
// Usage: node send_crons.js DSN
//
// Prints one JSON object on stdout: the `check_in_id` of the first monitor's run.
'use strict';

const Sentry = require('@sentry/node');

async function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write('usage: node send_crons.js DSN\n');
    return 2;
  }
  Sentry.init({ dsn: argv[0], release: 'shop-node@3.0', environment: 'production' });
  const monitorConfig = {
    schedule: { type: 'crontab', value: '*/15 * * * *' },
    checkinMargin: 2,
    maxRuntime: 5,
    timezone: 'America/New_York',
  };
  const checkInId = Sentry.captureCheckIn(
    { monitorSlug: 'invoice-run', status: 'in_progress' },
    monitorConfig,
  );
  Sentry.captureCheckIn({ checkInId, monitorSlug: 'invoice-run', status: 'ok', duration: 2 });
  try {
    await Sentry.withMonitor(
      'cleanup',
      async () => {
        throw new Error('disk full');
      },
      { schedule: { type: 'interval', value: 30, unit: 'minute' } },
    );
  } catch (_) {
    // the check-in says error
  }
  // the process's session (started by processSessionIntegration) ends here, not at exit
  Sentry.endSession();
  await Sentry.flush(10000);
  process.stdout.write(JSON.stringify({ check_in_id: checkInId }));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  },
);
