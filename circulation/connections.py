"""How the circulation engine makes its connections: the PostgreSQL pool's size
(configuration, ``circulation.toml``'s ``[pool]``), SQLite's session settings, and the
driver's type codecs on PostgreSQL, looked up once when a connection is opened.

Why the type codecs (issue 18, fifth round): asyncpg decodes a column of a type it has
no codec for only after looking the type up (``pg_type``, a recursive query: 25-560 ms
measured on this 2-core machine), once per connection, the first time that connection
prepares a statement returning it. The reads of :mod:`circulation.reads` return
``ARRAY(SELECT ROW(...))`` (``record[]``), so each connection used to look it up inside
the first unit of work that ran one of them -- holding that unit's row locks (a hot
title's queue), a convoy behind it. Here it is looked up when the pool opens the
connection, before any transaction.

Nothing here imports the rest of :mod:`circulation`; :mod:`circulation.store` uses it.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass

from sqlalchemy import event

import config

CONFIG_FILE = "circulation.toml"

# Statements whose result types asyncpg has no built-in codec for, run once on each new
# connection: ``record[]`` (the ARRAY(SELECT ROW(...)) reads of circulation.reads).
WARM_STATEMENTS = ("SELECT ARRAY(SELECT ROW(1))",)


@dataclass(frozen=True)
class PoolConfig:
    size: int           # connections the pool keeps open (per process)
    overflow: int       # more opened under a burst, closed when returned

    def shared(self, processes: int) -> "PoolConfig":
        """One process's part when ``processes`` serving processes share the configured
        pool (``unioncat serve --api-workers N``: N + 1), rounded up, at least one kept."""
        n = max(1, processes)
        return PoolConfig(size=max(1, -(-self.size // n)), overflow=-(-self.overflow // n))


def pool_config() -> PoolConfig:
    """``[pool]`` of ``circulation.toml`` (found by :func:`config.locate`; a deployment's
    own in ``$UNIONCAT_CONFIG_DIR``). A missing or bad value is a ``ValueError`` saying
    which and where, never a silent default."""
    path = config.locate(CONFIG_FILE)
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: {e}") from None
    pool = data.get("pool")
    if not isinstance(pool, dict):
        raise ValueError(f"{path}: no [pool] table")
    values = {}
    for key, low in (("size", 1), ("overflow", 0)):
        v = pool.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= 1000:
            raise ValueError(f"{path}: [pool] {key} must be an integer from {low} to 1000, not {v!r}")
        values[key] = v
    return PoolConfig(**values)


def warm_type_codecs(sync_engine) -> None:
    """PostgreSQL (asyncpg): look up the types of :data:`WARM_STATEMENTS` when a
    connection is opened, outside any unit of work (see the module's note)."""

    @event.listens_for(sync_engine, "connect")
    def _warm(dbapi_conn, _record):
        async def run(raw) -> None:
            for sql in WARM_STATEMENTS:
                await raw.fetch(sql)

        dbapi_conn.run_async(run)


def sqlite_hooks(sync_engine) -> None:
    """SQLite: the session's pragmas, and BEGIN IMMEDIATE for a unit of work (BEGIN for
    a read), issued by us rather than the driver."""

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_conn, _record):
        # let us issue BEGIN ourselves (the driver's implicit BEGIN is deferred)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn):
        if conn.get_execution_options().get("circulation_read"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
