"""What patrons and staff see of holds: read-only lists, each one query of its own.

Patron: :func:`patron_requests` (予約一覧: status, queue position, pickup, shelf
deadline; the memo only once the copy is secured) and :func:`cancelled_requests`
(取消済予約一覧, ``policies.cancelled_visible``). Staff: :func:`shelf_list` (the hold
shelf of a branch), :func:`pull_list` (copies on the shelves that queued requests can
have now: the choice :func:`circulation.routing.route_copy` would make),
:func:`transit_list`, :func:`review_queue` (リクエスト to decide); a request's audit
trail is :func:`circulation.queries.request_trail`. Public: :func:`reservation_ranking`
(予約ランキング, counts only). The labels come from :mod:`circulation.labels`.
"""
from __future__ import annotations

import dataclasses

from sqlalchemy import func, select

from lifecycle import item_table as it
from lifecycle import policies
from lifecycle import queue as lq
from lifecycle import table as lt

from . import schema as s
from .labels import CHANNEL_JA, CONTACT_JA, STATUS_JA
from .routing import QUEUE_STATES, positions_for, queue_record, read_queue
from .service import Circulation
from .store import LIVE_REQUEST_STATES, NotFound, item_record, patron_by_card, request_record

S = lt.State
IS = it.ItemStatus
# requests that ended without a loan: listed as cancelled for cancel.visible_days, then purged
CLOSED_VISIBLE_STATES = tuple(sorted(st.value for st in policies.CLOSED_VISIBLE))


async def patron_requests(circ: Circulation, card: str) -> list[dict]:
    """The patron's 予約一覧: live requests with state, Japanese status (予約中, 保留中,
    搬送中, 貸出準備完了, …), queue position (予約順位), receiving and pickup branch,
    contact method, shelf deadline and ready (割当) date, title. The memo (予約メモ)
    is shown only once the copy is secured."""
    async with circ.db.read() as conn:
        patron_row = await patron_by_card(conn, card)
        rows = (await conn.execute(select(s.requests).where(
            s.requests.c.patron_id == patron_row.id, s.requests.c.state.in_(LIVE_REQUEST_STATES))
            .order_by(s.requests.c.placed_at, s.requests.c.id))).all()
        positions = await positions_for(conn, {(r.title_id, r.library) for r in rows
                                                if r.state in QUEUE_STATES})
    return [{"request_id": r.id, "title_id": r.title_id, "title": r.title, "kind": r.kind,
             "material_type": r.material_type, "state": r.state, "status_ja": STATUS_JA[r.state],
             "position": positions.get(r.id), "placed_at": r.placed_at, "channel": r.channel,
             "received_at_branch": r.submitted_at_branch,
             "received_at_name": circ.branch_name(r.submitted_at_branch) or CHANNEL_JA.get(r.channel, r.channel),
             "pickup_branch": r.pickup_branch, "pickup_name": circ.branch_name(r.pickup_branch),
             "contact_method": r.contact_method, "contact_ja": CONTACT_JA.get(r.contact_method, ""),
             "ready_at": r.ready_at, "contacted_at": r.contacted_at, "shelf_deadline": r.shelf_deadline,
             "set_id": r.set_id, "set_position": r.set_position, "group_id": r.group_id,
             "memo": r.memo if lt.State(r.state) in lq.SECURED_OR_BEYOND else None}
            for r in rows]


async def cancelled_requests(circ: Circulation, card: str) -> list[dict]:
    """The patron's 取消済予約一覧: cancelled, shelf-expired, refused and unfilled requests that ended
    less than ``cancel.visible_days`` ago, newest first: time, reason, channel."""
    now = circ.now()
    async with circ.db.read() as conn:
        patron_row = await patron_by_card(conn, card)
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
                    "pickup_name": circ.branch_name(r.pickup_branch),
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
            rows, cards = await read_queue(conn, title_id, library)
            if not rows:
                continue
            records = [queue_record(r, cards[r.patron_id]) for r in rows]
            positions = lq.queue_positions(rows)
            by_id = {r.id: r for r in rows}
            for c in its:
                chosen = lq.choose_request_to_trap(records, item_record(c), now)
                if chosen is None:
                    break
                row = by_id[int(chosen.id)]
                out.append({"request_id": row.id, "barcode": c.barcode, "title_id": title_id,
                            "title": row.title, "call_number": c.call_number, "location": c.location,
                            "pickup_branch": row.pickup_branch,
                            "pickup_name": circ.branch_name(row.pickup_branch),
                            "placed_at": row.placed_at, "position": positions.get(row.id)})
                # as if pulled: the next copy goes to the next request
                records = [dataclasses.replace(r, state=S.IN_TRANSIT) if r.id == chosen.id else r
                           for r in records]
    out.sort(key=lambda d: (d["placed_at"], d["request_id"]))
    return out


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
             "to_name": circ.branch_name(r.to_branch), "reason": r.reason,
             "request_id": r.request_id, "sent_at": r.sent_at,
             "memo": r.memo if r.request_id is not None else None} for r in rows]


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
             "pickup_branch": r.pickup_branch, "pickup_name": circ.branch_name(r.pickup_branch),
             "channel": r.channel, "submitted_at_branch": r.submitted_at_branch, "memo": r.memo}
            for r in rows]


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
