"""Patron routes: logging in, the patron's own pages under ``/me`` (loans, holds, the
予約カート, My本棚, 読書マラソン, calendar, settings), and the public 予約ランキング.

Handlers receive checked input (``ctx.path``, ``ctx.query``, ``ctx.body``), call the
circulation functions and shape their answers; a refused Decision becomes
:func:`~.errors.refusal`. A patron acts on their own card only: another patron's loan,
request, set or entry is 404, like one that does not exist.
"""
from __future__ import annotations

from datetime import date

from aiohttp import web

from circulation import auth, bookshelf, cart, holds, labels, lists, loans, queries
from circulation.ill import requester as ill_requester
from circulation.service import Circulation
from lifecycle import reasons

from .encoding import json_response, message
from .errors import ApiError, invalid, refusal, texts
from .session import Ctx, Route, clear_session_cookie, session_cookie

# --------------------------------------------------------------------------- views


def branches(circ: Circulation, library: str, *, pickup_only: bool = False) -> list[dict]:
    prof = circ.profiles.get(library)
    if prof is None:
        return []
    return [{"code": c, "name": bc.branch.name} for c, bc in prof.branches.items()
            if bc.branch.pickup or not pickup_only]


def settings_view(circ: Circulation, p: queries.PatronInfo) -> dict:
    return {"email": p.email, "locale": p.locale,
            "default_pickup_branch": p.default_pickup_branch,
            "default_pickup_name": circ.branch_name(p.default_pickup_branch) or None,
            "default_contact_method": p.default_contact_method,
            "contact_ja": labels.CONTACT_JA.get(p.default_contact_method, ""),
            "new_book_alerts": p.new_book_alerts, "history_opt_in": p.history_opt_in}


def _choices(circ: Circulation, p: queries.PatronInfo) -> dict:
    prof = circ.profiles.get(p.library)
    return {"pickup_branches": branches(circ, p.library, pickup_only=True),
            "contact_methods": sorted(prof.placing.contact_methods) if prof else [],
            "locales": list(bookshelf.LOCALES)}


async def _request_view(ctx: Ctx, request_id: int) -> dict | None:
    for r in await lists.patron_requests(ctx.circ, ctx.card):
        if r["request_id"] == request_id:
            return r
    return None


async def _loan_view(ctx: Ctx, loan_id: int) -> dict | None:
    for r in await loans.patron_loans(ctx.circ, ctx.card):
        if r["loan_id"] == loan_id:
            return r
    return None


def _cart_view(its: list) -> dict:
    return {"items": [{"title_id": i.title_id, "title": i.title, "added_at": i.added_at} for i in its],
            "count": len(its), "max": cart.CART_MAX}


def _entry(e: bookshelf.ShelfEntry) -> dict:
    return {"entry_id": e.id, "shelf": e.shelf, "title_id": e.title_id, "title": e.title,
            "added_at": e.added_at, "note": e.note, "loan_id": e.loan_id}


# --------------------------------------------------------------------------- public

async def openapi(ctx: Ctx):
    return web.Response(body=ctx.st.openapi, content_type="application/json", charset="utf-8")


async def login(ctx: Ctx):
    b = ctx.body
    res = await auth.patron_login(ctx.circ, card=b["card_number"], password=b["password"])
    if res.session_token is None:
        raise refusal(res.decision, now=ctx.circ.now())
    p = res.principal
    info = await queries.patron(ctx.circ, p.login)
    resp = json_response({"token": res.session_token, "kind": "patron", "card_number": p.login,
                          "name": p.name, "library": p.library, **message(res.decision),
                          "settings": settings_view(ctx.circ, info)}, clock=ctx.circ.clock)
    session_cookie(resp, ctx.st, res.session_token, auth.PATRON_MAX)
    return resp


async def logout(ctx: Ctx):
    done = await auth.logout(ctx.circ, ctx.token) if ctx.token else False
    resp = json_response({"logged_out": done, **texts("logged_out")}, clock=ctx.circ.clock)
    clear_session_cookie(resp, ctx.st)
    return resp


