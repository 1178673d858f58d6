"""Holds on the database: placing reservations (予約) and requests (リクエスト), set and
group reservations, cancelling, suspending, changing, routing copies to the queue
(trap at the pickup branch or send in transit), arrivals, the hold shelf and its
expiry, the review of requests for items nobody owns, and the lists patrons and
staff see.

Every operation that writes is one unit of work run through ``circ.db.run`` (retried
on deadlocks and lost conditional updates); :func:`route_copy` and :func:`arrive` run
inside the caller's unit of work (``loans.check_in`` calls them). Request states only
change through :func:`circulation.store.transition` (audited). Locks are taken in the
documented order: title queue, item, patron, requests.

Refusals are values: the policy :class:`~lifecycle.model.Decision` (code, Japanese and
English message). An unknown card, barcode or request raises
:class:`~circulation.store.NotFound`; so does a request that is not the given patron's
(to that patron it does not exist).

Queue order is FIFO per title and serving system, by ``placed_at`` and then by the
request's numeric id (records handed to :mod:`lifecycle.queue` carry zero-padded ids,
because that module breaks ties on the id as a string).
"""
from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import item_table as it
from lifecycle import policies, queue as lq
from lifecycle import table as lt
from lifecycle.model import Decision, Request
from lifecycle.reasons import (
    OK, REASON_GROUP_SATISFIED, REASON_PUBLICATION_LAPSED, REASON_REFUSED, REASON_SHELF_EXPIRED, decide,
)

from . import notices
from . import schema as s
from .service import Circulation
from .store import (
    LIVE_REQUEST_STATES, ConcurrentChange, NotFound, get_row, item_record, item_transition, lock_one, lock_rows,
    lock_title_queue,
    patron_contact, patron_snapshot, record_event, request_record, transition,
)

E, S, R = lt.Event, lt.State, lt.Role
IS, IE = it.ItemStatus, it.ItemEvent

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


# Routing kinds
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
    kind: str
    request_id: int | None = None
    to_branch: str | None = None


# --------------------------------------------------------------------------- refusals

class _Refused(Exception):
    """Raised inside a unit of work to roll it back and return a refusal."""

    def __init__(self, decision: Decision):
        super().__init__(decision.code)
        self.decision = decision


# --------------------------------------------------------------------------- labels

STATUS_JA = {
    "NEW": "受付中", "VALIDATED": "受付中",
    "QUEUED": "予約中", "SUSPENDED": "保留中",
    "PURCHASE_REVIEW": "リクエスト検討中",
    "SENT": "他館から取寄中", "WILL_SUPPLY": "他館から取寄中", "CONDITION_PENDING": "他館から取寄中",
    "CANCEL_PENDING": "取消依頼中", "SHIPPED": "他館から取寄中",
    "IN_TRANSIT": "搬送中", "ON_HOLD_SHELF": "貸出準備完了",
    "ON_LOAN": "貸出中", "OVERDUE": "貸出中", "RECALLED": "貸出中", "RETURNED": "返却済",
    "AWAITING_LOAN_COMPLETED": "返却済", "COMPLETED": "完了",
    "CANCELLED": "取消済", "SHELF_EXPIRED": "取置期限切れ", "REJECTED": "お断り",
    "UNFILLED": "入手不可", "LOST": "紛失",
}
CHANNEL_JA = {"web": "Web", "opac": "OPAC", "counter": "窓口", "phone": "電話", "fax": "FAX",
              "form": "申込書", "system": "システム"}
CONTACT_JA = {"email": "E-Mail", "phone": "電話", "fax": "FAX", "postcard": "はがき", "none": "連絡不要"}


QUEUE_STATES = (S.QUEUED.value, S.SUSPENDED.value)
SECURED_STATES = tuple(x.value for x in lt.SECURED)
# requests that ended without a loan: listed as cancelled for cancel.visible_days, then purged
CLOSED_VISIBLE_STATES = tuple(sorted(st.value for st in policies.CLOSED_VISIBLE))
# copies that no longer make the title "owned"
GONE_ITEM_STATUSES = tuple(sorted(st.value for st in it.GONE))
CHANGEABLE_STATES = tuple(sorted(st.value for st in policies.CHANGEABLE_STATES))


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


def _record(row, card: str) -> Request:
    """A lifecycle record with a zero-padded id, so that ties on ``placed_at`` are
    broken by the numeric id in :mod:`lifecycle.queue`."""
    return dataclasses.replace(request_record(row, card), id=f"{row.id:012d}")


def _branch_name(circ: Circulation, code: str | None) -> str:
    if not code:
        return ""
    for p in circ.profiles.values():
        b = p.branch(code)
        if b is not None:
            return b.name
    return code


async def _request_row(conn: AsyncConnection, request_id: int, *, lock: bool = False):
    return await get_row(conn, s.requests, s.requests.c.id == request_id,
                         what=f"request {request_id}", for_update=lock)


async def _patron_by_card(conn: AsyncConnection, card: str, *, lock: bool = False):
    return await get_row(conn, s.patrons, s.patrons.c.card_number == card,
                         what=f"patron {card}", for_update=lock)


async def _patron_by_id(conn: AsyncConnection, patron_id: int):
    return await get_row(conn, s.patrons, s.patrons.c.id == patron_id, what=f"patron {patron_id}")


