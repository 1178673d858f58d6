"""The PostgreSQL pool of the circulation service (circulation/store.py, Database):
connections idle longer than IDLE_PING_S are pinged at checkout and replaced when
dead, as pool_pre_ping would; those used a moment ago are not pinged (a round trip
saved per unit of work)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text

import postgres_node
from circulation import holds, prepared, store
from circulation.store import Database


@pytest.fixture
def pg_db_url(pg_url):
    name = postgres_node.unique_database_name("pool")
    yield postgres_node.create_database(pg_url, name)
    postgres_node.drop_database(pg_url, name)


async def _backend_pid(db: Database) -> int:
    async with db.transaction() as conn:
        return (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def _terminate(url: str, pid: int) -> None:
    other = Database(url, pool_size=1)
    try:
        async with other.transaction() as conn:
            assert (await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})).scalar_one()
    finally:
        await other.dispose()


async def test_a_connection_that_died_while_idle_is_replaced_at_checkout(pg_db_url, monkeypatch):
    db = Database(pg_db_url, pool_size=1)
    try:
        first = await _backend_pid(db)
        await _terminate(pg_db_url, first)
        monkeypatch.setattr(store, "IDLE_PING_S", 0.0)      # every connection counts as idle: pinged
        second = await _backend_pid(db)                     # no error: the dead one was replaced
        assert second != first
    finally:
        await db.dispose()


async def test_a_connection_used_a_moment_ago_is_not_pinged(pg_db_url, monkeypatch):
    db = Database(pg_db_url, pool_size=1)
    pings = []
    real = db.engine.sync_engine.dialect.do_ping
    monkeypatch.setattr(db.engine.sync_engine.dialect, "do_ping", lambda c: pings.append(1) or real(c))
    try:
        monkeypatch.setattr(store, "IDLE_PING_S", 3600.0)
        for _ in range(3):
            await _backend_pid(db)
        assert pings == []
        monkeypatch.setattr(store, "IDLE_PING_S", 0.0)
        await _backend_pid(db)
        assert pings == [1]
    finally:
        await db.dispose()


# ---------------------------------------------------------------- issue 18, fifth round

def _count_type_lookups(monkeypatch) -> list[str]:
    """asyncpg's type lookup (``Connection._introspect_types``, private: pinned asyncpg
    0.32.0) recorded with whether it ran inside a unit of work."""
    import asyncpg.connection as apc

    seen: list[str] = []
    real = apc.Connection._introspect_types

    async def counted(conn, typeoids, timeout):
        seen.append("in a transaction" if conn.is_in_transaction() else "outside")
        return await real(conn, typeoids, timeout)

    monkeypatch.setattr(apc.Connection, "_introspect_types", counted)
    return seen


async def _snapshot_in_a_unit_of_work(db: Database) -> None:
    from circulation import reads
    from circulation.prepared import execute

    async with db.transaction() as conn:
        row = (await execute(conn, reads._SNAPSHOT, {"w_patron_id": 1})).one()
        assert list(row.loans) == [] and list(row.requests) == []      # record[]: decoded


async def test_the_record_array_type_is_looked_up_when_a_connection_opens_not_under_locks(pg_db_url, monkeypatch):
    setup = Database(pg_db_url, pool_size=1)
    await setup.create_all()
    await setup.dispose()
    seen = _count_type_lookups(monkeypatch)
    db = Database(pg_db_url, pool_size=1)
    try:
        await _snapshot_in_a_unit_of_work(db)
        await _snapshot_in_a_unit_of_work(db)
    finally:
        await db.dispose()
    assert seen == ["outside"]                      # once, at connect, before any BEGIN


async def test_without_the_warm_up_the_lookup_would_run_inside_the_unit_of_work(pg_db_url, monkeypatch):
    from circulation import connections

    setup = Database(pg_db_url, pool_size=1)
    await setup.create_all()
    await setup.dispose()
    monkeypatch.setattr(connections, "WARM_STATEMENTS", ())
    # and no statement prepared at checkout (seventh round): that would look it up outside too
    monkeypatch.setattr(prepared, "KNOWN", {})
    monkeypatch.setattr(prepared, "_seed", lambda _dialect: None)
    seen = _count_type_lookups(monkeypatch)
    db = Database(pg_db_url, pool_size=1)
    try:
        await _snapshot_in_a_unit_of_work(db)
    finally:
        await db.dispose()
    assert seen == ["in a transaction"]             # what the warm-up moves out (the control)


def test_the_pool_size_is_configuration(tmp_path, monkeypatch):
    from circulation import connections

    shipped = connections.pool_config()
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none")    # never connects
    assert db.pool == shipped and db.engine.pool.size() == shipped.size
    assert db.engine.pool._max_overflow == shipped.overflow
    (tmp_path / "circulation.toml").write_text("[pool]\nsize = 3\noverflow = 1\n")
    monkeypatch.setenv("UNIONCAT_CONFIG_DIR", str(tmp_path))
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert db.pool == connections.PoolConfig(size=3, overflow=1) and db.engine.pool.size() == 3
    explicit = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none", pool_size=5)
    assert explicit.pool == connections.PoolConfig(size=5, overflow=5)       # as before: N + N


@pytest.mark.parametrize("body, what", [
    ("[pool]\nsize = 0\noverflow = 1\n", "size"),
    ("[pool]\nsize = 'many'\noverflow = 1\n", "size"),
    ("[pool]\nsize = 4\n", "overflow"),
    ("size = 4\n", "no [pool]"),
    ("[pool\n", "circulation.toml"),
])
def test_a_bad_pool_configuration_is_a_clear_error(tmp_path, monkeypatch, body, what):
    from circulation import connections

    (tmp_path / "circulation.toml").write_text(body)
    monkeypatch.setenv("UNIONCAT_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=re.escape(what)):
        connections.pool_config()


def test_the_processes_serving_the_api_share_the_configured_pool():
    """``unioncat serve --api-workers N``: N + 1 processes take a part each (rounded up),
    so the API as a whole stays near the configured size + overflow connections."""
    from circulation.connections import PoolConfig

    cfg = PoolConfig(size=64, overflow=16)
    assert cfg.shared(1) == cfg
    assert cfg.shared(3) == PoolConfig(size=22, overflow=6)
    assert cfg.shared(200) == PoolConfig(size=1, overflow=1)
    shipped = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none").pool
    three = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none", pool_share=3)
    assert three.pool == shipped.shared(3) and three.engine.pool.size() == shipped.shared(3).size
    assert 3 * (three.pool.size + three.pool.overflow) <= shipped.size + shipped.overflow + 3 * 2


def test_an_api_worker_is_told_how_many_processes_share_the_pool(tmp_path):
    from gateway import cli
    from gateway.api_workers import api_worker_argv

    args = cli.build_parser().parse_args(["serve", "--data-dir", str(tmp_path), "--api-workers", "3"])
    argv = api_worker_argv(args, tmp_path, "postgresql+asyncpg://u@127.0.0.1:1/db", "127.0.0.1", 8001, 42)
    worker = cli.build_parser().parse_args(argv[argv.index("serve"):])
    assert worker.api_workers == 3 and worker.api_worker_of == 42


# ---------------------------------------------------------------- issue 18, seventh round

def _count_prepares(monkeypatch) -> list[tuple[str, str]]:
    """Each Parse/Describe asyncpg sends (``Connection._get_statement`` missing its cache;
    private: pinned asyncpg 0.32.0), with whether it ran inside a unit of work."""
    import asyncpg.connection as apc

    seen: list[tuple[str, str]] = []
    real = apc.Connection._get_statement

    async def counted(conn, query, timeout, **kw):
        if kw.get("use_cache", True) and conn._stmt_cache.get(
                (query, kw.get("record_class") or conn._protocol.get_record_class(),
                 kw.get("ignore_custom_codec", False))) is not None:
            return await real(conn, query, timeout, **kw)
        seen.append(("in a transaction" if conn.is_in_transaction() else "outside", query))
        return await real(conn, query, timeout, **kw)

    monkeypatch.setattr(apc.Connection, "_get_statement", counted)
    return seen


async def _queue_title_in_a_unit_of_work(db: Database) -> None:
    async with db.transaction() as conn:
        assert (await prepared.execute(conn, holds._QUEUE_TITLE, {"w_title_id": "no-such-title"})).scalar() is None


async def _noop(_db: Database) -> None:
    return None


async def _hold_one_and(db: Database, work) -> None:
    """Run ``work(db)`` while another connection of ``db`` is held in a unit of work."""
    async with db.transaction() as held:
        await held.execute(text("SELECT 1"))
        await work(db)


async def test_a_statement_met_on_one_connection_is_prepared_on_the_others_before_their_unit_of_work(
        pg_db_url, monkeypatch):
    setup = Database(pg_db_url, pool_size=1)
    await setup.create_all()
    await setup.dispose()
    monkeypatch.setattr(prepared, "KNOWN", {})       # a process that has run nothing yet,
    monkeypatch.setattr(prepared, "_seed", lambda _dialect: None)   # its SELECTs not put in KNOWN
    monkeypatch.setattr(holds, "_QUEUE_TITLE", prepared.Prepared(holds._QUEUE_TITLE.statement))
    db = Database(pg_db_url, pool_size=2)
    try:
        await _hold_one_and(db, lambda d: _hold_one_and(d, _noop))   # both open, SELECT 1 prepared on each
        seen = _count_prepares(monkeypatch)
        await _hold_one_and(db, _queue_title_in_a_unit_of_work)
        sql = holds._QUEUE_TITLE.compiled(db.engine.dialect, frozenset({"w_title_id"})).sql
        assert list(prepared.KNOWN) == [sql]
        assert seen == [("in a transaction", sql)]      # the process's first use: in its unit of work
        seen.clear()
        await _hold_one_and(db, _queue_title_in_a_unit_of_work)
        assert seen == [("outside", sql)]               # the other connection: at checkout, before BEGIN
        seen.clear()
        for _ in range(2):                              # both have it: no more round trips for it
            await _hold_one_and(db, _queue_title_in_a_unit_of_work)
        assert seen == []
    finally:
        await db.dispose()


async def test_a_statement_the_server_refuses_to_prepare_at_checkout_is_reported_at_its_use(pg_db_url, monkeypatch):
    from sqlalchemy import column, select, table
    from sqlalchemy.exc import ProgrammingError

    setup = Database(pg_db_url, pool_size=1)
    await setup.create_all()
    await setup.dispose()
    monkeypatch.setattr(prepared, "KNOWN", {})
    monkeypatch.setattr(prepared, "_seed", lambda _dialect: None)
    missing = prepared.Prepared(select(column("x")).select_from(table("no_such_table")))
    db = Database(pg_db_url, pool_size=1)
    try:
        for _ in range(2):                                # the second checkout tries and skips it
            with pytest.raises(ProgrammingError, match="no_such_table"):
                async with db.transaction() as conn:
                    await prepared.execute(conn, missing)
        assert await _backend_pid(db) > 0                # the connection still serves
    finally:
        await db.dispose()


async def test_a_new_process_prepares_its_selects_at_the_first_checkout_not_in_a_unit_of_work(pg_db_url, monkeypatch):
    setup = Database(pg_db_url, pool_size=1)
    await setup.create_all()
    await setup.dispose()
    monkeypatch.setattr(prepared, "KNOWN", {})       # as a new process: nothing compiled, nothing seeded
    monkeypatch.setattr(prepared, "_SEEDED", {})
    monkeypatch.setattr(holds, "_QUEUE_TITLE", prepared.Prepared(holds._QUEUE_TITLE.statement))
    seen = _count_prepares(monkeypatch)
    db = Database(pg_db_url, pool_size=1)
    try:
        await _queue_title_in_a_unit_of_work(db)
        sql = holds._QUEUE_TITLE.compiled(db.engine.dialect, frozenset({"w_title_id"})).sql
        assert sql in prepared.KNOWN                          # seeded before its first use
        assert (("outside", sql)) in seen                     # prepared at checkout, before BEGIN
        # none of ours in the unit of work (SQLAlchemy's own first-connect queries aside)
        assert [q for where, q in seen if where != "outside" and q in prepared.KNOWN] == []
    finally:
        await db.dispose()
