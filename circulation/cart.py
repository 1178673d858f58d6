"""The reservation cart (予約カート), after the Iizuka guide: the patron puts titles in
the cart from the search results (予約カートに入れる), then places them all at once
with one pickup branch and one contact method (受取場所と連絡方法を選択 → 予約する →
予約完了), getting a "hold received" mail per title.

* A title is in a patron's cart at most once (``cart_items`` unique on patron +
  title); adding it again changes nothing. The cart keeps the order of adding. At most :data:`CART_MAX` titles.
* :func:`checkout` validates the pickup branch and contact method once (a wrong one
  refuses the whole checkout, nothing placed), then places each selected title with
  :func:`circulation.holds.place`, each in its own unit of work, in the order the
  titles were added. A placed title leaves the cart; a refused one stays, with the
  policy's reason in the result (the limit of 10 books, an AV title, ...). A title
  the patron already has a live hold on is not placed twice (``already_requested``).
* Every function works on the card's own cart only. Refusals are
  :class:`~lifecycle.model.Decision` values; an unknown card raises
  :class:`~circulation.store.NotFound`.

The cart row is removed in its own transaction after the hold is placed: if the
process dies in between, the title stays in the cart and a second checkout answers
``already_requested`` for it instead of placing it again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, insert, select

from lifecycle import policies
from lifecycle.model import Decision
from lifecycle.reasons import decide_for

from . import holds
from . import schema as s
from .bookshelf import pickup_problem
from .service import Circulation
from .store import LIVE_REQUEST_STATES, patron_by_card, patron_contact

CART_MAX = 50
TITLE_ID_MAX = 128
TITLE_MAX = 1000

@dataclass(frozen=True)
class CartItem:
    title_id: str
    title: str
    added_at: datetime


@dataclass(frozen=True)
class Placed:
    title_id: str
    title: str
    request_id: int
    position: int | None


@dataclass(frozen=True)
class Refused:
    title_id: str
    title: str
    decision: Decision


@dataclass(frozen=True)
class CheckoutResult:
    decision: Decision                       # refused: nothing was placed (bad pickup, empty cart ...)
    placed: list[Placed] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    pickup_branch: str | None = None
    contact_method: str | None = None


async def _rows(conn, patron_id: int) -> list:
    return list((await conn.execute(
        select(s.cart_items).where(s.cart_items.c.patron_id == patron_id)
        .order_by(s.cart_items.c.added_at, s.cart_items.c.id))).all())


async def items(circ: Circulation, card: str) -> list[CartItem]:
    """The cart, in the order the titles were added."""
    async with circ.db.read() as conn:
        p = await patron_by_card(conn, card)
        return [CartItem(r.title_id, r.title, r.added_at) for r in await _rows(conn, p.id)]


async def add(circ: Circulation, card: str, title_id: str, title: str = "") -> Decision:
    """Put a title in the cart; ``details["count"]`` is the number of titles in it."""
    title_id = (title_id or "").strip()
    if not title_id:
        return decide_for("cart", "title_missing")
    if len(title_id) > TITLE_ID_MAX:
        return decide_for("cart", "title_id_too_long", max=TITLE_ID_MAX)
    now = circ.now()

    async def work(conn) -> Decision:
        p = await patron_by_card(conn, card, lock=True)        # serializes one patron's cart
        count = (await conn.execute(select(func.count()).select_from(s.cart_items)
                                    .where(s.cart_items.c.patron_id == p.id))).scalar_one()
        there = (await conn.execute(select(s.cart_items.c.title_id).where(
            s.cart_items.c.patron_id == p.id, s.cart_items.c.title_id == title_id))).first()
        if there is not None:
            return decide_for("cart", "already_in_cart", count=count)
        if count >= CART_MAX:
            return decide_for("cart", "cart_full", max=CART_MAX)
        await conn.execute(insert(s.cart_items).values(patron_id=p.id, title_id=title_id,
                                                       title=(title or "")[:TITLE_MAX], added_at=now))
        return decide_for("cart", "added", count=count + 1)

    return await circ.db.run(work)


async def remove(circ: Circulation, card: str, title_id: str) -> Decision:
    """Take one title out of the cart."""
    async def work(conn) -> Decision:
        p = await patron_by_card(conn, card, lock=True)
        res = await conn.execute(delete(s.cart_items).where(s.cart_items.c.patron_id == p.id,
                                                            s.cart_items.c.title_id == title_id))
        if res.rowcount:
            return decide_for("cart", "removed", removed=res.rowcount)
        return decide_for("cart", "not_in_cart", title_id=title_id)

    return await circ.db.run(work)


async def clear(circ: Circulation, card: str) -> int:
    """Empty the cart; returns how many titles were in it."""
    async def work(conn) -> int:
        p = await patron_by_card(conn, card, lock=True)
        return (await conn.execute(delete(s.cart_items).where(s.cart_items.c.patron_id == p.id))).rowcount

    return await circ.db.run(work)


async def checkout(circ: Circulation, *, card: str, pickup_branch: str | None = None,
                   contact_method: str | None = None, memo: str = "",
                   title_ids: list[str] | None = None, channel: str = "web", role="patron",
                   actor: str | None = None) -> CheckoutResult:
    """Place the titles of the cart (all, or the ``title_ids`` ticked ☑) with one pickup
    branch and contact method (the patron's defaults when not given); see the module doc."""
    async with circ.db.read() as conn:
        p = await patron_by_card(conn, card)
        rows = await _rows(conn, p.id)
        live = {r.title_id for r in (await conn.execute(select(s.requests.c.title_id).where(
            s.requests.c.patron_id == p.id, s.requests.c.state.in_(LIVE_REQUEST_STATES)))).all()}
    profile = circ.profile(p.library)
    pickup = pickup_branch or p.default_pickup_branch
    if not pickup:
        return CheckoutResult(decide_for("cart", "pickup_required", choices=_pickup_choices(profile)))
    problem = pickup_problem(profile, pickup)
    if problem is not None:
        return CheckoutResult(problem)
    method = contact_method if contact_method is not None else p.default_contact_method
    ok = policies.contact_method_ok(profile, patron_contact(p), method)
    if not ok.allowed:
        return CheckoutResult(ok)
    if title_ids is not None:
        in_cart = {r.title_id for r in rows}
        missing = [t for t in title_ids if t not in in_cart]
        if missing:
            return CheckoutResult(decide_for("cart", "not_in_cart", title_ids=missing))
        wanted = set(title_ids)
        rows = [r for r in rows if r.title_id in wanted]
    if not rows:
        return CheckoutResult(decide_for("cart", "cart_empty"))

    placed: list[Placed] = []
    refused: list[Refused] = []
    for r in rows:
        if r.title_id in live:
            refused.append(Refused(r.title_id, r.title, decide_for("cart", "already_requested", title_id=r.title_id)))
            continue
        res = await holds.place(circ, card=card, title_id=r.title_id, pickup_branch=pickup,
                                channel=channel, role=role, actor=actor or card,
                                contact_method=method, memo=memo, title=r.title)
        if res.request_id is None:
            refused.append(Refused(r.title_id, r.title, res.decision))
            continue
        async with circ.db.transaction() as conn:
            await conn.execute(delete(s.cart_items).where(s.cart_items.c.patron_id == p.id,
                                                          s.cart_items.c.title_id == r.title_id))
        placed.append(Placed(r.title_id, r.title, res.request_id, res.position))
    return CheckoutResult(decide_for("cart", "checked_out", placed=len(placed), refused=len(refused)),
                          placed, refused, pickup, method)


def _pickup_choices(profile) -> list[str]:
    return sorted(c for c, bc in profile.branches.items() if bc.branch.pickup)
