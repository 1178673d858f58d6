"""Loans on the database: check-out, renewal, check-in (returns, return points, drop
points, routing the returned copy), the patron's loans page and
declaring a loan lost.

Every operation that writes is one unit of work run through ``circ.db.run`` (retried
on deadlocks, serialization failures, SQLite busy and lost conditional updates). Each
loads what its decision reads and asks one pure function of :mod:`lifecycle.policies`
(``decide_check_out``, ``decide_renewal``, ``decide_check_in``); a refusal is returned
as that :class:`~lifecycle.model.Decision` (stable code, Japanese and English message),
never raised. An unknown barcode, card or loan raises :class:`circulation.store.NotFound`.
A loan moves only through ``store.open_loan``/``store.loan_transition`` (the loan
table), its copy through ``store.item_transition`` (the item table), its request
through ``store.transition``. Marking loans overdue is a nightly job (``jobs.mark_overdue``).

Locks (the order of :mod:`circulation.schema`): the title's queue row (when the title
has one), the item, the item's loan row, the patron, then request rows (through
:func:`circulation.store.transition`'s conditional update). The title queue is locked
first because a return traps the copy for the queue and a renewal must see a hold
placed at the same moment; locking only an existing queue row means a loan never
creates one.

Readings and choices
--------------------
* **Due dates on closed days.** The due date is ``policies.due_date`` (and after a
  renewal ``policies.can_renew``'s new date); when it falls on a day the *lending*
  branch is closed (its profile hours plus the closed days in ``calendar_entries``),
  it moves to that branch's next open day, so a patron is never due on a day they
  cannot return the item at the counter they borrowed from.
* **Who is "waiting"** for a renewal: QUEUED or SUSPENDED requests for the loan's
  title served by the item's system, *other than the borrower's own* (a patron's own
  hold on the title they hold does not stop them renewing).
* **Walk-ins (来館者優先)**: an available copy is lent to the patron at the counter
  even when others queue for the title, as long as staff have not secured it (the
  secured copy, in transit or on the hold shelf, is refused with
  ``held_for_another_patron``). A profile with ``queue.walk_in_first = false`` keeps
  an available copy for the first trappable request instead.
* **Hold shelf**: the patron whose request holds the copy borrows it with the request
  transition CHECK_OUT (ON_HOLD_SHELF → ON_LOAN); the loan keeps ``request_id``.
* **Partner university items (連携貸出, Hiroshima)**: lent only over a counter of a
  city library (channel ``counter``, not the kiosk or the mobile library), at the
  branch where the copy waits; the loan's ``branch`` is that counter, and
  ``policies.can_return_at`` then takes it back only there.
* **Return dates**: ``policies.return_date``: drop points (and whatever the profile's
  ``processed_date_points`` lists) count from when the item is processed, i.e. now;
  other returns from ``dropped_at`` when given. A refused return leaves the loan open
  and is logged as RETURN_REFUSED.
* **Checking in twice**: the second check-in finds no open loan; the copy is not
  returned again. A copy on the hold shelf, or in transit from this very branch, is
  left alone (``not_on_loan``); an in-transit copy at another branch arrives
  (``routing.arrive``); an available one is routed (``routing.route_copy``: a staff
  check-in of a shelf copy someone wants traps it).
* **Borrowing history (借りた本)**: a ``bookshelf`` row ``shelf='history'`` is written
  at check-out only while ``patrons.history_opt_in`` is set; nothing is recorded
  before the patron opts in.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import bindparam, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import item_table as it
from lifecycle import loan_table as lnt
from lifecycle import policies
from lifecycle.model import CHANNELS, RETURN_POINT_KINDS, Decision, ReturnPoint
from lifecycle.reasons import OK, decide
from lifecycle.table import Event, Role, State

from . import mobile, notices, routing
from . import schema as s
from .prepared import Prepared
from .prepared import execute as run_prepared
from .proxy import live_consent_names
from .reads import check_out_reads
from .service import CALENDAR_VERSION, Circulation, note_calendar_version
from .store import (
    NotFound,
    PendingItem,
    Step,
    get_row,
    item_moved,
    item_record,
    item_transition,
    item_written,
    loan_record,
    loan_transition,
    lock_one,
    open_loan,
    patron_contact,
    record_event,
    request_record,
    serving_system,
    transition,
    transitions,
)

# Channels a check-out may come through: the patron-facing ones, the self-checkout kiosk, and
# "delivery" (有料図書宅配: shipping the copy readied for a delivery request, circulation/delivery.py).
CHECK_OUT_CHANNELS = CHANNELS | {"kiosk", "delivery"}
WAITING_STATES = (State.QUEUED.value, State.SUSPENDED.value)
_LOANED_REQUEST_STATES = (State.ON_LOAN.value, State.OVERDUE.value, State.RECALLED.value)
IS, IE, LS, LE = it.ItemStatus, it.ItemEvent, lnt.LoanState, lnt.LoanEvent


@dataclass(frozen=True)
class CheckOutResult:
    loan_id: int | None
    due: date | None
    decision: Decision
    request_id: int | None = None          # the patron's hold this loan fulfils


@dataclass(frozen=True)
class RenewResult:
    due: date | None
    decision: Decision
    renewals: int | None = None


@dataclass(frozen=True)
class CheckInResult:
    loan_id: int | None
    returned_at: datetime | None
    routing: routing.Routing | None        # None when nothing was routed
    decision: Decision
    overdue_days: int = 0                  # days late, counted from returned_at



def _role(role) -> Role:
    return Role(role)


async def _lock_title(conn: AsyncConnection, title_id: str) -> None:
    """Lock the title's queue row if the title has one (it never creates it)."""
    await lock_one(conn, s.title_queues, s.title_queues.c.title_id == title_id)


