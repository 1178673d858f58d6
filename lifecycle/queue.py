"""Hold queues as pure functions over lists of request records.

* FIFO per title by placement time (Komae: new items by acceptance date, which is
  ``placed_at`` here), ties broken by request id.
* Suspended requests are skipped.
* Set reservations (セット予約, 優先順): a request at set position k is not trapped
  until every earlier live member of its set is ready (on the hold shelf or
  further) — so a later volume never waits on the shelf for an earlier one.
* Group reservations (グループ予約): once any member is secured, the others are
  not trapped and :func:`group_siblings_to_cancel` names them for GROUP_SATISFIED.
* Walk-in patrons are served first while staff have not yet secured a copy.
"""
from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from .model import Item, Request
from .table import TERMINAL, State

# From these states on, the library has the copy for the patron.
READY_OR_BEYOND = frozenset({State.ON_HOLD_SHELF, State.ON_LOAN, State.OVERDUE, State.RECALLED,
                             State.RETURNED, State.AWAITING_LOAN_COMPLETED, State.COMPLETED})
SECURED_OR_BEYOND = READY_OR_BEYOND | {State.IN_TRANSIT}
# Closed without the item: no longer blocks later set members.
GONE = TERMINAL - {State.COMPLETED}


WAITING = frozenset({State.QUEUED, State.SUSPENDED})


def _order(r):
    # ids are the database's integers (or those as text: "9" before "10", shorter first)
    rid = str(r.id)
    return (r.placed_at, len(rid), rid)


def title_queue(requests: Iterable[Request], title_id: str) -> list[Request]:
    """QUEUED and SUSPENDED requests for a title, in queue order."""
    return sorted((r for r in requests if r.title_id == title_id and r.state in WAITING), key=_order)


def queue_positions(requests: Iterable) -> dict:
    """1-based positions (予約順位) of the QUEUED and SUSPENDED ones among ``requests`` of
    one title and serving system, by id: FIFO by placement time, then id. Works on
    request records and on anything with ``id``, ``state`` and ``placed_at`` (rows)."""
    ordered = sorted((r for r in requests if r.state in WAITING), key=_order)
    return {r.id: i for i, r in enumerate(ordered, 1)}


def queue_position(requests: Iterable[Request], request: Request) -> int | None:
    """1-based position shown to the patron (予約順位), None when not queued."""
    return queue_positions(r for r in requests if r.title_id == request.title_id).get(request.id)


def waiting_for_predecessor(requests: Sequence[Request], request: Request) -> bool:
    """True if an earlier member of ``request``'s set is still live and not ready."""
    if request.set_id is None:
        return False
    return any(r.set_id == request.set_id and r.patron_card == request.patron_card
               and r.set_position < request.set_position
               and r.state not in READY_OR_BEYOND and r.state not in GONE
               for r in requests)


def group_satisfied(requests: Sequence[Request], request: Request) -> bool:
    """True if another member of ``request``'s group is already secured."""
    if request.group_id is None:
        return False
    return any(r.group_id == request.group_id and r.patron_card == request.patron_card
               and r.id != request.id and r.state in SECURED_OR_BEYOND for r in requests)


def choose_request_to_trap(requests: Sequence[Request], item: Item, now: datetime, *,
                           walk_in: bool = False) -> Request | None:
    """The request this copy should be captured for, or None (shelve it / lend it
    to the walk-in).  ``walk_in``: a patron at the library wants this copy before
    staff have secured it — the walk-in is served first."""
    if walk_in or not item.circulating:
        return None
    for r in title_queue(requests, item.title_id):
        if r.state != State.QUEUED or r.placed_at > now:
            continue
        if waiting_for_predecessor(requests, r) or group_satisfied(requests, r):
            continue
        return r
    return None


def group_siblings_to_cancel(requests: Sequence[Request], trapped: Request) -> list[Request]:
    """Members of ``trapped``'s group still waiting (QUEUED/SUSPENDED): they get
    GROUP_SATISFIED once ``trapped`` is secured."""
    if trapped.group_id is None:
        return []
    return sorted((r for r in requests if r.group_id == trapped.group_id
                   and r.patron_card == trapped.patron_card and r.id != trapped.id
                   and r.state in (State.QUEUED, State.SUSPENDED)), key=_order)
