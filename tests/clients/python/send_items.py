"""Send the items other than error events with the official Python SDK: a trace of a segment
span with two child spans and an error inside it (sentry-sdk 3 streams spans as `span` items;
it sends no `transaction` items), logs, and a legacy user report.

Usage: send_items.py DSN

Prints one JSON object on stdout: the `trace_id` of the trace, the `event_id` of the error sent
inside it, and the `transaction` (segment) name. sentry-sdk 3 has no API for the newer
`feedback` item, so the user report goes through the SDK's own transport as a `user_report`
item (the shape older SDKs' `capture_user_feedback` sent).
"""

import json
import sys
import time

import sentry_sdk
from sentry_sdk.envelope import Envelope, Item, PayloadRef

TRANSACTION = "nightly-report"


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: send_items.py DSN\n")
        return 2
    sentry_sdk.init(
        dsn=argv[0],
        release="shop@1.4.2",
        environment="staging",
        traces_sample_rate=1.0,
        shutdown_timeout=30,
    )
    with sentry_sdk.start_span(name=TRANSACTION, attributes={"sentry.op": "task"}) as transaction:
        with sentry_sdk.start_span(name="SELECT orders", attributes={"sentry.op": "db"}):
            time.sleep(0.02)
        with sentry_sdk.start_span(name="POST /render", attributes={"sentry.op": "http.client"}):
            time.sleep(0.03)
        try:
            {}["missing"]
        except KeyError:
            event_id = sentry_sdk.capture_exception()
        trace_id = transaction.trace_id
    sentry_sdk.logger.info("report {name} rendered", name="nightly")
    sentry_sdk.logger.warning("report took {seconds} s", seconds=3)

    report = {
        "event_id": event_id,
        "name": "Ann",
        "email": "ann@example.com",
        "comments": "the report is empty",
    }
    envelope = Envelope(headers={"event_id": event_id})
    envelope.add_item(Item(payload=PayloadRef(json=report), type="user_report"))
    sentry_sdk.get_client().transport.capture_envelope(envelope)

    sentry_sdk.flush(timeout=30)
    json.dump(
        {"trace_id": trace_id, "event_id": event_id, "transaction": TRANSACTION},
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