async def _lock_item(conn: AsyncConnection, barcode: str, *, create_queue: bool = False):
    """Title queue, then the item row (locked). ``create_queue``: take the queue lock
    even if the title has no queue row yet (check-in: ``routing.route_copy`` takes it
    anyway, and taking it before the item keeps the lock order).

    The queue row is found from the barcode in the same statement (only the queue row
    is locked by it); a title with no queue row yet gets one from the barcode too
    (``INSERT ... SELECT ... ON CONFLICT DO NOTHING``: the new row is ours until we
    commit; when a concurrent transaction made it first, it is locked as above)."""
    if conn.dialect.name == "postgresql":
        # one round trip: the queue row, then the item row (FOR UPDATE OF in that order);
        # nothing when the title has no queue row (or there is no such copy): then as
        # below, the queue lookup done (a row made meanwhile is found by the insert's
        # conflict, or, without create_queue, not waited for -- as when the lookup below
        # finds none and one is made just after it)
        item = (await run_prepared(conn, _LOCK_QUEUE_AND_ITEM_BY_BARCODE, {"w_barcode": barcode})).first()
        if item is not None:
            note_calendar_version(conn, item.calendar_version)
            return item
        queue = None
    else:
        queue = (await run_prepared(conn, _LOCK_QUEUE_OF_BARCODE, {"w_barcode": barcode})).first()
    if queue is None and create_queue:
        made = (await run_prepared(conn, _NEW_QUEUE_OF_BARCODE[conn.dialect.name == "postgresql"],
                                   {"w_barcode": barcode})).first()
        if made is None:            # made meanwhile by another transaction (or no such copy)
            await run_prepared(conn, _LOCK_QUEUE_OF_BARCODE, {"w_barcode": barcode})
    item = (await run_prepared(conn, _LOCK_ITEM_BY_BARCODE, {"w_barcode": barcode})).first()
    if item is None:
        raise NotFound(f"item {barcode!r}")
    note_calendar_version(conn, item.calendar_version)
    return item


# statements of the counter's hot paths, built once (compiled once; on PostgreSQL run by
# the driver, circulation/prepared.py)
_LOCK_QUEUE_OF_BARCODE = Prepared(
    select(s.title_queues).where(s.title_queues.c.title_id == select(s.items.c.title_id)
                                 .where(s.items.c.barcode == bindparam("w_barcode")).scalar_subquery())
    .with_for_update())
# a title's new queue row from a copy's barcode: [SQLite, PostgreSQL]
_NEW_QUEUE_OF_BARCODE = tuple(
    Prepared(d.insert(s.title_queues).from_select(
        ["title_id", "title"],
        select(s.items.c.title_id, literal("")).where(s.items.c.barcode == bindparam("w_barcode")))
        .on_conflict_do_nothing().returning(s.title_queues.c.title_id))
    for d in (sqlite, postgresql))
