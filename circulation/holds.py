"""Holds on the database: placing reservations (予約) and requests (リクエスト), set and
group reservations, cancelling, suspending, changing, and the review of requests for
items nobody owns.

The other jobs of a hold live next door: routing copies to the queue (trap, transits,
hold shelf) in :mod:`circulation.routing`, the nightly shelf expiry, lapse and purge in
:mod:`circulation.jobs`, the lists patrons and staff see in :mod:`circulation.lists`,
their labels in :mod:`circulation.labels`. The rules are pure (``policies.decide_placing``,
``decide_cancel``, ``decide_change``); this module loads what they read and writes
what they decide.

Every operation that writes is one unit of work run through ``circ.db.run`` (retried
on deadlocks and lost conditional updates). Request states only change through
:func:`circulation.store.transition` (audited). Locks are taken in the documented
order: title queue, item, patron, requests.

Refusals are values: a :class:`~lifecycle.model.Decision` (code, Japanese and English
message, from :mod:`lifecycle.reasons`). An unknown card, barcode or request raises
:class:`~circulation.store.NotFound`; so does a request that is not the given patron's
(to that patron it does not exist).

Queue order is FIFO per title and serving system, by ``placed_at`` and then by the
request's numeric id (records handed to :mod:`lifecycle.queue` carry zero-padded ids,
because that module breaks ties on the id as a string).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import item_table as it
from lifecycle import policies
from lifecycle import queue as lq
from lifecycle import table as lt
from lifecycle.model import Decision, Request
from lifecycle.reasons import OK, REASON_REFUSED, decide

from . import notices, routing
from . import schema as s
from .prepared import Prepared
from .prepared import execute as run_prepared
from .reads import patron_snapshot, placing_reads, placing_reads_statement
from .service import Circulation
from .store import (
    LIVE_REQUEST_STATES,
    PATRON_BY_CARD,
    ConcurrentChange,
    NotFound,
    Step,
    get_row,
    item_record,
    lock_rows,
    lock_title_queue,
    new_request,
    patron_contact,
    record_event,
    request_record,
    request_row,
    transition,
)

E, S, R = lt.Event, lt.State, lt.Role
IS = it.ItemStatus

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PlaceResult:
    request_id: int | None
    decision: Decision
    position: int | None = None          # 予約順位 after placing (None for a request in review)


@dataclass(frozen=True)
class SetResult:
    set_id: str | None
    request_ids: list[int]
    decision: Decision


@dataclass(frozen=True)
class GroupResult:
    group_id: str | None
    request_ids: list[int]
    decision: Decision


# --------------------------------------------------------------------------- refusals

class _Refused(Exception):
    """Raised inside a unit of work to roll it back and return a refusal."""

    def __init__(self, decision: Decision):
        super().__init__(decision.code)
        self.decision = decision


# copies that no longer make the title "owned"
GONE_ITEM_STATUSES = tuple(sorted(st.value for st in it.GONE))
CHANGEABLE_STATES = tuple(sorted(st.value for st in policies.CHANGEABLE_STATES))


# --------------------------------------------------------------------------- small helpers

def _role(role) -> lt.Role:
    return lt.Role(role)


async def _patron_by_card(conn: AsyncConnection, card: str, *, lock: bool = False):
    row = (await run_prepared(conn, PATRON_BY_CARD[lock], {"w_card": card})).first()
    if row is None:
        raise NotFound(f"patron {card}")
    return row


# statements of placing, built once (compiled once; on PostgreSQL run by the driver)
_OWNED = Prepared(select(s.items).where(s.items.c.title_id == bindparam("w_title_id"),
                                        s.items.c.library == bindparam("w_library"),
                                        s.items.c.status.not_in(GONE_ITEM_STATUSES)).order_by(s.items.c.id))
_PLACING_READS = placing_reads_statement(GONE_ITEM_STATUSES, routing.QUEUE_STATES)   # PostgreSQL
_QUEUE_TITLE = Prepared(select(s.title_queues.c.title).where(s.title_queues.c.title_id == bindparam("w_title_id")))


async def _patron_by_id(conn: AsyncConnection, patron_id: int):
    return await get_row(conn, s.patrons, s.patrons.c.id == patron_id, what=f"patron {patron_id}")


def _with_details(d: Decision, **extra) -> Decision:
    return Decision(d.allowed, d.code, d.message_ja, d.message_en, {**d.details, **extra})


def _own(row, patron_row) -> None:
    if row.patron_id != patron_row.id:
        raise NotFound(f"request {row.id}")


async def _check_card(conn: AsyncConnection, row, card: str | None) -> None:
    """With ``card`` given, the request must be that patron's (else it is not found)."""
    if card is None:
        return
    _own(row, await _patron_by_card(conn, card))