async def _cards(conn: AsyncConnection, patron_ids: Iterable[int]) -> dict[int, str]:
    ids = set(patron_ids)
    if not ids:
        return {}
    res = await conn.execute(select(s.patrons.c.id, s.patrons.c.card_number)
                             .where(s.patrons.c.id.in_(ids)))
    return {r.id: r.card_number for r in res.all()}


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


def _queue_positions(rows) -> dict[int, int]:
    """1-based positions of QUEUED/SUSPENDED rows of one title and system."""
    ordered = sorted((r for r in rows if r.state in QUEUE_STATES), key=lambda r: (r.placed_at, r.id))
    return {r.id: i for i, r in enumerate(ordered, 1)}


async def _positions_for(conn: AsyncConnection, pairs: set[tuple[str, str]]) -> dict[int, int]:
    """Queue positions of every queued request of the given (title, library) pairs."""
    out: dict[int, int] = {}
    for title_id, library in pairs:
        rows = (await conn.execute(
            select(s.requests.c.id, s.requests.c.state, s.requests.c.placed_at)
            .where(s.requests.c.title_id == title_id, s.requests.c.library == library,
                   s.requests.c.state.in_(QUEUE_STATES)))).all()
        out.update(_queue_positions(rows))
    return out


def _notice_data(circ: Circulation, row, **extra) -> dict:
    return {"title": row.title, "title_id": row.title_id, "pickup_branch": row.pickup_branch,
            "pickup_name": _branch_name(circ, row.pickup_branch), "contact_method": row.contact_method,
            "kind": row.kind, **extra}


# --------------------------------------------------------------------------- placing

async def _place_in(circ: Circulation, conn: AsyncConnection, patron_row, *, title_id: str,
                    pickup_branch: str, channel: str, role, actor: str, contact_method: str | None,
                    memo: str, material_type: str | None, publication_date, submitted_at_branch,
                    title: str, set_id, set_position: int, group_id,
                    delivery: bool = False) -> tuple[int | None, Decision]:
    """Decide and (when allowed) insert one request, inside the caller's unit of work;
    the title queue and the patron row are already locked. ``delivery`` (有料図書宅配):
    decided by ``policies.can_place_delivery``, picked up by the dispatch branch."""
    now = circ.now()
    role = _role(role)
    system = patron_row.library
    profile = circ.profile(system)
    owned = (await conn.execute(select(s.items).where(
        s.items.c.title_id == title_id, s.items.c.library == system,
        s.items.c.status.not_in(GONE_ITEM_STATUSES)).order_by(s.items.c.id))).all()
    if not title:   # the display title lists and mails show: the queue's, else the id
        title = (await conn.execute(select(s.title_queues.c.title).where(
            s.title_queues.c.title_id == title_id))).scalar() or title_id
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
    snapshot = await patron_snapshot(conn, patron_row)
    decision = policies.decide_placing(profile, snapshot, item, candidate, now, role=role, delivery=delivery)
    if not decision.allowed:
        return None, decision
    rule = policies.branch_material_rule(profile, item) if kind == "reservation" else None

    res = await conn.execute(s.requests.insert().values(
        patron_id=patron_row.id, library=system, title_id=title_id, kind=kind, material_type=material,
        pickup_branch=pickup_branch, contact_method=contact, channel=channel, state=S.NEW.value,
        placed_at=now, submitted_at_branch=submitted_at_branch, publication_date=publication_date,
        set_id=set_id, set_position=set_position, group_id=group_id, memo=memo, title=title,
        rule_branch=rule.branch if rule is not None else None, delivery=delivery, updated_at=now))
    rid = res.inserted_primary_key[0]
    await record_event(conn, at=now, event="PLACE", actor_role=role.value, actor=actor,
                       request_id=rid, to_state=S.NEW.value, channel=channel,
                       branch=submitted_at_branch or pickup_branch,
                       reason=f"{kind} delivery" if delivery else kind)
    row = await _request_row(conn, rid)
    await transition(conn, row, E.VALIDATE, role=R.SYSTEM, actor=actor, at=now, channel=channel)
    row = await _request_row(conn, rid)
    nxt = E.ENQUEUE if kind == "reservation" else E.SEND_TO_PURCHASE_REVIEW
    await transition(conn, row, nxt, role=R.SYSTEM, actor=actor, at=now, channel=channel)
    row = await _request_row(conn, rid)
    await notices.enqueue(conn, kind="hold_received", patron_id=patron_row.id,
                          dedupe_key=f"hold_received:{rid}", at=now, request_id=rid,
                          data=_notice_data(circ, row, placed_at=now))
    return rid, decision