# the item, and the calendar version for the due date or the shelf deadline (service.py)
_LOCK_ITEM_BY_BARCODE = Prepared(select(s.items, CALENDAR_VERSION.label("calendar_version"))
                                 .where(s.items.c.barcode == bindparam("w_barcode")).with_for_update())
# PostgreSQL: the title's queue row and the item row locked by one statement, the queue
# first (the lock order of circulation.schema: a row mark per table, taken in the order
# of FOR UPDATE OF); the item's columns as _LOCK_ITEM_BY_BARCODE's
_LOCK_QUEUE_AND_ITEM_BY_BARCODE = Prepared(
    select(s.items, CALENDAR_VERSION.label("calendar_version"))
    .join(s.title_queues, s.title_queues.c.title_id == s.items.c.title_id)
    .where(s.items.c.barcode == bindparam("w_barcode"))
    .with_for_update(of=[s.title_queues, s.items]))


def _secured_of_loans_item(column):
    return (select(column).where(s.requests.c.item_id == s.loans.c.item_id,
                                 s.requests.c.state.in_(s.SECURED_STATES)).scalar_subquery())


# the copy's open loan, locked, with its borrower's card and the request the copy is
# secured for if any (read under the copy's lock, which every change to it takes first)
_LOCK_OPEN_LOAN_WITH_CARD = Prepared(
    select(s.loans, s.patrons.c.card_number.label("borrower_card"),
           _secured_of_loans_item(s.requests.c.id).label("secured_id"),
           _secured_of_loans_item(s.requests.c.pickup_branch).label("secured_pickup"))
    .join(s.patrons, s.patrons.c.id == s.loans.c.patron_id)
    .where(s.loans.c.item_id == bindparam("w_item_id"), s.loans.c.returned_at.is_(None))
    .with_for_update(of=s.loans))
_LIBRARY_KIND = Prepared(select(s.libraries.c.kind).where(s.libraries.c.code == bindparam("w_code")))
_WAITING_Q = select(func.count()).select_from(s.requests).where(
    s.requests.c.title_id == bindparam("w_title_id"), s.requests.c.library == bindparam("w_library"),
    s.requests.c.state.in_(WAITING_STATES))
_WAITING = Prepared(_WAITING_Q.where(s.requests.c.patron_id != bindparam("w_patron_id")))
# renew: the borrower's row and the requests of others waiting for the title
_PATRON_AND_WAITING = Prepared(select(s.patrons, _WAITING_Q.where(
    s.requests.c.patron_id != s.patrons.c.id).scalar_subquery().label("waiting"))
    .where(s.patrons.c.id == bindparam("w_patron_id")))
# a check-out's reading-history entry (under the title's lock: prepared once per connection)
_HISTORY_ENTRY = Prepared(insert(s.bookshelf))
_REQUEST_TITLE = Prepared(select(s.requests.c.title).where(s.requests.c.id == bindparam("w_id")))
_QUEUE_TITLE = Prepared(select(s.title_queues.c.title).where(s.title_queues.c.title_id == bindparam("w_title_id")))
_ITEM_OF_LOAN = Prepared(select(s.items.c.id, s.items.c.title_id, CALENDAR_VERSION.label("calendar_version"))
                         .join(s.loans, s.loans.c.item_id == s.items.c.id)
                         .where(s.loans.c.id == bindparam("w_loan_id")))
_FIRST_WAITING = Prepared(select(s.requests, s.patrons.c.card_number)
                          .join(s.patrons, s.patrons.c.id == s.requests.c.patron_id)
                          .where(s.requests.c.title_id == bindparam("w_title_id"),
                                 s.requests.c.library == bindparam("w_library"),
                                 s.requests.c.state == State.QUEUED.value)
                          .order_by(s.requests.c.placed_at, s.requests.c.id))
_LAST_OPEN_TRANSIT = Prepared(select(s.transits).where(s.transits.c.item_id == bindparam("w_item_id"),
                                                       s.transits.c.arrived_at.is_(None))
                              .order_by(s.transits.c.id.desc()))


async def _library_kind(conn: AsyncConnection, code: str) -> str | None:
    return (await run_prepared(conn, _LIBRARY_KIND, {"w_code": code})).scalar()


