"""Scheduled jobs of the circulation service, as data, and the scheduler that runs them.

| job | does | default interval |
|---|---|---|
| `shelf_expiry` | `holds.expire_shelf`: holds past their shelf deadline → SHELF_EXPIRED, next in queue | 1 hour |
| `overdue` | `loans.mark_overdue`: loans past their due date → OVERDUE | 1 hour |
| `purge_cancelled` | `holds.purge_cancelled`: cancelled holds past the visible period | 1 day |
| `lapse_requests` | `holds.lapse_unpublished`: requests for titles not published in time | 1 day |
| `notices` | `notices.dispatch_due`: send the due notices of the outbox | 1 minute |
| `purge_sessions` | `auth.purge_expired_sessions`: delete expired login sessions | 1 hour |

Every job is idempotent (a second run right after the first changes nothing) and
uses the service clock (``circ.now()``), so a job that runs late or twice is harmless.

:func:`run_job` runs one job once and records it in ``job_runs`` (start, end, rows
changed, error). :class:`Scheduler` runs jobs inside the service as asyncio tasks,
one task per job, so a job never overlaps itself in one process (a manual
:meth:`Scheduler.run_now` waits for a running one); a failing run is logged and
recorded and the loop goes on. Two service processes would each run their
schedule; the jobs are written to be safe under that (row locks, conditional
updates, the outbox's claim), only wasteful.
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Awaitable, Callable, NamedTuple

from sqlalchemy import insert, update

from . import schema as s
from .notices import DispatchCounts, dispatch_due

log = logging.getLogger("unioncat.circulation.jobs")


class JobSpec(NamedTuple):
    run: Callable[..., Awaitable[Any]]     # async (circ, mailer) -> count, rows or DispatchCounts
    interval: timedelta


# holds.py and loans.py are imported when the job runs, not when this module loads.

async def _shelf_expiry(circ, mailer=None):
    from . import holds
    return await holds.expire_shelf(circ)


async def _overdue(circ, mailer=None):
    from . import loans
    return await loans.mark_overdue(circ)


async def _purge_cancelled(circ, mailer=None):
    from . import holds
    return await holds.purge_cancelled(circ)


async def _lapse_requests(circ, mailer=None):
    from . import holds
    return await holds.lapse_unpublished(circ)


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

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the scheduler was already started")
        for name, secs in self.intervals.items():
            self._tasks[name] = asyncio.create_task(self._loop(name, secs), name=f"job:{name}")

    async def run_now(self, name: str) -> int:
        """Run one scheduled job now (after its current run, if one is in progress)."""
        lock = self._locks.get(name)
        if lock is None:
            raise ValueError(f"job {name!r} is not scheduled")
        async with lock:
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
            async with self._locks[name]:
                await self._run(name)
            try:
                await asyncio.wait_for(self._stopping.wait(), secs)
            except TimeoutError:
                pass

    async def stop(self, timeout: float = 30.0) -> None:
        """Let running jobs finish (up to ``timeout`` seconds, then cancel them)."""
        self._stopping.set()
        tasks = list(self._tasks.values())
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