async def _position(conn: AsyncConnection, rid: int) -> int | None:
    row = await _request_row(conn, rid)
    if row.state not in QUEUE_STATES:
        return None
    return (await _positions_for(conn, {(row.title_id, row.library)})).get(rid)


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
        await lock_title_queue(conn, title_id, title)
        patron_row = await _patron_by_card(conn, card, lock=True)
        rid, decision = await _place_in(
            circ, conn, patron_row, title_id=title_id, pickup_branch=pickup_branch, channel=channel,
            role=role, actor=actor, contact_method=contact_method, memo=memo,
            material_type=material_type, publication_date=publication_date,
            submitted_at_branch=submitted_at_branch, title=title, set_id=set_id,
            set_position=set_position, group_id=group_id, delivery=delivery)
        if rid is None:
            raise _Refused(decision)
        return PlaceResult(rid, decision, await _position(conn, rid))

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
            rid, last = await _place_in(circ, conn, patron_row, title_id=t,
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


# --------------------------------------------------------------------------- routing copies

async def _lock_item(conn: AsyncConnection, item_id: int):
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
    locked (FOR UPDATE, in id order) and read after the lock."""
    base = (await conn.execute(select(s.requests.c.id, s.requests.c.set_id, s.requests.c.group_id)
                               .where(s.requests.c.title_id == title_id,
                                      s.requests.c.library == library,
                                      s.requests.c.state.in_(QUEUE_STATES)))).all()
    if not base:
        return [], {}
    ids = {r.id for r in base}
    links = _sibling_links(base)
    if links:
        ids |= {r.id for r in (await conn.execute(select(s.requests.c.id).where(or_(*links)))).all()}
    rows = await lock_rows(conn, s.requests, s.requests.c.id.in_(ids), order_by=s.requests.c.id)
    return rows, await _cards(conn, (r.patron_id for r in rows))


async def _secured_for(conn: AsyncConnection, item_id: int):
    return (await conn.execute(select(s.requests).where(
        s.requests.c.item_id == item_id, s.requests.c.state.in_(SECURED_STATES)))).first()


async def _put_on_shelf(circ: Circulation, conn: AsyncConnection, row, event: lt.Event, item_row,
                        at_branch: str, *, role, actor: str) -> None:
    """TRAP_AT_PICKUP / ARRIVE_AT_PICKUP: on the hold shelf with its deadline in open days
    of the pickup branch, and the hold-ready notice (contacted when a contact method
    other than "none" gets it)."""
    now = circ.now()
    if row.delivery:
        # 有料図書宅配: ready to ship, on the dispatch branch's list (circulation/delivery.py).
        # Nobody is asked to come: no hold_ready notice, no shelf deadline (never expires).
        await transition(conn, row, event, role=role, actor=actor, at=now, branch=at_branch,
                         item_id=item_row.id, ready_at=now, reason="delivery: ready to ship")
        await item_transition(conn, item_row, IE.PUT_ON_HOLD_SHELF, at=now, current_branch=at_branch)
        return
    profile = circ.profile(row.library)
    contacted = now if row.contact_method != "none" else None
    cal = await circ.calendar(conn, row.pickup_branch)
    deadline = policies.shelf_deadline(profile, cal, now, contacted)
    await transition(conn, row, event, role=role, actor=actor, at=now, branch=at_branch,
                     item_id=item_row.id, ready_at=now, contacted_at=contacted, shelf_deadline=deadline)
    await item_transition(conn, item_row, IE.PUT_ON_HOLD_SHELF, at=now, current_branch=at_branch)
    await notices.enqueue(conn, kind="hold_ready", patron_id=row.patron_id,
                          dedupe_key=f"hold_ready:{row.id}", at=now, request_id=row.id,
                          data=_notice_data(circ, row, shelf_deadline=deadline,
                                            barcode=item_row.barcode))


async def _send(circ: Circulation, conn: AsyncConnection, item_row, from_branch: str, to_branch: str,
                reason: str, *, request_id: int | None, role, actor: str) -> None:
    now = circ.now()
    await conn.execute(s.transits.insert().values(
        item_id=item_row.id, request_id=request_id, from_branch=from_branch, to_branch=to_branch,
        reason=reason, sent_at=now))
    await item_transition(conn, item_row, IE.SEND, at=now, current_branch=from_branch)
    await record_event(conn, at=now, event="TRANSIT_SENT", actor_role=_role(role).value, actor=actor,
                       item_id=item_row.id, request_id=request_id, branch=from_branch,
                       reason=f"{reason} -> {to_branch}")


async def _no_request(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *,
                      role, actor: str) -> Routing:
    now = circ.now()
    if at_branch != item_row.owning_branch:
        await _send(circ, conn, item_row, at_branch, item_row.owning_branch, "return_home",
                    request_id=None, role=role, actor=actor)
        return Routing(TRANSIT_HOME, None, item_row.owning_branch)
    await item_transition(conn, item_row, IE.RESHELVE, at=now, current_branch=at_branch)
    return Routing(RESHELVE, None, at_branch)


async def route_copy(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *, role,
                     actor: str, walk_in: bool = False) -> Routing:
    """Where a copy in hand at ``at_branch`` goes, inside the caller's unit of work.

    The request is chosen by :func:`lifecycle.queue.choose_request_to_trap` over the
    title's queue in the copy's owning system (plus the set/group siblings of those
    patrons): FIFO, suspended requests passed over, a later set volume never before the
    earlier ones are ready, a group whose member is secured skipped. At the pickup branch
    → TRAP_AT_PICKUP (hold shelf, deadline, hold_ready notice); elsewhere →
    TRAP_ELSEWHERE (transit to the pickup branch); the trapped request's group siblings
    → GROUP_SATISFIED. Nobody waiting → transit home or back on the shelf. ``walk_in``
    (a patron at the library wants it, and the profile serves walk-ins first) → nothing
    trapped, the copy is available for lending. Takes the title queue lock (already
    held by the caller is fine) and the item lock."""
    now = circ.now()
    await lock_title_queue(conn, item_row.title_id)
    item_row = await _lock_item(conn, item_row.id)
    held = await _secured_for(conn, item_row.id)
    if held is not None:
        return Routing(ALREADY_SECURED, held.id, held.pickup_branch)
    if IS(item_row.status) not in it.IN_HAND:     # marked on loan or lost, yet in hand here
        await item_transition(conn, item_row, IE.CHECK_IN, at=now)
        item_row = await _lock_item(conn, item_row.id)
    if item_row.partner:                      # 連携貸出: a university's copy goes to its request or back
        from . import partners
        return await partners.route_partner_copy(circ, conn, item_row, at_branch, role=role, actor=actor)
    profile = circ.profiles.get(item_row.library)
    if walk_in and (profile is None or profile.walk_in_first):
        await item_transition(conn, item_row, IE.RESHELVE, at=now, current_branch=at_branch)
        await record_event(conn, at=now, event="WALK_IN_FIRST", actor_role=_role(role).value,
                           actor=actor, item_id=item_row.id, branch=at_branch)
        return Routing(WALK_IN, None, at_branch)
    if profile is None:                       # a partner's copy: no queue of ours
        return await _no_request(circ, conn, item_row, at_branch, role=role, actor=actor)

    rows, cards = await _load_queue(conn, item_row.title_id, item_row.library)
    records = [_record(r, cards[r.patron_id]) for r in rows]
    chosen = lq.choose_request_to_trap(records, item_record(item_row), now)
    if chosen is None:
        return await _no_request(circ, conn, item_row, at_branch, role=role, actor=actor)
    by_id = {r.id: r for r in rows}
    row = by_id[_rid(chosen.id)]
    if row.pickup_branch == at_branch:
        await _put_on_shelf(circ, conn, row, E.TRAP_AT_PICKUP, item_row, at_branch,
                            role=_acting_role(E.TRAP_AT_PICKUP, role), actor=actor)
        routing = Routing(HOLD_SHELF, row.id, at_branch)
    else:
        await transition(conn, row, E.TRAP_ELSEWHERE, role=_acting_role(E.TRAP_ELSEWHERE, role),
                         actor=actor, at=now, branch=at_branch, item_id=item_row.id)
        await _send(circ, conn, item_row, at_branch, row.pickup_branch, "hold", request_id=row.id,
                    role=role, actor=actor)
        routing = Routing(TRANSIT_HOLD, row.id, row.pickup_branch)
    for sib in lq.group_siblings_to_cancel(records, chosen):
        await transition(conn, by_id[_rid(sib.id)], E.GROUP_SATISFIED, role=R.SYSTEM, actor=actor,
                         at=now, reason=f"request {row.id} secured", cancelled_at=now,
                         cancel_reason=REASON_GROUP_SATISFIED, cancel_channel="system")
    return routing


async def arrive(circ: Circulation, conn: AsyncConnection, item_row, at_branch: str, *, role,
                 actor: str) -> Routing:
    """A copy in transit is checked in at ``at_branch`` (inside the caller's unit of work).

    Its hold transit at the pickup branch → ARRIVE_AT_PICKUP (hold shelf, deadline,
    hold_ready notice); at another branch → sent on to the pickup branch
    (:data:`TRANSIT_ONWARD`). A home transit, a transit whose request was cancelled on
    the way, or a copy not in transit at all → routed afresh by :func:`route_copy`
    (at home and nobody waiting: back on the shelf)."""
    now = circ.now()
    await lock_title_queue(conn, item_row.title_id)
    item_row = await _lock_item(conn, item_row.id)
    open_transits = (await conn.execute(select(s.transits).where(
        s.transits.c.item_id == item_row.id, s.transits.c.arrived_at.is_(None))
        .order_by(s.transits.c.id))).all()
    for t in open_transits:
        await conn.execute(update(s.transits).where(s.transits.c.id == t.id).values(arrived_at=now))
        await record_event(conn, at=now, event="TRANSIT_ARRIVED", actor_role=_role(role).value,
                           actor=actor, item_id=item_row.id, request_id=t.request_id, branch=at_branch,
                           reason=f"{t.reason} {t.from_branch} -> {t.to_branch}")
    held = await _secured_for(conn, item_row.id)
    if held is not None and held.state == S.IN_TRANSIT.value:
        row = (await lock_rows(conn, s.requests, s.requests.c.id == held.id))[0]
        if row.pickup_branch == at_branch:
            await _put_on_shelf(circ, conn, row, E.ARRIVE_AT_PICKUP, item_row, at_branch,
                                role=role, actor=actor)
            return Routing(HOLD_SHELF, row.id, at_branch)
        await _send(circ, conn, item_row, at_branch, row.pickup_branch, "hold", request_id=row.id,
                    role=role, actor=actor)
        return Routing(TRANSIT_ONWARD, row.id, row.pickup_branch)
    if held is not None:                      # already on a hold shelf: nothing to do
        return Routing(ALREADY_SECURED, held.id, held.pickup_branch)
    return await route_copy(circ, conn, item_row, at_branch, role=role, actor=actor)


async def trap_from_shelf(circ: Circulation, *, barcode: str, branch: str, role, actor: str,
                          walk_in: bool = False) -> Routing:
    """Staff took an available copy from the shelf (the pull list): route it to the
    first request it can fill. A copy that is not available on the shelf changes
    nothing (:data:`NOT_AVAILABLE`)."""

    async def work(conn):
        item = await get_row(conn, s.items, s.items.c.barcode == barcode, what=f"item {barcode}")
        await lock_title_queue(conn, item.title_id)
        item = await _lock_item(conn, item.id)
        if item.status != IS.AVAILABLE.value:
            return Routing(NOT_AVAILABLE, None, None)
        return await route_copy(circ, conn, item, branch, role=role, actor=actor, walk_in=walk_in)

    return await circ.db.run(work)


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
    freed while in transit is routed when it arrives (:func:`arrive`). Queues a
    ``hold_cancelled`` notice."""
    now = circ.now()
    role = _role(role)
    async with circ.db.read() as conn:
        peek = await _request_row(conn, request_id)
    if peek.kind == "partner" and peek.state == S.SHIPPED.value and role == R.STAFF:
        # a university copy on its way: cancelled on arrival (circulation/partners.py)
        from . import partners
        return (await partners.cancel(circ, request_id=request_id, role=role, actor=actor,
                                      channel=channel, reason=reason, card=card, branch=branch)).decision

    async def work(conn):
        row = await _request_row(conn, request_id)
        await _check_card(conn, row, card)
        await lock_title_queue(conn, row.title_id)
        row = await _request_row(conn, request_id)
        item = await _lock_item(conn, row.item_id) if row.item_id is not None else None
        row = await _request_row(conn, request_id, lock=True)
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
                              data=_notice_data(circ, row, reason=why, channel=channel))
        if state == S.ON_HOLD_SHELF and item is not None:
            await route_copy(circ, conn, item, row.pickup_branch, role=role, actor=actor)
        return decision

    return await circ.db.run(work)


# --------------------------------------------------------------------------- suspend, resume, change

async def _queued_op(circ: Circulation, request_id: int, card: str | None, op) -> Decision:
    async def work(conn):
        row = await _request_row(conn, request_id)
        await _check_card(conn, row, card)
        await lock_title_queue(conn, row.title_id)
        row = await _request_row(conn, request_id, lock=True)
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
            new = await _request_row(conn, row.id)
            await notices.enqueue(conn, kind="hold_changed", patron_id=row.patron_id,
                                  dedupe_key=f"hold_changed:{row.id}:{now.isoformat()}:"
                                             f"{new.pickup_branch}:{new.contact_method}",
                                  at=now, request_id=row.id, data=_notice_data(circ, new))
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
            new = await _request_row(conn, row.id)
            await notices.enqueue(conn, kind="hold_changed", patron_id=row.patron_id,
                                  dedupe_key=f"hold_changed:{row.id}:{now.isoformat()}:"
                                             f"{new.pickup_branch}:{new.contact_method}",
                                  at=now, request_id=row.id, data=_notice_data(circ, new))
            n += 1
        return n

    return await circ.db.run(work)


# --------------------------------------------------------------------------- jobs

async def expire_shelf(circ: Circulation) -> int:
    """Scheduled job: every ON_HOLD_SHELF request past its shelf deadline (N open days of
    the pickup branch, recomputed with today's calendar so closed days added later still
    count) → SHELF_EXPIRE, and its copy is routed to the next patron (or home). Each
    request is its own unit of work, re-checked under its locks, so a second or a
    concurrent run changes nothing. No notice: Iizuka cancels 取置期限切れ holds without
    one (取消の連絡はしておりません). Returns how many expired in this run."""
    started = circ.now()
    today = started.date()
    async with circ.db.read() as conn:
        candidates = [r.id for r in (await conn.execute(
            select(s.requests.c.id).where(s.requests.c.state == S.ON_HOLD_SHELF.value,
                                          s.requests.c.shelf_deadline < today)
            .order_by(s.requests.c.shelf_deadline, s.requests.c.id))).all()]

    async def expire_one(rid: int) -> int:
        async def work(conn):
            row = await _request_row(conn, rid)
            await lock_title_queue(conn, row.title_id)
            row = await _request_row(conn, rid)
            if row.state != S.ON_HOLD_SHELF.value:
                return 0
            item = await _lock_item(conn, row.item_id) if row.item_id is not None else None
            row = await _request_row(conn, rid, lock=True)
            if row.state != S.ON_HOLD_SHELF.value:
                return 0
            profile = circ.profile(row.library)
            cal = await circ.calendar(conn, row.pickup_branch)
            deadline = policies.shelf_deadline(profile, cal, row.ready_at, row.contacted_at)
            if today <= deadline:                 # the branch closed in between: later
                if deadline != row.shelf_deadline:
                    await conn.execute(update(s.requests).where(s.requests.c.id == rid)
                                       .values(shelf_deadline=deadline))
                return 0
            now = circ.now()
            await transition(conn, row, E.SHELF_EXPIRE, role=R.SYSTEM, actor="expire_shelf", at=now,
                             reason=f"shelf deadline {deadline.isoformat()}", cancelled_at=now,
                             cancel_reason=REASON_SHELF_EXPIRED, cancel_channel="system")
            if item is not None:
                await route_copy(circ, conn, item, row.pickup_branch, role=R.SYSTEM,
                                 actor="expire_shelf")
            return 1

        return await circ.db.run(work)

    n = 0
    for rid in candidates:
        n += await expire_one(rid)
    return n


async def purge_cancelled(circ: Circulation) -> int:
    """Scheduled job: delete requests that ended without a loan (CANCELLED, SHELF_EXPIRED,
    REJECTED, UNFILLED) once they have left the patron's cancelled list, i.e. more than the
    profile's ``cancel.visible_days`` (30) after they ended, together with their audit
    events and notices; transits keep the copy's movement but lose the request link.

    This is deliberate: Japanese public libraries keep no record of who wanted which
    book once the service is over (図書館の自由に関する宣言: 利用者の秘密を守る), and
    Iizuka says 取り消された予約は30日間保持されます. Nothing of the request remains
    afterwards, audit trail included. Returns how many requests were deleted."""
    started = circ.now()
    total = 0
    for system, profile in circ.profiles.items():
        cutoff = policies.purge_cutoff(profile, started)     # policies.cancelled_visible, for many rows

        async def work(conn, system=profile.system, cutoff=cutoff):
            ended = func.coalesce(s.requests.c.cancelled_at, s.requests.c.updated_at)
            rows = await lock_rows(conn, s.requests, s.requests.c.library == system,
                                   s.requests.c.state.in_(CLOSED_VISIBLE_STATES), ended <= cutoff,
                                   order_by=s.requests.c.id)
            ids = [r.id for r in rows]
            if not ids:
                return 0
            await conn.execute(delete(s.notices).where(s.notices.c.request_id.in_(ids)))
            await conn.execute(delete(s.events).where(s.events.c.request_id.in_(ids)))
            await conn.execute(update(s.transits).where(s.transits.c.request_id.in_(ids))
                               .values(request_id=None))
            await conn.execute(update(s.loans).where(s.loans.c.request_id.in_(ids))
                               .values(request_id=None))
            await conn.execute(delete(s.requests).where(s.requests.c.id.in_(ids)))
            return len(ids)

        total += await circ.db.run(work)
    return total


# --------------------------------------------------------------------------- 予約ランキング

RANKED_STATES = (S.QUEUED.value, S.SUSPENDED.value, S.IN_TRANSIT.value, S.ON_HOLD_SHELF.value)


async def reservation_ranking(circ: Circulation, library: str, limit: int = 20) -> list[dict]:
    """予約ランキング (Iizuka's portal: 詳しい検索 > 予約ランキング): the titles of ``library``
    with the most live reservations (waiting, suspended, in transit or on the hold shelf:
    the people who want the title now), most first, ties by title id; ``rank`` is shared
    by ties (1, 2, 2, 4). Counts only, never who: the list is public. Requests
    (リクエスト) for titles not owned are not ranked. Unknown library: NotFound."""
    if library not in circ.profiles:
        raise NotFound(f"library {library!r}")
    n = func.count().label("reservations")
    async with circ.db.read() as conn:
        rows = (await conn.execute(
            select(s.requests.c.title_id, func.max(s.requests.c.title).label("title"), n)
            .where(s.requests.c.library == library, s.requests.c.kind == "reservation",
                   s.requests.c.state.in_(RANKED_STATES))
            .group_by(s.requests.c.title_id)
            .order_by(n.desc(), s.requests.c.title_id).limit(limit))).all()
    out, rank = [], 0
    for i, r in enumerate(rows, 1):
        if i == 1 or r.reservations != out[-1]["reservations"]:
            rank = i
        out.append({"rank": rank, "title_id": r.title_id, "title": r.title or r.title_id,
                    "reservations": r.reservations})
    return out


# --------------------------------------------------------------------------- review of リクエスト

async def review_queue(circ: Circulation, library: str) -> list[dict]:
    """Requests (リクエスト) of ``library`` awaiting staff review, oldest first."""
    async with circ.db.read() as conn:
        rows = (await conn.execute(
            select(s.requests, s.patrons.c.card_number, s.patrons.c.name.label("patron_name"))
            .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
            .where(s.requests.c.library == library,
                   s.requests.c.state == S.PURCHASE_REVIEW.value)
            .order_by(s.requests.c.placed_at, s.requests.c.id))).all()
    return [{"request_id": r.id, "title_id": r.title_id, "title": r.title, "card": r.card_number,
             "patron_name": r.patron_name, "material_type": r.material_type,
             "publication_date": r.publication_date, "placed_at": r.placed_at,
             "pickup_branch": r.pickup_branch, "pickup_name": _branch_name(circ, r.pickup_branch),
             "channel": r.channel, "submitted_at_branch": r.submitted_at_branch, "memo": r.memo}
            for r in rows]


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
        row = await _request_row(conn, request_id)
        await lock_title_queue(conn, row.title_id)
        row = await _request_row(conn, request_id, lock=True)
        if row.state != S.PURCHASE_REVIEW.value:
            return decide("not_in_review", state=row.state)
        changes = {"review_note": reason or None}
        if event == E.REJECT:
            changes.update(cancelled_at=now, cancel_reason=reason or REASON_REFUSED, cancel_channel="counter")
        await transition(conn, row, event, role=role, actor=actor, at=now, reason=reason, **changes)
        if event == E.REJECT:
            await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                                  dedupe_key=f"hold_cancelled:{row.id}", at=now, request_id=row.id,
                                  data=_notice_data(circ, row, reason=reason or REASON_REFUSED,
                                                    channel="counter"))
        return OK

    return await circ.db.run(work)


