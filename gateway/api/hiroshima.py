"""Hiroshima's services (seed 002) as routes: 有料図書宅配 (home delivery: registration,
revocation, delivery requests, the dispatch list, shipping), 代理での貸出 (the holder's
consent naming a proxy), 団体貸出 (group and school grade cards, their yearly extension,
reading-group sets lent whole) and the mobile library 「ともはと号」 (its stops and
visits, lending at a stop).

The rules are the engine's (``circulation/delivery.py``, ``proxy.py``, ``groups.py``,
``mobile.py``, ``loans.check_out``); a system whose profile does not offer a service gets
the engine's refusal (``delivery_not_offered``, ``proxy_loans_not_offered``) or one of the
codes registered here. Every staff input naming a patron, copy or branch is kept to the
staff member's library (``owns``, :mod:`.scope`).
"""
from __future__ import annotations

from circulation import delivery, groups, holds, lists, loans, mobile, proxy, queries
from lifecycle import policies, reasons

from .encoding import message
from .errors import refusal
from .session import Ctx, Owned, Route

reasons.register({
    "cards_not_offered": ("この図書館では団体・学校の利用券を扱っていません。",
                          "This library system has no group or school cards."),
    "school_and_grade_required": ("学校の利用券には学校名と学年が必要です。",
                                  "A school card needs the school and the grade."),
    "not_mobile_branch": ("移動図書館ではありません。", "That is not a mobile library."),
})

S, CIRC = "staff", ("circulation",)
BRANCH = Owned("branch", "branch")
ITEM = Owned("barcode", "item")
PATRON = Owned("card_number", "patron")


def _here(ctx: Ctx) -> str | None:
    return ctx.value("branch") or ctx.principal.branch


# --------------------------------------------------------------------------- home delivery

def _registration(card: str, reg: dict) -> dict:
    return {"card_number": card, **reg}


async def delivery_registration(ctx: Ctx):
    card = ctx.query["card_number"]
    return _registration(card, await delivery.registration(ctx.circ, card))


async def register_delivery(ctx: Ctx):
    b = ctx.body
    d = await delivery.register(ctx.circ, card=b["card_number"], channel=b.get("channel", "counter"), role="staff",
                                actor=ctx.actor, branch=_here(ctx), guardian_consent=b.get("guardian_consent", False))
    if not d.allowed:
        raise refusal(d)
    reg = await delivery.registration(ctx.circ, b["card_number"])
    return 201, {"registration": _registration(b["card_number"], reg), **message(d)}


async def revoke_delivery(ctx: Ctx):
    b = ctx.body
    d = await delivery.revoke(ctx.circ, card=b["card_number"], reason=b["reason"], role="staff", actor=ctx.actor,
                              note=b.get("note", ""), branch=_here(ctx))
    if not d.allowed:
        raise refusal(d)
    reg = await delivery.registration(ctx.circ, b["card_number"])
    return {"registration": _registration(b["card_number"], reg), **message(d)}


async def _place_delivery(ctx: Ctx, card: str, channel: str, role: str, at_branch: str | None):
    b = ctx.body
    p = await queries.patron(ctx.circ, card)
    prof = ctx.circ.profile(p.library)
    dispatch = prof.delivery.dispatch_branch if prof.delivery is not None else (p.default_pickup_branch or "")
    res = await holds.place(ctx.circ, card=card, title_id=b["title_id"], title=b.get("title", ""),
                            pickup_branch=dispatch or "", channel=channel, role=role, actor=ctx.actor,
                            contact_method=b.get("contact_method"), memo=b.get("memo", ""),
                            submitted_at_branch=at_branch, delivery=True)
    if res.request_id is None:
        raise refusal(res.decision)
    view = next((r for r in await lists.patron_requests(ctx.circ, card) if r["request_id"] == res.request_id), None)
    return 201, {"request_id": res.request_id, "position": res.position, "request": view, **message(res.decision)}


async def staff_delivery_request(ctx: Ctx):
    b = ctx.body
    return await _place_delivery(ctx, b["card_number"], b.get("channel", "counter"), "staff", _here(ctx))