async def password_registration(ctx: Ctx):
    b = ctx.body
    d = await auth.set_password(ctx.circ, card=b["card_number"], new_password=b["new_password"],
                                role="patron", actor=b["card_number"], registered_phone=b["phone"])
    if not d.allowed:
        raise refusal(d, now=ctx.circ.now())
    return message(d)


async def ranking(ctx: Ctx):
    q = ctx.query
    titles = await lists.reservation_ranking(ctx.circ, q["library"], q.get("limit", 20))
    return {"library": q["library"], "titles": titles}


# --------------------------------------------------------------------------- me, loans

async def me(ctx: Ctx):
    p = await queries.patron(ctx.circ, ctx.card)
    lib = ctx.circ.profiles.get(p.library)
    return {"card_number": p.card_number, "name": p.name, "library": p.library,
            "library_name": lib.name if lib else p.library, "phone": p.phone,
            "reading_goal": p.reading_goal, "settings": settings_view(ctx.circ, p)}


async def my_loans(ctx: Ctx):
    return {"loans": await loans.patron_loans(ctx.circ, ctx.card)}


async def renew(ctx: Ctx):
    loan_id = ctx.path["loan_id"]
    res = await loans.renew(ctx.circ, loan_id=loan_id, role="patron", actor=ctx.card, channel="web",
                            card=ctx.card)
    if not res.decision.allowed:
        if res.decision.code == "renewal_by_lender" and ctx.st.ill is not None:
            # another library's copy (ISO 18626): its lender is asked; the answer comes later
            asked = await ill_requester.request_renewal(ctx.st.ill, loan_id=loan_id, actor=ctx.card, card=ctx.card)
            if not asked.ok:
                raise refusal(reasons.decide(asked.code, **(asked.detail or {})))
            return 202, {"loan_id": loan_id, "pending": True, **message(reasons.decide("renewal_pending")),
                         "loan": await _loan_view(ctx, loan_id)}
        raise refusal(res.decision)
    return {"loan_id": loan_id, "due": res.due, "renewals": res.renewals, **message(res.decision),
            "loan": await _loan_view(ctx, loan_id)}


# --------------------------------------------------------------------------- requests

async def place(ctx: Ctx, b: dict, *, card: str, channel: str, role: str, actor: str,
                submitted_at_branch: str | None, default_pickup: str | None):
    """Place one title (``title_id``) or several (``titles`` + ``mode`` set/group) for
    ``card``: (request id, position, set or group id, request ids)."""
    if ("title_id" in b) == ("titles" in b):
        raise invalid("title_id", "give either title_id or titles")
    if "titles" in b and "mode" not in b:
        raise invalid("mode", "required with titles")
    if "title_id" in b and "mode" in b:
        raise invalid("mode", "only with titles")
    if "title_id" in b and not b["title_id"].strip():
        raise refusal(reasons.decide("title_missing"))
    pickup = b.get("pickup_branch") or default_pickup
    if not pickup:
        p = await queries.patron(ctx.circ, card)
        raise refusal(reasons.decide("pickup_required",
                                  choices=[x["code"] for x in branches(ctx.circ, p.library, pickup_only=True)]))
    common = dict(card=card, pickup_branch=pickup, channel=channel, role=role, actor=actor,
                  contact_method=b.get("contact_method"), memo=b.get("memo", ""),
                  material_type=b.get("material_type"), publication_date=b.get("publication_date"),
                  submitted_at_branch=submitted_at_branch)
    if "title_id" in b:
        res = await holds.place(ctx.circ, title_id=b["title_id"], title=b.get("title", ""), **common)
        if res.request_id is None:
            raise refusal(res.decision)
        return res.request_id, res.position, None, [res.request_id]
    titles = {t["title_id"]: t.get("title", "") for t in b["titles"]}
    ids = [t["title_id"] for t in b["titles"]]
    fn = holds.place_set if b["mode"] == "set" else holds.place_group
    res = await fn(ctx.circ, title_ids=ids, titles=titles, **common)
    if not res.request_ids:
        raise refusal(res.decision)
    link = res.set_id if b["mode"] == "set" else res.group_id
    return None, None, link, res.request_ids