async def lapse_unpublished(circ: Circulation) -> int:
    """Scheduled job (Komae): a request for an announced new book still unpublished
    ``placing.request_publication_wait_days`` (30) after acceptance is cancelled
    (PUBLICATION_LAPSED, 一旦キャンセル) with a hold_cancelled notice. Returns the count."""
    started = circ.now()
    n = 0
    for profile in circ.profiles.values():
        if profile.placing.request_publication_wait_days is None:
            continue
        async with circ.db.read() as conn:
            rows = (await conn.execute(select(s.requests).where(
                s.requests.c.library == profile.system,
                s.requests.c.state == S.PURCHASE_REVIEW.value))).all()
        due = [r.id for r in rows if policies.request_lapsed(profile, request_record(r, ""), started)]
        for rid in due:
            async def work(conn, rid=rid, profile=profile):
                row = await _request_row(conn, rid)
                await lock_title_queue(conn, row.title_id)
                row = await _request_row(conn, rid, lock=True)
                now = circ.now()
                if not policies.request_lapsed(profile, request_record(row, ""), now):
                    return 0
                await transition(conn, row, E.PUBLICATION_LAPSED, role=R.SYSTEM,
                                 actor="lapse_unpublished", at=now, reason=REASON_PUBLICATION_LAPSED,
                                 cancelled_at=now, cancel_reason=REASON_PUBLICATION_LAPSED,
                                 cancel_channel="system")
                await notices.enqueue(conn, kind="hold_cancelled", patron_id=row.patron_id,
                                      dedupe_key=f"hold_cancelled:{row.id}", at=now,
                                      request_id=row.id,
                                      data=_notice_data(circ, row, reason=REASON_PUBLICATION_LAPSED,
                                                        channel="system"))
                return 1

            n += await circ.db.run(work)
    return n


