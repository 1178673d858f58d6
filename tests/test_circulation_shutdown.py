"""Shutting the service down while background work is mid-run (issue 15: the teardown of
an API test timed out while the notices job hit ``database is locked``): the jobs and
the ILL worker are stopped before the database is disposed. A job that finishes within
the stop timeout is let finish; one that does not is cancelled, recorded as such, and
leaves no transaction behind.

The job is held mid-run by a real SMTP server (aiosmtpd) that does not answer DATA until
the test lets it; the test waits for conditions (the server has the message, the
scheduler is stopping), never for time."""
from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from circ_helpers import NOW, add_patron, loopback_mailer, new_circulation, smtp_server
from circulation import notices
from circulation import schema as s
from circulation.service import Circulation
from circulation.store import Clock, Database
from gateway.api import API, STATE
from ill_helpers import config_for
from lifecycle.profiles import load_all
from live_server import Server
from log_checks import errors_in


class HeldSmtp:
    """Takes each message only when ``release`` is set; ``entered`` says one arrived."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.entered.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        self.messages.append(envelope.content)
        return "250 OK"


class WatchedDatabase(Database):
    """Notes, when it is disposed, how many job runs are still unfinished and which
    background tasks (jobs, the ILL worker) are still alive."""

    unfinished_at_dispose: int | None = None
    alive_at_dispose: list[str] | None = None

    async def dispose(self) -> None:
        self.alive_at_dispose = sorted(t.get_name() for t in asyncio.all_tasks()
                                       if not t.done() and t.get_name().startswith(("job:", "ill-worker")))
        async with self.read() as conn:
            self.unfinished_at_dispose = (await conn.execute(
                select(func.count()).select_from(s.job_runs).where(s.job_runs.c.finished_at.is_(None)))).scalar()
        await super().dispose()


def _api_state(srv: Server):
    sub = next(r.get_info()["app"] for r in srv.app.router.resources() if r.get_info().get("prefix") == API)
    return sub[STATE]


def _wait(cond, what: str, limit: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(limit / 0.01)):
        if cond():
            return
        done.wait(0.01)
    raise AssertionError(f"never: {what}")


async def _queue_a_mail(db_url: str) -> None:
    circ = await new_circulation(db_url)
    try:
        pid = await add_patron(circ, "1000000077", "iizuka", email="held@example.jp",
                               default_contact_method="email")
        async with circ.db.transaction() as conn:
            await notices.enqueue(conn, kind="test_mail", patron_id=pid, dedupe_key="test_mail:held", at=circ.now())
    finally:
        await circ.db.dispose()


@pytest.mark.parametrize("finishes", [True, False], ids=["job finishes", "job cancelled"])
def test_shutdown_stops_a_job_mid_run_before_the_database_is_disposed(db_url, tmp_path, caplog, finishes):
    asyncio.run(_queue_a_mail(db_url))
    circ = Circulation(WatchedDatabase(db_url), load_all(), Clock(NOW))
    smtp = HeldSmtp()
    with smtp_server(smtp) as port:
        # the notices job runs once at start; the ILL node's worker runs beside it
        srv = Server(tmp_path, circulation=circ, mailer=loopback_mailer(port, timeout=60),
                     circulation_jobs={"notices": 3600}, ill_config=config_for("ISIL:JP-SHUT", {}, 8080))
        st = _api_state(srv)
        stopped = False
        try:
            _wait(smtp.entered.is_set, "the notices job reached the mail server")
            if not finishes:
                st.jobs_stop_timeout = 0.05         # the job will not finish: cancelled at the bound
            with ThreadPoolExecutor(1) as pool:
                stopping = pool.submit(srv.stop)
                _wait(lambda: st.scheduler is not None and st.scheduler.stopping, "the scheduler is stopping")
                if finishes:
                    smtp.release.set()              # the job finishes while the service waits for it
                stopping.result(60)
                stopped = True
        finally:
            smtp.release.set()
            if not stopped:
                srv.stop()
    assert not errors_in(caplog.records), errors_in(caplog.records)
    assert circ.db.unfinished_at_dispose == 0               # every job run ended before the dispose
    assert circ.db.alive_at_dispose == []                    # and the ILL worker had stopped
    runs, sent = asyncio.run(_outcome(db_url))
    [run] = runs
    if finishes:
        assert (run.changed, run.error) == (1, None) and sent == ["sent"] and len(smtp.messages) == 1
    else:
        # cancelled mid-send: recorded so; the mail may have left, so it is not resent by itself
        assert (run.changed, run.error) == (0, "cancelled") and run.finished_at is not None
        assert sent == ["sending"]


async def _outcome(db_url: str):
    """The job runs and the notices' states, after checking that nothing was left
    holding the database: a writer gets it at once."""
    db = Database(db_url)
    try:
        if db.is_sqlite:
            raw = sqlite3.connect(db.url.database, timeout=0)
            try:
                raw.execute("BEGIN IMMEDIATE")              # 'database is locked' if a writer lingered
                raw.rollback()
            finally:
                raw.close()
        else:
            async with db.transaction() as conn:           # no row of the job left locked
                await conn.execute(select(s.job_runs.c.id).with_for_update(nowait=True))
                await conn.execute(select(s.notices.c.id).with_for_update(nowait=True))
        async with db.read() as conn:
            runs = (await conn.execute(select(s.job_runs).order_by(s.job_runs.c.id))).all()
            sent = [r.status for r in (await conn.execute(select(s.notices.c.status))).all()]
        return runs, sent
    finally:
        await db.dispose()