# --------------------------------------------------------------------------- placing

async def _place_in(circ: Circulation, conn: AsyncConnection, patron_row, *, title_id: str,
                    pickup_branch: str, channel: str, role, actor: str, contact_method: str | None,
                    memo: str, material_type: str | None, publication_date, submitted_at_branch,
                    title: str, set_id, set_position: int, group_id,
                    delivery: bool = False) -> tuple[int | None, Decision, Any, list | None]:
    """Decide and (when allowed) insert one request, inside the caller's unit of work;
    the title queue and the patron row are already locked. Returns the request's id, the
    decision, the request as written and (PostgreSQL) the title's waiting requests read
    before it was inserted, under the queue's lock, for :func:`_position` (None, decision,
    None, None when refused). ``delivery`` (有料図書宅配):
    decided by ``policies.can_place_delivery``, picked up by the dispatch branch."""
    now = circ.now()
    role = _role(role)
    system = patron_row.library
    profile = circ.profile(system)
    if conn.dialect.name == "postgresql":     # the snapshot, the copies and the queue: one statement
        snapshot, owned, waiting = await placing_reads(conn, _PLACING_READS, patron_row, title_id, system)
    else:
        owned = (await run_prepared(conn, _OWNED, {"w_title_id": title_id, "w_library": system})).all()
        snapshot, waiting = await patron_snapshot(conn, patron_row), None
    if not title:   # the display title lists and mails show: the queue's, else the id
        title = (await run_prepared(conn, _QUEUE_TITLE, {"w_title_id": title_id})).scalar() or title_id
    item = policies.representative(profile, [(item_record(r), r.status == IS.AVAILABLE.value)
                                             for r in owned])
    kind = policies.kind_of(item)
    material = item.material_type if item is not None else (material_type or "book")
    contact = contact_method if contact_method is not None else patron_row.default_contact_method
    pickup_branch = policies.pickup_for(profile, pickup_branch, delivery=delivery)
    candidate = Request(id="new", patron_card=patron_row.card_number, title_id=title_id, kind=kind,
                        material_type=material, pickup_branch=pickup_branch, contact_method=contact,
                        channel=channel, placed_at=now, submitted_at_branch=submitted_at_branch,
                        publication_date=publication_date, set_id=set_id, set_position=set_position,
                        group_id=group_id, memo=memo, delivery=delivery)
    decision = policies.decide_placing(profile, snapshot, item, candidate, now, role=role, delivery=delivery)
    if not decision.allowed:
        return None, decision, None, None
    rule = policies.branch_material_rule(profile, item) if kind == "reservation" else None

    # PLACE, then VALIDATE and ENQUEUE (or to purchase review), each asked of the table:
    # written at once (on PostgreSQL one statement), the request as written is returned
    nxt = E.ENQUEUE if kind == "reservation" else E.SEND_TO_PURCHASE_REVIEW
    row = await new_request(conn, dict(
        patron_id=patron_row.id, library=system, title_id=title_id, kind=kind, material_type=material,
        pickup_branch=pickup_branch, contact_method=contact, channel=channel, state=S.NEW.value,
        placed_at=now, submitted_at_branch=submitted_at_branch, publication_date=publication_date,
        set_id=set_id, set_position=set_position, group_id=group_id, memo=memo, title=title,
        rule_branch=rule.branch if rule is not None else None, delivery=delivery, updated_at=now),
        dict(at=now, event="PLACE", actor_role=role.value, actor=actor, to_state=S.NEW.value, channel=channel,
             branch=submitted_at_branch or pickup_branch, reason=f"{kind} delivery" if delivery else kind),
        Step(E.VALIDATE, R.SYSTEM, actor, now, channel), Step(nxt, R.SYSTEM, actor, now, channel),
        notice=notices.pending("hold_received", patron_id=patron_row.id, dedupe_key="hold_received:", at=now,
                               data=notices.hold_data(circ, _Placed(title, title_id, pickup_branch, contact, kind),
                                                      placed_at=now)))
    return row.id, decision, row, waiting


