"""Send traces past a project's span quota with the official Python SDK, then an error.

Usage: send_over_quota.py DSN COUNT

Each trace is one segment span (sentry-sdk 3 streams spans as `span` items), flushed before
the next, so the SDK reads the server's answer (and its `X-Sentry-Rate-Limits`) before it
sends again. Prints one JSON object: the spans the SDK was asked for, and the `event_id` of
the error captured after them.
"""

import json
import sys

import sentry_sdk
from sentry_sdk.integrations.stdlib import StdlibIntegration


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: send_over_quota.py DSN COUNT\n")
        return 2
    count = int(argv[1])
    sentry_sdk.init(
        dsn=argv[0],
        traces_sample_rate=1.0,
        shutdown_timeout=30,
        # sentry-sdk 3.0 traces its own requests to a DSN with a port (its check compares the
        # DSN's host:port with the request's host alone): those spans would count against the
        # quota too, and how many there are depends on timing
        disabled_integrations=[StdlibIntegration()],
    )
    for i in range(count):
        with sentry_sdk.start_span(name=f"batch-{i}", attributes={"sentry.op": "task"}):
            pass
        sentry_sdk.flush(timeout=30)
    event_id = sentry_sdk.capture_message("after the quota")
    # the final flush also sends the client report of what the SDK held back
    sentry_sdk.flush(timeout=30)
    json.dump({"spans": count, "event_id": event_id}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
