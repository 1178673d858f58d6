"""The staff workbench (業務画面), Japanese first: log in, the counter (貸出・返却 by
barcode: a scanner is a keyboard, so each form is one field and Enter), what happens to
a returned copy next (the hold shelf, a transit, home, the shelf, or the refusal of a
partner's copy at the wrong counter), the hold shelf, the pull list with its 確保 button,
transits, the phone call list, the リクエスト review, patron lookup, and the jobs.

The same circulation functions as the staff JSON API (gateway/api/staff.py), with the
same library scope: every input that names a copy, a patron, a request or a branch goes
through the API's own check (:func:`gateway.api.scope.check`) before anything is done.
"""
from __future__ import annotations

import logging

from circulation import (
    auth,
    delivery,
    holds,
    jobs,
    lists,
    loans,
    notices,
    partners,
    proxy,
    queries,
    routing,
)
from circulation.store import NotFound
from lifecycle import reasons

from ..api import scope
from ..api.errors import ApiError
from ..api.session import Owned
from .core import Page, Refused, page

log = logging.getLogger("unioncat.web")

ITEM, PATRON, BRANCH, REQUEST = (Owned("barcode", "item"), Owned("card_number", "patron"),
                                 Owned("branch", "branch"), Owned("request_id", "request"))
RETURN_KINDS = ("counter", "machine", "book_drop", "drop_point", "post", "mobile")


class _Scope:
    """What :func:`gateway.api.scope.check` reads of a request, for a page."""

    def __init__(self, pg: Page, values: dict):
        self.circ, self.principal, self._values = pg.circ, pg.principal, values

    def value(self, name: str):
        return self._values.get(name)


async def in_scope(pg: Page, **values) -> None:
    """Refuse (ApiError / NotFound, as the API does) unless every copy, patron, request
    and branch named belongs to the staff member's library system."""
    owns = tuple(o for o in (ITEM, PATRON, BRANCH, REQUEST) if values.get(o.name) not in (None, ""))
    await scope.check(_Scope(pg, {k: v for k, v in values.items() if v not in (None, "")}), owns)


def branches_of(pg: Page) -> list[tuple[str, str]]:
    prof = pg.circ.profiles.get(pg.principal.library)
    return [(c, bc.branch.name) for c, bc in prof.branches.items()] if prof else []


def chosen_branch(pg: Page, value: str | None = None) -> str:
    branch = value if value is not None else (pg.field("branch") or pg.query("branch"))
    branch = branch or pg.principal.branch or ""
    if not branch:
        raise Refused(422, pg.w.message(reasons.decide("pickup_required")))
    return branch


# --------------------------------------------------------------------------- log in

@page()
async def login_form(pg: Page):
    if pg.staff:
        raise pg.redirect("/staff")
    return pg.render("staff/login.html", username="", error=None)


@page()
async def login(pg: Page):
    username = pg.field("username")
    res = await auth.staff_login(pg.circ, username=username, password=pg.field("password"))
    if res.session_token is None:
        return pg.render("staff/login.html", status=401 if res.decision.code != "locked_out" else 429,
                         username=username, error=pg.w.message(res.decision))
    pg.start_session(res.session_token, res.principal, auth.STAFF_SESSION)
    raise pg.redirect("/staff")


@page("staff")
async def workbench(pg: Page):
    branch = pg.principal.branch
    counts = {}
    if branch:
        counts = {"shelf": len(await lists.shelf_list(pg.circ, branch)),
                  "pull": len(await lists.pull_list(pg.circ, branch)),
                  "transits": len(await lists.transit_list(pg.circ, branch, "in")),
                  "calls": len(await notices.call_list(pg.circ, branch))}
    prof = pg.circ.profiles.get(pg.principal.library)
    return pg.render("staff/workbench.html", counts=counts, library_name=prof.name if prof else "",
                     branch_name=pg.circ.branch_name(branch) or "")


# --------------------------------------------------------------------------- the counter

async def routing_view(pg: Page, r: routing.Routing | None) -> dict | None:
    """What the counter does next with a copy, in words."""
    if r is None:
        return None
    w, to = pg.w, pg.circ.branch_name(r.to_branch) or (r.to_branch or "")
    view = {"kind": r.kind, "request_id": r.request_id, "to": to, "request": None}
    if r.request_id is not None:
        try:
            view["request"] = await queries.request_info(pg.circ, r.request_id)
        except NotFound:
            pass
    text = {routing.HOLD_SHELF: lambda: w("to_hold_shelf", rid=r.request_id),
            routing.TRANSIT_HOLD: lambda: w("to_transit_hold", branch=to, rid=r.request_id),
            routing.TRANSIT_ONWARD: lambda: w("to_transit_hold", branch=to, rid=r.request_id),
            routing.TRANSIT_HOME: lambda: w("to_transit_home", branch=to),
            routing.RESHELVE: lambda: w("to_reshelve"), routing.WALK_IN: lambda: w("to_walk_in"),
            routing.ALREADY_SECURED: lambda: w("already_secured"),
            partners.TO_PARTNER: lambda: w("to_partner", branch=to),
            partners.AWAITING_STAFF: lambda: w("awaiting_staff")}.get(r.kind)
    view["text"] = text() if text else f"{r.kind} → {to}"
    return view