def placed(b: dict, rid, pos, link, ids, views: dict) -> dict:
    mode = b.get("mode", "single")
    return {"mode": mode, "request_id": rid, "position": pos,
            "set_id": link if mode == "set" else None, "group_id": link if mode == "group" else None,
            "request_ids": ids, "requests": [views[i] for i in ids if i in views]}


async def place_request(ctx: Ctx):
    p = await queries.patron(ctx.circ, ctx.card)
    rid, pos, link, ids = await place(ctx, ctx.body, card=ctx.card, channel="web", role="patron",
                                      actor=ctx.card, submitted_at_branch=None,
                                      default_pickup=p.default_pickup_branch)
    views = {r["request_id"]: r for r in await lists.patron_requests(ctx.circ, ctx.card)}
    return 201, placed(ctx.body, rid, pos, link, ids, views)


async def my_requests(ctx: Ctx):
    return {"requests": await lists.patron_requests(ctx.circ, ctx.card)}


async def my_cancelled(ctx: Ctx):
    return {"requests": await lists.cancelled_requests(ctx.circ, ctx.card)}


async def change_request(ctx: Ctx):
    b, rid = ctx.body, ctx.path["request_id"]
    d = await holds.change(ctx.circ, request_id=rid, card=ctx.card, pickup_branch=b.get("pickup_branch"),
                           contact_method=b.get("contact_method"), role="patron", actor=ctx.card)
    if not d.allowed:
        raise refusal(d)
    return {"request": await _request_view(ctx, rid), **message(d)}


async def cancel_request(ctx: Ctx):
    rid = ctx.path["request_id"]
    d = await holds.cancel(ctx.circ, request_id=rid, role="patron", actor=ctx.card, channel="web",
                           card=ctx.card)
    if not d.allowed:
        raise refusal(d)
    info = await queries.request_info(ctx.circ, rid)
    cancelled = next((r for r in await lists.cancelled_requests(ctx.circ, ctx.card)
                      if r["request_id"] == rid), None)
    return {"request_id": rid, "state": info.state, **message(d), "cancelled": cancelled}


async def _suspend_or_resume(ctx: Ctx, fn):
    rid = ctx.path["request_id"]
    d = await fn(ctx.circ, request_id=rid, role="patron", actor=ctx.card, card=ctx.card, channel="web")
    if not d.allowed:
        raise refusal(d)
    return {"request": await _request_view(ctx, rid), **message(d)}


async def suspend_request(ctx: Ctx):
    return await _suspend_or_resume(ctx, holds.suspend)


async def resume_request(ctx: Ctx):
    return await _suspend_or_resume(ctx, holds.resume)


async def reorder_set(ctx: Ctx):
    set_id = ctx.path["set_id"]
    d = await holds.reorder_set(ctx.circ, card=ctx.card, set_id=set_id, request_ids=ctx.body["request_ids"],
                                role="patron", actor=ctx.card)
    if not d.allowed:
        raise refusal(d)
    members = [r for r in await lists.patron_requests(ctx.circ, ctx.card) if r["set_id"] == set_id]
    members.sort(key=lambda r: r["set_position"])
    return {"set_id": set_id, "requests": members, **message(d)}


# --------------------------------------------------------------------------- cart

async def get_cart(ctx: Ctx):
    return _cart_view(await cart.items(ctx.circ, ctx.card))


async def add_to_cart(ctx: Ctx):
    b = ctx.body
    d = await cart.add(ctx.circ, ctx.card, b["title_id"], b.get("title", ""))
    if not d.allowed:
        raise refusal(d)
    view = _cart_view(await cart.items(ctx.circ, ctx.card))
    return (201 if d.code == "added" else 200), {"added": d.code == "added", **message(d), "cart": view}


