"""Scheduled jobs of the circulation service, as data, and the scheduler that runs them.

| job | does | default interval |
|---|---|---|
| `shelf_expiry` | :func:`expire_shelf`: holds past their shelf deadline → SHELF_EXPIRED, the copy routed on | 1 hour |
| `overdue` | :func:`mark_overdue`: loans past their due date → OVERDUE | 1 hour |
| `purge_cancelled` | :func:`purge_cancelled`: requests that ended without a loan, past the visible period | 1 day |
| `lapse_requests` | :func:`lapse_unpublished`: requests for titles not published in time | 1 day |
| `notices` | `notices.dispatch_due`: send the due notices of the outbox | 1 minute |
| `purge_sessions` | `auth.purge_expired_sessions`: delete expired login sessions | 1 hour |

The jobs' own work (the first four) is written here; the rules they apply are pure
(``policies.shelf_deadline``, ``policies.purge_cutoff``, ``policies.request_lapsed``),
and a copy freed from a hold shelf goes through :func:`circulation.routing.route_copy`.

Every job is idempotent (a second run right after the first changes nothing) and
uses the service clock (``circ.now()``), so a job that runs late or twice is harmless.

:func:`run_job` runs one job once and records it in ``job_runs`` (start, end, rows
changed, error). :class:`Scheduler` runs jobs inside the service as asyncio tasks,
one task per job, so a job never overlaps itself in one process (a manual
:meth:`Scheduler.run_now` waits for a running one); a failing run is logged and
recorded and the loop goes on. Stopping starts no new run and waits for the runs in
progress, manual ones included, before whoever owns the database disposes of it.
Two service processes would each run their schedule; the jobs are written to be safe
under that (row locks, conditional updates, the outbox's claim), only wasteful.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Awaitable, Callable, NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import loan_table as lnt
from lifecycle import policies
from lifecycle import table as lt
from lifecycle.reasons import REASON_PUBLICATION_LAPSED, REASON_SHELF_EXPIRED

from . import notices, routing
from . import schema as s
from .notices import DispatchCounts, dispatch_due
from .service import Circulation
from .store import (
    get_row,
    loan_transition,
    lock_one,
    lock_rows,
    lock_title_queue,
    request_record,
    request_row,
    transition,
)

log = logging.getLogger("unioncat.circulation.jobs")


class SchedulerStopped(RuntimeError):
    """The scheduler is stopping (or stopped): no new run of a job starts."""


class JobSpec(NamedTuple):
    run: Callable[..., Awaitable[Any]]     # async (circ, mailer) -> count, rows or DispatchCounts
    interval: timedelta


E, S, R = lt.Event, lt.State, lt.Role
LS, LE = lnt.LoanState, lnt.LoanEvent
# requests that ended without a loan (policies.CLOSED_VISIBLE), as the column's values
CLOSED_VISIBLE_STATES = tuple(sorted(st.value for st in policies.CLOSED_VISIBLE))


# --------------------------------------------------------------------------- the jobs' work

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
            row = await request_row(conn, rid)
            await lock_title_queue(conn, row.title_id)
            row = await request_row(conn, rid)
            if row.state != S.ON_HOLD_SHELF.value:
                return 0
            item = await routing.lock_item(conn, row.item_id) if row.item_id is not None else None
            row = await request_row(conn, rid, lock=True)
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
                await routing.route_copy(circ, conn, item, row.pickup_branch, role=R.SYSTEM,
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
                row = await request_row(conn, rid)
                await lock_title_queue(conn, row.title_id)
                row = await request_row(conn, rid, lock=True)
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
                                      data=notices.hold_data(circ, row, reason=REASON_PUBLICATION_LAPSED,
                                                        channel="system"))
                return 1

            n += await circ.db.run(work)
    return n


async def mark_overdue(circ: Circulation) -> int:
    """Scheduled job: open loans whose due date has passed become OVERDUE (and a linked
    request gets DUE_DATE_PASSED). Idempotent; returns how many loans it changed. One
    small unit of work per loan, so a busy counter is never blocked for long. Its runs
    are recorded in ``job_runs`` by circulation.jobs.run_job."""
    now = circ.now()
    async with circ.db.read() as conn:
        ids = list((await conn.execute(select(s.loans.c.id).where(
            s.loans.c.state == LS.ON_LOAN.value, s.loans.c.returned_at.is_(None),
            s.loans.c.due < now.date()).order_by(s.loans.c.id))).scalars())

    async def one(loan_id: int):
        async def work(conn: AsyncConnection) -> int:
            first = await get_row(conn, s.loans, s.loans.c.id == loan_id, what="loan")
            item0 = await get_row(conn, s.items, s.items.c.id == first.item_id, what="item")
            await lock_one(conn, s.title_queues, s.title_queues.c.title_id == item0.title_id)
            await lock_one(conn, s.items, s.items.c.id == item0.id)
            loan = await lock_one(conn, s.loans, s.loans.c.id == loan_id)
            if loan.state != LS.ON_LOAN.value or loan.returned_at is not None or loan.due >= now.date():
                return 0      # returned or renewed meanwhile
            await loan_transition(conn, loan, LE.DUE_DATE_PASSED, role=R.SYSTEM, actor="mark_overdue",
                                  at=now, branch=loan.branch, reason=f"due {loan.due.isoformat()}")
            if loan.request_id is not None:
                req = await get_row(conn, s.requests, s.requests.c.id == loan.request_id,
                                    what="request")
                if req.state == S.ON_LOAN.value:
                    await transition(conn, req, E.DUE_DATE_PASSED, role=R.SYSTEM,
                                     actor="mark_overdue", at=now, branch=loan.branch,
                                     reason=f"loan {loan.id} due {loan.due.isoformat()}")
            return 1
        return await circ.db.run(work)

    changed = 0
    for loan_id in ids:
        changed += await one(loan_id)
    return changed


# --------------------------------------------------------------------------- the table

async def _shelf_expiry(circ, mailer=None):
    return await expire_shelf(circ)


async def _overdue(circ, mailer=None):
    return await mark_overdue(circ)


async def _purge_cancelled(circ, mailer=None):
    return await purge_cancelled(circ)


async def _lapse_requests(circ, mailer=None):
    return await lapse_unpublished(circ)


async def _notices(circ, mailer=None):
    if mailer is None:
        raise ValueError("the notices job needs a mailer (connectors.smtp.Mailer)")
    return await dispatch_due(circ, mailer)


async def _purge_sessions(circ, mailer=None):
    from . import auth
    return await auth.purge_expired_sessions(circ)


JOBS: dict[str, JobSpec] = {
    "shelf_expiry": JobSpec(_shelf_expiry, timedelta(hours=1)),
    "overdue": JobSpec(_overdue, timedelta(hours=1)),
    "purge_cancelled": JobSpec(_purge_cancelled, timedelta(days=1)),
    "lapse_requests": JobSpec(_lapse_requests, timedelta(days=1)),
    "notices": JobSpec(_notices, timedelta(minutes=1)),
    "purge_sessions": JobSpec(_purge_sessions, timedelta(hours=1)),
}


def changed_count(result: Any) -> int:
    """What a job returned, as the number of rows it changed."""
    if result is None:
        return 0
    if isinstance(result, DispatchCounts):
        return result.total
    if isinstance(result, (bool, int)):
        return int(result)
    if hasattr(result, "__len__"):
        return len(result)
    raise TypeError(f"a job returned {type(result).__name__}; expected a count or a collection")


async def run_job(circ, name: str, mailer=None) -> int:
    """Run job ``name`` once; record a ``job_runs`` row; return the changed count.
    A failure is recorded (``error``) and raised again."""
    try:
        spec = JOBS[name]
    except KeyError:
        raise ValueError(f"unknown job {name!r}; jobs: {', '.join(JOBS)}") from None
    async with circ.db.transaction() as conn:
        run_id = (await conn.execute(insert(s.job_runs).values(
            job=name, started_at=circ.now()))).inserted_primary_key[0]

    async def finish(changed: int, error: str | None) -> None:
        async with circ.db.transaction() as conn:
            await conn.execute(update(s.job_runs).where(s.job_runs.c.id == run_id).values(
                finished_at=circ.now(), changed=changed, error=error))

    try:
        changed = changed_count(await spec.run(circ, mailer))
    except asyncio.CancelledError:
        await asyncio.shield(finish(0, "cancelled"))
        raise
    except Exception as e:
        await finish(0, f"{type(e).__name__}: {e}"[:2000])
        raise
    await finish(changed, None)
    return changed


def _seconds(v: float | timedelta) -> float:
    secs = v.total_seconds() if isinstance(v, timedelta) else float(v)
    if secs <= 0:
        raise ValueError(f"a job interval must be positive, got {v!r}")
    return secs


class Scheduler:
    """Run jobs periodically in the current event loop.

    ``intervals`` maps job names to seconds (or timedeltas); only those jobs run.
    None runs every job at its default interval. Each job runs once at start, then
    every interval after the previous run ended.

    Every run is the scheduler's own task, the periodic ones and those asked for with
    :meth:`run_now` alike (a caller that goes away does not take a run down with it),
    so :meth:`stop` knows every run in progress: it starts no new one, lets those in
    progress finish (up to its timeout), then cancels the rest and waits until they
    have recorded that they were cancelled. Whoever owns resources the jobs use (the
    database) releases them after :meth:`stop` returned.
    """

    def __init__(self, circ, mailer=None,
                 intervals: Mapping[str, float | timedelta] | None = None):
        if intervals is None:
            intervals = {name: spec.interval for name, spec in JOBS.items()}
        unknown = set(intervals) - set(JOBS)
        if unknown:
            raise ValueError(f"unknown jobs {sorted(unknown)}; jobs: {', '.join(JOBS)}")
        if "notices" in intervals and mailer is None:
            raise ValueError("the notices job needs a mailer")
        self.circ, self.mailer = circ, mailer
        self.intervals = {name: _seconds(v) for name, v in intervals.items()}
        self.runs: Counter[str] = Counter()      # finished runs per job
        self.failures: Counter[str] = Counter()  # of which failed
        self._locks = {name: asyncio.Lock() for name in self.intervals}
        self._stopping = asyncio.Event()
        self._tasks: dict[str, asyncio.Task] = {}
        self._now: set[asyncio.Task] = set()     # runs asked for by run_now

    @property
    def running(self) -> bool:
        return any(not t.done() for t in (*self._tasks.values(), *self._now))

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the scheduler was already started")
        for name, secs in self.intervals.items():
            self._tasks[name] = asyncio.create_task(self._loop(name, secs), name=f"job:{name}")

    async def run_now(self, name: str) -> int:
        """Run one scheduled job now (after its current run, if one is in progress).
        Raises :class:`SchedulerStopped` once the scheduler is stopping."""
        if name not in self._locks:
            raise ValueError(f"job {name!r} is not scheduled")
        if self._stopping.is_set():
            raise SchedulerStopped(f"job {name} not run: the scheduler is stopping")
        task = asyncio.create_task(self._run_locked(name), name=f"job:{name}:now")
        self._now.add(task)
        task.add_done_callback(self._now.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task.cancelled() and not (me is not None and me.cancelling()):
                raise SchedulerStopped(f"job {name} was cancelled: the scheduler stopped") from None
            raise

    async def _run_locked(self, name: str) -> int:
        async with self._locks[name]:
            if self._stopping.is_set():
                raise SchedulerStopped(f"job {name} not run: the scheduler is stopping")
            return await self._run(name)

    async def _run(self, name: str) -> int:
        try:
            return await run_job(self.circ, name, self.mailer)
        except Exception:
            self.failures[name] += 1
            log.exception("scheduled job %s failed", name)
            return 0
        finally:
            self.runs[name] += 1

    async def _loop(self, name: str, secs: float) -> None:
        while not self._stopping.is_set():
            try:
                await self._run_locked(name)
            except SchedulerStopped:
                return
            try:
                await asyncio.wait_for(self._stopping.wait(), secs)
            except TimeoutError:
                pass

    async def stop(self, timeout: float = 30.0) -> None:
        """Start no new run; let the runs in progress finish (up to ``timeout`` seconds),
        then cancel the rest and wait until they have ended."""
        self._stopping.set()
        tasks = [*self._tasks.values(), *self._now]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> "Scheduler":
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