# --------------------------------------------------------------------------- lists (read-only)

def _secured_or_beyond(state: str) -> bool:
    return lt.State(state) in lq.SECURED_OR_BEYOND


async def patron_requests(circ: Circulation, card: str) -> list[dict]:
    """The patron's 予約一覧: live requests with state, Japanese status (予約中, 保留中,
    搬送中, 貸出準備完了, …), queue position (予約順位), receiving and pickup branch,
    contact method, shelf deadline and ready (割当) date, title. The memo (予約メモ)
    is shown only once the copy is secured."""
    async with circ.db.read() as conn:
        patron_row = await _patron_by_card(conn, card)
        rows = (await conn.execute(select(s.requests).where(
            s.requests.c.patron_id == patron_row.id, s.requests.c.state.in_(LIVE_REQUEST_STATES))
            .order_by(s.requests.c.placed_at, s.requests.c.id))).all()
        positions = await _positions_for(conn, {(r.title_id, r.library) for r in rows
                                                if r.state in QUEUE_STATES})
    return [{"request_id": r.id, "title_id": r.title_id, "title": r.title, "kind": r.kind,
             "material_type": r.material_type, "state": r.state, "status_ja": STATUS_JA[r.state],
             "position": positions.get(r.id), "placed_at": r.placed_at, "channel": r.channel,
             "received_at_branch": r.submitted_at_branch,
             "received_at_name": _branch_name(circ, r.submitted_at_branch) or CHANNEL_JA.get(r.channel, r.channel),
             "pickup_branch": r.pickup_branch, "pickup_name": _branch_name(circ, r.pickup_branch),
             "contact_method": r.contact_method, "contact_ja": CONTACT_JA.get(r.contact_method, ""),
             "ready_at": r.ready_at, "contacted_at": r.contacted_at, "shelf_deadline": r.shelf_deadline,
             "set_id": r.set_id, "set_position": r.set_position, "group_id": r.group_id,
             "memo": r.memo if _secured_or_beyond(r.state) else None}
            for r in rows]