async def remove_from_cart(ctx: Ctx):
    if "title_id" in ctx.query:
        d = await cart.remove(ctx.circ, ctx.card, ctx.query["title_id"])
        if not d.allowed:
            raise refusal(d, status=404)
        removed = 1
    else:
        removed = await cart.clear(ctx.circ, ctx.card)
    return {"removed": removed, "cart": _cart_view(await cart.items(ctx.circ, ctx.card))}


async def checkout_cart(ctx: Ctx):
    b = ctx.body
    res = await cart.checkout(ctx.circ, card=ctx.card, pickup_branch=b.get("pickup_branch"),
                              contact_method=b.get("contact_method"), memo=b.get("memo", ""),
                              title_ids=b.get("title_ids"), channel="web", role="patron", actor=ctx.card)
    if not res.decision.allowed:
        raise refusal(res.decision)
    views = {r["request_id"]: r for r in await lists.patron_requests(ctx.circ, ctx.card)}
    return {**message(res.decision), "pickup_branch": res.pickup_branch,
            "contact_method": res.contact_method,
            "placed": [{"title_id": p.title_id, "title": p.title, "request_id": p.request_id,
                        "position": p.position, "request": views.get(p.request_id)} for p in res.placed],
            "refused": [{"title_id": r.title_id, "title": r.title, "error": r.decision.code,
                         "message_ja": r.decision.message_ja, "message_en": r.decision.message_en,
                         "details": r.decision.details} for r in res.refused],
            "cart": _cart_view(await cart.items(ctx.circ, ctx.card))}


# --------------------------------------------------------------------------- bookshelf

async def get_shelf(ctx: Ctx):
    shelf = ctx.path["shelf"]
    return {"shelf": shelf, "entries": [_entry(e) for e in await bookshelf.list_shelf(ctx.circ, ctx.card, shelf)]}


async def add_to_shelf(ctx: Ctx):
    b, shelf = ctx.body, ctx.path["shelf"]
    d = await bookshelf.add_to_shelf(ctx.circ, ctx.card, shelf, b["title_id"], title=b.get("title", ""),
                                     note=b.get("note", ""))
    if not d.allowed:
        raise refusal(d)
    return (201 if d.code == "added" else 200), {"entry_id": d.details["id"], "added": d.code == "added",
                                                 **message(d)}


async def remove_from_shelf(ctx: Ctx):
    shelf, entry_id = ctx.path["shelf"], ctx.path["entry_id"]
    if not any(e.id == entry_id for e in await bookshelf.list_shelf(ctx.circ, ctx.card, shelf)):
        raise ApiError(404, "not_found")
    d = await bookshelf.remove_entry(ctx.circ, ctx.card, entry_id)
    if not d.allowed:
        raise refusal(d)
    return {"removed": True, **message(d)}


async def history_opt_in(ctx: Ctx):
    enabled = ctx.body["enabled"]
    d = await bookshelf.set_history_opt_in(ctx.circ, ctx.card, enabled)
    return {"history_opt_in": enabled, **message(d)}


async def delete_history(ctx: Ctx):
    d = await bookshelf.delete_history(ctx.circ, ctx.card)
    return {"deleted": d.details.get("deleted", 0), **message(d)}


async def get_goal(ctx: Ctx):
    return {"goal": (await queries.patron(ctx.circ, ctx.card)).reading_goal}


async def put_goal(ctx: Ctx):
    goal = ctx.body["goal"]
    d = await bookshelf.set_reading_goal(ctx.circ, ctx.card, goal)
    if not d.allowed:
        raise refusal(d)
    return {"goal": goal, **message(d)}


async def reading_progress(ctx: Ctx):
    return await bookshelf.reading_progress(ctx.circ, ctx.card, ctx.query.get("year", ctx.circ.now().year))


async def my_calendar(ctx: Ctx):
    month = ctx.query.get("month")
    first = ctx.circ.now().date() if month is None else _month(month)
    return await bookshelf.patron_calendar(ctx.circ, ctx.card, first)


def _month(v: str) -> date:
    try:
        return date.fromisoformat(f"{v}-01")
    except ValueError:
        raise invalid("month", "expected YYYY-MM") from None