class _Placed(NamedTuple):
    """What ``notices.hold_data`` reads of a request, before it is written."""
    title: str
    title_id: str
    pickup_branch: str
    contact_method: str | None
    kind: str


async def _position(conn: AsyncConnection, rid: int, row=None, waiting: list | None = None) -> int | None:
    """The request's queue position; ``row``: the request as this transaction left it;
    ``waiting``: the other waiting requests of its queue as read under the queue's lock
    in this transaction (then nothing is read again)."""
    if row is None:
        row = await request_row(conn, rid)
    if row.state not in routing.QUEUE_STATES:
        return None
    if waiting is not None:
        return lq.queue_positions([*waiting, row]).get(rid)
    return (await routing.positions_for(conn, {(row.title_id, row.library)})).get(rid)


async def place(circ: Circulation, *, card: str, title_id: str, pickup_branch: str, channel: str,
                role, actor: str, contact_method: str | None = None, memo: str = "",
                kind: str = "reservation", material_type: str | None = None, publication_date=None,
                submitted_at_branch: str | None = None, title: str = "", set_id: str | None = None,
                set_position: int = 0, group_id: str | None = None,
                delivery: bool = False) -> PlaceResult:
    """Place a hold for the patron ``card`` on ``title_id``.

    The patron's library is the serving system and its profile decides. When that system
    owns a copy of the title it is a reservation (予約) and is queued; when it owns none
    it is a request (リクエスト) and goes to purchase/ILL review — whatever ``kind`` the
    caller passed (the seeds define the two by ownership). ``material_type`` and
    ``publication_date`` describe a requested title nobody owns. A refusal inserts
    nothing and returns the policy's Decision.

    ``delivery`` (有料図書宅配専用よやく・リクエスト): the copy is to be shipped to the
    patron (circulation/delivery.py); ``pickup_branch`` is then the profile's dispatch
    branch whatever was passed."""
    del kind  # derived from ownership, see the docstring

    async def work(conn):
        queue = await lock_title_queue(conn, title_id, title)
        patron_row = await _patron_by_card(conn, card, lock=True)
        rid, decision, row, waiting = await _place_in(
            circ, conn, patron_row, title_id=title_id, pickup_branch=pickup_branch, channel=channel,
            role=role, actor=actor, contact_method=contact_method, memo=memo,
            material_type=material_type, publication_date=publication_date,
            submitted_at_branch=submitted_at_branch, title=title or queue.title, set_id=set_id,
            set_position=set_position, group_id=group_id, delivery=delivery)
        if rid is None:
            raise _Refused(decision)
        return PlaceResult(rid, decision, await _position(conn, rid, row, waiting))

    try:
        return await circ.db.run(work)
    except _Refused as r:
        return PlaceResult(None, r.decision)