async def _waiting(conn: AsyncConnection, circ: Circulation, item_row, borrower_id: int) -> int:
    """Requests of other patrons waiting (QUEUED, SUSPENDED) for the copy's title."""
    return (await run_prepared(conn, _WAITING, {
        "w_title_id": item_row.title_id,
        "w_library": await serving_system(conn, circ.profiles, item_row),
        "w_patron_id": borrower_id})).one()[0]


async def _title_of(conn: AsyncConnection, title_id: str, request_id: int | None = None,
                    queue=None) -> str:
    """Display title: the request's, else the title queue's, else the title id.
    ``queue``: ``(row,)`` when the caller has looked the title's queue row up (locked;
    ``(None,)``: the title has no queue row)."""
    if request_id is not None:
        t = (await run_prepared(conn, _REQUEST_TITLE, {"w_id": request_id})).scalar()
        if t:
            return t
    if queue is not None:     # the caller looked the queue row up: (queue row or None,)
        return (queue[0].title if queue[0] is not None else "") or title_id
    t = (await run_prepared(conn, _QUEUE_TITLE, {"w_title_id": title_id})).scalar()
    return t or title_id


async def _item_of_loan(conn: AsyncConnection, loan_id: int):
    """The id and title of the loan's copy (read before the locks are taken in order)."""
    row = (await run_prepared(conn, _ITEM_OF_LOAN, {"w_loan_id": loan_id})).first()
    if row is None:
        raise NotFound(f"loan {loan_id}")
    note_calendar_version(conn, row.calendar_version)
    return row


async def _due_on_open_day(circ: Circulation, conn: AsyncConnection, branch: str, due: date) -> date:
    cal = await circ.calendar(conn, branch)
    return cal.next_open_day(due)


def _loan_rec(loan_row, card: str, item_row):
    return loan_record(loan_row, card, item_row.barcode, item_row.material_type,
                       item_row.partner, item_row.ill)


# --------------------------------------------------------------------------- check-out

async def check_out(circ: Circulation, *, barcode: str, card: str, branch: str, role, actor: str,
                    channel: str = "counter", proxy: str | None = None,
                    stop: str | None = None) -> CheckOutResult:
    """Lend the copy ``barcode`` to the patron with ``card`` at ``branch``.

    ``channel="delivery"`` ships the copy readied for the patron's delivery request
    (``policies.can_check_out_delivery``: registered patron, delivery materials, the
    delivery period). ``proxy``: the name of someone borrowing with the holder's card
    (代理での貸出), refused (``proxy_loans_not_offered``, ``proxy_not_authorised``) unless
    the profile offers it and a live consent of the holder names them
    (``policies.can_lend_to_proxy``); the name is kept on the loan and in the audit.
    ``stop``: at the mobile library, the stop lent at (``policies.mobile_terms_at_stop``:
    due on the next visit there, the school-stop limit); kept on the loan. Cards:
    ``policies.card_usable_at`` (``card_expired``, ``card_not_for_mobile``,
    ``mobile_card_only``).

    Refusals (``decision.allowed`` false, nothing written): ``card_not_valid_here``,
    ``item_other_system``, ``item_on_loan``, ``held_for_another_patron``,
    ``item_in_transit``, ``item_not_available``, ``partner_lend_at_counter`` and the
    refusals of ``policies.can_check_out`` (``loan_limit``, ``item_not_circulating``,
    ``no_loan_rule``)."""
    role = _role(role)
    if channel not in CHECK_OUT_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    profile = circ.profile_of_branch(branch)
    if stop is not None and not policies.is_mobile_branch(profile, branch):
        raise ValueError(f"stop= is only for check-outs at the mobile library, not at {branch!r}")

    async def work(conn: AsyncConnection) -> CheckOutResult:
        now = circ.now()
        item = await _lock_item(conn, barcode)
        patron = await lock_one(conn, s.patrons, s.patrons.c.card_number == card)
        if patron is None:
            raise NotFound(f"patron {card!r}")
        case, secured = await _check_out_case(circ, conn, profile, item, patron, branch=branch,
                                              channel=channel, proxy=proxy, stop=stop)
        try:
            decision = policies.decide_check_out(profile, case, now)
        except policies.UnknownStop:
            raise NotFound(f"no stop {stop!r} in the schedule of {branch!r}") from None
        if not decision.allowed:
            return CheckOutResult(None, None, decision)
        own_request = secured if decision.details["request_id"] is not None else None
        proxy_key = decision.details["proxy"]
        due = await _due_on_open_day(circ, conn, branch, decision.details["due"])

        loan_id = await open_loan(
            conn, item_id=item.id, patron_id=patron.id,
            request_id=own_request.id if own_request is not None else None, branch=branch,
            channel=channel, at=now, due=due, role=role, actor=actor, proxy=proxy_key, stop=stop,
            reason=f"due {due.isoformat()}" + (f", proxy {proxy_key}" if proxy_key else ""))
        if loan_id is None:       # ux_loans_open_item: another transaction lent this copy first
            return CheckOutResult(None, None, decide("item_on_loan"))
        if own_request is not None:
            await transition(conn, own_request, Event.CHECK_OUT, role=role, actor=actor, at=now,
                             channel=channel, branch=branch, reason=f"loan {loan_id}")
        await item_transition(conn, item, IE.LEND, at=now, current_branch=branch)
        if patron.history_opt_in:
            await run_prepared(conn, _HISTORY_ENTRY, dict(
                patron_id=patron.id, shelf="history", title_id=item.title_id,
                title=await _title_of(conn, item.title_id,
                                      own_request.id if own_request is not None else None),
                added_at=now, loan_id=loan_id))
        return CheckOutResult(loan_id, due, decide("ok", due=due),
                              own_request.id if own_request is not None else None)

    return await circ.db.run(work)