# --------------------------------------------------------------------------- settings

async def get_settings(ctx: Ctx):
    p = await queries.patron(ctx.circ, ctx.card)
    return {"settings": settings_view(ctx.circ, p), "choices": _choices(ctx.circ, p)}


async def patch_settings(ctx: Ctx):
    b = ctx.body
    d = await bookshelf.update_settings(
        ctx.circ, card=ctx.card, email=b.get("email"), locale=b.get("locale"),
        default_pickup_branch=b.get("default_pickup_branch"),
        default_contact_method=b.get("default_contact_method"), new_book_alerts=b.get("new_book_alerts"),
        update_live_holds=b.get("update_existing_requests", False))
    if not d.allowed:
        raise refusal(d)
    p = await queries.patron(ctx.circ, ctx.card)
    warning = message(d) if d.code == "email_domain_warning" else None
    return {"settings": settings_view(ctx.circ, p), "changed": d.details.get("changed", []),
            "requests_updated": d.details.get("holds_updated", 0), "warning": warning, **message(d)}


async def change_password(ctx: Ctx):
    b = ctx.body
    d = await auth.set_password(ctx.circ, card=ctx.card, new_password=b["new_password"],
                                old_password=b["old_password"], role="patron", actor=ctx.card,
                                keep_session=ctx.token)
    if not d.allowed:
        raise refusal(d, now=ctx.circ.now())
    return message(d)


async def test_mail(ctx: Ctx):
    sent = await queries.queue_test_mail(ctx.circ, ctx.card)
    if sent.email is None:
        raise refusal(reasons.decide("email_missing"), status=409)
    code = "test_mail_queued" if sent.queued else "test_mail_recent"
    return 202, {"queued": sent.queued, "email": sent.email, "code": code, **texts(code)}


# --------------------------------------------------------------------------- routes

P = "patron"
ROUTES: list[Route] = [
    Route("GET", "/openapi.json", openapi),
    Route("POST", "/login", login),
    Route("POST", "/logout", logout, "any"),
    Route("POST", "/password-registration", password_registration),
    Route("GET", "/ranking", ranking),

    Route("GET", "/me", me, P),
    Route("GET", "/me/loans", my_loans, P),
    Route("POST", "/me/loans/{loan_id}/renew", renew, P),
    Route("GET", "/me/requests", my_requests, P),
    Route("POST", "/me/requests", place_request, P),
    Route("GET", "/me/requests/cancelled", my_cancelled, P),
    Route("PATCH", "/me/requests/{request_id}", change_request, P),
    Route("POST", "/me/requests/{request_id}/cancel", cancel_request, P),
    Route("POST", "/me/requests/{request_id}/suspend", suspend_request, P),
    Route("POST", "/me/requests/{request_id}/resume", resume_request, P),
    Route("PUT", "/me/requests/sets/{set_id}/order", reorder_set, P),
    Route("GET", "/me/cart", get_cart, P),
    Route("POST", "/me/cart", add_to_cart, P),
    Route("DELETE", "/me/cart", remove_from_cart, P),
    Route("POST", "/me/cart/checkout", checkout_cart, P),
    Route("GET", "/me/bookshelf/{shelf}", get_shelf, P),
    Route("POST", "/me/bookshelf/{shelf}", add_to_shelf, P),
    Route("DELETE", "/me/bookshelf/{shelf}/{entry_id}", remove_from_shelf, P),
    Route("PUT", "/me/history-opt-in", history_opt_in, P),
    Route("DELETE", "/me/history", delete_history, P),
    Route("GET", "/me/reading-goal", get_goal, P),
    Route("PUT", "/me/reading-goal", put_goal, P),
    Route("GET", "/me/reading-progress", reading_progress, P),
    Route("GET", "/me/calendar", my_calendar, P),
    Route("GET", "/me/settings", get_settings, P),
    Route("PATCH", "/me/settings", patch_settings, P),
    Route("PUT", "/me/password", change_password, P),
    Route("POST", "/me/test-mail", test_mail, P),
]