@page("staff", ("circulation",))
async def counter(pg: Page):
    return pg.render("staff/counter.html", branches=branches_of(pg), branch=chosen_branch(pg), result=None,
                     card="", kinds=RETURN_KINDS, proxy_offered=_proxy_offered(pg))


def _proxy_offered(pg: Page) -> bool:
    prof = pg.circ.profiles.get(pg.principal.library)
    return prof is not None and prof.proxy.loans != "not_offered"


@page("staff", ("circulation",))
async def counter_post(pg: Page):
    action, branch = pg.field("action"), chosen_branch(pg)
    barcode, card = pg.field("barcode"), pg.field("card_number")
    result: dict = {"action": action, "barcode": barcode, "ok": False, "text": "", "next": None}
    try:
        if not barcode:
            raise Refused(422, pg.w("bad_input"))
        if action == "checkout":
            await in_scope(pg, barcode=barcode, card_number=card, branch=branch)
            res = await loans.check_out(pg.circ, barcode=barcode, card=card, branch=branch, role="staff",
                                        actor=pg.principal.login, channel="counter",
                                        proxy=pg.field("proxy") or None)
            result["ok"] = res.decision.allowed
            result["text"] = (pg.w("lent_due", due=pg.w.date(res.due)) if res.decision.allowed
                              else pg.w.message(res.decision))
        elif action == "checkin":
            await in_scope(pg, barcode=barcode, branch=branch)
            kind = pg.field("return_kind", "counter")
            if kind not in RETURN_KINDS:
                raise Refused(400, pg.w("bad_input"))
            res = await loans.check_in(pg.circ, barcode=barcode, branch=branch, role="staff",
                                       actor=pg.principal.login, return_kind=kind,
                                       walk_in=pg.field("walk_in") == "yes")
            d = res.decision
            if res.returned_at is not None:
                result["ok"] = True
                result["text"] = (pg.w("returned_late", n=res.overdue_days) if res.overdue_days
                                  else pg.w("returned"))
            else:
                result["ok"] = d.allowed or d.code == "not_on_loan"
                result["text"] = pg.w.message(d)
            result["next"] = await routing_view(pg, res.routing)
        else:
            raise Refused(400, pg.w("bad_input"))
    except (ApiError, NotFound) as e:
        result["text"] = (pg.w.message({"message_ja": e.message_ja, "message_en": e.message_en})
                          if isinstance(e, ApiError) else pg.w("not_found"))
    except Refused as e:
        result["text"] = e.message
    status = 200 if result["ok"] else 409
    return pg.render("staff/counter.html", status=status, branches=branches_of(pg), branch=branch, result=result,
                     card=card if action == "checkout" else "", kinds=RETURN_KINDS,
                     proxy_offered=_proxy_offered(pg))


# --------------------------------------------------------------------------- lists

async def _branch_page(pg: Page) -> str:
    branch = chosen_branch(pg)
    await in_scope(pg, branch=branch)
    return branch


@page("staff", ("circulation",))
async def shelf(pg: Page):
    branch = await _branch_page(pg)
    return pg.render("staff/shelf.html", branch=branch, branches=branches_of(pg),
                     rows=await lists.shelf_list(pg.circ, branch))


@page("staff", ("circulation",))
async def pull(pg: Page):
    branch = await _branch_page(pg)
    return pg.render("staff/pull.html", branch=branch, branches=branches_of(pg),
                     rows=await lists.pull_list(pg.circ, branch))


@page("staff", ("circulation",))
async def trap(pg: Page):
    branch, barcode = chosen_branch(pg), pg.field("barcode")
    await in_scope(pg, barcode=barcode, branch=branch)
    r = await routing.trap_from_shelf(pg.circ, barcode=barcode, branch=branch, role="staff",
                                      actor=pg.principal.login)
    if r.kind == routing.NOT_AVAILABLE:
        pg.flash(pg.w.pick("この資料は書架にありません（貸出中・確保済みなど）。",
                           "This copy is not on the shelf (on loan, secured ...)."), "error")
    else:
        pg.flash((await routing_view(pg, r))["text"])
    raise pg.redirect("/staff/pull-list", branch=branch)


@page("staff", ("circulation",))
async def transit_page(pg: Page):
    branch = await _branch_page(pg)
    direction = pg.query("direction", "in")
    direction = direction if direction in ("in", "out") else "in"
    return pg.render("staff/transits.html", branch=branch, branches=branches_of(pg), direction=direction,
                     rows=await lists.transit_list(pg.circ, branch, direction))


