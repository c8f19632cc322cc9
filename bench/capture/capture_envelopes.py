"""Capture the exact request bodies the official Python Sentry SDK sends, as benchmark fixtures.

Runs a small HTTP server on a loopback port, points `sentry_sdk` at it, raises one real exception
per issue (15 frames deep through `app.py`, with context lines and locals, 10 breadcrumbs, 5 tags,
user, release) and stores each request body byte for byte, compressed as the SDK compressed it
(brotli when the `brotli` package is installed, which the SDK then prefers).

Usage: capture_envelopes.py OUT_DIR [ISSUES]

Writes OUT_DIR/envelope-NN.bin and OUT_DIR/fixtures.json (headers, encoding, sizes, event ids).
"""

import http.server
import json
import os
import sys
import threading

import sentry_sdk

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import app  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef"
captured = []
lock = threading.Lock()


class Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            captured.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        answer = b'{"id":"captured"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def send_one(variant):
    # A fresh isolation scope per event: breadcrumbs, tags and user belong to one request.
    with sentry_sdk.isolation_scope():
        return send_in_scope(variant)


def send_in_scope(variant):
    for n in range(10):
        crumb = {"category": ["http", "navigation", "query", "ui.click", "auth"][n % 5], "level": "info"}
        crumb["message"] = f"checkout step {n}"
        if n % 5 == 0:
            crumb["data"] = {"status_code": 200}
        sentry_sdk.add_breadcrumb(crumb)
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("region", ["eu-west-1", "us-east-1", "ap-south-1"][variant % 3])
        scope.set_tag("browser", ["Firefox 132", "Chrome 131", "Safari 18"][variant % 3])
        scope.set_tag("payment_method", ["card", "paypal", "invoice"][variant % 3])
        scope.set_tag("customer_tier", ["free", "pro", "enterprise"][variant % 3])
        scope.set_tag("feature_flag", f"checkout-v{variant % 4}")
        scope.set_user(
            {
                "id": f"user-{4000 + variant}",
                "email": f"customer{variant}@example.com",
                "ip_address": f"203.0.113.{variant + 1}",
                "username": f"customer{variant}",
            }
        )
        ctx = {
            "order_id": f"ord-{1000 + variant:06d}",
            "variant": variant,
            "stages": 0,
        }
        try:
            app.receive_request(ctx)
        except app.PipelineError as exc:
            return sentry_sdk.capture_exception(exc)


def main(argv):
    out_dir = argv[1]
    issues = int(argv[2]) if len(argv) > 2 else 50
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    sentry_sdk.init(
        dsn=f"http://{KEY}@127.0.0.1:{port}/1",
        release="shop@3.7.1",
        environment="production",
        server_name="shop-web-3",
        project_root=HERE,
        data_collection={"stack_frame_variables": True, "user_info": True},
        default_integrations=True,
    )
    ids = [send_one(variant) for variant in range(issues)]
    sentry_sdk.flush(timeout=30)
    server.shutdown()

    events = [c for c in captured if c["path"].endswith("/envelope/")]
    if len(events) != issues:
        print(f"expected {issues} envelopes, captured {len(events)}", file=sys.stderr)
        return 1
    os.makedirs(out_dir, exist_ok=True)
    fixtures = []
    for n, request in enumerate(events):
        name = f"envelope-{n:02d}.bin"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(request["body"])
        headers = [[k, v] for k, v in request["headers"].items() if k.lower() not in ("host", "content-length")]
        fixtures.append({"file": name, "headers": headers, "wire_bytes": len(request["body"])})
    meta = {
        "sdk": f"sentry.python/{sentry_sdk.VERSION}",
        "dsn_key": KEY,
        "event_ids": ids,
        "fixtures": fixtures,
    }
    with open(os.path.join(out_dir, "fixtures.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"captured {len(fixtures)} envelopes into {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
