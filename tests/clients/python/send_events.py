"""Send real events to a Sentry-compatible server with the official Python SDK.

Usage: send_events.py DSN SCENARIO [SCENARIO ...]

Prints one JSON object on stdout: for every event sent, a label mapped to what the script knows
about it: `id` (the event id the SDK returned) and, for exceptions, the exception `type`,
`value` and the number of stack `frames` Python recorded. Scenarios:

- exception: a JSONDecodeError raised several frames deep (through the standard library), with
  locals, breadcrumbs, tags, user, release and environment
- message: capture_message at level warning
- types: a second exception type (PaymentDeclined) from another code path
- lines: the same KeyError raised from two different lines of one function (twice each path)
- fingerprint: two different exception types sharing one custom fingerprint
- burst:N: N messages with distinct text (for load and durability checks)
- same:N: N events of one issue, the same ZeroDivisionError raised from one line (alerts)

Environment: FAULTLINE_TEST_COMPRESSION = br | gzip | none picks how the SDK compresses request
bodies (default: the SDK's own choice, brotli when the `brotli` package is installed).
"""

import json
import os
import sys
import traceback

import sentry_sdk

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shop  # noqa: E402

RELEASE = "shop@1.4.2"
ENVIRONMENT = "staging"


def describe(label, event_id, exc=None):
    entry = {"id": event_id}
    if exc is not None:
        entry["type"] = type(exc).__name__
        entry["value"] = str(exc)
        entry["frames"] = len(traceback.extract_tb(exc.__traceback__))
    return label, entry


def scenario_exception():
    sentry_sdk.add_breadcrumb(category="auth", message="user logged in", level="info")
    sentry_sdk.add_breadcrumb(category="navigation", message="/cart -> /checkout", level="info")
    sentry_sdk.add_breadcrumb(
        category="http", data={"method": "GET", "url": "/api/cart", "status_code": 200}
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("browser", "firefox")
        scope.set_tag("region", "eu-west")
        scope.set_user(
            {"id": "u-1001", "email": "ada@example.com", "ip_address": "10.1.2.3", "username": "ada"}
        )
        try:
            shop.checkout("u-1001")
        except Exception as exc:  # noqa: BLE001 - the point is to capture it
            yield describe("exception", sentry_sdk.capture_exception(exc), exc)


def scenario_message():
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", "payments")
        yield describe(
            "message",
            sentry_sdk.capture_message("payment provider slow: 2500 ms", level="warning"),
        )


def scenario_types():
    try:
        shop.pay("order-77")
    except Exception as exc:  # noqa: BLE001
        yield describe("declined", sentry_sdk.capture_exception(exc), exc)


def scenario_lines():
    for round_ in range(2):
        for legacy in (True, False):
            try:
                shop.price_of(f"SKU-{round_}", legacy)
            except Exception as exc:  # noqa: BLE001
                label = f"lines_{'legacy' if legacy else 'current'}_{round_}"
                yield describe(label, sentry_sdk.capture_exception(exc), exc)


def scenario_fingerprint():
    for label, call in (
        ("fingerprint_refused", lambda: shop.connect_database("db-1")),
        ("fingerprint_timeout", lambda: shop.read_replica("db-2")),
    ):
        with sentry_sdk.new_scope() as scope:
            scope.fingerprint = ["database-unavailable"]
            try:
                call()
            except Exception as exc:  # noqa: BLE001
                yield describe(label, sentry_sdk.capture_exception(exc), exc)


def scenario_burst(count):
    for i in range(count):
        yield describe(f"burst_{i}", sentry_sdk.capture_message(f"burst message {i}"))


def ratio(total, parts):
    return total / parts


def scenario_same(count):
    for i in range(count):
        try:
            ratio(i, 0)
        except ZeroDivisionError as exc:
            yield describe(f"same_{i}", sentry_sdk.capture_exception(exc), exc)


SCENARIOS = {
    "exception": scenario_exception,
    "message": scenario_message,
    "types": scenario_types,
    "lines": scenario_lines,
    "fingerprint": scenario_fingerprint,
}


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dsn, names = argv[1], argv[2:]
    experiments = {}
    compression = os.environ.get("FAULTLINE_TEST_COMPRESSION")
    if compression in ("br", "gzip"):
        experiments["transport_compression_algo"] = compression
    elif compression == "none":
        experiments["transport_compression_level"] = 0
    elif compression:
        print(f"unknown FAULTLINE_TEST_COMPRESSION {compression!r}", file=sys.stderr)
        return 2
    sentry_sdk.init(
        _experiments=experiments,
        dsn=dsn,
        release=RELEASE,
        environment=ENVIRONMENT,
        server_name="shop-web-1",
        project_root=HERE,
        # sentry-sdk 3 sends locals and user details by default; said here for the reader
        data_collection={"stack_frame_variables": True, "user_info": True},
        max_breadcrumbs=50,
        # Keep every event: no sampling, no background queue drops.
        sample_rate=1.0,
        transport_queue_size=100_000,
        shutdown_timeout=30,
    )
    sent = {}
    for name in names:
        if name.startswith("burst:"):
            events = scenario_burst(int(name.split(":", 1)[1]))
        elif name.startswith("same:"):
            events = scenario_same(int(name.split(":", 1)[1]))
        elif name in SCENARIOS:
            events = SCENARIOS[name]()
        else:
            print(f"unknown scenario {name!r}; known: {sorted(SCENARIOS)}, burst:N or same:N", file=sys.stderr)
            return 2
        for label, entry in events:
            if entry["id"] is None:
                print(f"the SDK dropped event {label}", file=sys.stderr)
                return 1
            sent[label] = entry
    sentry_sdk.flush(timeout=30)
    json.dump(sent, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