async def my_delivery_request(ctx: Ctx):
    return await _place_delivery(ctx, ctx.card, "web", "patron", None)


async def my_delivery(ctx: Ctx):
    reg = await delivery.registration(ctx.circ, ctx.card)
    p = await queries.patron(ctx.circ, ctx.card)
    prof = ctx.circ.profile(p.library)
    offered = prof.delivery is not None and prof.delivery.enabled
    return {"offered": offered, "registered": reg["registered"], "registered_at": reg["registered_at"],
            "dispatch_branch": prof.delivery.dispatch_branch if offered else None}


async def dispatch_list(ctx: Ctx):
    branch = _here(ctx) or ""
    return {"branch": branch, "requests": await delivery.dispatch_list(ctx.circ, branch)}


async def ship(ctx: Ctx):
    barcode = ctx.body["barcode"]
    res = await delivery.ship(ctx.circ, barcode=barcode, role="staff", actor=ctx.actor)
    if not res.decision.allowed:
        raise refusal(res.decision)
    return 201, {"loan_id": res.loan_id, "due": res.due, "barcode": barcode, **message(res.decision)}


# --------------------------------------------------------------------------- proxy consents

async def consents(ctx: Ctx):
    card = ctx.query["card_number"]
    return {"card_number": card, "consents": await proxy.consents(ctx.circ, card)}


async def record_consent(ctx: Ctx):
    b = ctx.body
    res = await proxy.record_consent(ctx.circ, card=b["card_number"], proxy_name=b["proxy_name"], role="staff",
                                     actor=ctx.actor, reason=b.get("reason", ""), branch=_here(ctx))
    if res.consent_id is None:
        raise refusal(res.decision)
    return 201, {"consent_id": res.consent_id, "card_number": b["card_number"],
                 "consents": await proxy.consents(ctx.circ, b["card_number"]), **message(res.decision)}


async def revoke_consent(ctx: Ctx):
    b = ctx.body
    d = await proxy.revoke_consent(ctx.circ, card=b["card_number"], proxy_name=b["proxy_name"], role="staff",
                                   actor=ctx.actor, branch=_here(ctx))
    if not d.allowed:
        raise refusal(d)
    return {"card_number": b["card_number"], "consents": await proxy.consents(ctx.circ, b["card_number"]),
            **message(d)}


# --------------------------------------------------------------------------- group and school cards

async def register_group(ctx: Ctx):
    b = ctx.body
    library, category = ctx.principal.library, b["category"]
    prof = ctx.circ.profile(library)
    rule = prof.cards.get(category)
    if rule is None:
        raise refusal(reasons.decide("cards_not_offered", category=category), status=422)
    if rule.one_per_school_grade and not (b.get("school", "").strip() and b.get("grade", "").strip()):
        raise refusal(reasons.decide("school_and_grade_required"), status=422)
    res = await groups.register(ctx.circ, card=b["card_number"], library=library, category=category, name=b["name"],
                                home_municipality=b["home_municipality"], role="staff", actor=ctx.actor,
                                branch=_here(ctx), school=b.get("school"), grade=b.get("grade"),
                                representative=b.get("representative"), email=b.get("email"),
                                phone=b.get("phone"), fax=b.get("fax"))
    if res.patron_id is None:
        raise refusal(res.decision)
    return 201, {"card_number": b["card_number"], "category": category, "card_expires": res.card_expires,
                 **message(res.decision)}


async def extend_group(ctx: Ctx):
    b = ctx.body
    res = await groups.extend_card(ctx.circ, card=b["card_number"], role="staff", actor=ctx.actor, branch=_here(ctx),
                                   confirmed=b.get("confirmed", ""), representative=b.get("representative"))
    if res.card_expires is None:
        raise refusal(res.decision)
    return {"card_number": b["card_number"], "card_expires": res.card_expires, **message(res.decision)}


