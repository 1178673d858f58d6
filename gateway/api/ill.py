"""Staff routes of inter-library loan over ISO 18626 (``/api/v1/staff/ill/...``): the
requester's queue and its staff answers (place a request by title, accept or decline a
supplier's offer, give a supplier up), the supplier's queue and pull list and its staff
answers (will supply, offer, cannot supply, ship, answer a renewal or a cancellation,
recall, lost), a request's or supply's message history, sending a message again.

Everything keeps to the staff member's library system: the patron, copies and branches
through the route's ``owns`` (:mod:`.scope`), legs, supplies and messages through the engine's
``library`` argument (another system's are answered 404, as personal data). Without an
``[ill]`` section in the configuration every route answers 404 ``ill_not_configured``.
Docs: docs/ill.md.
"""
from __future__ import annotations

import re
from decimal import Decimal

from circulation import queries
from circulation.ill import lists as ill_lists
from circulation.ill import outbox, requester, supplier
from circulation.ill.common import Ill
from circulation.ill.titles import normal_isbn
from circulation.store import NotFound
from lifecycle import reasons

from .encoding import message
from .errors import invalid, refusal
from .session import Ctx, Owned, Route

CIRC = ("circulation",)


def _ill(ctx: Ctx) -> Ill:
    ill = ctx.st.ill
    if ill is None:
        raise refusal(reasons.decide("ill_not_configured"), status=404)
    return ill


def _done(out, **extra) -> dict:
    """The answer of an engine step: its refusal as the API's error, else ok."""
    code = getattr(out, "code", "ok")
    if not out.ok:
        if code in ("other_library",):
            raise NotFound(code)
        raise refusal(reasons.decide(code, **(getattr(out, "detail", None) or {})))
    d = reasons.decide(code if code in reasons.ALLOWED else "ok")
    return {**(getattr(out, "detail", None) or {}), **extra, **message(d)}


# --------------------------------------------------------------------------- requester

async def place(ctx: Ctx):
    ill, b = _ill(ctx), ctx.body
    if not b.get("title_id") and not b.get("isbn"):
        raise invalid("title_id", "give title_id or isbn")
    if b.get("isbn") and len(normal_isbn(b["isbn"])) not in (10, 13):
        raise invalid("isbn", "not an ISBN-10 or ISBN-13")
    res = await requester.place(ill, card=b["card_number"], title_id=b.get("title_id"), isbn=b.get("isbn"),
                                pickup_branch=b.get("pickup_branch") or ctx.principal.branch or "",
                                supplier=b.get("supplier"), actor=ctx.actor, memo=b.get("memo", ""))
    if not res.ok:
        raise refusal(reasons.decide(res.code, **(res.detail or {})))
    return 201, {"request_id": res.request_id, "supplier": (res.detail or {}).get("supplier"),
                 **message(reasons.decide())}


async def patron_place(ctx: Ctx):
    """The patron asks partner libraries for a title (a リクエスト through ILL) for the own card:
    requester.place with role patron, channel web (the ILL checks, then the profile's rules
    for requests)."""
    ill, b = _ill(ctx), ctx.body
    if not b.get("title_id") and not b.get("isbn"):
        raise invalid("title_id", "give title_id or isbn")
    if b.get("isbn") and len(normal_isbn(b["isbn"])) not in (10, 13):
        raise invalid("isbn", "not an ISBN-10 or ISBN-13")
    pickup = b.get("pickup_branch") or (await queries.patron(ctx.circ, ctx.card)).default_pickup_branch or ""
    res = await requester.place(ill, card=ctx.card, title_id=b.get("title_id"), isbn=b.get("isbn"),
                                pickup_branch=pickup, actor=ctx.card, memo=b.get("memo", ""), channel="web",
                                role="patron")
    if not res.ok:
        raise refusal(reasons.decide(res.code, **(res.detail or {})))
    return 201, {"request_id": res.request_id, "supplier": (res.detail or {}).get("supplier"),
                 **message(reasons.decide())}


async def requester_queue(ctx: Ctx):
    ill = _ill(ctx)
    rows = await ill_lists.requester_queue(ill, ctx.principal.library,
                                           include_closed=bool(ctx.query.get("closed", False)))
    return {"library": ctx.principal.library, "requests": rows}


async def request_messages(ctx: Ctx):
    ill = _ill(ctx)
    rid = ctx.path["request_id"]
    return {"request_id": rid, "messages": await ill_lists.history(ill, request_id=rid)}


async def accept(ctx: Ctx):
    return _done(await requester.accept_offer(_ill(ctx), leg_id=ctx.path["leg_id"], actor=ctx.actor,
                                              library=ctx.principal.library), leg_id=ctx.path["leg_id"])


async def decline(ctx: Ctx):
    return _done(await requester.decline_offer(_ill(ctx), leg_id=ctx.path["leg_id"], actor=ctx.actor,
                                               library=ctx.principal.library), leg_id=ctx.path["leg_id"])


async def give_up(ctx: Ctx):
    return _done(await requester.give_up(_ill(ctx), leg_id=ctx.path["leg_id"], actor=ctx.actor,
                                         library=ctx.principal.library), leg_id=ctx.path["leg_id"])


# --------------------------------------------------------------------------- supplier