async def _place_many(circ: Circulation, *, card: str, title_ids: list[str], link: str,
                      titles: dict[str, str] | None, options: dict) -> tuple[str | None, list[int], Decision]:
    if not title_ids:
        return None, [], decide("empty_titles")
    if len(set(title_ids)) != len(title_ids):
        return None, [], decide("duplicate_titles")
    link_id = f"{link}-{uuid.uuid4().hex[:16]}"
    titles = titles or {}
    base_title = options.pop("title", "")

    async def work(conn):
        for t in sorted(title_ids):                     # lock order: title queues, then the patron
            await lock_title_queue(conn, t, titles.get(t, base_title))
        patron_row = await _patron_by_card(conn, card, lock=True)
        ids, last = [], None
        for pos, t in enumerate(title_ids, 1):
            extra = ({"set_id": link_id, "set_position": pos, "group_id": None} if link == "set"
                     else {"set_id": None, "set_position": 0, "group_id": link_id})
            rid, last, _row, _waiting = await _place_in(circ, conn, patron_row, title_id=t,
                                        title=titles.get(t, base_title), **options, **extra)
            if rid is None:
                raise _Refused(_with_details(last, title_id=t, index=pos))
            ids.append(rid)
        return link_id, ids, last

    try:
        return await circ.db.run(work)
    except _Refused as r:
        return None, [], r.decision


def _options(pickup_branch, channel, role, actor, contact_method, memo, material_type,
             publication_date, submitted_at_branch, title) -> dict:
    return dict(pickup_branch=pickup_branch, channel=channel, role=role, actor=actor,
                contact_method=contact_method, memo=memo, material_type=material_type,
                publication_date=publication_date, submitted_at_branch=submitted_at_branch, title=title)


async def place_set(circ: Circulation, *, card: str, title_ids: list[str], pickup_branch: str,
                    channel: str, role, actor: str, contact_method: str | None = None, memo: str = "",
                    kind: str = "reservation", material_type: str | None = None,
                    publication_date=None, submitted_at_branch: str | None = None, title: str = "",
                    titles: dict[str, str] | None = None) -> SetResult:
    """セット予約 (優先順): one request per title, prepared in the given order (set positions
    1..n). All or nothing: the first refusal rolls every placement back and is returned
    with ``details['title_id']`` and ``details['index']``. ``titles`` maps title ids to
    display titles."""
    del kind
    sid, ids, d = await _place_many(circ, card=card, title_ids=list(title_ids), link="set",
                                    titles=titles, options=_options(
                                        pickup_branch, channel, role, actor, contact_method, memo,
                                        material_type, publication_date, submitted_at_branch, title))
    return SetResult(sid, ids, d)


async def place_group(circ: Circulation, *, card: str, title_ids: list[str], pickup_branch: str,
                      channel: str, role, actor: str, contact_method: str | None = None,
                      memo: str = "", kind: str = "reservation", material_type: str | None = None,
                      publication_date=None, submitted_at_branch: str | None = None, title: str = "",
                      titles: dict[str, str] | None = None) -> GroupResult:
    """グループ予約: any one of the titles will do; the first copy secured wins and the
    other members are cancelled (GROUP_SATISFIED). All or nothing, like :func:`place_set`."""
    del kind
    gid, ids, d = await _place_many(circ, card=card, title_ids=list(title_ids), link="group",
                                    titles=titles, options=_options(
                                        pickup_branch, channel, role, actor, contact_method, memo,
                                        material_type, publication_date, submitted_at_branch, title))
    return GroupResult(gid, ids, d)


