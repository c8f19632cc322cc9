"""A small application whose code paths raise real errors for the end-to-end tests.

Each function keeps a few locals so the SDK has something to send in `vars`. The line numbers matter
to the grouping tests: `lookup_price` raises the same error from two different lines.
"""

import json


class PaymentDeclined(Exception):
    """Raised when the (pretend) payment provider refuses a card."""


def parse_coupon(raw):
    # Decoding happens in the standard library (frames that are not in-app), so the in-app
    # culprit is this function, not the frame that raised.
    attempt = {"raw": raw, "length": len(raw)}
    return json.loads(attempt["raw"])


def apply_discount(total_cents, coupon_text):
    coupon = parse_coupon(coupon_text)
    return total_cents - coupon.get("cents", 0)


def compute_total(cart):
    subtotal = sum(item["price"] * item["qty"] for item in cart["items"])
    return apply_discount(subtotal, cart["coupon"])


def checkout(user_id):
    cart = {
        "user": user_id,
        "items": [{"sku": "TSHIRT-1", "price": 1999, "qty": 2}],
        "coupon": "SAVE10{",
    }
    return compute_total(cart)


def charge_card(card_number, amount_cents):
    masked = "*" * 12 + card_number[-4:]
    if amount_cents > 10_000:
        raise PaymentDeclined(f"card {masked} declined for {amount_cents} cents")
    return True


def pay(order_id):
    amount_cents = 12_345
    return charge_card("4242424242424242", amount_cents)


def lookup_price(sku, legacy):
    catalog = {"TSHIRT-1": 1999}
    if legacy:
        raise KeyError(f"unknown sku {sku} in legacy catalog")
    raise KeyError(f"unknown sku {sku}")


def price_of(sku, legacy):
    return lookup_price(sku, legacy)


def connect_database(host):
    raise ConnectionRefusedError(f"connection to {host}:5432 refused")


def read_replica(host):
    raise TimeoutError(f"read from {host}:5432 timed out after 30 s")
