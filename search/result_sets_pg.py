"""SRU's shared result sets in PostgreSQL: gateways on several machines, one store.

``unioncat serve --result-sets-db postgresql://...`` keeps the SRU result sets of the
serving process (and of its ``--sru-workers``) in one PostgreSQL table instead of the data
directory's SQLite file (search/result_sets_shared.py). Gateways on other machines that name
the same database share them: with the Elasticsearch backend (records in the index) a
gateway then keeps no state of its own, and any gateway answers any request -- a
``resultSetId`` made through one is paged through another (docs/elasticsearch.md, "Several
gateways").

This is the storage half only (the statements of ``result_sets_shared._Backend``); the
rules -- time to live renewed on use, the bound and its evictions, the memory of evicted
names, the JSON of the hits -- stay in :class:`SharedResultSets`. What PostgreSQL changes:

* ``used`` (least recently used order) comes from a sequence, so two gateways never
  hand out the same number;
* a ``put`` (purge the expired, insert, evict beyond the bound) is one transaction that
  holds a transaction-level advisory lock, so two gateways never evict at once;
* the table is shared: a gateway that starts does not empty it (other gateways' sets are
  in it); expired sets go with the next ``put``. So its layout changes in place, under the
  same advisory lock, with statements that gateways of the old layout still work beside
  (``MIGRATIONS``: a column added with a default, an index), never by emptying it.

The driver is psycopg 3 (synchronous: the store's interface is synchronous and each call
is one short statement on a local network; the SRU request that calls it waits for it).
One connection per process, used under a lock; a broken connection is opened again once.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from indexers.backend import BackendUnavailable

from .result_sets import REMEMBER_EVICTED

TABLE = "sru_result_set"
LOCK_KEY = 0x53525552        # pg_advisory_xact_lock key of the writers ("SRUR")
_COLUMNS = "id, result, db, ttl, expires, key, sort, generation"
_LIVE = "result IS NOT NULL AND (expires IS NULL OR expires > %s)"
# a table made by an earlier release, brought up to this layout when a gateway starts: each
# (column, statement) run when the column is missing (an ALTER TABLE takes the table's strongest
# lock, which a gateway that starts on an up-to-date table must not take). A gateway of the
# earlier release goes on working beside it: it names its columns, so its sets get the default
# and are found only by what it looks for itself
MIGRATIONS = (
    # the generation a set was searched at, apart from its key: a set is found by its query
    # (key, sort) whatever the generation. An earlier release's keys are digests of
    # (database, generation, query) and never equal a digest of (database, query): its
    # sets are paged and resolved as before, never reused by this release
    ("generation", f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS generation TEXT NOT NULL DEFAULT ''"),
)


def libpq_url(url: str) -> str:
    """postgresql://... as libpq takes it (the SQLAlchemy form postgresql+asyncpg:// too)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(f"{url!r}: a postgresql:// URL is needed")
    return "postgresql://" + rest


