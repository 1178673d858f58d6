"""The PostgreSQL test server (tools/postgres_node.py) and its fixtures, on real servers.

The module's node is a dedicated server in a temporary directory; the db_url test runs
on SQLite and on the session's server (pg_url: `make test`'s, or one started for the
session)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import postgres_node
from net_helpers import non_loopback_address, refuses, url_port

TOOL = Path(__file__).resolve().parents[1] / "tools" / "postgres_node.py"


async def _scalar(url: str, sql: str):
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def node(pg_bin_dir):
    n = postgres_node.PostgresNode(tempfile.mkdtemp(prefix="unioncat-pg-test-"))
    try:
        n.start()
        yield n
    finally:
        n.stop()
        shutil.rmtree(n.base_dir, ignore_errors=True)


async def test_query_through_sqlalchemy_asyncpg(node):
    assert node.url == f"postgresql+asyncpg://unioncat@127.0.0.1:{node.port}/unioncat"
    assert "PostgreSQL" in await _scalar(node.url, "SELECT version()")
    assert await _scalar(node.url, "SELECT current_database()") == "unioncat"
    assert await _scalar(node.url, "SELECT current_user") == "unioncat"
    assert await _scalar(node.url, "SHOW server_encoding") == "UTF8"
    assert await _scalar(node.url, "SHOW max_connections") == "200"
    assert await _scalar(node.url, "SHOW fsync") == "off"
    assert await _scalar(node.url, "SHOW listen_addresses") == "127.0.0.1"


def test_server_runs_unprivileged_and_on_loopback_only(node):
    with open(f"/proc/{node.pid}/status") as f:
        uid = int(next(line for line in f if line.startswith("Uid:")).split()[1])
    assert uid != 0 if os.geteuid() == 0 else uid == os.geteuid()
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback address")
    try:
        socket.create_connection((addr, node.port), timeout=5).close()
    except OSError:
        return
    pytest.fail(f"the server answers on {addr}:{node.port}")


async def test_created_database_appears_and_is_dropped(node):
    name = postgres_node.unique_database_name("nodetest")
    url = node.create_database(name)
    assert url == f"postgresql+asyncpg://unioncat@127.0.0.1:{node.port}/{name}"
    assert name in node.sql("SELECT datname FROM pg_database")
    assert await _scalar(url, "SELECT current_database()") == name
    # An open session does not keep the database from being dropped (WITH (FORCE)).
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            node.drop_database(name)
    except Exception as e:  # noqa: BLE001 - the forced drop ends the session under our feet
        assert "terminat" in str(e).lower() or "closed" in str(e).lower(), e
    finally:
        await engine.dispose()
    assert name not in node.sql("SELECT datname FROM pg_database")
    node.drop_database(name)      # IF EXISTS: no error the second time


def test_stop_ends_the_process():
    base = tempfile.mkdtemp(prefix="unioncat-pg-test-")
    n = postgres_node.PostgresNode(base)
    try:
        n.start()
        pid, port = n.pid, n.port
        assert pid == int(n.pid_file.read_text().split()[0])
        assert postgres_node._pid_alive(pid) and n.is_running()
        assert n.stop() is True
        assert not postgres_node._pid_alive(pid)
        assert not Path(f"/proc/{pid}").exists() or not postgres_node._is_postmaster_of(
            pid, n.data_dir)
        assert refuses(port)
        assert n.stop() is False
        # Same directory again: same port, same data, and the CLI stops it from outside.
        again = postgres_node.PostgresNode(base)
        assert again.port == port
        cli = subprocess.run([sys.executable, str(TOOL), "start", "--dir", base],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.strip() == again.url
        pid = again._read_pid()
        assert pid and postgres_node._pid_alive(pid)
        cli = subprocess.run([sys.executable, str(TOOL), "stop", "--dir", base],
                             capture_output=True, text=True, timeout=120)
        assert (cli.returncode, cli.stdout.strip()) == (0, "stopped"), cli.stderr
        assert not postgres_node._pid_alive(pid)
        assert refuses(port)
    finally:
        n.stop()
        postgres_node.PostgresNode(base).stop()
        shutil.rmtree(base, ignore_errors=True)


def test_run_passes_the_url_and_returns_the_exit_code(pg_bin_dir):
    child = (
        "import asyncio, os, sys, asyncpg\n"
        "url = os.environ['UNIONCAT_PG_URL']\n"
        "print(url)\n"
        "async def main():\n"
        "    c = await asyncpg.connect(url.replace('postgresql+asyncpg', 'postgresql'))\n"
        "    print(await c.fetchval('SELECT current_database()'))\n"
        "    await c.close()\n"
        "asyncio.run(main())\n"
        "sys.exit(3)\n")
    p = subprocess.run([sys.executable, str(TOOL), "run", "--", sys.executable, "-c", child],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 3, p.stderr
    url, db = p.stdout.split()
    assert re.fullmatch(r"postgresql\+asyncpg://unioncat@127\.0\.0\.1:\d+/unioncat", url)
    assert db == "unioncat"
    m = re.search(r"\(pid (\d+), (\S+)\)", p.stderr)
    assert m, p.stderr
    assert not postgres_node._pid_alive(int(m.group(1)))
    assert not Path(m.group(2)).exists()          # the temporary directory is gone
    assert refuses(url_port(url))


async def test_db_url_round_trips_japanese_text(db_url):
    engine = create_async_engine(db_url)
    title = "日本語の書名：『吾輩は猫である』夏目漱石 𠮷"
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT NOT NULL)"))
            await conn.execute(text("INSERT INTO t VALUES (1, :title)"), {"title": title})
        async with engine.connect() as conn:
            got = (await conn.execute(text("SELECT title FROM t WHERE id = 1"))).scalar_one()
            n = (await conn.execute(text("SELECT length(title) FROM t"))).scalar_one()
    finally:
        await engine.dispose()
    assert got == title
    assert n == len(title)
