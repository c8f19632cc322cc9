"""Logs in to faultline through its OpenID Connect provider like a browser would.

    python oidc_login.py BASE_URL LOGIN_NAME [START_PATH COOKIE]

Starts at BASE_URL/auth/oidc/login?next=/done (or at START_PATH, e.g. /auth/oidc/link, with
the cookie COOKIE, `name=value`, of a logged-in session), fills in the provider's login and consent
forms (npm oidc-provider's development pages), follows every redirect back to faultline, then
asks BASE_URL/auth/me with the session cookie it got. Prints one JSON object: the callback URL
faultline was sent to, the status and Location of faultline's answer to it, and /auth/me.
"""

import json
import re
import sys
from urllib.parse import urljoin

import requests


def form_of(html, url):
    """The action URL and the fields of the first form in a page."""
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    if not action:
        raise SystemExit(f"no form on {url}:\n{html[:2000]}")
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    return urljoin(url, action.group(1).replace("&amp;", "&")), fields


def main():
    base, login = sys.argv[1], sys.argv[2]
    start = sys.argv[3] if len(sys.argv) > 3 else "/auth/oidc/login?next=/done"
    browser = requests.Session()
    if len(sys.argv) > 4:
        name, value = sys.argv[4].split("=", 1)
        browser.cookies.set(name, value)
    callback = None
    answer = None
    response = browser.get(f"{base}{start}", allow_redirects=False)
    for _ in range(30):
        if response.status_code in (302, 303):
            target = urljoin(response.url, response.headers["location"])
            if target.startswith(f"{base}/auth/oidc/callback"):
                callback = target
                response = browser.get(target, allow_redirects=False)
                answer = {"status": response.status_code, "location": response.headers.get("location"),
                          "body": response.text[:500]}
                break
            response = browser.get(target, allow_redirects=False)
            continue
        if response.status_code != 200:
            raise SystemExit(f"{response.url} answered {response.status_code}: {response.text[:1000]}")
        action, fields = form_of(response.text, response.url)
        if 'name="login"' in response.text:
            fields.update({"login": login, "password": "any"})
        response = browser.post(action, data=fields, allow_redirects=False)
    me = browser.get(f"{base}/auth/me")
    print(json.dumps({
        "callback": callback,
        "answer": answer,
        "me_status": me.status_code,
        "me": me.json() if me.headers.get("content-type", "").startswith("application/json") else me.text,
    }))


if __name__ == "__main__":
    main()