@page("staff", ("circulation",))
async def call_page(pg: Page):
    branch = await _branch_page(pg)
    return pg.render("staff/calls.html", branch=branch, branches=branches_of(pg),
                     rows=await notices.call_list(pg.circ, branch))


@page("staff", ("requests",))
async def review_page(pg: Page):
    return pg.render("staff/review.html", rows=await lists.review_queue(pg.circ, pg.principal.library))


@page("staff", ("requests",))
async def review_post(pg: Page):
    rid, decision = pg.int_field("request_id"), pg.field("decision")
    if decision not in ("purchase", "ill", "refuse"):
        raise Refused(400, pg.w("bad_input"))
    await in_scope(pg, request_id=rid)
    d = await holds.review(pg.circ, request_id=rid, decision=decision, reason=pg.field("reason"),
                           role="staff", actor=pg.principal.login)
    pg.flash(pg.w("done") if d.allowed else pg.w.message(d), "info" if d.allowed else "error")
    raise pg.redirect("/staff/review")


# --------------------------------------------------------------------------- patrons

@page("staff", ("circulation",))
async def patron_form(pg: Page):
    return pg.render("staff/patron.html", p=None, card="")


async def patron_view(pg: Page, card: str):
    await in_scope(pg, card_number=card)
    p = await queries.patron(pg.circ, card)
    prof = pg.circ.profiles.get(p.library)
    reg = consents = None
    if prof is not None and prof.delivery is not None and prof.delivery.enabled:
        reg = await delivery.registration(pg.circ, card)
    if prof is not None and prof.proxy.loans != "not_offered":
        consents = await proxy.consents(pg.circ, card)
    return pg.render("staff/patron.html", p=p, card=card, loans=await loans.patron_loans(pg.circ, card),
                     holds=await lists.patron_requests(pg.circ, card), delivery=reg, consents=consents)


@page("staff", ("circulation",))
async def patron_lookup(pg: Page):
    card = pg.field("card_number")
    if not card:
        return pg.render("staff/patron.html", p=None, card="")
    try:
        return await patron_view(pg, card)
    except NotFound:
        return pg.render("staff/patron.html", status=404, p=None, card=card, error=pg.w("not_found"))


@page("staff", ("circulation",))
async def cancel_request(pg: Page):
    rid, card = pg.int_field("request_id"), pg.field("card_number")
    await in_scope(pg, request_id=rid, card_number=card)
    d = await holds.cancel(pg.circ, request_id=rid, role="staff", actor=pg.principal.login, channel="counter",
                           reason=pg.field("reason"), branch=pg.principal.branch)
    pg.flash(pg.w("cancel_done") if d.allowed else pg.w.message(d), "info" if d.allowed else "error")
    return await patron_view(pg, card)


# --------------------------------------------------------------------------- jobs

@page("staff", ("admin", "network"))
async def jobs_page(pg: Page):
    return pg.render("staff/jobs.html", names=list(jobs.JOBS))


@page("staff", ("admin", "network"))
async def jobs_run(pg: Page):
    name = pg.field("job")
    if name not in jobs.JOBS:
        raise Refused(404, pg.w("not_found"))
    st = pg.st.api
    mailer = getattr(st, "mailer", None)
    if name == "notices" and mailer is None:
        pg.flash(pg.w.pick("メール送信が設定されていません（--smtp-host）。",
                           "Mail is not configured (--smtp-host), so notices cannot be sent."), "error")
        raise pg.redirect("/staff/jobs")
    sch = getattr(st, "scheduler", None)
    if sch is not None and name in sch.intervals:
        changed = await sch.run_now(name)            # never overlaps the scheduled run
    else:
        changed = await jobs.run_job(pg.circ, name, mailer)
    pg.flash(pg.w("job_done", job=name, n=changed))
    raise pg.redirect("/staff/jobs")


def routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/staff/login", login_form), ("POST", "/staff/login", login),
        ("GET", "/staff", workbench),
        ("GET", "/staff/counter", counter), ("POST", "/staff/counter", counter_post),
        ("GET", "/staff/shelf", shelf), ("GET", "/staff/pull-list", pull), ("POST", "/staff/trap", trap),
        ("GET", "/staff/transits", transit_page), ("GET", "/staff/call-list", call_page),
        ("GET", "/staff/review", review_page), ("POST", "/staff/review", review_post),
        ("GET", "/staff/patron", patron_form), ("POST", "/staff/patron", patron_lookup),
        ("POST", "/staff/requests/cancel", cancel_request),
        ("GET", "/staff/jobs", jobs_page), ("POST", "/staff/jobs", jobs_run),
    ]
