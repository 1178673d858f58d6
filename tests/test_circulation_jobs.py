"""Scheduled jobs (circulation/jobs.py) on SQLite and PostgreSQL: run_job and its
job_runs rows, idempotence of every job, and the Scheduler (no overlap, failures
recorded without stopping the loop, clean stop)."""
from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select

from circ_helpers import NOW, add_item, add_patron, loopback_mailer, rows, smtp_server, until
from circulation import holds, loans
from circulation import routing as rt
from circulation import schema as s
from circulation.jobs import JOBS, JobSpec, Scheduler, SchedulerStopped, run_job

STAFF = dict(role="staff", actor="staff1")


class Sink:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


@pytest.fixture
def mailer():
    sink = Sink()
    with smtp_server(sink) as port:
        m = loopback_mailer(port)
        m.sink = sink
        yield m


async def job_runs(circ, *names):
    return [r for r in await rows(circ, s.job_runs, order_by=s.job_runs.c.id) if r.job in names]


# --------------------------------------------------------------------------- run_job

async def test_every_job_changes_what_is_due_once_and_nothing_when_run_again(circ, mailer):
    # Iizuka: a hold on the shelf, a loan, a hold cancelled on the web
    await add_patron(circ, "1000000001", "iizuka", email="a@example.jp", default_contact_method="email")
    await add_patron(circ, "1000000002", "iizuka", email="b@example.jp")
    await add_item(circ, "A-1", "T-A", "iizuka", "iizuka")
    await add_item(circ, "B-1", "T-B", "iizuka", "iizuka")
    await add_item(circ, "C-1", "T-C", "iizuka", "iizuka", status="on_loan")
    shelf = await holds.place(circ, card="1000000001", title_id="T-A", pickup_branch="iizuka",
                              channel="web", role="patron", actor="1000000001",
                              contact_method="email", title="本A")
    await rt.trap_from_shelf(circ, barcode="A-1", branch="iizuka", **STAFF)
    lent = await loans.check_out(circ, barcode="B-1", card="1000000002", branch="iizuka", **STAFF)
    assert lent.decision.allowed
    gone = await holds.place(circ, card="1000000002", title_id="T-C", pickup_branch="iizuka",
                             channel="web", role="patron", actor="1000000002",
                             contact_method="email", title="本C")
    assert (await holds.cancel(circ, request_id=gone.request_id, role="patron", actor="1000000002",
                               channel="web", card="1000000002")).allowed
    # Komae: a request for a new book that is never published
    await add_patron(circ, "K-1", "komae", email="k@example.jp")
    never = await holds.place(circ, card="K-1", title_id="T-NEVER", pickup_branch="komae-central",
                              channel="counter", submitted_at_branch="komae-central",
                              publication_date=date(2027, 3, 1), title="未刊", **STAFF)
    assert never.decision.allowed

    # a login session that has expired by then (patrons: 8 h at most)
    async with circ.db.transaction() as conn:
        patron = select(s.patrons.c.id).where(s.patrons.c.card_number == "1000000001").scalar_subquery()
        await conn.execute(insert(s.sessions).values(token_hash="expired", patron_id=patron, created_at=NOW,
                                                     expires_at=NOW + timedelta(hours=8)))

    circ.clock.fixed = NOW + timedelta(days=31)
    first = {name: await run_job(circ, name, mailer) for name in JOBS}
    second = {name: await run_job(circ, name, mailer) for name in JOBS}

    assert {k: v for k, v in first.items() if k != "notices"} == \
        {"shelf_expiry": 1, "overdue": 1, "purge_cancelled": 1, "lapse_requests": 1, "purge_sessions": 1}
    assert first["notices"] > 0 and mailer.sink.count > 0
    assert second == dict.fromkeys(JOBS, 0)
    states = {r.id: r.state for r in await rows(circ, s.requests)}
    assert states[shelf.request_id] == "SHELF_EXPIRED"
    assert states[never.request_id] == "CANCELLED"
    assert gone.request_id not in states                          # purged after 30 days
    (loan,) = await rows(circ, s.loans)
    assert loan.state == "OVERDUE"
    assert {r.status for r in await rows(circ, s.notices)} <= {"sent", "suppressed"}

    runs = await job_runs(circ, *JOBS)
    recorded = [(r.job, r.changed, r.error) for r in runs]           # one row per run, by run_job only
    assert recorded == [(name, first[name], None) for name in JOBS] + [(name, 0, None) for name in JOBS]
    assert all(r.started_at == r.finished_at == NOW + timedelta(days=31) for r in runs)


