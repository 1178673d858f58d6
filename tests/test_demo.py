"""`unioncat demo` starts the whole product (issue 15, "the circulation quick start does
not work as written"): catalog, Z39.50 and the circulation API with sample patrons and
staff who can log in with the passwords it prints; and `unioncat serve` with a
circulation database needs no catalog yet."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from lxml import etree

from circulation import auth
from circulation.service import Circulation
from circulation.store import Database
from gateway.demo import DEMO_PATRON_PASSWORDS, DEMO_STAFF_PASSWORDS, _sample_rows
from live_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CHEAP = "time_cost=1,memory_cost=8,parallelism=1"


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("UNIONCAT_")}
    e["UNIONCAT_ARGON2"] = CHEAP
    return e


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_every_sample_patron_and_staff_member_has_a_demo_password():
    assert set(DEMO_PATRON_PASSWORDS) == set(_sample_rows("patrons", "card_number"))
    assert set(DEMO_STAFF_PASSWORDS) == set(_sample_rows("staff", "username"))
    assert DEMO_PATRON_PASSWORDS["2100000001"] == "hana2026"          # the README's example


def test_the_demo_prints_logins_that_work_and_a_second_run_keeps_them(tmp_path, cheap_hashing):
    first = cli("demo", "--no-serve", "--data-dir", "d", cwd=tmp_path)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    again = cli("demo", "--no-serve", "--data-dir", "d", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "circulation patrons: read 13, added 0, updated 0, unchanged 13, rejected 0" in again.stdout
    printed = dict(re.findall(r"^    (\S+) / (\S+)  ", again.stdout, re.M))
    assert printed == {**DEMO_PATRON_PASSWORDS, **DEMO_STAFF_PASSWORDS}

    async def logins():
        circ = Circulation(Database(f"sqlite+aiosqlite:///{tmp_path / 'd' / 'circulation.db'}"))
        try:
            for card, password in DEMO_PATRON_PASSWORDS.items():
                res = await auth.patron_login(circ, card=card, password=password)
                assert res.session_token, (card, res.decision)
            for username, password in DEMO_STAFF_PASSWORDS.items():
                res = await auth.staff_login(circ, username=username, password=password)
                assert res.session_token, (username, res.decision)
            res = await auth.patron_login(circ, card="2100000001", password="wrong2026")
            assert res.session_token is None
        finally:
            await circ.db.dispose()

    asyncio.run(logins())


def _serve(tmp_path: Path, data_dir: str, *extra: str, port: int | None = None):
    port = port or free_port()
    log = tmp_path / f"serve-{port}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--data-dir", data_dir, "--port",
                                 str(port), "--z3950-port", "0", *extra], cwd=tmp_path, env=env(), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 240            # a bound on start-up, not a measurement
    while True:
        if proc.poll() is not None:
            return proc, port, log
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, log
        except OSError:
            if time.monotonic() >= deadline:
                proc.kill()                      # never left running behind a failed start
                proc.wait(30)
                raise AssertionError(log.read_text(errors="replace")) from None
            time.sleep(0.2)


def _stop(proc, log) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        raise AssertionError("serve did not stop on SIGINT") from None
    said = log.read_text(errors="replace")
    assert proc.returncode == 0 and "Traceback" not in said, said
    return said


def _stop_all(procs) -> list[str]:
    """_stop for each (proc, log), every one of them even when one stops badly (its
    failure is raised after the rest are stopped); what each said."""
    said, failed = [], []
    for proc, log in procs:
        try:
            said.append(_stop(proc, log))
        except AssertionError as e:
            failed.append(e)
    if failed:
        raise failed[0]
    return said


def test_serve_with_a_circulation_database_needs_no_catalog(tmp_path):
    assert cli("circ", "init", "--data-dir", "circ-only", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "circ-only" / "catalog.sqlite").exists()
    proc, port, log = _serve(tmp_path, "circ-only")
    try:
        assert proc.poll() is None, log.read_text(errors="replace")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=60) as r:
            assert json.load(r)["info"]
        q = urllib.parse.urlencode({"query": "dc.title=図書館"})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sru?{q}", timeout=60) as r:
            root = etree.fromstring(r.read())
        assert root.findtext("{*}numberOfRecords") == "0" and root.find(".//{*}diagnostic") is None
        # records ingested while it serves are found
        from gateway.demo import write_demo_files

        files = write_demo_files(tmp_path / "in")
        res = cli("ingest", "--data-dir", "circ-only", "--library", "komae", str(files["komae"]), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sru?{q}", timeout=60) as r:
            assert etree.fromstring(r.read()).findtext("{*}numberOfRecords") == "1"
    finally:
        said = _stop(proc, log)
    assert "no records in circ-only yet" in said


def test_serve_without_a_catalog_or_a_circulation_database_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    res = cli("serve", "--data-dir", "empty", "--port", str(free_port()), "--z3950-port", "0", cwd=tmp_path)
    assert res.returncode == 2 and res.stderr.strip() == \
        "unioncat serve: empty holds no catalog yet (run unioncat ingest first)"
    assert not (tmp_path / "empty" / "catalog.sqlite").exists()

