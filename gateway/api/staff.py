"""Staff routes: the counter (check-out, check-in, trap), the lists of a branch (hold
shelf, pull list, transits, phone call list), holds placed, cancelled and traced at the
counter, the リクエスト review, and running a job.

Every route keeps to the staff member's own library system through its ``owns`` inputs
(:mod:`.scope`); a route without a branch acts at the staff member's own branch. The
jobs act on every system at once, so running one needs the roles ``admin`` and
``network``.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from circulation import auth, holds, jobs, labels, lists, loans, notices, queries, routing
from lifecycle import reasons

from .encoding import json_response, message
from .errors import RETRY_AFTER_SECONDS, ApiError, refusal
from .patron import place, placed
from .session import Ctx, Owned, Route, session_cookie

log = logging.getLogger("unioncat.circulation.api")
# How long before it is recorded a return may be dated (dropped_at: a book drop or drop
# point emptied late, a parcel by post): a month covers the longest closure of the seeds
# (年末年始) several times over; 1900-01-01 is a typing error, not a return.
RETURN_BACKDATE_MAX = timedelta(days=31)


def staff_view(p: auth.Principal) -> dict:
    return {"username": p.login, "name": p.name, "library": p.library, "branch": p.branch,
            "roles": sorted(p.roles)}


def _routing(r: routing.Routing | None) -> dict | None:
    if r is None:
        return None
    return {"kind": r.kind, "request_id": r.request_id, "to_branch": r.to_branch}


def _branch(ctx: Ctx) -> str:
    """The branch a staff request acts at: the one given (its system was checked), else
    the staff member's own."""
    branch = ctx.value("branch") or ctx.principal.branch
    if not branch:
        raise refusal(reasons.decide("branch_required"))
    return branch


async def staff_login(ctx: Ctx):
    b = ctx.body
    res = await auth.staff_login(ctx.circ, username=b["username"], password=b["password"])
    if res.session_token is None:
        raise refusal(res.decision, now=ctx.circ.now())
    resp = json_response({"token": res.session_token, "kind": "staff", **message(res.decision),
                          "staff": staff_view(res.principal)}, clock=ctx.circ.clock)
    session_cookie(resp, ctx.st, res.session_token, auth.STAFF_SESSION)
    return resp


async def staff_me(ctx: Ctx):
    return {"staff": staff_view(ctx.principal)}


# --------------------------------------------------------------------------- the counter

async def checkout(ctx: Ctx):
    b, branch = ctx.body, _branch(ctx)
    res = await loans.check_out(ctx.circ, barcode=b["barcode"], card=b["card_number"], branch=branch,
                                role="staff", actor=ctx.actor, channel=b.get("channel", "counter"))
    if not res.decision.allowed:
        raise refusal(res.decision)
    return 201, {"loan_id": res.loan_id, "due": res.due, "request_id": res.request_id,
                 "barcode": b["barcode"], "card_number": b["card_number"], "branch": branch,
                 **message(res.decision)}


async def checkin(ctx: Ctx):
    b, branch = ctx.body, _branch(ctx)
    dropped, now = b.get("dropped_at"), ctx.circ.now()
    if dropped is not None and dropped > now:
        raise refusal(reasons.decide("dropped_at_in_future"))
    if dropped is not None and dropped < now - RETURN_BACKDATE_MAX:
        raise refusal(reasons.decide("dropped_at_implausible", earliest=now - RETURN_BACKDATE_MAX))
    res = await loans.check_in(ctx.circ, barcode=b["barcode"], branch=branch, role="staff",
                               actor=ctx.actor, return_kind=b.get("return_kind", "counter"),
                               dropped_at=dropped, walk_in=b.get("walk_in", False))
    d = res.decision
    if not d.allowed and d.code != "not_on_loan":
        raise refusal(d)
    return {"returned": res.returned_at is not None, "loan_id": res.loan_id,
            "returned_at": res.returned_at, "overdue_days": res.overdue_days,
            "routing": _routing(res.routing), **message(d), "details": d.details}


async def trap(ctx: Ctx):
    b, branch = ctx.body, _branch(ctx)
    r = await routing.trap_from_shelf(ctx.circ, barcode=b["barcode"], branch=branch, role="staff",
                                    actor=ctx.actor, walk_in=b.get("walk_in", False))
    if r.kind == routing.NOT_AVAILABLE:
        raise ApiError(409, "item_not_on_shelf", details={"barcode": b["barcode"]})
    return {"routing": _routing(r)}


# --------------------------------------------------------------------------- lists

async def shelf(ctx: Ctx):
    branch = _branch(ctx)
    return {"branch": branch, "holds": await lists.shelf_list(ctx.circ, branch)}


async def pull_list(ctx: Ctx):
    branch = _branch(ctx)
    return {"branch": branch, "items": await lists.pull_list(ctx.circ, branch)}


async def transits(ctx: Ctx):
    branch, direction = _branch(ctx), ctx.query.get("direction", "out")
    return {"branch": branch, "direction": direction,
            "transits": await lists.transit_list(ctx.circ, branch, direction)}


async def call_list(ctx: Ctx):
    branch = _branch(ctx)
    return {"branch": branch, "entries": await notices.call_list(ctx.circ, branch)}


async def record_call(ctx: Ctx):
    done = await notices.record_call(ctx.circ, ctx.path["request_id"], actor=ctx.actor,
                                     note=ctx.body.get("note", ""))
    return {"request_id": done.request_id, "contacted_at": done.contacted_at, "shelf_deadline": done.shelf_deadline}


