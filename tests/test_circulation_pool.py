"""The PostgreSQL pool of the circulation service (circulation/store.py, Database):
connections idle longer than IDLE_PING_S are pinged at checkout and replaced when
dead, as pool_pre_ping would; those used a moment ago are not pinged (a round trip
saved per unit of work)."""
from __future__ import annotations

import pytest
from sqlalchemy import text

import postgres_node
from circulation import store
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