async def _check_out_case(circ: Circulation, conn: AsyncConnection, profile, item, patron, *,
                          branch: str, channel: str, proxy: str | None,
                          stop: str | None) -> tuple[policies.CheckOut, object]:
    """What ``policies.decide_check_out`` reads, loaded under the check-out's locks, and
    the row of the request the copy is secured for (None when it is not)."""
    snapshot, secured, open_loan = await check_out_reads(conn, patron, item.id)
    first = await _first_waiting(conn, circ, item) if not profile.walk_in_first else None
    counter_kind, counter_system_kind = "library", None
    if item.partner:
        branch_row = await get_row(conn, s.branches, s.branches.c.code == branch, what="branch")
        counter_kind, counter_system_kind = branch_row.kind, await _library_kind(conn, branch_row.library)
    visits = ()
    if stop is not None:
        visits = tuple((v.day, v.kind) for v in await mobile.stop_visits(conn, branch, stop))
    case = policies.CheckOut(
        branch=branch, channel=channel, patron=snapshot,
        card_system=patron.library, item=item_record(item), status=item.status,
        at_branch=item.current_branch, open_loan=open_loan,
        secured=request_record(secured, secured.card_number) if secured is not None else None,
        first_waiting=request_record(first, first.card_number) if first is not None else None,
        proxy=proxy,
        consented=tuple(await live_consent_names(conn, patron.id)) if proxy is not None else (),
        counter_kind=counter_kind, counter_system_kind=counter_system_kind, stop=stop, stop_visits=visits)
    return case, secured


async def _first_waiting(conn: AsyncConnection, circ: Circulation, item_row):
    """The first QUEUED request for the copy's title (with its patron's card)."""
    rows = (await run_prepared(conn, _FIRST_WAITING, {
        "w_title_id": item_row.title_id,
        "w_library": await serving_system(conn, circ.profiles, item_row)})).all()
    return rows[0] if rows else None


# --------------------------------------------------------------------------- renewal

