"""Several API processes on one PostgreSQL database (gateway/api_workers.py,
``unioncat serve --api-workers N``): two real API worker processes, each on its own port
so that the test chooses which one answers, with requests spread over both at once.

Holds placed at the same moment through both processes queue once each and in one
order; one copy wanted at once through both is lent exactly once; the scheduled jobs,
which both processes schedule, run once per network (circulation/jobs.py, job_schedule).
No timing assertions: waits are bounded only to fail instead of hanging."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

import postgres_node
from circ_helpers import CHEAP_HASHING, NOW
from circulation import auth
from circulation import schema as s
from circulation.jobs import JOBS
from circulation.service import Circulation
from circulation.store import Clock, Database
from lifecycle.profiles import load_all

REPO = Path(__file__).resolve().parent.parent
STAFF, STAFF_PW = "iizuka.counter", "counter-pass-1"
CARDS = [f"W{n:04d}" for n in range(12)]
HOLD_TITLE, LEND_TITLE = "tw-hold", "tw-lend"
WAIT_S = 120          # bound of the waits (a failure, not a measurement)


async def _prepare(url: str) -> None:
    circ = Circulation(Database(url), load_all(), Clock(NOW - timedelta(days=1)))
    try:
        async with circ.db.transaction() as conn:
            await conn.execute(insert(s.patrons), [dict(
                card_number=c, library="iizuka", name=f"利用者 {c}", home_municipality="飯塚市",
                email=f"{c.lower()}@example.jp", default_pickup_branch="iizuka", default_contact_method="email",
                created_at=circ.now()) for c in CARDS])
            await conn.execute(insert(s.items), [dict(
                barcode=b, title_id=t, library="iizuka", owning_branch="iizuka", current_branch="iizuka",
                updated_at=circ.now(), location="一般書架", call_number="913.6", material_type="book",
                circulating=True, newest_issue=False) for b, t in (("W-H1", HOLD_TITLE), ("W-L1", LEND_TITLE))])
            await conn.execute(insert(s.title_queues), [{"title_id": HOLD_TITLE, "title": "待つ本"},
                                                        {"title_id": LEND_TITLE, "title": "貸す本"}])
            # the copy of HOLD_TITLE is out, so holds queue
            await conn.execute(s.items.update().where(s.items.c.barcode == "W-H1").values(status="on_loan"))
        d = await auth.create_staff(circ, username=STAFF, password=STAFF_PW, library="iizuka", branch="iizuka",
                                    roles="circulation")
        assert d.allowed, d
    finally:
        await circ.db.dispose()


def _call(base: str, method: str, path: str, body=None, token: str | None = None) -> tuple[int, dict]:
    h = {"Accept": "application/json", "Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
    req = urllib.request.Request(base + "/api/v1" + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Worker:
    """One API worker process (``unioncat serve --api-worker-of``), stopped by its PID."""

    def __init__(self, url: str, port: int, data_dir: Path, log: Path):
        self.port, self.log = port, log
        env = dict(os.environ, UNIONCAT_ARGON2=",".join(f"{k}={v}" for k, v in CHEAP_HASHING.items()),
                   PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
             "--circ-db", url, "--api-port", str(port), "--api-worker-of", str(os.getpid()),
             "--event-loop", "asyncio"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(log, "wb"), text=True)
        self.base = f"http://127.0.0.1:{port}"

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()     # "API worker PID on http://...", or EOF when it failed
        assert line.startswith("API worker"), (line, self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def _in_thread(coro_fn, *args):
    out: list = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(coro_fn(*args))))
    t.start()
    t.join()
    return out[0] if out else None


async def _count(url: str, q) -> list:
    db = Database(url)
    try:
        async with db.read() as conn:
            return list((await conn.execute(q)).all())
    finally:
        await db.dispose()


def _free_port() -> int:
    from live_server import free_port
    return free_port()


@pytest.fixture(scope="module")
def two(pg_url, pg_circulation_template, tmp_path_factory):
    name = postgres_node.unique_database_name("workers")
    postgres_node.admin_sql(pg_url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_circulation_template}"')
    url = postgres_node.database_url(pg_url, name)
    tmp = tmp_path_factory.mktemp("api-workers")
    procs: list[Worker] = []
    try:
        auth.configure_password_hashing(**CHEAP_HASHING)
        _in_thread(_prepare, url)
        procs = [Worker(url, _free_port(), tmp, tmp / f"worker{i}.log") for i in range(2)]
        for w in procs:
            w.wait_ready()
        yield url, procs
    finally:
        for w in procs:
            w.stop()
        auth.configure_password_hashing(reset=True)
        postgres_node.drop_database(pg_url, name)


def _tokens(procs) -> list[str]:
    out = []
    for w in procs:
        st, body = _call(w.base, "POST", "/staff/login", {"username": STAFF, "password": STAFF_PW})
        assert st == 200, body
        out.append(body["token"])
    return out


def test_holds_placed_at_once_through_two_processes_queue_once_each_in_one_order(two):
    url, procs = two
    tokens = _tokens(procs)

    def place(i: int, card: str):
        w = i % 2
        return _call(procs[w].base, "POST", "/staff/requests",
                     {"card_number": card, "title_id": HOLD_TITLE, "title": "待つ本", "pickup_branch": "iizuka",
                      "contact_method": "email"}, tokens[w])

    with ThreadPoolExecutor(len(CARDS)) as pool:
        answers = list(pool.map(place, range(len(CARDS)), CARDS))
    assert all(st == 201 for st, _ in answers), answers
    positions = sorted(b["position"] for _, b in answers)
    assert positions == list(range(1, len(CARDS) + 1)), answers     # one order, no position twice
    rows = _in_thread(_count, url, select(s.requests.c.patron_id, func.count())
                      .where(s.requests.c.title_id == HOLD_TITLE).group_by(s.requests.c.patron_id))
    assert len(rows) == len(CARDS) and all(n == 1 for _, n in rows)
    # the same hold again, through the other process: refused, nothing added
    st, body = _call(procs[1].base, "POST", "/staff/requests",
                     {"card_number": CARDS[0], "title_id": HOLD_TITLE, "pickup_branch": "iizuka"}, tokens[1])
    assert st == 409 and body["error"] == "duplicate_request", body


def test_one_copy_wanted_at_once_through_two_processes_is_lent_exactly_once(two):
    url, procs = two
    tokens = _tokens(procs)

    def lend(i: int, card: str):
        w = i % 2
        return _call(procs[w].base, "POST", "/staff/checkout", {"barcode": "W-L1", "card_number": card}, tokens[w])

    wanting = CARDS[:8]
    with ThreadPoolExecutor(len(wanting)) as pool:
        answers = list(pool.map(lend, range(len(wanting)), wanting))
    won = [b for st, b in answers if st == 201]
    assert len(won) == 1, answers
    assert all(st == 409 and b["error"] == "item_on_loan" for st, b in answers if st != 201), answers
    loans = _in_thread(_count, url, select(s.loans.c.patron_id).join(s.items, s.items.c.id == s.loans.c.item_id)
                       .where(s.items.c.barcode == "W-L1", s.loans.c.returned_at.is_(None)))
    assert len(loans) == 1
    # returned through the other process than the one that lent it: once
    lender = [st for st, _ in answers].index(201) % 2
    loser = 1 - lender
    st, body = _call(procs[loser].base, "POST", "/staff/checkin", {"barcode": "W-L1"}, tokens[loser])
    assert st == 200 and body["returned"] is True, body
    st, body = _call(procs[lender].base, "POST", "/staff/checkin", {"barcode": "W-L1"}, tokens[lender])
    assert st == 200 and body["returned"] is False, body


def test_the_scheduled_jobs_run_once_per_network_not_once_per_process(two):
    """Both processes schedule every job (no mailer: all but notices) at start; for each
    job one of them claims the run and the other one waits for the network's next run."""
    url, procs = two
    scheduled = [n for n in JOBS if n != "notices"]

    def decided() -> tuple[dict, dict]:
        runs = dict(_in_thread(_count, url, select(s.job_runs.c.job, func.count()).group_by(s.job_runs.c.job)))
        logs = "".join(w.log.read_text(errors="replace") for w in procs)
        skipped = {n: logs.count(f"job {n}: the network's next run is due") for n in scheduled}
        return runs, skipped

    deadline = time.monotonic() + WAIT_S
    runs, skipped = decided()
    while any(runs.get(n, 0) + skipped[n] < 2 for n in scheduled) and time.monotonic() < deadline:
        time.sleep(0.2)
        runs, skipped = decided()
    assert {n: runs.get(n, 0) for n in scheduled} == {n: 1 for n in scheduled}, (runs, skipped)
    assert skipped == {n: 1 for n in scheduled}, (runs, skipped)
    claims = _in_thread(_count, url, select(s.job_schedule.c.job, s.job_schedule.c.owner))
    assert sorted(j for j, _ in claims) == sorted(scheduled) and all(o for _, o in claims)


def test_api_workers_need_postgresql_and_a_port_of_their_own(tmp_path, capsys):
    from gateway import cli

    db = tmp_path / "circ.db"
    db.touch()
    base = ["serve", "--data-dir", str(tmp_path / "data"), "--port", "18210"]
    assert cli.main([*base, "--circ-db", f"sqlite+aiosqlite:///{db}", "--api-workers", "2"]) == 2
    assert "--api-workers needs PostgreSQL" in capsys.readouterr().err
    assert cli.main([*base, "--api-workers", "2"]) == 2
    assert "needs a circulation database" in capsys.readouterr().err
    pg = "postgresql+asyncpg://u@127.0.0.1:1/x"
    assert cli.main([*base, "--circ-db", pg, "--api-workers", "2", "--api-port", "18210"]) == 2
    assert "not a port of its own" in capsys.readouterr().err
    assert cli.main([*base, "--circ-db", pg, "--api-workers", "-1"]) == 2
    assert "at least 1" in capsys.readouterr().err
