"""Hiroshima's services on the workbench (seed 002): 有料図書宅配 (registration,
revocation, requests from a form or a fax, the dispatch list and shipping), 代理での貸出
(consents), 団体貸出 (group and school grade cards, extension, reading-group sets) and
the mobile library 「ともはと号」 (stops, visits, lending at a stop).

Each form goes through the JSON API's own route (gateway/api/hiroshima.py): its library
scope check (the route's ``owns``) and its handler, so the pages and the API cannot
disagree; the handler's refusal (an ApiError with the engine's messages) is shown in
the page's language.
"""
from __future__ import annotations

from datetime import date

from circulation import delivery
from circulation.store import NotFound

from ..api import hiroshima as api
from ..api import scope
from ..api.errors import ApiError
from ..api.session import Ctx
from .core import Page, Refused, page

ROUTES = {(r.method, r.path): r for r in api.ROUTES}
ACTIONS = {
    # action: (method, API path, form fields -> body)
    "delivery_lookup": ("GET", "/staff/delivery/registration"),
    "delivery_register": ("POST", "/staff/delivery/registration"),
    "delivery_revoke": ("POST", "/staff/delivery/revocation"),
    "delivery_request": ("POST", "/staff/delivery/requests"),
    "delivery_ship": ("POST", "/staff/delivery/ship"),
    "proxy_lookup": ("GET", "/staff/proxy-consents"),
    "proxy_record": ("POST", "/staff/proxy-consents"),
    "proxy_revoke": ("POST", "/staff/proxy-consents/revoke"),
    "group_register": ("POST", "/staff/group-cards"),
    "group_extend": ("POST", "/staff/group-cards/extend"),
    "set_checkout": ("POST", "/staff/reading-sets/checkout"),
    "mobile_visits": ("POST", "/staff/mobile/visits"),
    "mobile_checkout": ("POST", "/staff/mobile/checkout"),
}
TEXT = ("card_number", "title_id", "title", "memo", "note", "proxy_name", "reason", "name", "home_municipality",
        "school", "grade", "representative", "email", "phone", "fax", "confirmed", "set_code", "stop", "barcode")
CHOICES = {"channel": ("counter", "post", "form", "fax"), "category": ("group", "school")}
REVOCATION_REASONS = ("address_undeliverable", "postage_unpaid", "patron_request")


async def call(pg: Page, method: str, path: str, values: dict):
    """Run the API route ``method path`` for this staff member with ``values`` (its body or
    query): the scope check, then the handler. Returns the handler's payload."""
    route = ROUTES[(method, path)]
    ctx = Ctx(pg.request, pg.st.api, principal=pg.principal, token=pg.token)
    if method == "GET":
        ctx.query = values
    else:
        ctx.body = values
    await scope.check(ctx, route.owns)
    result = await route.handler(ctx)
    return result[1] if isinstance(result, tuple) else result


def _values(pg: Page, action: str) -> dict:
    """The form's fields as the route's body: text as given (empty optional ones left
    out), choices checked, booleans, the visit days as dates."""
    out: dict = {}
    for name in TEXT:
        v = pg.field(name)
        if v:
            out[name] = v
    for name, allowed in CHOICES.items():
        v = pg.field(name)
        if v:
            if v not in allowed:
                raise Refused(400, pg.w("bad_input"))
            out[name] = v
    if action == "delivery_revoke" and out.get("reason") not in REVOCATION_REASONS:
        raise Refused(400, pg.w("bad_input"))
    if action == "delivery_register":
        out["guardian_consent"] = pg.field("guardian_consent") == "yes"
    if action == "mobile_visits":
        out["school"] = pg.field("school_stop") == "yes"
        try:
            out["days"] = [date.fromisoformat(d) for d in pg.field("days").split()]
        except ValueError:
            raise Refused(400, pg.w("bad_input")) from None
        if not out["days"] or any(not 1000 <= d.year <= 2999 for d in out["days"]):
            raise Refused(400, pg.w("bad_input"))
    required = {"delivery_revoke": ("reason",), "delivery_request": ("title_id",), "proxy_record": ("proxy_name",),
                "proxy_revoke": ("proxy_name",), "group_register": ("category", "name", "home_municipality"),
                "set_checkout": ("set_code",), "mobile_visits": ("stop",), "mobile_checkout": ("stop", "barcode"),
                "delivery_ship": ("barcode",)}.get(action, ())
    needs_card = action not in ("delivery_ship", "mobile_visits")
    for name in (*required, *(("card_number",) if needs_card else ())):
        if name not in out:
            raise Refused(422, pg.w("bad_input"))
    return out


async def _context(pg: Page) -> dict:
    prof = pg.circ.profiles.get(pg.principal.library)
    ctx: dict = {"offers_delivery": prof is not None and prof.delivery is not None and prof.delivery.enabled,
                 "offers_proxy": prof is not None and prof.proxy.loans != "not_offered",
                 "offers_cards": prof is not None and bool(prof.cards), "dispatch": [], "stops": None,
                 "mobile_branch": None}
    if ctx["offers_delivery"]:
        ctx["dispatch"] = await delivery.dispatch_list(pg.circ, prof.delivery.dispatch_branch)
        ctx["dispatch_branch"] = prof.delivery.dispatch_branch
    try:
        got = await call(pg, "GET", "/staff/mobile/stops", {})
        ctx["stops"], ctx["mobile_branch"] = got["stops"], got["branch"]
    except ApiError:
        pass                                      # no mobile library in this system
    return ctx


@page("staff", ("circulation",))
async def services(pg: Page):
    return pg.render("staff/services.html", result=None, lookup=None, **await _context(pg))


@page("staff", ("circulation",))
async def services_post(pg: Page):
    action = pg.field("action")
    if action not in ACTIONS:
        raise Refused(400, pg.w("bad_input"))
    method, path = ACTIONS[action]
    result, lookup, status = None, None, 200
    try:
        payload = await call(pg, method, path, _values(pg, action))
        if method == "GET":
            lookup = {"action": action, **payload}
        else:
            result = {"ok": True, "text": pg.w.message(payload) or pg.w("done"), "payload": payload}
            if "consents" in payload:
                lookup = {"action": "proxy_lookup", **payload}
            elif "registration" in payload:
                lookup = {"action": "delivery_lookup", **payload["registration"]}
    except ApiError as e:
        status = e.status
        result = {"ok": False, "text": pg.w.message({"message_ja": e.message_ja, "message_en": e.message_en})}
    except NotFound:
        status = 404
        result = {"ok": False, "text": pg.w("not_found")}
    except Refused as e:
        status = e.status
        result = {"ok": False, "text": e.message}
    return pg.render("staff/services.html", status=status, result=result, lookup=lookup, **await _context(pg))


def routes() -> list[tuple[str, str, object]]:
    return [("GET", "/staff/services", services), ("POST", "/staff/services", services_post)]