async def renew(circ: Circulation, *, loan_id: int, role, actor: str, channel: str,
                card: str | None = None) -> RenewResult:
    """Renew one loan by ``policies.can_renew`` (nobody else waiting for the title,
    renewal limit and window, web-then-counter rule, base date). With ``card`` the
    loan must be that patron's (else NotFound). Queues a ``renewal_done`` notice."""
    role = _role(role)
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")

    async def work(conn: AsyncConnection) -> RenewResult:
        now = circ.now()
        item0 = await _item_of_loan(conn, loan_id)
        queue = await lock_one(conn, s.title_queues, s.title_queues.c.title_id == item0.title_id)
        item = await lock_one(conn, s.items, s.items.c.id == item0.id)
        loan = await lock_one(conn, s.loans, s.loans.c.id == loan_id)
        # the borrower and the others waiting for the title: one read, after the locks
        patron = (await run_prepared(conn, _PATRON_AND_WAITING, {
            "w_patron_id": loan.patron_id, "w_title_id": item.title_id,
            "w_library": await serving_system(conn, circ.profiles, item)})).first()
        if patron is None:
            raise NotFound(f"patron {loan.patron_id}")
        if card is not None and patron.card_number != card:
            raise NotFound(f"loan {loan_id}")
        is_open = loan.returned_at is None and LS(loan.state) in lnt.OPEN
        profile = circ.profile_of_branch(loan.branch)
        waiting = patron.waiting if is_open else 0
        by_lender = loan.request_id is not None and (await conn.execute(select(s.ill_legs.c.id).where(
            s.ill_legs.c.request_id == loan.request_id).limit(1))).first() is not None
        decision = policies.decide_renewal(profile, patron_contact(patron),
                                           _loan_rec(loan, patron.card_number, item), now, is_open=is_open,
                                           state=loan.state, channel=channel, someone_waiting=waiting > 0,
                                           by_lender=by_lender)
        if not decision.allowed:
            return RenewResult(None, decision)
        new_due = await _due_on_open_day(circ, conn, loan.branch, decision.details["due"])
        renewals = loan.renewals + 1
        if loan.request_id is not None:
            req = await get_row(conn, s.requests, s.requests.c.id == loan.request_id, what="request")
            if req.state in (State.ON_LOAN.value, State.OVERDUE.value):
                await transition(conn, req, Event.RENEW, role=role, actor=actor, at=now,
                                 channel=channel, branch=loan.branch,
                                 reason=f"loan {loan.id} due {new_due.isoformat()}")
        notice = notices.pending("renewal_done", patron_id=patron.id, loan_id=loan.id,
                                 dedupe_key=f"renewal_done:{loan.id}:{renewals}", at=now,
                                 data={"title": await _title_of(conn, item.title_id, loan.request_id, (queue,)),
                                       "barcode": item.barcode, "due": new_due,
                                       "previous_due": loan.due, "renewals": renewals})
        # the loan, its RENEW row and the renewal_done notice (on PostgreSQL one statement)
        await loan_transition(conn, loan, LE.RENEW, role=role, actor=actor, at=now, channel=channel,
                              branch=loan.branch,
                              reason=f"due {loan.due.isoformat()} -> {new_due.isoformat()}",
                              if_renewals=loan.renewals, if_open=True, notice=notice,
                              renewals=renewals, renewed_via=channel, due=new_due)
        return RenewResult(new_due, decide("ok", due=new_due), renewals)

    return await circ.db.run(work)


# --------------------------------------------------------------------------- check-in

