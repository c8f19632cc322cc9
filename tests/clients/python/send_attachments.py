"""Send attachments and client reports with the official Python SDK.

Usage: send_attachments.py DSN BIG_SIZE

Sends an error with a small binary attachment and a text file (`scope.add_attachment`), an
error with an attachment of BIG_SIZE bytes (over the server's limit in the test), and three
events that `before_send` drops, which the SDK reports in a client report (`before_send`,
category `error`) when it flushes.

Prints one JSON object on stdout: `event_id` (the error with the small attachments),
`big_event_id`, and the bytes of the binary attachment as hex (`blob_hex`).
"""

import json
import sys

import sentry_sdk

BLOB = bytes(range(256)) + b"\r\n\x00end"


def before_send(event, hint):
    if event.get("message") == "drop me":
        return None
    return event


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: send_attachments.py DSN BIG_SIZE\n")
        return 2
    sentry_sdk.init(
        dsn=argv[0],
        release="shop@2.0",
        before_send=before_send,
        send_client_reports=True,
        shutdown_timeout=30,
    )
    with sentry_sdk.new_scope() as scope:
        scope.add_attachment(bytes=BLOB, filename="state.bin", content_type="application/x-state")
        scope.add_attachment(bytes=b"cart: 3 items\n", filename="cart.txt")
        try:
            1 / 0
        except ZeroDivisionError:
            event_id = sentry_sdk.capture_exception()
    with sentry_sdk.new_scope() as scope:
        scope.add_attachment(bytes=b"x" * int(argv[1]), filename="huge.log")
        big_event_id = sentry_sdk.capture_message("with a huge attachment")
    for _ in range(3):
        sentry_sdk.capture_message("drop me")
    sentry_sdk.flush(timeout=30)
    json.dump(
        {"event_id": event_id, "big_event_id": big_event_id, "blob_hex": BLOB.hex()},
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