async def reorder_set(circ: Circulation, *, card: str, set_id: str, request_ids: list[int], role,
                      actor: str) -> Decision:
    """Change the order of a set reservation (the up/down buttons). ``request_ids`` must be
    exactly the patron's live requests of the set, in the new order; each moved request
    gets a ``REORDER_SET`` audit event."""
    now = circ.now()

    async def work(conn):
        patron_row = await _patron_by_card(conn, card)
        members = (await conn.execute(select(s.requests).where(
            s.requests.c.set_id == set_id, s.requests.c.patron_id == patron_row.id))).all()
        if not members:
            raise NotFound(f"set {set_id}")
        for t in sorted({m.title_id for m in members}):
            await lock_title_queue(conn, t)
        await _patron_by_card(conn, card, lock=True)
        members = await lock_rows(conn, s.requests, s.requests.c.set_id == set_id,
                                  s.requests.c.patron_id == patron_row.id, order_by=s.requests.c.id)
        live = {m.id: m for m in members if m.state in LIVE_REQUEST_STATES}
        if sorted(request_ids) != sorted(live) or len(set(request_ids)) != len(request_ids):
            raise _Refused(decide("set_mismatch", live=sorted(live)))
        for pos, rid in enumerate(request_ids, 1):
            m = live[rid]
            if m.set_position != pos:
                await conn.execute(update(s.requests).where(s.requests.c.id == rid)
                                   .values(set_position=pos, updated_at=now))
                await record_event(conn, at=now, event="REORDER_SET", actor_role=_role(role).value,
                                   actor=actor, request_id=rid, from_state=m.state, to_state=m.state,
                                   reason=f"set position {m.set_position} -> {pos}")
        return OK

    try:
        return await circ.db.run(work)
    except _Refused as r:
        return r.decision


# --------------------------------------------------------------------------- cancelling

async def cancel(circ: Circulation, *, request_id: int, role, actor: str, channel: str,
                 reason: str = "", card: str | None = None, branch: str | None = None) -> Decision:
    """Cancel a request (policies.can_cancel).

    Before the copy is secured: CANCEL (patron on the web, or staff). Secured (in transit
    or on the hold shelf): staff only (CANCEL_SECURED; the web answers
    ``secured_staff_only``), and in Komae only at the pickup branch (``branch`` is the
    counter where staff cancel). An ILL request before shipping: REQUEST_CANCEL (the
    partner answers later). With ``card`` the request must be that patron's. A copy
    freed from the hold shelf is routed again at once (the next patron gets it); a copy
    freed while in transit is routed when it arrives (``routing.arrive``). Queues a
    ``hold_cancelled`` notice."""
    now = circ.now()
    role = _role(role)
    async with circ.db.read() as conn:
        peek = await request_row(conn, request_id)
    leg = routing.leg_for_request(peek.kind)
    if leg is not None and leg.cancel_shipped is not None and peek.state == S.SHIPPED.value and role == R.STAFF:
        # another library's copy on its way to us (連携貸出): the leg cancels it on arrival
        return await leg.cancel_shipped(circ, request_id=request_id, role=role, actor=actor,
                                        channel=channel, reason=reason, card=card, branch=branch)

    async def work(conn):
        row = await request_row(conn, request_id)
        await _check_card(conn, row, card)
        await lock_title_queue(conn, row.title_id)
        row = await request_row(conn, request_id)
        item = await routing.lock_item(conn, row.item_id) if row.item_id is not None else None
        row = await request_row(conn, request_id, lock=True)
        profile = circ.profile(row.library)
        decision, event = policies.decide_cancel(profile, request_record(row, ""), now, channel=channel,
                                                 role=role, at_branch=branch)
        if event is None:
            return decision
        if event == E.REQUEST_CANCEL:             # the partner answers later
            await transition(conn, row, event, role=role, actor=actor, at=now,
                             channel=channel, branch=branch, reason=reason)
            return decision
        state = lt.State(row.state)
        why = policies.recorded_reason(reason, channel)
        await transition(conn, row, event, role=role, actor=actor, at=now, channel=channel,
                         branch=branch, reason=why, cancelled_at=now, cancel_reason=why,
                         cancel_channel=channel)
        await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                              dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                              data=notices.hold_data(circ, row, reason=why, channel=channel))
        if state == S.ON_HOLD_SHELF and item is not None:
            await routing.route_copy(circ, conn, item, row.pickup_branch, role=role, actor=actor)
        return decision

    return await circ.db.run(work)


