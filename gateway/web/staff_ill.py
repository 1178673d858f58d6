"""The ILL queues of the workbench (docs/ill.md): our patrons' requests to partners
(the requester's queue: accept or decline an offer, give a silent supplier up, place a
request by title) and partners' requests to us (the supplier's queue: will supply,
cannot supply, ship, answer a cancellation or a renewal, recall, lost), and the
supplier's pull list.

The same engine functions as the staff JSON API (gateway/api/ill.py), with the same
arguments: the staff member's ``library`` keeps legs and supplies to their system (another
system's are "not found"), and the patron, copy and branch named go through the API's
scope check first.
"""
from __future__ import annotations

from circulation.ill import lists as ill_lists
from circulation.ill import requester, supplier
from lifecycle import reasons

from .core import Page, Refused, page
from .staff import branches_of, chosen_branch, in_scope

LEG_ACTIONS = {"accept": requester.accept_offer, "decline": requester.decline_offer, "give_up": requester.give_up}
SUPPLY_ACTIONS = ("will_supply", "cannot_supply", "ship", "cancel_yes", "cancel_no", "renew_yes", "renew_no",
                  "recall", "lost")


def _ill(pg: Page):
    if pg.st.ill is None:
        raise Refused(404, pg.w("ill_not_configured"))
    return pg.st.ill


def _said(pg: Page, out) -> None:
    """Flash an engine step's answer (its refusal's message, or done)."""
    if out.ok:
        pg.flash(pg.w("done"))
    else:
        pg.flash(pg.w.message(reasons.decide(out.code, **(out.detail or {}))) if out.code in reasons.REASONS
                 else pg.w("not_found"), "error")


@page("staff", ("circulation",))
async def queues(pg: Page):
    ill = _ill(pg)
    lib = pg.principal.library
    closed = pg.query("closed") == "yes"
    return pg.render("staff/ill.html", requests=await ill_lists.requester_queue(ill, lib, include_closed=closed),
                     supplies=await ill_lists.supplier_queue(ill, lib, include_closed=closed), closed=closed,
                     branch=pg.principal.branch or "")


@page("staff", ("circulation",))
async def leg_action(pg: Page):
    ill, action = _ill(pg), pg.field("action")
    fn = LEG_ACTIONS.get(action)
    if fn is None:
        raise Refused(400, pg.w("bad_input"))
    _said(pg, await fn(ill, leg_id=pg.int_field("leg_id"), actor=pg.principal.login, library=pg.principal.library))
    raise pg.redirect("/staff/ill")


@page("staff", ("circulation",))
async def supply_action(pg: Page):
    ill, action = _ill(pg), pg.field("action")
    if action not in SUPPLY_ACTIONS:
        raise Refused(400, pg.w("bad_input"))
    common = {"supply_id": pg.int_field("supply_id"), "actor": pg.principal.login, "library": pg.principal.library}
    note = pg.field("note") or None
    if action == "will_supply":
        out = await supplier.will_supply(ill, note=note, **common)
    elif action == "cannot_supply":
        out = await supplier.cannot_supply(ill, note=note, **common)
    elif action == "ship":
        branch, barcode = chosen_branch(pg), pg.field("barcode")
        await in_scope(pg, barcode=barcode, branch=branch)
        out = await supplier.ship(ill, barcode=barcode, branch=branch, due=None, **common)
    elif action in ("cancel_yes", "cancel_no"):
        out = await supplier.answer_cancel(ill, yes=action == "cancel_yes", **common)
    elif action in ("renew_yes", "renew_no"):
        out = await supplier.answer_renew(ill, yes=action == "renew_yes", due=None, **common)
    elif action == "recall":
        out = await supplier.recall(ill, note=note, **common)
    else:
        out = await supplier.declare_lost(ill, **common)
    _said(pg, out)
    raise pg.redirect("/staff/ill")


@page("staff", ("circulation",))
async def place(pg: Page):
    ill = _ill(pg)
    card, title_id, isbn = pg.field("card_number"), pg.field("title_id"), pg.field("isbn")
    if not title_id and not isbn:
        raise Refused(400, pg.w("bad_input"))
    await in_scope(pg, card_number=card)
    res = await requester.place(ill, card=card, title_id=title_id or None, isbn=isbn or None,
                                pickup_branch=pg.field("pickup_branch") or pg.principal.branch or "",
                                supplier=None, actor=pg.principal.login, memo=pg.field("memo"))
    _said(pg, res)
    raise pg.redirect("/staff/ill")


@page("staff", ("circulation",))
async def pull(pg: Page):
    ill = _ill(pg)
    branch = chosen_branch(pg)
    await in_scope(pg, branch=branch)
    return pg.render("staff/ill_pull.html", branch=branch, branches=branches_of(pg),
                     rows=await ill_lists.pull_list(ill, branch))


def routes() -> list[tuple[str, str, object]]:
    return [("GET", "/staff/ill", queues), ("POST", "/staff/ill/leg", leg_action),
            ("POST", "/staff/ill/supply", supply_action), ("POST", "/staff/ill/requests", place),
            ("GET", "/staff/ill/pull-list", pull)]
