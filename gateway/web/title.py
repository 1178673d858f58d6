"""The title page: a union record in readable form, its holdings per library and branch
with call number and live status, and what the logged-in patron may do with it: reserve
(pickup branch, contact method, memo), put it in the 予約カート or on My本棚. A refusal
is the policy engine's own reason (lifecycle/reasons.py) in the page's language, shown on
the page again with what the patron entered.

The record comes through the search route (``route.fetch``), its holdings' status from the
circulation database in one read (gateway/availability.py); the actions call the same
circulation functions as the JSON API (``holds.place``).

連携貸出を申し込む (a patron's ILL request, docs/ill.md): offered when ``[ill]`` is configured,
the patron is logged in and no library of the record's holdings is the patron's own system
(a copy of its own would be reserved instead). The form posts to the ILL engine
(``requester.place``, role patron, channel web) like POST /api/v1/me/ill-requests; where the
patron's system takes no part in ILL or its profile takes no requests on the web, the section
says so instead of the form, and the engine refuses the same (409, its reason).
"""
from __future__ import annotations

from circulation import holds as holds_
from circulation import lists, queries
from circulation.ill import requester
from indexers.backend import BackendUnavailable
from indexers.query_model import Clause, Query
from lifecycle import reasons
from search.databases import DEFAULT
from search.route import Search
from search.titles import parse_title_id

from ..availability import holdings_of_page
from . import record_view as rv
from .core import Page, Redirect, Refused, page
from .search import MATERIAL_LABELS, contacts, language_name, pickups, route_of

MAX_MEMO = 200


async def _record(pg: Page, rid: int):
    route = route_of(pg)
    try:
        async with route.request():
            found = await route.fetch([rid])
            if not found:
                raise Refused(404, pg.w("title_not_found"))
            statuses = (await route.call(holdings_of_page(route.availability, found))).get(rid, [])
    except BackendUnavailable:
        raise Refused(503, pg.w("search_unavailable")) from None
    return found[0], statuses


def ill_offer(pg: Page, me, statuses) -> dict | None:
    """The 連携貸出 section for patron ``me`` on a title page: None (no section: no ILL here,
    or the patron's own system holds the title), else ``reason`` ("" when the form is shown)."""
    ill = pg.st.ill
    if ill is None or any(hs.holding.library == me.library for hs in statuses):
        return None
    profile = pg.circ.profiles.get(me.library)
    if profile is None or not ill.config.serves(me.library):
        why = reasons.decide("ill_not_offered", library=me.library)
    elif "web" not in profile.placing.request_channels:
        why = reasons.decide("ill_web_not_offered", channels=sorted(profile.placing.request_channels))
    else:
        return {"reason": ""}
    return {"reason": pg.w.message(why)}


def _rid(pg: Page) -> int:
    raw = pg.request.match_info.get("rid", "")
    if not raw.isdigit() or len(raw) > 12:
        raise Refused(404, pg.w("title_not_found"))
    return int(raw)


async def render_title(pg: Page, rid: int, *, status: int = 200, error: str = "", action: str = ""):
    record, statuses = await _record(pg, rid)
    view = rv.view(record)
    ctx = {"rec": view, "lines": rv.holding_lines(statuses, pg.lang),
           "reservations": rv.reservations_text(statuses, pg.lang), "error": error, "action": action,
           "me": None, "pickups": [], "contacts": [], "mine": [],
           "memo": pg.field("memo")[:MAX_MEMO] if error else "", "material_labels": MATERIAL_LABELS,
           "language_name": language_name, "pickup": "", "contact": "", "ill": None}
    if pg.patron:
        me = await queries.patron(pg.circ, pg.card)
        ctx["me"] = me
        ctx["pickups"], ctx["contacts"] = pickups(pg, me.library), contacts(pg, me.library)
        ctx["pickup"] = (pg.field("pickup_branch") if error else "") or me.default_pickup_branch or ""
        ctx["contact"] = (pg.field("contact_method") if error else "") or me.default_contact_method or ""
        ids = set(view.title_ids)
        ctx["mine"] = [r for r in await lists.patron_requests(pg.circ, pg.card) if r["title_id"] in ids]
        ctx["ill"] = ill_offer(pg, me, statuses)
    return pg.render("search/title.html", status=status, **ctx)


@page()
async def title_page(pg: Page):
    return await render_title(pg, _rid(pg))


@page()
async def title_by_id(pg: Page):
    """A circulation title id (``isbn:<ISBN-13>`` or a record number, e.g. from the
    予約ランキング) to its union record's page."""
    parsed = parse_title_id(pg.query("tid"))
    if parsed is None:
        raise Refused(404, pg.w("title_not_found"))
    kind, value = parsed
    if kind == "record":
        raise Redirect(f"/title/{int(value)}")
    route = route_of(pg)
    try:
        async with route.request():
            rs = await route.search(Search(Query(Clause("bath.isbn", "=", str(value)), ranked=False),
                                           pg.st.result_sets, databases=(DEFAULT,), ttl=60))
            ids = await route.page(rs, 0, 1)
    except BackendUnavailable:
        raise Refused(503, pg.w("search_unavailable")) from None
    if not ids:
        raise Refused(404, pg.w("title_not_found"))
    raise Redirect(f"/title/{ids[0]}")


@page("patron")
async def reserve(pg: Page):
    """予約する: one title, with the pickup branch, contact method and memo chosen."""
    rid = _rid(pg)
    record, _ = await _record(pg, rid)
    view = rv.view(record)
    res = await holds_.place(pg.circ, card=pg.card, title_id=view.title_id, title=view.display_title,
                             pickup_branch=pg.field("pickup_branch"), channel="web", role="patron", actor=pg.card,
                             contact_method=pg.field("contact_method") or None, memo=pg.field("memo")[:MAX_MEMO])
    if res.request_id is None:
        return await render_title(pg, rid, status=409, error=pg.w.message(res.decision), action="reserve")
    if res.position:
        pg.flash(pg.w("reserved_position", title=view.display_title, n=res.position))
    else:
        pg.flash(pg.w("reserved", title=view.display_title))
    raise pg.redirect("/my/holds")


@page("patron")
async def ill_request(pg: Page):
    """連携貸出を申し込む: ask partner libraries for the title (pickup branch, memo)."""
    rid = _rid(pg)
    if pg.st.ill is None:
        raise Refused(404, pg.w.message(reasons.decide("ill_not_configured")))
    record, _ = await _record(pg, rid)
    view = rv.view(record)
    res = await requester.place(pg.st.ill, card=pg.card, title_id=view.title_id, actor=pg.card,
                                pickup_branch=pg.field("pickup_branch"), memo=pg.field("memo")[:MAX_MEMO],
                                channel="web", role="patron")
    if not res.ok:
        return await render_title(pg, rid, status=409, action="ill",
                                  error=pg.w.message(reasons.decide(res.code, **(res.detail or {}))))
    pg.flash(pg.w("ill_requested", title=view.display_title))
    raise pg.redirect("/my/holds")


def routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/title", title_by_id),
        ("GET", r"/title/{rid}", title_page),
        ("POST", r"/title/{rid}/reserve", reserve),
        ("POST", r"/title/{rid}/ill", ill_request),
    ]