# --------------------------------------------------------------------------- suspend, resume, change

async def _queued_op(circ: Circulation, request_id: int, card: str | None, op) -> Decision:
    async def work(conn):
        row = await request_row(conn, request_id)
        await _check_card(conn, row, card)
        await lock_title_queue(conn, row.title_id)
        row = await request_row(conn, request_id, lock=True)
        return await op(conn, row)

    return await circ.db.run(work)


async def _queued_transition(circ: Circulation, request_id: int, card: str | None, *,
                             from_state: S, event: lt.Event, refusal: str, role, actor: str,
                             channel: str | None, reason: str) -> Decision:
    """event on a request in from_state (else the refusal code), under the queue lock."""
    now = circ.now()

    async def op(conn, row):
        if row.state != from_state.value:
            return decide(refusal, state=row.state)
        await transition(conn, row, event, role=role, actor=actor, at=now, channel=channel,
                         reason=reason)
        return OK

    return await _queued_op(circ, request_id, card, op)


async def suspend(circ: Circulation, *, request_id: int, role, actor: str, card: str | None = None,
                  channel: str | None = None, reason: str = "") -> Decision:
    """Pause a queued request (SUSPEND): it keeps its place but is passed over."""
    return await _queued_transition(circ, request_id, card, from_state=S.QUEUED, event=E.SUSPEND,
                                    refusal="not_suspendable", role=role, actor=actor,
                                    channel=channel, reason=reason)


async def resume(circ: Circulation, *, request_id: int, role, actor: str, card: str | None = None,
                 channel: str | None = None, reason: str = "") -> Decision:
    """Resume a suspended request (RESUME), back in its old place in the queue."""
    return await _queued_transition(circ, request_id, card, from_state=S.SUSPENDED,
                                    event=E.RESUME, refusal="not_suspended", role=role,
                                    actor=actor, channel=channel, reason=reason)


def _change_values(row, pickup_branch, contact_method) -> dict:
    values = {}
    if pickup_branch is not None and pickup_branch != row.pickup_branch:
        values["pickup_branch"] = pickup_branch
    if contact_method is not None and contact_method != row.contact_method:
        values["contact_method"] = contact_method
    return values


async def _apply_change(circ: Circulation, conn, row, values: dict, *, role, actor: str) -> None:
    now = circ.now()
    res = await conn.execute(update(s.requests).where(s.requests.c.id == row.id,
                                                      s.requests.c.state == row.state)
                             .values(updated_at=now, **values))
    if res.rowcount != 1:
        raise ConcurrentChange(f"request {row.id} is no longer {row.state}")
    what = ", ".join(f"{k}: {getattr(row, k)} -> {v}" for k, v in sorted(values.items()))
    await record_event(conn, at=now, event="CHANGE", actor_role=_role(role).value, actor=actor,
                       request_id=row.id, from_state=row.state, to_state=row.state, reason=what)


async def change(circ: Circulation, *, request_id: int, card: str | None = None,
                 pickup_branch: str | None = None, contact_method: str | None = None, role,
                 actor: str) -> Decision:
    """Change the pickup branch and/or contact method of a request not yet secured
    (audited as ``CHANGE``; queues a ``hold_changed`` notice)."""
    now = circ.now()

    async def op(conn, row):
        profile = circ.profile(row.library)
        patron_row = await _patron_by_id(conn, row.patron_id)
        d = policies.decide_change(profile, patron_contact(patron_row), request_record(row, patron_row.card_number),
                                   pickup_branch=pickup_branch, contact_method=contact_method, role=role)
        if not d.allowed:
            return d
        values = _change_values(row, pickup_branch, contact_method)
        if values:
            await _apply_change(circ, conn, row, values, role=role, actor=actor)
            new = await request_row(conn, row.id)
            await notices.enqueue(conn, kind="hold_changed", patron_id=row.patron_id,
                                  dedupe_key=f"hold_changed:{row.id}:{now.isoformat()}:"
                                             f"{new.pickup_branch}:{new.contact_method}",
                                  at=now, request_id=row.id, data=notices.hold_data(circ, new))
        return OK

    return await _queued_op(circ, request_id, card, op)