class PgBackend:
    """``result_sets_shared._Backend``'s statements on a PostgreSQL table."""

    def __init__(self, url: str, *, connect: Callable[..., Any] | None = None):
        import psycopg

        self._errors: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
        self._any_error: type[BaseException] = psycopg.Error
        self._connect = connect or (lambda: psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10))
        self._lock = threading.Lock()
        self.conn = self._connect()
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))   # two gateways starting at once
            self.conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {TABLE} (
                    id TEXT PRIMARY KEY,
                    result TEXT,                    -- JSON of the hits; NULL: evicted (remembered)
                    db TEXT NOT NULL DEFAULT '',
                    ttl INTEGER,
                    expires DOUBLE PRECISION,
                    key TEXT NOT NULL DEFAULT '',
                    sort TEXT NOT NULL DEFAULT '[]',
                    used BIGINT NOT NULL,
                    generation TEXT NOT NULL DEFAULT ''   -- the catalog's, when searched (reuse)
                )""")
            have = {r[0] for r in self.conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = %s", (TABLE,))}
            for column, ddl in MIGRATIONS:
                if column not in have:
                    self.conn.execute(ddl)
            self.conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {TABLE}_used")
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_used_i ON {TABLE}(used)")
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_key_i ON {TABLE}(key) WHERE key != ''")
            self.conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_expires_i ON {TABLE}(expires)"
                              " WHERE result IS NOT NULL")

    def _run(self, fn: Callable[[Any], Any]) -> Any:
        """fn(connection) under the lock; a connection that broke (a restarted server) is
        opened again and fn tried once more. A database that cannot be reached is
        BackendUnavailable (SRU diagnostic 1), never a failed request."""
        with self._lock:
            try:
                try:
                    return fn(self.conn)
                except self._errors:
                    if not (self.conn.broken or self.conn.closed):
                        raise
                    self.conn = self._connect()
                    return fn(self.conn)
            except self._any_error as e:
                raise BackendUnavailable(f"the result-set database: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def put(self, row: tuple, now: float, max_sets: int) -> None:
        def run(c):
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                c.execute(f"DELETE FROM {TABLE} WHERE result IS NOT NULL AND expires <= %s", (now,))
                c.execute(f"INSERT INTO {TABLE}({_COLUMNS}, used) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                          f" nextval('{TABLE}_used')) ON CONFLICT (id) DO UPDATE SET result=excluded.result,"
                          " db=excluded.db, ttl=excluded.ttl, expires=excluded.expires, key=excluded.key,"
                          " sort=excluded.sort, generation=excluded.generation, used=excluded.used", row)
                over = [r[0] for r in c.execute(f"SELECT id FROM {TABLE} WHERE result IS NOT NULL"
                                                " ORDER BY used DESC OFFSET %s", (max_sets,))]
                for old in reversed(over):                   # the oldest is remembered first
                    c.execute(f"UPDATE {TABLE} SET result=NULL, key='', used=nextval('{TABLE}_used')"
                              " WHERE id=%s", (old,))
                if over:
                    c.execute(f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE result IS NULL"
                              " ORDER BY used DESC OFFSET %s)", (REMEMBER_EVICTED,))
        self._run(run)

    def touch(self, where: str, params: tuple, now: float) -> tuple | None:
        where = where.replace("?", "%s")          # the shared store's conditions are written for SQLite

        def run(c):
            found = c.execute(f"SELECT id FROM {TABLE} WHERE {where} AND {_LIVE} ORDER BY used DESC LIMIT 1",
                              (*params, now)).fetchone()
            if found is None:
                return None
            return c.execute(
                f"UPDATE {TABLE} SET expires = CASE WHEN ttl IS NULL THEN NULL ELSE %s + ttl END,"
                f" used=nextval('{TABLE}_used') WHERE id = %s AND {_LIVE} RETURNING {_COLUMNS}",
                (now, found[0], now)).fetchone()
        return self._run(run)

    def generations(self, key: str, sort: str, now: float) -> list[str]:
        return self._run(lambda c: [r[0] for r in c.execute(
            f"SELECT DISTINCT generation FROM {TABLE} WHERE key = %s AND sort = %s AND {_LIVE}", (key, sort, now))])

    def live(self, name: str, now: float) -> tuple | None:
        return self._run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM {TABLE} WHERE id=%s AND {_LIVE}",
                                             (name, now)).fetchone())

    def names(self, now: float) -> list[str]:
        return self._run(lambda c: [r[0] for r in c.execute(
            f"SELECT id FROM {TABLE} WHERE {_LIVE} ORDER BY used", (now,))])

    def count(self, now: float) -> int:
        return self._run(lambda c: c.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE {_LIVE}", (now,)).fetchone()[0])

    def evicted(self, name: str) -> bool:
        return self._run(lambda c: c.execute(f"SELECT 1 FROM {TABLE} WHERE id=%s AND result IS NULL",
                                             (name,)).fetchone() is not None)

    def remove(self, name: str) -> bool:
        row = self._run(lambda c: c.execute(f"DELETE FROM {TABLE} WHERE id=%s RETURNING result IS NOT NULL",
                                            (name,)).fetchone())
        return bool(row and row[0])

    def clear(self) -> int:
        def run(c):
            with c.transaction():
                n = c.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE result IS NOT NULL").fetchone()[0]
                c.execute(f"DELETE FROM {TABLE}")
                return n
        return self._run(run)