async def check_in(circ: Circulation, *, barcode: str, branch: str, role, actor: str,
                   return_kind: str = "counter", dropped_at: datetime | None = None,
                   walk_in: bool = False) -> CheckInResult:
    """Take a copy back at ``branch`` (``return_kind`` is where it was handed in:
    counter, return machine, book drop, an external drop point processed by this
    branch, the post), close its loan and route the copy (``routing.route_copy``: hold
    shelf or transit for the next request, home, or the shelf). ``walk_in``: a patron
    at the counter wants this copy now (来館者優先), so it is not trapped.

    A refused return (``policies.can_return_at``: partner items only at the counter
    they were lent from, ILL items and audio books not at drop points, mobile library
    loans only on the mobile or at the central library) leaves the loan
    open. Without an open loan the copy is not returned again: see the module notes."""
    role = _role(role)
    if return_kind not in RETURN_POINT_KINDS:
        raise ValueError(f"unknown return kind {return_kind!r}")
    profile_here = circ.profile_of_branch(branch)

    async def work(conn: AsyncConnection) -> CheckInResult:
        now = circ.now()
        if dropped_at is not None and dropped_at > now:
            raise ValueError("dropped_at is in the future")
        item = await _lock_item(conn, barcode, create_queue=True)
        loan = (await run_prepared(conn, _LOCK_OPEN_LOAN_WITH_CARD, {"w_item_id": item.id})).first()
        if loan is None:
            return await _check_in_without_loan(circ, conn, item, branch, role, actor, walk_in)

        profile = circ.profile_of_branch(loan.branch)
        place = ReturnPoint(kind=return_kind, branch=branch)
        decision = policies.decide_check_in(profile, _loan_rec(loan, loan.borrower_card, item),
                                            item_record(item), place, now, here_system=profile_here.system,
                                            handed_at=dropped_at or now)
        if not decision.allowed:
            await record_event(conn, at=now, event="RETURN_REFUSED", actor_role=role.value,
                               actor=actor, loan_id=loan.id, item_id=item.id,
                               from_state=loan.state, to_state=loan.state, channel=return_kind,
                               branch=branch, reason=decision.code)
            return CheckInResult(loan.id, None, None, decision)

        returned_at, late = decision.details["returned_at"], decision.details["overdue_days"]
        await loan_transition(conn, loan, LE.CHECK_IN, role=role, actor=actor, at=now,
                              channel=return_kind, branch=branch,
                              reason=f"returned_at {returned_at.isoformat()}"
                                     + (f", {late} days late" if late else ""),
                              if_open=True, returned_at=returned_at, return_branch=branch, return_kind=return_kind)
        if loan.request_id is not None:
            req = await get_row(conn, s.requests, s.requests.c.id == loan.request_id, what="request")
            if req.state in _LOANED_REQUEST_STATES:
                steps = [Step(Event.CHECK_IN, role, actor, now, return_kind, branch, f"loan {loan.id}")]
                # a partner's copy (連携貸出) takes the return leg instead (SHIP_RETURN, in
                # routing.route_copy → the partners leg below); ILL copies skip CLOSE too
                if not item.ill and not item.partner:
                    steps.append(Step(Event.CLOSE, Role.SYSTEM, "circulation", now, None, branch,
                                      f"loan {loan.id} returned"))
                await transitions(conn, req, *steps)
        # CHECK_IN is asked of the item table now and written with the routing's move
        # (RESHELVE, SEND, PUT_ON_HOLD_SHELF): one UPDATE of the copy; alone if the
        # routing moves it no further
        fresh = PendingItem(item, IE.CHECK_IN, at=now, current_branch=branch)
        held = routing.Held(loan.secured_id, loan.secured_pickup) if loan.secured_id is not None else None
        routed = await routing.route_copy(circ, conn, fresh, branch, role=role, actor=actor,
                                         walk_in=walk_in, locked=True, held=held)
        await item_written(conn, fresh)
        return CheckInResult(loan.id, returned_at, routed, decision, late)

    return await circ.db.run(work)


async def _check_in_without_loan(circ, conn, item, branch, role, actor, walk_in):
    """A copy scanned at check-in that is not on loan: never a second return."""
    held = await routing.secured_for(conn, item.id, lock=True)      # the item is locked
    if item.status == IS.ON_HOLD_SHELF.value or (held is not None and held.state == State.ON_HOLD_SHELF.value):
        return CheckInResult(None, None, None, decide("not_on_loan", status=IS.ON_HOLD_SHELF.value))
    if item.status == IS.IN_TRANSIT.value:
        leg = (await run_prepared(conn, _LAST_OPEN_TRANSIT, {"w_item_id": item.id})).first()
        if leg is not None and leg.from_branch == branch and leg.to_branch != branch:
            # scanned again where it is being sent from: it has not arrived anywhere
            return CheckInResult(None, None, None,
                                 decide("not_on_loan", status=IS.IN_TRANSIT.value, to_branch=leg.to_branch))
        routed = await routing.arrive(circ, conn, item, branch, role=role, actor=actor, locked=True, held=held)
        return CheckInResult(None, None, routed, decide("not_on_loan", status=IS.IN_TRANSIT.value))
    if item.status in (IS.AVAILABLE.value, IS.ON_LOAN.value, IS.LOST.value):
        if item.status != IS.AVAILABLE.value or item.current_branch != branch:
            # back in hand: not lent after all, found, or at another branch
            event = IE.RESHELVE if item.status == IS.AVAILABLE.value else IE.CHECK_IN
            item = await item_moved(conn, item, event, at=circ.now(), current_branch=branch)
        routed = await routing.route_copy(circ, conn, item, branch, role=role, actor=actor,
                                         walk_in=walk_in, locked=True)
        return CheckInResult(None, None, routed, decide("not_on_loan", status=IS.AVAILABLE.value))
    return CheckInResult(None, None, None, decide("not_on_loan", status=item.status))


# --------------------------------------------------------------------------- lost