async def cancelled_requests(circ: Circulation, card: str) -> list[dict]:
    """The patron's 取消済予約一覧: cancelled, shelf-expired, refused and unfilled requests that ended
    less than ``cancel.visible_days`` ago, newest first: time, reason, channel."""
    now = circ.now()
    async with circ.db.read() as conn:
        patron_row = await _patron_by_card(conn, card)
        rows = (await conn.execute(select(s.requests).where(
            s.requests.c.patron_id == patron_row.id, s.requests.c.state.in_(CLOSED_VISIBLE_STATES))
            .order_by(s.requests.c.cancelled_at.desc(), s.requests.c.id.desc()))).all()
    out = []
    for r in rows:
        profile = circ.profile(r.library)
        if not policies.cancelled_visible(profile, request_record(r, card), now, last_change=r.updated_at):
            continue
        ended = r.cancelled_at or r.updated_at
        out.append({"request_id": r.id, "title_id": r.title_id, "title": r.title, "state": r.state,
                    "status_ja": STATUS_JA[r.state], "cancelled_at": ended,
                    "reason": r.cancel_reason or "", "channel": r.cancel_channel,
                    "channel_ja": CHANNEL_JA.get(r.cancel_channel or "", r.cancel_channel or ""),
                    "placed_at": r.placed_at, "pickup_branch": r.pickup_branch,
                    "pickup_name": _branch_name(circ, r.pickup_branch),
                    "contact_method": r.contact_method, "shelf_deadline": r.shelf_deadline})
    return out