async def set_checkout(ctx: Ctx):
    b = ctx.body
    branch = _here(ctx) or ""
    res = await groups.check_out_set(ctx.circ, set_code=b["set_code"], card=b["card_number"], branch=branch,
                                     role="staff", actor=ctx.actor)
    if not res.decision.allowed:
        raise refusal(res.decision)
    return 201, {"set_code": b["set_code"], "card_number": b["card_number"], "loan_ids": list(res.loan_ids),
                 "due": res.due, **message(res.decision)}


# --------------------------------------------------------------------------- the mobile library

def _mobile_branch(ctx: Ctx) -> str:
    """The mobile branch named, else the staff member's own when it is one, else the
    system's (first) mobile library."""
    prof = ctx.circ.profile(ctx.principal.library)
    given = ctx.value("branch")
    candidates = [given] if given else [ctx.principal.branch, *prof.branches]
    for code in candidates:
        if code and policies.is_mobile_branch(prof, code):
            return code
    raise refusal(reasons.decide("not_mobile_branch", branch=given), status=422)


async def stops(ctx: Ctx):
    branch = _mobile_branch(ctx)
    return {"branch": branch, "stops": await mobile.schedule(ctx.circ, branch)}


async def add_visits(ctx: Ctx):
    b = ctx.body
    branch = _mobile_branch(ctx)
    added = await mobile.add_visits(ctx.circ, branch, b["stop"], b["days"], school=b.get("school", False))
    return 201, {"branch": branch, "stop": b["stop"], "added": added,
                 "stops": await mobile.schedule(ctx.circ, branch), **message(reasons.decide())}


async def mobile_checkout(ctx: Ctx):
    b = ctx.body
    branch = _mobile_branch(ctx)
    res = await loans.check_out(ctx.circ, barcode=b["barcode"], card=b["card_number"], branch=branch, role="staff",
                                actor=ctx.actor, channel="counter", stop=b["stop"])
    if not res.decision.allowed:
        raise refusal(res.decision)
    return 201, {"loan_id": res.loan_id, "due": res.due, "barcode": b["barcode"], "card_number": b["card_number"],
                 "branch": branch, "stop": b["stop"], **message(res.decision)}


P = "patron"
ROUTES: list[Route] = [
    Route("GET", "/me/delivery", my_delivery, P),
    Route("POST", "/me/delivery-requests", my_delivery_request, P),
    Route("GET", "/staff/delivery/registration", delivery_registration, S, CIRC, (PATRON,)),
    Route("POST", "/staff/delivery/registration", register_delivery, S, CIRC, (PATRON, BRANCH)),
    Route("POST", "/staff/delivery/revocation", revoke_delivery, S, CIRC, (PATRON, BRANCH)),
    Route("POST", "/staff/delivery/requests", staff_delivery_request, S, CIRC, (PATRON, BRANCH)),
    Route("GET", "/staff/delivery/dispatch", dispatch_list, S, CIRC, (BRANCH,)),
    Route("POST", "/staff/delivery/ship", ship, S, CIRC, (ITEM,)),
    Route("GET", "/staff/proxy-consents", consents, S, CIRC, (PATRON,)),
    Route("POST", "/staff/proxy-consents", record_consent, S, CIRC, (PATRON, BRANCH)),
    Route("POST", "/staff/proxy-consents/revoke", revoke_consent, S, CIRC, (PATRON, BRANCH)),
    Route("POST", "/staff/group-cards", register_group, S, CIRC, (PATRON, BRANCH)),
    Route("POST", "/staff/group-cards/extend", extend_group, S, CIRC, (PATRON, BRANCH)),
    Route("POST", "/staff/reading-sets/checkout", set_checkout, S, CIRC, (PATRON, BRANCH)),
    Route("GET", "/staff/mobile/stops", stops, S, CIRC, (BRANCH,)),
    Route("POST", "/staff/mobile/visits", add_visits, S, CIRC, (BRANCH,)),
    Route("POST", "/staff/mobile/checkout", mobile_checkout, S, CIRC, (ITEM, PATRON, BRANCH)),
]