async def update_patron_requests(circ: Circulation, *, card: str, pickup_branch: str | None = None,
                                 contact_method: str | None = None, role, actor: str) -> int:
    """The settings page's "update my existing requests too": give every request of the
    patron that is not yet secured the new pickup branch and/or contact method (a Komae
    リクエスト keeps the branch it was handed in at, which is its pickup). Returns
    how many requests changed; a pickup branch or contact method the patron's library
    does not accept changes nothing (0). One ``hold_changed`` notice per changed request."""
    now = circ.now()

    async def work(conn):
        patron_row = await _patron_by_card(conn, card, lock=True)
        profile = circ.profile(patron_row.library)
        d = policies.settings_ok(profile, patron_contact(patron_row), pickup_branch, contact_method)
        if not d.allowed:
            return 0
        rows = await lock_rows(conn, s.requests, s.requests.c.patron_id == patron_row.id,
                               s.requests.c.state.in_(CHANGEABLE_STATES), order_by=s.requests.c.id)
        n = 0
        for row in rows:
            keep = policies.keeps_pickup(profile, request_record(row, patron_row.card_number))
            values = _change_values(row, None if keep else pickup_branch, contact_method)
            if not values:
                continue
            await _apply_change(circ, conn, row, values, role=role, actor=actor)
            new = await request_row(conn, row.id)
            await notices.enqueue(conn, kind="hold_changed", patron_id=row.patron_id,
                                  dedupe_key=f"hold_changed:{row.id}:{now.isoformat()}:"
                                             f"{new.pickup_branch}:{new.contact_method}",
                                  at=now, request_id=row.id, data=notices.hold_data(circ, new))
            n += 1
        return n

    return await circ.db.run(work)


# --------------------------------------------------------------------------- review of リクエスト


_REVIEW_EVENTS = {"purchase": E.PURCHASE_APPROVED, "ill": E.SEND_TO_PARTNER, "refuse": E.REJECT}


async def review(circ: Circulation, *, request_id: int, decision: str, reason: str = "", role,
                 actor: str) -> Decision:
    """Staff decide a request for an item nobody in the system owns: ``purchase``
    (PURCHASE_APPROVED: queued, in acceptance order, for the copy being bought),
    ``ill`` (SEND_TO_PARTNER: borrowed from another library; the ISO 18626 connector
    takes it from SENT) or ``refuse`` (REJECT, with ``reason`` shown to the patron in the
    cancelled list and the hold_cancelled notice)."""
    if decision not in _REVIEW_EVENTS:
        raise ValueError(f"review decision must be one of {sorted(_REVIEW_EVENTS)}, not {decision!r}")
    event = _REVIEW_EVENTS[decision]
    if _role(role) != R.STAFF:
        return decide("staff_only")
    now = circ.now()

    async def work(conn):
        row = await request_row(conn, request_id)
        await lock_title_queue(conn, row.title_id)
        row = await request_row(conn, request_id, lock=True)
        if row.state != S.PURCHASE_REVIEW.value:
            return decide("not_in_review", state=row.state)
        changes = {"review_note": reason or None}
        if event == E.REJECT:
            changes.update(cancelled_at=now, cancel_reason=reason or REASON_REFUSED, cancel_channel="counter")
        await transition(conn, row, event, role=role, actor=actor, at=now, reason=reason, **changes)
        if event == E.REJECT:
            await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                                  dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                                  data=notices.hold_data(circ, row, reason=reason or REASON_REFUSED,
                                                    channel="counter"))
        return OK

    return await circ.db.run(work)
