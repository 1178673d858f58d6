"""`unioncat circ ...` run as a real subprocess against a temporary SQLite file and a
PostgreSQL database (``db_url``): init, loading the sample CSVs, staff, jobs, a
request's audit trail, and one-line errors with exit status 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from circ_helpers import NOW, load_items, load_patrons
from circulation import auth, holds
from circulation import schema as s

pytestmark = pytest.mark.usefixtures("cheap_hashing")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "config" / "samples"


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("UNIONCAT_CIRC_DB", "UNIONCAT_DATA_DIR", "UNIONCAT_STAFF_PASSWORD")}
    base["UNIONCAT_ARGON2"] = "time_cost=1,memory_cost=8,parallelism=1"
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "gateway.cli", "circ", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(res: subprocess.CompletedProcess, *fragments: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


async def test_circ_init_then_the_samples_load_and_a_second_load_changes_nothing(db_url):
    first = cli("init", "--db", db_url)
    assert first.returncode == 0, first.stderr
    assert "iizuka: 飯塚市立図書館, 5 branches" in first.stdout and "hiroshima-u" in first.stdout
    assert cli("init", "--db", db_url).returncode == 0           # idempotent
    for kind, n in (("patrons", 13), ("items", 15), ("staff", 4), ("calendar", 17)):
        res = cli("load", kind, str(SAMPLES / f"{kind}.csv"), "--db", db_url)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == f"{kind}: read {n}, added {n}, updated 0, unchanged 0, rejected 0"
    res = cli("load", "patrons", str(SAMPLES / "patrons.csv"), "--db", db_url, "--json")
    assert res.returncode == 0
    assert {k: v for k, v in json.loads(res.stdout).items() if k != "errors"} == {
        "kind": "patrons", "read": 13, "added": 0, "updated": 0, "unchanged": 13, "rejected": 0}


async def test_circ_load_lists_each_rejected_row_and_exits_with_status_1(db_url, circ, tmp_path):
    f = tmp_path / "items.csv"
    f.write_text("barcode,title_id,library,owning_branch\n"
                 "I1,isbn:a,iizuka,iizuka\n"
                 "I2,isbn:b,iizuka,atlantis\n"
                 "I3,,iizuka,iizuka\n", encoding="utf-8")
    res = cli("load", "items", str(f), "--db", db_url)
    assert res.returncode == 1, res.stderr
    assert res.stdout.splitlines() == [
        f"{f}:3: rejected: owning_branch 'atlantis' is not a branch of the network",
        f"{f}:4: rejected: title_id is empty",
        "items: read 3, added 1, updated 0, unchanged 0, rejected 2"]


async def test_circ_history_prints_who_moved_a_request_when_and_why(db_url, circ):
    await load_patrons(circ, SAMPLES / "patrons.csv")
    await load_items(circ, SAMPLES / "items.csv")
    placed = await holds.place(circ, card="2100000001", title_id="isbn:9784003101018", pickup_branch="iizuka",
                               channel="web", role="patron", actor="2100000001", contact_method="email",
                               title="吾輩は猫である")
    assert placed.decision.allowed, placed.decision
    circ.clock.fixed = NOW.replace(hour=11)
    d = await holds.cancel(circ, request_id=placed.request_id, role="patron", actor="2100000001", channel="web",
                           card="2100000001")
    assert d.allowed, d

    res = cli("history", str(placed.request_id), "--db", db_url)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"request {placed.request_id}: reservation isbn:9784003101018 吾輩は猫である "
                               "for 2100000001 (iizuka), pickup iizuka, now CANCELLED")
    events = lines[1:]
    assert len(events) >= 2
    assert events[0].startswith("2026-11-20 10:00:00")
    last = events[-1]
    assert last.startswith("2026-11-20 11:00:00") and "CANCEL" in last and "-> CANCELLED" in last
    assert "patron:2100000001" in last and "channel=web" in last

    one_line_error(cli("history", "99999", "--db", db_url), "unioncat circ history", "no request 99999")


async def test_circ_staff_add_takes_the_password_from_the_environment_and_the_member_can_log_in(db_url, circ):
    env = {"UNIONCAT_STAFF_PASSWORD": "honami-desk-1"}
    res = cli("staff", "add", "honami.desk", "--library", "iizuka", "--branch", "honami",
              "--roles", "circulation requests", "--name", "穂波 窓口", "--db", db_url, env=env)
    assert res.returncode == 0, res.stderr
    assert "staff honami.desk added" in res.stdout
    login = await auth.staff_login(circ, username="honami.desk", password="honami-desk-1")
    assert login.principal.roles == frozenset({"circulation", "requests"}) and login.principal.branch == "honami"

    one_line_error(cli("staff", "add", "honami.desk", "--library", "iizuka", "--branch", "honami",
                       "--roles", "circulation", "--db", db_url, env=env), "username is taken")
    one_line_error(cli("staff", "add", "y.desk", "--library", "iizuka", "--roles", "circulation",
                       "--db", db_url), "UNIONCAT_STAFF_PASSWORD")           # no password, no terminal
    res = cli("staff", "passwd", "honami.desk", "--db", db_url, env={"UNIONCAT_STAFF_PASSWORD": "honami-desk-2"})
    assert res.returncode == 0, res.stderr
    assert (await auth.staff_login(circ, username="honami.desk", password="honami-desk-2")).session_token


async def test_circ_job_runs_one_job_and_records_the_run(db_url, circ):
    env = {"UNIONCAT_CIRC_DB": db_url}                     # the database from the environment
    res = cli("job", "overdue", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "overdue: 0 changed"
    async with circ.db.read() as conn:
        runs = (await conn.execute(select(s.job_runs).where(s.job_runs.c.job == "overdue"))).all()
    assert runs and all(r.finished_at is not None and r.error is None for r in runs)
    one_line_error(cli("job", "tidy_up", env=env), "unknown job 'tidy_up'")
    one_line_error(cli("job", "notices", env=env), "--smtp-host")


def test_circ_errors_are_one_line_with_exit_status_2(tmp_path):
    data = str(tmp_path / "data")
    assert cli("init", "--data-dir", data).returncode == 0          # the default file under DATA_DIR
    assert (tmp_path / "data" / "circulation.db").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("barcode,title\nI1,猫\n", encoding="utf-8")
    cases = [
        (("init",), ["no database", "--db URL"]),
        (("history", "1", "--data-dir", str(tmp_path / "nothing")), ["no circulation database", "unioncat circ init"]),
        (("init", "--db", "not a url"), ["not a database URL"]),
        (("load", "items", str(tmp_path / "missing.csv"), "--data-dir", data), ["missing.csv: no such file"]),
        (("load", "items", str(bad), "--data-dir", data),
         ["missing column(s) title_id, library, owning_branch", "unknown column(s) title"]),
        (("init", "--db", "postgresql+asyncpg://nobody@127.0.0.1:1/none"), ["unioncat circ init"]),
    ]
    with ThreadPoolExecutor(len(cases) + 1) as pool:           # independent commands, run side by side
        results = list(pool.map(lambda c: cli(*c[0]), cases))
        usage = pool.submit(cli).result()
    for (_args, fragments), res in zip(cases, results):
        one_line_error(res, *fragments)
    assert usage.returncode == 2 and "usage" in usage.stderr
