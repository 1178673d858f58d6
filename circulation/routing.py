"""Copy routing: where a copy in a branch's hands goes, on the database.

A copy checked in, taken from the shelf for the pull list, freed from a hold shelf or
arriving from another branch is *routed*: trapped for the first request it can fill
(on the hold shelf at the pickup branch, or in transit to it), sent on, sent home,
or put back on the shelf. This module is that room, with a public face:

=============================  =====================================================================
:func:`route_copy`             a copy in hand: trap it, send it, shelve it
:func:`arrive`                 a copy in transit checked in somewhere
:func:`trap_from_shelf`        staff took an available copy for the pull list (its own unit of work)
:func:`put_on_shelf`           a request's copy on the hold shelf (deadline, hold_ready notice)
:func:`send`                   a copy into transit (``transits`` row, TRANSIT_SENT)
:func:`reshelve_or_send_home`  nobody wants it: back on the shelf, or home
:func:`close_transits`         a copy's open transits arrive (TRANSIT_ARRIVED)
:class:`Routing`               what happened (``kind``: :data:`HOLD_SHELF` …), the request, where to
=============================  =====================================================================

Everything but :func:`trap_from_shelf` runs inside the caller's unit of work; all
take their locks in the order of :mod:`circulation.schema` (title queue, item, then
requests); a request moves only through :func:`circulation.store.transition` and a
copy only through :func:`circulation.store.item_transition`.

Legs: other libraries' copies
-----------------------------
A copy that belongs to another library's flow is not ours to trap: a university
partner's copy (連携貸出, :mod:`circulation.partners`) comes for one request and goes
back, and the ISO 18626 ILL leg will do the same for a lending library's copy. Such a
flow plugs in here as a :class:`Leg`, registered with :func:`register_leg` when its
module is imported (``circulation/__init__.py`` imports the legs, so they are
registered whenever the service is). The leg says which copies are its own
(``owns``); :func:`route_copy` hands those copies to the leg's ``route`` (after the
"already secured" check), which uses the public functions above to put the copy on
the hold shelf, send it on or send it back. A leg may also take over cancelling one of
its requests whose copy is already on its way to us (``cancel_shipped``, used by
``holds.cancel``): it is then cancelled when it arrives. Nothing here imports a leg.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, NamedTuple

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import item_table as it
from lifecycle import policies
from lifecycle import queue as lq
from lifecycle import table as lt
from lifecycle.model import Decision, Request
from lifecycle.reasons import REASON_GROUP_SATISFIED

from . import notices
from . import schema as s
from .prepared import Prepared
from .prepared import execute as run_prepared
from .service import Circulation
from .store import (
    NotFound,
    get_row,
    item_moved,
    item_record,
    item_transition,
    item_written,
    lock_one,
    lock_rows,
    lock_title_queue,
    record_event,
    request_record,
    transition,
)

E, S, R = lt.Event, lt.State, lt.Role
IS, IE = it.ItemStatus, it.ItemEvent

# --------------------------------------------------------------------------- results

HOLD_SHELF = "hold_shelf"            # trapped (or arrived) at the pickup branch: on the hold shelf
TRANSIT_HOLD = "transit_hold"        # trapped elsewhere: in transit to the pickup branch
TRANSIT_ONWARD = "transit_onward"    # a hold transit arrived at the wrong branch: sent on
TRANSIT_HOME = "transit_home"        # nobody waiting, away from home: in transit to the owning branch
RESHELVE = "reshelve"                # nobody waiting, at home: available
WALK_IN = "walk_in"                  # a walk-in patron gets it; nothing trapped
ALREADY_SECURED = "already_secured"  # the copy is already secured for a request: nothing changed
NOT_AVAILABLE = "not_available"      # trap_from_shelf on a copy that is not on the shelf


@dataclass(frozen=True)
class Routing:
    kind: str                        # one of the kinds above, or a leg's own (partners.TO_PARTNER ...)
    request_id: int | None = None
    to_branch: str | None = None


QUEUE_STATES = (S.QUEUED.value, S.SUSPENDED.value)
_UNREAD = object()          # route_copy(held=), arrive(held=): not read by the caller


class Held(NamedTuple):
    """Of the request a copy is secured for, what route_copy reads (``held=``)."""
    id: int
    pickup_branch: str
SECURED_STATES = s.SECURED_STATES

# --------------------------------------------------------------------------- legs


@dataclass(frozen=True)
class Leg:
    """Another library's copies passing through our branches: who routes them.

    ``route(circ, conn, item_row, at_branch, *, role, actor) -> Routing`` is called
    inside the caller's unit of work with the title queue and the copy locked and the
    copy not secured for a request; ``cancel_shipped(circ, *, request_id, role, actor,
    channel, reason, card, branch) -> Decision`` (optional) takes over a staff
    cancellation of one of the leg's requests (``requests.kind == request_kind``) whose
    copy is SHIPPED."""
    name: str
    request_kind: str
    owns: Callable[[Any], bool]
    route: Callable[..., Awaitable[Routing]]
    cancel_shipped: Callable[..., Awaitable[Decision]] | None = None


LEGS: dict[str, Leg] = {}


def register_leg(leg: Leg) -> None:
    """Plug a leg in (once per name; its module calls this when it is imported)."""
    if leg.name in LEGS and LEGS[leg.name] != leg:
        raise ValueError(f"a leg named {leg.name!r} is already registered")
    LEGS[leg.name] = leg


def leg_for_copy(item_row) -> Leg | None:
    """The leg whose copy ``item_row`` is, or None (one of ours)."""
    return next((leg for leg in LEGS.values() if leg.owns(item_row)), None)


def leg_for_request(kind: str) -> Leg | None:
    """The leg whose requests have ``requests.kind == kind``, or None."""
    return next((leg for leg in LEGS.values() if leg.request_kind == kind), None)


# --------------------------------------------------------------------------- small helpers

def _role(role) -> lt.Role:
    return lt.Role(role)


def _acting_role(event: lt.Event, role) -> lt.Role:
    """The role an automatic consequence is recorded under: the caller's role when it
    may trigger ``event`` (staff trapping a copy), else the system (a return machine's
    check-in leads the system to trap the copy)."""
    r = _role(role)
    return r if r in lt.ACTORS[event] else R.SYSTEM


def _rid(record_id: str) -> int:
    return int(record_id)


def queue_record(row, card: str) -> Request:
    """A lifecycle record of a request row with a zero-padded id, so that ties on
    ``placed_at`` are broken by the numeric id in :mod:`lifecycle.queue`."""
    return dataclasses.replace(request_record(row, card), id=f"{row.id:012d}")


async def cards_of(conn: AsyncConnection, patron_ids: Iterable[int]) -> dict[int, str]:
    """Card numbers by patron id."""
    ids = set(patron_ids)
    if not ids:
        return {}
    res = await conn.execute(select(s.patrons.c.id, s.patrons.c.card_number)
                             .where(s.patrons.c.id.in_(ids)))
    return {r.id: r.card_number for r in res.all()}


async def lock_item(conn: AsyncConnection, item_id: int):
    """The copy's row, locked (the caller holds its title queue's lock)."""
    row = await lock_one(conn, s.items, s.items.c.id == item_id)
    if row is None:
        raise NotFound(f"item {item_id}")
    return row


def _sibling_links(base) -> list:
    """Conditions on requests that select the set and group siblings of the rows in base
    (none when no row is in a set or group)."""
    set_ids = {r.set_id for r in base if r.set_id}
    group_ids = {r.group_id for r in base if r.group_id}
    links = []
    if set_ids:
        links.append(s.requests.c.set_id.in_(set_ids))
    if group_ids:
        links.append(s.requests.c.group_id.in_(group_ids))
    return links


async def _load_queue(conn: AsyncConnection, title_id: str, library: str) -> tuple[list, dict[int, str]]:
    """The title's queue in ``library`` plus the set/group siblings of its members,
    locked (FOR UPDATE, in id order) and read after the lock, and the patrons' cards.

    The queue's rows are locked and read with their patrons' cards in one statement (the
    caller holds the title queue's lock, so no request joins the queue meanwhile); only
    when one of them is in a set or group are the siblings looked up and every row locked
    again in id order."""
    base = (await run_prepared(conn, _QUEUE_LOCKED, {"w_title_id": title_id, "w_library": library})).all()
    if not base:
        return [], {}
    links = _sibling_links(base)
    if not links:
        return base, {r.patron_id: r.queue_card for r in base}
    ids = {r.id for r in base}
    ids |= {r.id for r in (await conn.execute(select(s.requests.c.id).where(or_(*links)))).all()}
    rows = await lock_rows(conn, s.requests, s.requests.c.id.in_(ids), order_by=s.requests.c.id)
    return rows, await cards_of(conn, (r.patron_id for r in rows))


async def read_queue(conn: AsyncConnection, title_id: str, library: str) -> tuple[list, dict[int, str]]:
    """The title's queue in ``library`` plus the set/group siblings of its members, as
    :func:`route_copy` sees it, without locks (the lists), and the patrons' cards."""
    base = (await conn.execute(select(s.requests).where(
        s.requests.c.title_id == title_id, s.requests.c.library == library,
        s.requests.c.state.in_(QUEUE_STATES)))).all()
    if not base:
        return [], {}
    rows = {r.id: r for r in base}
    links = _sibling_links(base)
    if links:
        for r in (await conn.execute(select(s.requests).where(or_(*links)))).all():
            rows[r.id] = r
    rows_l = sorted(rows.values(), key=lambda r: r.id)
    return rows_l, await cards_of(conn, (r.patron_id for r in rows_l))


async def positions_for(conn: AsyncConnection, pairs: set[tuple[str, str]]) -> dict[int, int]:
    """Queue positions (予約順位) of every waiting request of the given (title, serving
    library) pairs, by request id (``lifecycle.queue.queue_positions``)."""
    out: dict[int, int] = {}
    for title_id, library in pairs:
        rows = (await run_prepared(conn, _QUEUE_ORDER, {"w_title_id": title_id, "w_library": library})).all()
        out.update(lq.queue_positions(rows))
    return out


async def secured_for(conn: AsyncConnection, item_id: int, *, lock: bool = False):
    """The request the copy is secured for (in transit to its pickup or on its hold
    shelf), or None; ``lock``: locked FOR UPDATE (the caller holds the copy's lock)."""
    return (await run_prepared(conn, _SECURED[lock], {"w_item_id": item_id})).first()


def _queue_of(*columns) -> Prepared:
    """``columns`` of the waiting requests (QUEUED, SUSPENDED) of a title in a serving
    library."""
    return Prepared(select(*columns).where(s.requests.c.title_id == bindparam("w_title_id"),
                                           s.requests.c.library == bindparam("w_library"),
                                           s.requests.c.state.in_(QUEUE_STATES)))


# built once (compiled once; on PostgreSQL run by the driver, circulation/prepared.py)
_SECURED_Q = select(s.requests).where(s.requests.c.item_id == bindparam("w_item_id"),
                                      s.requests.c.state.in_(SECURED_STATES))
_SECURED = (Prepared(_SECURED_Q), Prepared(_SECURED_Q.with_for_update()))   # [unlocked, locked]
# the queue's rows with their patrons' cards, locked in id order
_QUEUE_LOCKED = Prepared(select(s.requests, s.patrons.c.card_number.label("queue_card"))
                         .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
                         .where(s.requests.c.title_id == bindparam("w_title_id"),
                                s.requests.c.library == bindparam("w_library"),
                                s.requests.c.state.in_(QUEUE_STATES))
                         .order_by(s.requests.c.id).with_for_update(of=s.requests))
_QUEUE_ORDER = _queue_of(s.requests.c.id, s.requests.c.state, s.requests.c.placed_at)
_INSERT_TRANSIT = Prepared(s.transits.insert())
_OPEN_TRANSITS = Prepared(select(s.transits).where(s.transits.c.item_id == bindparam("w_item_id"),
                                                   s.transits.c.arrived_at.is_(None)).order_by(s.transits.c.id))
_TRANSIT_ARRIVED = Prepared(update(s.transits).where(s.transits.c.id == bindparam("w_id")))


# --------------------------------------------------------------------------- moving a copy

async def put_on_shelf(circ: Circulation, conn: AsyncConnection, row, event: lt.Event, item_row,
                       at_branch: str, *, role, actor: str) -> None:
    """Request ``row``'s copy goes on the hold shelf at its pickup branch by ``event``
    (TRAP_AT_PICKUP, ARRIVE_AT_PICKUP, a leg's RECEIVE_AT_PICKUP), with its deadline in
    open days of the pickup branch (counted from today; from the contact day once the
    patron is told, where the profile says so) and the hold-ready notice."""
    now = circ.now()
    if row.delivery:
        # 有料図書宅配: ready to ship, on the dispatch branch's list (circulation/delivery.py).
        # Nobody is asked to come: no hold_ready notice, no shelf deadline (never expires).
        await transition(conn, row, event, role=role, actor=actor, at=now, branch=at_branch,
                         item_id=item_row.id, ready_at=now, reason="delivery: ready to ship")
        await item_transition(conn, item_row, IE.PUT_ON_HOLD_SHELF, at=now, current_branch=at_branch)
        return
    # Nobody has told the patron yet: contacted_at is set when they are (the ready mail
    # really went out, or staff reached them by phone: notices.record_contact), and a
    # profile that counts the shelf period from the contact day moves the deadline then.
    profile = circ.profile(row.library)
    cal = await circ.calendar(conn, row.pickup_branch)
    deadline = policies.shelf_deadline(profile, cal, now)
    await transition(conn, row, event, role=role, actor=actor, at=now, branch=at_branch,
                     item_id=item_row.id, ready_at=now, contacted_at=None, shelf_deadline=deadline)
    await item_transition(conn, item_row, IE.PUT_ON_HOLD_SHELF, at=now, current_branch=at_branch)
    await notices.enqueue(conn, kind="hold_ready", patron_id=row.patron_id,
                          dedupe_key=f"hold_ready:{row.id}", at=now, request_id=row.id,
                          data=notices.hold_data(circ, row, shelf_deadline=deadline,
                                                 barcode=item_row.barcode))


async def send(circ: Circulation, conn: AsyncConnection, item_row, from_branch: str, to_branch: str,
               reason: str, *, request_id: int | None, role, actor: str) -> None:
    """The copy leaves ``from_branch`` for ``to_branch`` (``transits.reason``: hold,
    return_home, or a leg's own), for request ``request_id`` if any."""
    now = circ.now()
    transit = dict(item_id=item_row.id, request_id=request_id, from_branch=from_branch, to_branch=to_branch,
                   reason=reason, sent_at=now)
    log_it = dict(at=now, event="TRANSIT_SENT", actor_role=_role(role).value, actor=actor,
                  item_id=item_row.id, request_id=request_id, branch=from_branch, reason=f"{reason} -> {to_branch}")
    if conn.dialect.name == "postgresql":       # the transit and its audit row: one statement
        await run_prepared(conn, _TRANSIT_SENT_LOGGED, {**{f"v_{k}": v for k, v in transit.items()},
                                                        **{f"e_{k}": v for k, v in log_it.items()}})
        await item_transition(conn, item_row, IE.SEND, at=now, current_branch=from_branch)
        return
    await run_prepared(conn, _INSERT_TRANSIT, transit)
    await item_transition(conn, item_row, IE.SEND, at=now, current_branch=from_branch)
    await record_event(conn, **log_it)


def _transit_sent_logged() -> Prepared:
    """``send`` on PostgreSQL: the new transit and its TRANSIT_SENT row."""
    t, e = s.transits, s.events.c
    made = (insert(t).values({k: bindparam(f"v_{k}", type_=t.c[k].type)
                              for k in ("item_id", "request_id", "from_branch", "to_branch", "reason", "sent_at")})
            .returning(t.c.id).cte("made"))
    keys = ("at", "event", "actor_role", "actor", "item_id", "request_id", "branch", "reason")
    return Prepared(insert(s.events).from_select(
        list(keys), select(*(bindparam(f"e_{k}", type_=e[k].type) for k in keys)).select_from(made)))


_TRANSIT_SENT_LOGGED = _transit_sent_logged()


async def reshelve_or_send_home(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *,
                                role, actor: str) -> Routing:
    """Nobody wants the copy: in transit to its owning branch, or back on the shelf there."""
    now = circ.now()
    if at_branch != item_row.owning_branch:
        await send(circ, conn, item_row, at_branch, item_row.owning_branch, "return_home",
                   request_id=None, role=role, actor=actor)
        return Routing(TRANSIT_HOME, None, item_row.owning_branch)
    await item_transition(conn, item_row, IE.RESHELVE, at=now, current_branch=at_branch)
    return Routing(RESHELVE, None, at_branch)


async def close_transits(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *,
                         role, actor: str) -> None:
    """Every open transit of the copy arrives (at ``at_branch``), each logged as
    TRANSIT_ARRIVED (on PostgreSQL all of them and their audit rows in one statement)."""
    now = circ.now()
    if conn.dialect.name == "postgresql":
        await run_prepared(conn, _TRANSITS_ARRIVED_LOGGED, {
            "w_item_id": item_row.id, "w_at": now, "e_at": now, "e_event": "TRANSIT_ARRIVED",
            "e_actor_role": _role(role).value, "e_actor": actor, "e_item_id": item_row.id, "e_branch": at_branch})
        return
    for t in (await run_prepared(conn, _OPEN_TRANSITS, {"w_item_id": item_row.id})).all():
        await run_prepared(conn, _TRANSIT_ARRIVED, {"w_id": t.id, "arrived_at": now})
        await record_event(conn, at=now, event="TRANSIT_ARRIVED", actor_role=_role(role).value,
                           actor=actor, item_id=item_row.id, request_id=t.request_id, branch=at_branch,
                           reason=f"{t.reason} {t.from_branch} -> {t.to_branch}")


def _transits_arrived_logged() -> Prepared:
    """``close_transits`` on PostgreSQL: the open transits of a copy arrive, and one
    TRANSIT_ARRIVED row per transit, in the transits' order."""
    t = s.transits
    moved = (update(t).where(t.c.item_id == bindparam("w_item_id"), t.c.arrived_at.is_(None))
             .values(arrived_at=bindparam("w_at", type_=t.c.arrived_at.type))
             .returning(t.c.id, t.c.request_id, t.c.reason, t.c.from_branch, t.c.to_branch).cte("moved"))
    e = s.events.c
    cols = {"at": bindparam("e_at", type_=e.at.type), "event": bindparam("e_event", type_=e.event.type),
            "actor_role": bindparam("e_actor_role", type_=e.actor_role.type),
            "actor": bindparam("e_actor", type_=e.actor.type), "item_id": bindparam("e_item_id", type_=e.item_id.type),
            "request_id": moved.c.request_id, "branch": bindparam("e_branch", type_=e.branch.type),
            "reason": moved.c.reason + " " + moved.c.from_branch + " -> " + moved.c.to_branch}
    return Prepared(insert(s.events).from_select(list(cols), select(*cols.values()).order_by(moved.c.id)))


_TRANSITS_ARRIVED_LOGGED = _transits_arrived_logged()


# --------------------------------------------------------------------------- routing

async def route_copy(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *, role,
                     actor: str, walk_in: bool = False, locked: bool = False, held=_UNREAD) -> Routing:
    """Where a copy in hand at ``at_branch`` goes, inside the caller's unit of work.

    The request is chosen by :func:`lifecycle.queue.choose_request_to_trap` over the
    title's queue in the copy's owning system (plus the set/group siblings of those
    patrons): FIFO, suspended requests passed over, a later set volume never before the
    earlier ones are ready, a group whose member is secured skipped. At the pickup branch
    → TRAP_AT_PICKUP (hold shelf, deadline, hold_ready notice); elsewhere →
    TRAP_ELSEWHERE (transit to the pickup branch); the trapped request's group siblings
    → GROUP_SATISFIED. Nobody waiting → transit home or back on the shelf. ``walk_in``
    (a patron at the library wants it, and the profile serves walk-ins first) → nothing
    trapped, the copy is available for lending. A copy of a :class:`Leg` is the leg's to
    route. A copy marked on loan or lost is checked in first. Takes the title queue lock
    (already held by the caller is fine) and the item lock; ``locked``: the caller holds
    both and ``item_row`` is the copy as it is now in this transaction; ``held`` (with
    ``locked``): the request the copy is secured for as the caller read it under those
    locks (``id`` and ``pickup_branch``), or None."""
    now = circ.now()
    if not locked:
        await lock_title_queue(conn, item_row.title_id)
        item_row = await lock_item(conn, item_row.id)
    if held is _UNREAD or not locked:
        held = await secured_for(conn, item_row.id)
    if held is not None:
        return Routing(ALREADY_SECURED, held.id, held.pickup_branch)
    if IS(item_row.status) not in it.IN_HAND:     # marked on loan or lost, yet in hand here
        item_row = await item_moved(conn, item_row, IE.CHECK_IN, at=now)
    leg = leg_for_copy(item_row)
    if leg is not None:                       # e.g. 連携貸出: a university's copy goes to its request or back
        item_row = await item_written(conn, item_row)     # a leg gets the copy as stored
        return await leg.route(circ, conn, item_row, at_branch, role=role, actor=actor)
    profile = circ.profiles.get(item_row.library)
    if walk_in and (profile is None or profile.walk_in_first):
        await item_transition(conn, item_row, IE.RESHELVE, at=now, current_branch=at_branch)
        await record_event(conn, at=now, event="WALK_IN_FIRST", actor_role=_role(role).value,
                           actor=actor, item_id=item_row.id, branch=at_branch)
        return Routing(WALK_IN, None, at_branch)
    if profile is None:                       # another library's copy: no queue of ours
        return await reshelve_or_send_home(circ, conn, item_row, at_branch, role=role, actor=actor)

    rows, cards = await _load_queue(conn, item_row.title_id, item_row.library)
    records = [queue_record(r, cards[r.patron_id]) for r in rows]
    chosen = lq.choose_request_to_trap(records, item_record(item_row), now)
    if chosen is None:
        return await reshelve_or_send_home(circ, conn, item_row, at_branch, role=role, actor=actor)
    by_id = {r.id: r for r in rows}
    row = by_id[_rid(chosen.id)]
    if row.pickup_branch == at_branch:
        await put_on_shelf(circ, conn, row, E.TRAP_AT_PICKUP, item_row, at_branch,
                           role=_acting_role(E.TRAP_AT_PICKUP, role), actor=actor)
        routing = Routing(HOLD_SHELF, row.id, at_branch)
    else:
        await transition(conn, row, E.TRAP_ELSEWHERE, role=_acting_role(E.TRAP_ELSEWHERE, role),
                         actor=actor, at=now, branch=at_branch, item_id=item_row.id)
        await send(circ, conn, item_row, at_branch, row.pickup_branch, "hold", request_id=row.id,
                   role=role, actor=actor)
        routing = Routing(TRANSIT_HOLD, row.id, row.pickup_branch)
    for sib in lq.group_siblings_to_cancel(records, chosen):
        await transition(conn, by_id[_rid(sib.id)], E.GROUP_SATISFIED, role=R.SYSTEM, actor=actor,
                         at=now, reason=f"request {row.id} secured", cancelled_at=now,
                         cancel_reason=REASON_GROUP_SATISFIED, cancel_channel="system")
    return routing


async def arrive(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *, role,
                 actor: str, locked: bool = False, held=_UNREAD) -> Routing:
    """A copy in transit is checked in at ``at_branch`` (inside the caller's unit of work).

    Its hold transit at the pickup branch → ARRIVE_AT_PICKUP (hold shelf, deadline,
    hold_ready notice); at another branch → sent on to the pickup branch
    (:data:`TRANSIT_ONWARD`). A home transit, a transit whose request was cancelled on
    the way, or a copy not in transit at all → routed afresh by :func:`route_copy`
    (at home and nobody waiting: back on the shelf). ``locked``: the caller holds the
    title queue and item locks and ``item_row`` is the copy as it is now; ``held``: the
    caller (holding those locks) has read :func:`secured_for` the copy, locked."""
    if not locked:
        await lock_title_queue(conn, item_row.title_id)
        item_row = await lock_item(conn, item_row.id)
    await close_transits(circ, conn, item_row, at_branch, role=role, actor=actor)
    if held is _UNREAD:
        held = await secured_for(conn, item_row.id, lock=True)
    if held is not None and held.state == S.IN_TRANSIT.value:
        row = held
        if row.pickup_branch == at_branch:
            await put_on_shelf(circ, conn, row, E.ARRIVE_AT_PICKUP, item_row, at_branch,
                               role=role, actor=actor)
            return Routing(HOLD_SHELF, row.id, at_branch)
        await send(circ, conn, item_row, at_branch, row.pickup_branch, "hold", request_id=row.id,
                   role=role, actor=actor)
        return Routing(TRANSIT_ONWARD, row.id, row.pickup_branch)
    if held is not None:                      # already on a hold shelf: nothing to do
        return Routing(ALREADY_SECURED, held.id, held.pickup_branch)
    return await route_copy(circ, conn, item_row, at_branch, role=role, actor=actor, locked=True)


async def trap_from_shelf(circ: Circulation, *, barcode: str, branch: str, role, actor: str,
                          walk_in: bool = False) -> Routing:
    """Staff took an available copy from the shelf (the pull list): route it to the
    first request it can fill. A copy that is not available on the shelf changes
    nothing (:data:`NOT_AVAILABLE`)."""

    async def work(conn):
        item = await get_row(conn, s.items, s.items.c.barcode == barcode, what=f"item {barcode}")
        await lock_title_queue(conn, item.title_id)
        item = await lock_item(conn, item.id)
        if item.status != IS.AVAILABLE.value:
            return Routing(NOT_AVAILABLE, None, None)
        return await route_copy(circ, conn, item, branch, role=role, actor=actor, walk_in=walk_in)

    return await circ.db.run(work)