async def supplier_queue(ctx: Ctx):
    ill = _ill(ctx)
    rows = await ill_lists.supplier_queue(ill, ctx.principal.library,
                                          include_closed=bool(ctx.query.get("closed", False)))
    return {"library": ctx.principal.library, "supplies": rows}


async def supply_messages(ctx: Ctx):
    ill = _ill(ctx)
    sid = ctx.path["supply_id"]
    if not await ill_lists.supply_of(ill, sid, ctx.principal.library):
        raise NotFound(f"supply {sid}")
    return {"supply_id": sid, "messages": await ill_lists.history(ill, supply_id=sid)}


def _supply_args(ctx: Ctx) -> dict:
    return {"supply_id": ctx.path["supply_id"], "actor": ctx.actor, "library": ctx.principal.library}


async def will_supply(ctx: Ctx):
    return _done(await supplier.will_supply(_ill(ctx), note=ctx.body.get("note"), **_supply_args(ctx)),
                 supply_id=ctx.path["supply_id"])


async def offer(ctx: Ctx):
    b = ctx.body
    if not re.fullmatch(r"[A-Z]{3}", b.get("currency", "JPY")):
        raise invalid("currency", "an ISO 4217 code of three capital letters")
    cost = Decimal(str(b["cost"])) if b.get("cost") is not None else None
    return _done(await supplier.offer_retry(_ill(ctx), reason=b["reason"], cost=cost,
                                            currency=b.get("currency", "JPY"), condition=b.get("condition"),
                                            note=b.get("note"), **_supply_args(ctx)),
                 supply_id=ctx.path["supply_id"])


async def cannot_supply(ctx: Ctx):
    b = ctx.body
    kw = {"reason": b["reason"]} if b.get("reason") else {}
    return _done(await supplier.cannot_supply(_ill(ctx), note=b.get("note"), **kw, **_supply_args(ctx)),
                 supply_id=ctx.path["supply_id"])


async def ship(ctx: Ctx):
    b = ctx.body
    branch = b.get("branch") or ctx.principal.branch or ""
    return _done(await supplier.ship(_ill(ctx), barcode=b["barcode"], branch=branch, due=b.get("due"),
                                     **_supply_args(ctx)), supply_id=ctx.path["supply_id"])


async def cancel_answer(ctx: Ctx):
    return _done(await supplier.answer_cancel(_ill(ctx), yes=ctx.body["yes"], **_supply_args(ctx)),
                 supply_id=ctx.path["supply_id"])


async def renew_answer(ctx: Ctx):
    return _done(await supplier.answer_renew(_ill(ctx), yes=ctx.body["yes"], due=ctx.body.get("due"),
                                             **_supply_args(ctx)), supply_id=ctx.path["supply_id"])


async def recall(ctx: Ctx):
    return _done(await supplier.recall(_ill(ctx), note=ctx.body.get("note"), **_supply_args(ctx)),
                 supply_id=ctx.path["supply_id"])


async def lost(ctx: Ctx):
    return _done(await supplier.declare_lost(_ill(ctx), **_supply_args(ctx)), supply_id=ctx.path["supply_id"])


async def pull_list(ctx: Ctx):
    ill = _ill(ctx)
    branch = ctx.query.get("branch") or ctx.principal.branch or ""
    return {"branch": branch, "items": await ill_lists.pull_list(ill, branch)}


async def requeue(ctx: Ctx):
    ill = _ill(ctx)
    mid = ctx.path["message_id"]
    if not await outbox.requeue(ill, mid, library=ctx.principal.library):
        raise NotFound(f"message {mid}")
    return {"message_id": mid, **message(reasons.decide())}


S = "staff"
ROUTES = [
    # pickup_branch: a choice the engine checks against the patron's own system (as placing does)
    Route("POST", "/staff/ill/requests", place, S, CIRC, owns=(Owned("card_number", "patron"),)),
    Route("GET", "/staff/ill/requests", requester_queue, S, CIRC),
    Route("POST", "/me/ill-requests", patron_place, "patron"),
    Route("GET", "/staff/ill/requests/{request_id}/messages", request_messages, S, CIRC,
          owns=(Owned("request_id", "request"),)),
    Route("POST", "/staff/ill/legs/{leg_id}/accept", accept, S, CIRC),
    Route("POST", "/staff/ill/legs/{leg_id}/decline", decline, S, CIRC),
    Route("POST", "/staff/ill/legs/{leg_id}/give-up", give_up, S, CIRC),
    Route("GET", "/staff/ill/supplies", supplier_queue, S, CIRC),
    Route("GET", "/staff/ill/supplies/{supply_id}/messages", supply_messages, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/will-supply", will_supply, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/offer", offer, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/cannot-supply", cannot_supply, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/ship", ship, S, CIRC,
          owns=(Owned("barcode", "item"), Owned("branch", "branch"))),
    Route("POST", "/staff/ill/supplies/{supply_id}/cancel-answer", cancel_answer, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/renew-answer", renew_answer, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/recall", recall, S, CIRC),
    Route("POST", "/staff/ill/supplies/{supply_id}/lost", lost, S, CIRC),
    Route("GET", "/staff/ill/pull-list", pull_list, S, CIRC, owns=(Owned("branch", "branch"),)),
    Route("POST", "/staff/ill/messages/{message_id}/requeue", requeue, S, CIRC),
]