async def shelf_list(circ: Circulation, branch: str) -> list[dict]:
    """The hold shelf of a branch (staff): what waits for whom until when, with the memo
    (the copy is secured, so staff see it)."""
    async with circ.db.read() as conn:
        rows = (await conn.execute(
            select(s.requests, s.patrons.c.card_number, s.patrons.c.name.label("patron_name"),
                   s.items.c.barcode)
            .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
            .join(s.items, s.items.c.id == s.requests.c.item_id)
            .where(s.requests.c.pickup_branch == branch,
                   s.requests.c.state == S.ON_HOLD_SHELF.value)
            .order_by(s.requests.c.shelf_deadline, s.requests.c.id))).all()
    return [{"request_id": r.id, "barcode": r.barcode, "title_id": r.title_id, "title": r.title,
             "card": r.card_number, "patron_name": r.patron_name, "ready_at": r.ready_at,
             "contacted_at": r.contacted_at, "shelf_deadline": r.shelf_deadline,
             "contact_method": r.contact_method, "memo": r.memo} for r in rows]


async def pull_list(circ: Circulation, branch: str) -> list[dict]:
    """Queued requests that a copy on this branch's shelves (available, circulating) can
    fill now, in queue order: the same choice as :func:`route_copy` (FIFO, suspended
    requests passed over, sets in order, satisfied groups skipped), each copy for one
    request. No memo: nothing is secured yet."""
    now = circ.now()
    out = []
    async with circ.db.read() as conn:
        copies = (await conn.execute(select(s.items).where(
            s.items.c.current_branch == branch, s.items.c.status == IS.AVAILABLE.value,
            s.items.c.circulating.is_(True)).order_by(s.items.c.title_id, s.items.c.id))).all()
        by_title: dict[tuple[str, str], list] = {}
        for c in copies:
            if c.library in circ.profiles:
                by_title.setdefault((c.title_id, c.library), []).append(c)
        for (title_id, library), its in by_title.items():
            rows, cards = await _read_queue(conn, title_id, library)
            if not rows:
                continue
            records = [_record(r, cards[r.patron_id]) for r in rows]
            positions = _queue_positions(rows)
            by_id = {r.id: r for r in rows}
            for c in its:
                chosen = lq.choose_request_to_trap(records, item_record(c), now)
                if chosen is None:
                    break
                row = by_id[_rid(chosen.id)]
                out.append({"request_id": row.id, "barcode": c.barcode, "title_id": title_id,
                            "title": row.title, "call_number": c.call_number, "location": c.location,
                            "pickup_branch": row.pickup_branch,
                            "pickup_name": _branch_name(circ, row.pickup_branch),
                            "placed_at": row.placed_at, "position": positions.get(row.id)})
                # as if pulled: the next copy goes to the next request
                records = [dataclasses.replace(r, state=S.IN_TRANSIT) if r.id == chosen.id else r
                           for r in records]
    out.sort(key=lambda d: (d["placed_at"], d["request_id"]))
    return out


