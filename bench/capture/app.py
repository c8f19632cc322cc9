"""A pretend order pipeline, 15 calls deep, used to capture realistic Sentry envelopes.

Every layer keeps a few locals so the SDK sends `vars`.
"""


class PipelineError(Exception):
    """Base of the 50 error types the benchmark fixtures raise (50 distinct issues)."""


ERRORS = [type(f"Stage{i:02d}Error", (PipelineError,), {}) for i in range(50)]



def receive_request(ctx):
    stage = 'receive_request'
    ctx["stages"] += 1
    return authenticate(ctx)


def authenticate(ctx):
    stage = 'authenticate'
    ctx["stages"] += 1
    return load_session(ctx)


def load_session(ctx):
    stage = 'load_session'
    ctx["stages"] += 1
    return parse_body(ctx)


def parse_body(ctx):
    stage = 'parse_body'
    ctx["stages"] += 1
    return validate_order(ctx)


def validate_order(ctx):
    stage = 'validate_order'
    ctx["stages"] += 1
    return resolve_customer(ctx)


def resolve_customer(ctx):
    stage = 'resolve_customer'
    ctx["stages"] += 1
    return load_cart(ctx)


def load_cart(ctx):
    stage = 'load_cart'
    ctx["stages"] += 1
    return price_items(ctx)


def price_items(ctx):
    stage = 'price_items'
    ctx["stages"] += 1
    return apply_promotions(ctx)


def apply_promotions(ctx):
    stage = 'apply_promotions'
    ctx["stages"] += 1
    return compute_tax(ctx)


def compute_tax(ctx):
    stage = 'compute_tax'
    ctx["stages"] += 1
    return reserve_inventory(ctx)


def reserve_inventory(ctx):
    stage = 'reserve_inventory'
    ctx["stages"] += 1
    return authorize_payment(ctx)


def authorize_payment(ctx):
    stage = 'authorize_payment'
    ctx["stages"] += 1
    return build_invoice(ctx)


def build_invoice(ctx):
    stage = 'build_invoice'
    ctx["stages"] += 1
    return persist_order(ctx)


def persist_order(ctx):
    stage = 'persist_order'
    ctx["stages"] += 1
    return notify_warehouse(ctx)


def notify_warehouse(ctx):
    stage = 'notify_warehouse'
    ctx["stages"] += 1
    error_type = ERRORS[ctx["variant"]]
    raise error_type(
        f"order {ctx['order_id']} failed in {stage} after {ctx['stages']} stages (variant {ctx['variant']})"
    )
