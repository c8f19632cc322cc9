"""Send an error with planted secrets through the official Python SDK's WSGI integration.

Usage: send_secrets.py DSN

A WSGI request (run in-process, no server) carries an `Authorization: Bearer` header, a
custom token header, a session cookie and an `api_key` query parameter (sentry-sdk 3 replaces
the values of such names itself before sending), and two secrets under names it sends as they
are: a bearer token in an `X-Trace` header and a password in the URL of the `Referer` header.
The handler records a breadcrumb and extra data with secrets and raises with secrets in its
local variables (sentry-sdk 3 sends local variables, headers and cookies by default); the
request's spans and a log record with a secret attribute are sent too. Prints
`{"id": <event id>}`.
"""

import json
import sys

import sentry_sdk
from sentry_sdk.integrations.wsgi import SentryWsgiMiddleware

# Built at run time: the SDK also sends the source lines around each frame, and those must not
# hold the planted secrets themselves.
CARD = " ".join(["4111"] + ["1111"] * 3)


def planted(name):
    return "PYSECRET" + name


def app(environ, start_response):
    sentry_sdk.add_breadcrumb(
        category="login", message="signed in", data={"db_password": planted("CRUMB")}
    )
    sentry_sdk.set_extra("billing", {"card_number": CARD, "db_password": planted("EXTRA")})
    sentry_sdk.logger.info("charging card for {user}", user="ann", db_password=planted("LOG"))
    db_password = planted("LOCAL")  # noqa: F841 - a local variable the SDK sends
    note = f"charge {CARD}"  # noqa: F841
    raise RuntimeError("payment backend refused the charge")


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: send_secrets.py DSN\n")
        return 2
    sent = []
    sentry_sdk.init(
        dsn=argv[0],
        traces_sample_rate=1.0,
        before_send=lambda event, hint: sent.append(event["event_id"]) or event,
    )
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/pay",
        "QUERY_STRING": "api_key=" + planted("QUERY") + "&page=2",
        "SERVER_NAME": "shop.example",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": __import__("io").BytesIO(b""),
        "HTTP_HOST": "shop.example",
        "HTTP_X_TRACE": "Bearer " + planted("TRACE"),
        "HTTP_REFERER": "https://ann:" + planted("URLPASS") + "@shop.example/cart",
        "HTTP_AUTHORIZATION": "Bearer " + planted("BEARER"),
        "HTTP_X_CUSTOM_TOKEN": planted("HEADER"),
        "HTTP_COOKIE": "sessionid=" + planted("COOKIE") + "; theme=dark",
        "HTTP_USER_AGENT": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "REMOTE_ADDR": "203.0.113.9",
    }
    try:
        SentryWsgiMiddleware(app)(environ, lambda status, headers: None)
    except RuntimeError:
        pass
    sentry_sdk.flush(30)
    if not sent:
        sys.stderr.write("the SDK sent no event\n")
        return 1
    print(json.dumps({"id": sent[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