async def _read_queue(conn: AsyncConnection, title_id: str, library: str) -> tuple[list, dict[int, str]]:
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
    return rows_l, await _cards(conn, (r.patron_id for r in rows_l))


async def transit_list(circ: Circulation, branch: str, direction: str = "out") -> list[dict]:
    """Copies in transit from (``out``) or to (``in``) a branch, oldest first; hold
    transits name the request (and show its memo: the copy is secured)."""
    if direction not in ("out", "in"):
        raise ValueError("direction must be 'out' or 'in'")
    col = s.transits.c.from_branch if direction == "out" else s.transits.c.to_branch
    async with circ.db.read() as conn:
        rows = (await conn.execute(
            select(s.transits, s.items.c.barcode, s.items.c.title_id, s.requests.c.title,
                   s.requests.c.memo, s.requests.c.pickup_branch)
            .join(s.items, s.items.c.id == s.transits.c.item_id)
            .outerjoin(s.requests, s.requests.c.id == s.transits.c.request_id)
            .where(col == branch, s.transits.c.arrived_at.is_(None))
            .order_by(s.transits.c.sent_at, s.transits.c.id))).all()
    return [{"transit_id": r.id, "barcode": r.barcode, "title_id": r.title_id, "title": r.title or "",
             "from_branch": r.from_branch, "to_branch": r.to_branch,
             "to_name": _branch_name(circ, r.to_branch), "reason": r.reason,
             "request_id": r.request_id, "sent_at": r.sent_at,
             "memo": r.memo if r.request_id is not None else None} for r in rows]


async def request_history(circ: Circulation, request_id: int) -> list[dict]:
    """The audit trail of one request, in order: who, when, what, from which state to which."""
    async with circ.db.read() as conn:
        await _request_row(conn, request_id)
        rows = (await conn.execute(select(s.events).where(s.events.c.request_id == request_id)
                                   .order_by(s.events.c.id))).all()
    return [{"at": r.at, "event": r.event, "from_state": r.from_state, "to_state": r.to_state,
             "actor_role": r.actor_role, "actor": r.actor, "channel": r.channel, "branch": r.branch,
             "reason": r.reason, "item_id": r.item_id} for r in rows]
