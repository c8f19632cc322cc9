"""Capture the events the official Python SDK sends, as files, without a server.

Usage: capture_events.py OUTDIR

Runs the scenarios of send_events.py (exception, message, types, fingerprint) with a transport
that keeps every `event` envelope item instead of sending it, and writes each one to
OUTDIR/python-<label>.json exactly as the SDK serialized it, except that the paths of this
checkout and of the Python installation are replaced by fixed ones (`/srv/shop`, `/venv`,
`/python`), so that a capture does not depend on where it was made.

The committed captures in protocol/tests/fixtures/sdk/ were written by this script; run it
again (through protocol/tests/fixtures/capture.sh) after upgrading sentry-sdk.
"""

import json
import os
import sys

import sentry_sdk
from sentry_sdk.transport import Transport

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import send_events  # noqa: E402

SCENARIOS = ("exception", "message", "types", "fingerprint")

# Longest first: a venv may live inside the checkout.
REPLACEMENTS = sorted(
    {
        HERE: "/srv/shop",
        sys.prefix: "/venv",
        sys.base_prefix: "/python",
        os.path.realpath(sys.base_prefix): "/python",
    }.items(),
    key=lambda item: -len(item[0]),
)


class CaptureTransport(Transport):
    """Keeps the event items of every envelope, by event id."""

    def __init__(self, options=None):
        super().__init__(options)
        self.events = {}

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                event = json.loads(item.payload.get_bytes())
                self.events[event["event_id"]] = event

    def flush(self, timeout, callback=None):
        pass

    def kill(self):
        pass


def scrub(value):
    if isinstance(value, str):
        for old, new in REPLACEMENTS:
            if old and old != "/":
                value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    # what the SDK reports as `sys.argv` in `extra`
    sys.argv = ["capture_events.py"]
    transport = CaptureTransport()
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=transport,
        release=send_events.RELEASE,
        environment=send_events.ENVIRONMENT,
        server_name="shop-web-1",
        project_root=HERE,
        data_collection={"stack_frame_variables": True, "user_info": True},
        sample_rate=1.0,
    )
    labels = {}
    for name in SCENARIOS:
        for label, entry in send_events.SCENARIOS[name]():
            labels[label] = entry["id"]
    sentry_sdk.flush(timeout=10)
    missing = [label for label, event_id in labels.items() if event_id not in transport.events]
    if missing:
        print(f"the SDK sent no event for {missing}", file=sys.stderr)
        return 1
    for label, event_id in sorted(labels.items()):
        event = scrub(transport.events[event_id])
        with open(os.path.join(outdir, f"python-{label}.json"), "w", encoding="utf-8") as f:
            json.dump(event, f, indent=2, ensure_ascii=False)
            f.write("\n")
    print(json.dumps(sorted(labels)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