async def test_a_failing_job_is_recorded_with_its_error_and_raised(circ):
    with pytest.raises(ValueError, match="needs a mailer"):
        await run_job(circ, "notices")
    (run,) = await job_runs(circ, "notices")
    assert run.finished_at is not None and run.changed == 0
    assert run.error.startswith("ValueError: the notices job needs a mailer")


async def test_unknown_jobs_are_refused_by_name(circ):
    with pytest.raises(ValueError, match="unknown job 'reindex'"):
        await run_job(circ, "reindex")
    with pytest.raises(ValueError, match="unknown jobs"):
        Scheduler(circ, None, {"reindex": 60})
    with pytest.raises(ValueError, match="needs a mailer"):
        Scheduler(circ, None)
    with pytest.raises(ValueError, match="positive"):
        Scheduler(circ, None, {"overdue": 0})
    assert await rows(circ, s.job_runs) == []


# --------------------------------------------------------------------------- the scheduler

async def test_scheduler_records_a_failing_run_and_keeps_running(circ, monkeypatch):
    calls = []

    async def flaky(circ, mailer=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return 0 if len(calls) > 2 else 3

    monkeypatch.setitem(JOBS, "flaky", JobSpec(flaky, timedelta(seconds=1)))
    async with Scheduler(circ, None, {"flaky": 0.01}) as sched:
        await until(lambda: sched.runs["flaky"] >= 3)
    assert sched.failures["flaky"] == 1 and not sched.running
    runs = await job_runs(circ, "flaky")
    assert runs[0].error == "RuntimeError: database went away"
    assert [(r.changed, r.error) for r in runs[1:3]] == [(3, None), (0, None)]


async def test_scheduler_never_runs_the_same_job_twice_at_once(circ, monkeypatch):
    active, peak = [0], [0]

    async def slow(circ, mailer=None):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.03)
        active[0] -= 1
        return 1

    monkeypatch.setitem(JOBS, "slow", JobSpec(slow, timedelta(seconds=1)))
    sched = Scheduler(circ, None, {"slow": 0.001})
    sched.start()
    try:
        manual = await asyncio.gather(*(sched.run_now("slow") for _ in range(3)))
    finally:
        await sched.stop()
    assert manual == [1, 1, 1] and peak[0] == 1 and sched.runs["slow"] >= 4
    runs = await job_runs(circ, "slow")
    assert len(runs) == sched.runs["slow"] and all(r.error is None for r in runs)


async def test_stopping_lets_a_running_job_finish_or_records_that_it_was_cancelled(circ, monkeypatch):
    started = asyncio.Event()

    async def long(circ, mailer=None):
        started.set()
        await asyncio.sleep(0.2)
        return 5

    monkeypatch.setitem(JOBS, "long", JobSpec(long, timedelta(hours=1)))
    sched = Scheduler(circ, None, {"long": 3600})
    sched.start()
    await started.wait()
    await sched.stop(timeout=5)                                   # waits for the run
    (run,) = await job_runs(circ, "long")
    assert (run.changed, run.error) == (5, None) and not sched.running

    started.clear()
    sched = Scheduler(circ, None, {"long": 3600})
    sched.start()
    await started.wait()
    await sched.stop(timeout=0.01)                                # too long: cancelled
    runs = await job_runs(circ, "long")
    assert (runs[-1].changed, runs[-1].error) == (0, "cancelled") and runs[-1].finished_at is not None


async def test_stopping_waits_for_a_run_asked_for_by_hand_and_starts_no_new_one(circ, monkeypatch):
    """A run asked for by hand (the API's jobs route, the notices job woken by a request)
    is the scheduler's: its caller going away does not cancel it, and stop() waits for it."""
    calls, started, release = [], asyncio.Event(), asyncio.Event()

    async def manual(circ, mailer=None):
        calls.append(1)
        if len(calls) == 2:                                       # the run asked for by hand
            started.set()
            await release.wait()
        return len(calls)

    monkeypatch.setitem(JOBS, "manual", JobSpec(manual, timedelta(hours=1)))
    sched = Scheduler(circ, None, {"manual": 3600})
    sched.start()
    await until(lambda: sched.runs["manual"] == 1)                # the run at start
    caller = asyncio.create_task(sched.run_now("manual"))
    await started.wait()
    caller.cancel()                                               # whoever asked went away
    stopping = asyncio.create_task(sched.stop(timeout=60))
    await until(lambda: sched.stopping)
    with pytest.raises(SchedulerStopped):
        await sched.run_now("manual")                             # nothing new once stopping
    assert sched.running and not stopping.done()                  # the run goes on, stop waits
    release.set()
    await stopping
    assert not sched.running
    runs = await job_runs(circ, "manual")
    assert [(r.changed, r.error) for r in runs] == [(1, None), (2, None)]
    assert all(r.finished_at is not None for r in runs)