async def declare_lost(circ: Circulation, *, loan_id: int, role, actor: str,
                       reason: str = "") -> Decision:
    """Staff declare an open loan lost: the loan becomes LOST (it stays open, so the
    copy cannot be lent until it turns up and is checked in), the copy's status
    ``lost``, a linked request DECLARE_LOST (→ LOST)."""
    role = _role(role)

    async def work(conn: AsyncConnection) -> Decision:
        now = circ.now()
        item0 = await _item_of_loan(conn, loan_id)
        await _lock_title(conn, item0.title_id)
        item = await lock_one(conn, s.items, s.items.c.id == item0.id)
        loan = await lock_one(conn, s.loans, s.loans.c.id == loan_id)
        if loan.returned_at is not None or LS(loan.state) not in lnt.OPEN:
            return decide("not_on_loan", state=loan.state)
        if loan.request_id is not None:
            req = await get_row(conn, s.requests, s.requests.c.id == loan.request_id, what="request")
            if req.state in _LOANED_REQUEST_STATES:
                await transition(conn, req, Event.DECLARE_LOST, role=role, actor=actor, at=now,
                                 branch=loan.branch, reason=reason or f"loan {loan.id} lost")
        await loan_transition(conn, loan, LE.DECLARE_LOST, role=role, actor=actor, at=now,
                              branch=loan.branch, reason=reason)
        await item_transition(conn, item, IE.DECLARE_LOST, at=now)
        return OK

    return await circ.db.run(work)


# --------------------------------------------------------------------------- patron's page

async def patron_loans(circ: Circulation, card: str) -> list[dict]:
    """The patron's open loans for the loans page (貸出一覧), oldest due first: title,
    barcode, lending branch and its name, lent/due dates, overdue flag and days,
    whether someone is waiting (Iizuka's marks), renewals, and whether a web renewal
    is possible now, with the refusal message when not (the page shows the renewal
    button only when ``renewable``)."""
    now = circ.now()
    async with circ.db.read() as conn:
        patron = await get_row(conn, s.patrons, s.patrons.c.card_number == card,
                               what=f"patron {card!r}")
        rows = (await conn.execute(
            select(s.loans, s.items.c.barcode, s.items.c.title_id, s.items.c.library.label("item_library"),
                   s.items.c.owning_branch, s.items.c.material_type, s.items.c.partner,
                   s.items.c.ill, s.branches.c.name.label("branch_name"))
            .join(s.items, s.items.c.id == s.loans.c.item_id)
            .join(s.branches, s.branches.c.code == s.loans.c.branch)
            .where(s.loans.c.patron_id == patron.id, s.loans.c.returned_at.is_(None))
            .order_by(s.loans.c.due, s.loans.c.id))).all()
        out = []
        for r in rows:
            item_like = _ItemView(r.title_id, r.item_library, r.owning_branch, r.item_id, r.partner, r.ill)
            waiting = await _waiting(conn, circ, item_like, patron.id)
            rec = loan_record(r, card, r.barcode, r.material_type, r.partner, r.ill)
            lost = r.state == LS.LOST.value
            if lost:
                d = decide("not_on_loan", state=r.state)
            elif r.ill:         # another library's copy (ISO 18626): its lender decides, as renew() says
                d = decide("renewal_by_lender")
            else:
                d = policies.can_renew(circ.profile_of_branch(r.branch), rec, now, channel="web",
                                       someone_waiting=waiting > 0)
            days_late = policies.overdue_days(rec, now)
            out.append({
                "loan_id": r.id, "title_id": r.title_id,
                "title": await _title_of(conn, r.title_id, r.request_id),
                "barcode": r.barcode, "material_type": r.material_type,
                "branch": r.branch, "branch_name": r.branch_name,
                "lent_at": r.lent_at, "due": r.due, "state": r.state,
                "overdue": policies.is_overdue(rec, now), "overdue_days": days_late,
                "someone_waiting": waiting > 0,
                "renewals": r.renewals, "renewed_via": r.renewed_via,
                "renewable": d.allowed,
                "renewal_code": d.code,
                "renewal_message_ja": "" if d.allowed else d.message_ja,
                "renewal_message_en": "" if d.allowed else d.message_en,
            })
        return out


@dataclass(frozen=True)
class _ItemView:
    title_id: str
    library: str
    owning_branch: str
    id: int
    partner: str | None
    ill: bool
