"""Release health and cron check-ins with the official Python SDK.

Usage: release_health.py DSN

Sends, for release `shop@2.0` in `production`: one session of user `ann` that ends normally,
and one of user `bo` during which an unhandled exception reaches `sys.excepthook` (the SDK's
excepthook integration marks that session crashed); then cron check-ins: `capture_checkin` of
monitor `nightly-report` (in progress, then ok, with a crontab `monitor_config` in a
timezone), and a run of a function decorated with `sentry_sdk.monitor` (an interval schedule)
that raises, so its check-in is `error`.

Prints one JSON object on stdout: the check-in id of the nightly report's run.
"""

import json
import sys

import sentry_sdk
from sentry_sdk.crons import MonitorStatus, capture_checkin, monitor

NIGHTLY = {
    "schedule": {"type": "crontab", "value": "0 3 * * *"},
    "checkin_margin": 10,
    "max_runtime": 45,
    "timezone": "Europe/Vienna",
}
HOURLY = {"schedule": {"type": "interval", "value": 2, "unit": "hour"}}


@monitor(monitor_slug="sync-prices", monitor_config=HOURLY)
def sync_prices():
    raise ValueError("the price feed is down")


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: release_health.py DSN\n")
        return 2
    sentry_sdk.init(
        dsn=argv[0],
        release="shop@2.0",
        environment="production",
        auto_session_tracking=True,
        shutdown_timeout=30,
    )
    # a healthy session
    sentry_sdk.set_user({"id": "ann"})
    sentry_sdk.start_session()
    sentry_sdk.end_session()
    # a crashed one: an exception nothing caught reaches the excepthook
    sentry_sdk.set_user({"id": "bo"})
    sentry_sdk.start_session()
    try:
        raise RuntimeError("checkout crashed")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    sentry_sdk.end_session()

    check_in_id = capture_checkin(
        monitor_slug="nightly-report",
        status=MonitorStatus.IN_PROGRESS,
        monitor_config=NIGHTLY,
    )
    capture_checkin(
        monitor_slug="nightly-report",
        check_in_id=check_in_id,
        status=MonitorStatus.OK,
        duration=1.5,
    )
    try:
        sync_prices()
    except ValueError:
        pass

    sentry_sdk.flush(timeout=30)
    json.dump({"check_in_id": check_in_id}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