# --------------------------------------------------------------------------- requests

async def place_request(ctx: Ctx):
    b, branch = ctx.body, _branch(ctx)
    p = await queries.patron(ctx.circ, b["card_number"])
    rid, pos, link, ids = await place(ctx, b, card=p.card_number, channel=b.get("channel", "counter"),
                                      role="staff", actor=ctx.actor, submitted_at_branch=branch,
                                      default_pickup=p.default_pickup_branch or branch)
    views = {r["request_id"]: r for r in await lists.patron_requests(ctx.circ, p.card_number)}
    return 201, placed(b, rid, pos, link, ids, views)


async def cancel(ctx: Ctx):
    rid = ctx.path["request_id"]
    await queries.request_info(ctx.circ, rid)                      # 404 before anything else
    branch = _branch(ctx)
    d = await holds.cancel(ctx.circ, request_id=rid, role="staff", actor=ctx.actor, channel="counter",
                           reason=ctx.body.get("reason", ""), branch=branch)
    if not d.allowed:
        raise refusal(d)
    info = await queries.request_info(ctx.circ, rid)
    return {"request_id": rid, "state": info.state, "cancel_reason": info.cancel_reason, **message(d)}


async def history(ctx: Ctx):
    rid = ctx.path["request_id"]
    info, events = await queries.request_trail(ctx.circ, rid)
    return {"request_id": rid, "state": info.state, "title_id": info.title_id, "title": info.title,
            "events": [{"at": e.at, "event": e.event, "from_state": e.from_state, "to_state": e.to_state,
                        "actor_role": e.actor_role, "actor": e.actor, "channel": e.channel, "branch": e.branch,
                        "reason": e.reason, "item_id": e.item_id} for e in events]}


async def review_list(ctx: Ctx):
    library = ctx.query.get("library", ctx.principal.library)
    return {"library": library, "requests": await lists.review_queue(ctx.circ, library)}


async def review(ctx: Ctx):
    b, rid = ctx.body, ctx.path["request_id"]
    d = await holds.review(ctx.circ, request_id=rid, decision=b["decision"], reason=b.get("reason", ""),
                           role="staff", actor=ctx.actor)
    if not d.allowed:
        raise refusal(d)
    info = await queries.request_info(ctx.circ, rid)
    return {"request_id": rid, "state": info.state, "status_ja": labels.STATUS_JA.get(info.state, ""),
            **message(d)}


# --------------------------------------------------------------------------- jobs

async def run_job(ctx: Ctx):
    name = ctx.path["name"]
    if name not in jobs.JOBS:
        raise ApiError(404, "unknown_job", details={"jobs": list(jobs.JOBS)})
    st = ctx.st
    if name == "notices" and st.mailer is None:
        raise ApiError(409, "no_mailer")
    sch = st.scheduler
    if sch is not None and name in sch.intervals:
        failures = sch.failures[name]
        try:
            changed = await sch.run_now(name)        # never overlaps the scheduled run
        except jobs.SchedulerStopped:
            raise ApiError(503, "service_unavailable", details={"retry_after": RETRY_AFTER_SECONDS},
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        if sch.failures[name] != failures:
            raise ApiError(500, "job_failed", details={"job": name})
    else:
        try:
            changed = await jobs.run_job(ctx.circ, name, st.mailer)
        except Exception:
            log.exception("job %s failed (run from the API)", name)
            raise ApiError(500, "job_failed", details={"job": name}) from None
    return {"job": name, "changed": changed}


# --------------------------------------------------------------------------- routes

S, CIRC = "staff", ("circulation",)
BRANCH = Owned("branch", "branch")
ITEM = Owned("barcode", "item")
PATRON = Owned("card_number", "patron")
REQUEST = Owned("request_id", "request")
ROUTES: list[Route] = [
    Route("POST", "/staff/login", staff_login),
    Route("GET", "/staff/me", staff_me, S, CIRC),
    Route("POST", "/staff/checkout", checkout, S, CIRC, (BRANCH, ITEM, PATRON)),
    Route("POST", "/staff/checkin", checkin, S, CIRC, (BRANCH, ITEM)),
    Route("POST", "/staff/trap", trap, S, CIRC, (BRANCH, ITEM)),
    Route("GET", "/staff/shelf", shelf, S, CIRC, (BRANCH,)),
    Route("GET", "/staff/pull-list", pull_list, S, CIRC, (BRANCH,)),
    Route("GET", "/staff/transits", transits, S, CIRC, (BRANCH,)),
    Route("GET", "/staff/call-list", call_list, S, CIRC, (BRANCH,)),
    Route("POST", "/staff/call-list/{request_id}", record_call, S, CIRC, (REQUEST,)),
    Route("POST", "/staff/requests", place_request, S, CIRC, (BRANCH, PATRON)),
    Route("POST", "/staff/requests/{request_id}/cancel", cancel, S, CIRC, (REQUEST, BRANCH)),
    Route("GET", "/staff/requests/{request_id}/history", history, S, CIRC, (REQUEST,)),
    Route("GET", "/staff/review", review_list, S, ("requests",), (Owned("library", "library"),)),
    Route("POST", "/staff/review/{request_id}", review, S, ("requests",), (REQUEST,)),
    # the jobs act on every library system: by hand only for network-wide staff
    Route("POST", "/staff/jobs/{name}", run_job, S, ("admin", "network")),
]
