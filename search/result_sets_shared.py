"""SRU's result sets shared by several processes: one small SQLite table.

``unioncat serve --sru-workers N`` answers SRU from several processes (gateway/sru_workers.py);
a ``resultSetId`` one of them hands out must be usable by the next request, whichever
process answers it. :class:`SharedResultSets` therefore keeps SRU's server-wide store in
a file (DATA_DIR/result_sets.sqlite, WAL) with the same interface and the same behaviour
as the in-memory :class:`search.result_sets.ResultSets`: random ids, a time to live renewed
on use, reuse of a live set for the same query on an unchanged catalog (``find``), at most
``max_sets`` sets with the least recently used evicted, and the names of evicted sets
remembered (at most ``REMEMBER_EVICTED``) so a later reference says "deleted by the server"
rather than "never existed".

One table, ``result_set``: a row per live set (``result`` the JSON of its hits) and a row
per remembered evicted set (``live`` 0, no hits); ``used`` orders both (the least recently used
set, the oldest eviction). A set to be reused is found by its query (``key``, the digest of
the database and the query, and ``sort``) and labelled with the catalog ``generation`` it was
searched at, in a column of its own: ``generations`` answers "is there any live set of this
query, at which generations" without the catalog's generation, so a request with nothing
to reuse never reads it (search/route.py). Expired sets are deleted (not remembered: an expired set "never
existed", as in memory). Hits are JSON (never pickle): the total, the ids when materialized
and the backend's handle (``encode_result``: the SQL of the embedded index, the query and
cursors of Elasticsearch). The clock is wall time (``time.time``, injected), the one clock
all processes (and machines) share.

What a set keeps here that a client can see: its hits, id, time to live, database and sort.
The query as asked (``ResultSet.query``) is not kept (SRU never reads it; Z39.50's named
sets stay in the association's memory). A result whose handle is not one of the known
forms -- a federation's merged records, held in the memory of the process that searched
its targets -- is kept in that process's own memory store (``local``): such a set is
usable only through the process that made it.

Another database can take the place of SQLite (stateless gateways on PostgreSQL): the
whole interface is ``_Backend`` below -- a few statements on one table with a primary key
on ``id`` and indexes on ``used``, ``key`` and ``expires``; it needs ``INSERT ... ON CONFLICT (id) DO UPDATE``,
``UPDATE ... RETURNING`` and one short write transaction (``put``: purge, insert, evict)
serialized against other writers (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-level
advisory lock). The codec and the rules stay here. One thing more: the store is called
synchronously from the event loop (as the memory store is; a statement here takes tens of
microseconds), while the project's PostgreSQL driver is asynchronous (asyncpg, as the
circulation service uses it) -- a PostgreSQL store needs awaitable methods, i.e. the search
route awaiting its store (check_result_set, reuse_live_set, run_search, keep_result_set).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import astuple
from pathlib import Path
from typing import Any, Callable

from indexers.query_model import SortKey
from indexers.records import SearchResult

from .databases import DEFAULT, Database
from .result_sets import _DEFAULT_DATABASE, REMEMBER_EVICTED, ResultSet, ResultSets

FILE_NAME = "result_sets.sqlite"
_LIVE = "live = 1 AND (expires IS NULL OR expires > ?)"
_COLUMNS = "id, result, db, ttl, expires, key, sort, generation"
_NEXT = "(SELECT IFNULL(MAX(used), 0) + 1 FROM result_set)"


class NotShareable(ValueError):
    """A result whose handle cannot be written as JSON (it lives in one process's memory)."""


# --------------------------------------------------------------------------- the codec

def encode_result(result: SearchResult) -> str:
    """A result as JSON text: total, ids, and the handle of the embedded index (its SQL)
    or of Elasticsearch (query, sort, first ids, point in time and cursors)."""
    h = result.handle
    handle: dict[str, Any] | None
    if h is None:
        handle = None
    elif type(h).__name__ == "_Lazy" and type(h).__module__.endswith("sqlite_index"):
        fast = getattr(h, "fast", None)        # the ranking of indexers/ranking.py, when it applies
        handle = {"kind": "sql", "order_sql": h.order_sql, "order_params": list(h.order_params),
                  "set_sql": h.set_sql, "set_params": list(h.set_params),
                  "fast": None if fast is None else {**vars(fast), "tokens": list(fast.tokens)}}
    elif type(h).__name__ == "EsHandle" and type(h).__module__.endswith("elasticsearch_catalog"):
        handle = {"kind": "es", "query": h.query, "sort": h.sort, "ids": list(h.ids), "pit": h.pit,
                  "cursors": [[pos, values] for pos, values in h.cursors.items()]}
    else:
        raise NotShareable(f"a {type(h).__name__} result lives in this process")
    try:
        return json.dumps({"total": result.total, "ids": result.ids, "handle": handle},
                          ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:        # a parameter JSON cannot say
        raise NotShareable(str(e)) from None


def decode_result(text: str) -> SearchResult:
    d = json.loads(text)
    h = d["handle"]
    handle: Any = None
    if h is not None and h["kind"] == "sql":
        from indexers.backends.sqlite_index import _Lazy

        fast = h.get("fast")
        if fast is not None:
            from indexers.ranking import OneField

            fast = OneField(**{**fast, "tokens": tuple(fast["tokens"])})
        handle = _Lazy(h["order_sql"], h["order_params"], h["set_sql"], h["set_params"], fast)
    elif h is not None and h["kind"] == "es":
        from indexers.backends.elasticsearch_catalog import EsHandle

        handle = EsHandle(h["query"], h["sort"], h["ids"], h["pit"], {int(p): v for p, v in h["cursors"]})
    elif h is not None:
        raise ValueError(f"unknown result handle {h['kind']!r}")
    return SearchResult(d["total"], d["ids"], handle)


def _digest(key: str) -> str:
    """The reuse key as stored: its SHA-256 (a key holds the query as asked, NUL separators
    and all, which a PostgreSQL text column cannot; a digest is short and indexes well)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest() if key else ""


def _encode_sort(sort: tuple) -> str:
    return json.dumps([list(astuple(k)) for k in sort], separators=(",", ":"))


def _decode_sort(text: str) -> tuple:
    return tuple(SortKey(*k) for k in json.loads(text))


# --------------------------------------------------------------------------- storage

class _Backend:
    """The statements on the one table (SQLite; see the module docstring for another database)."""

    SCHEMA = 4           # PRAGMA user_version: a file of another layout is emptied and made again,
    MIGRATES = {3: (     # except the layouts migrated in place (their sets stay usable):
        # 3 -> 4: the generation in a column of its own. The keys of layout 3 are digests of
        # (database, generation, query) and never equal a digest of (database, query): those
        # sets are paged and resolved as before, and are just never reused
        "ALTER TABLE result_set ADD COLUMN generation TEXT NOT NULL DEFAULT ''",
        "DROP INDEX IF EXISTS result_set_key",
    )}

    def __init__(self, path: Path | str):
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")      # result sets are not worth an fsync: a crash loses them
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version != self.SCHEMA:
                has_table = self.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='result_set'").fetchone()
                if version in self.MIGRATES and has_table:
                    for ddl in self.MIGRATES[version]:
                        self.conn.execute(ddl)
                else:
                    self.conn.execute("DROP TABLE IF EXISTS result_set")
                self.conn.execute(f"PRAGMA user_version={self.SCHEMA}")
            # small columns first, the hits last: a row's header and flags never read the JSON
            self.conn.execute(
                """CREATE TABLE IF NOT EXISTS result_set (
                    id TEXT PRIMARY KEY,
                    live INTEGER NOT NULL,     -- 1: a set; 0: an evicted set remembered
                    used INTEGER NOT NULL,     -- order of use (sets) and of eviction (memories)
                    expires REAL,
                    ttl INTEGER,
                    key TEXT NOT NULL DEFAULT '',
                    sort TEXT NOT NULL DEFAULT '[]',
                    db TEXT NOT NULL DEFAULT '',   -- JSON [name, library]
                    result TEXT,               -- JSON of the hits (NULL when evicted)
                    generation TEXT NOT NULL DEFAULT ''   -- the catalog's, when searched (reuse)
                )""")
            for ddl in ("CREATE INDEX IF NOT EXISTS result_set_used ON result_set(used)",
                        "CREATE INDEX IF NOT EXISTS result_set_lru ON result_set(live, used, id)",
                        "CREATE INDEX IF NOT EXISTS result_set_reuse ON result_set(key, sort, generation, used)"
                        " WHERE live = 1",
                        "CREATE INDEX IF NOT EXISTS result_set_expires ON result_set(expires) WHERE live = 1"):
                self.conn.execute(ddl)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def put(self, row: tuple, now: float, max_sets: int) -> None:
        """Purge the expired sets, keep ``row`` (replacing a set or a memory of that id),
        and evict the least recently used beyond ``max_sets`` (remembering at most
        REMEMBER_EVICTED of them). One write transaction."""
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DELETE FROM result_set INDEXED BY result_set_expires WHERE live = 1 AND expires <= ?", (now,))
            c.execute(f"INSERT INTO result_set({_COLUMNS}, live, used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, {_NEXT})"
                      " ON CONFLICT(id) DO UPDATE SET result=excluded.result, db=excluded.db, ttl=excluded.ttl,"
                      " expires=excluded.expires, key=excluded.key, sort=excluded.sort,"
                      " generation=excluded.generation, live=1, used=excluded.used", row)
            over = [r[0] for r in c.execute("SELECT id FROM result_set WHERE live = 1"
                                            " ORDER BY used DESC LIMIT -1 OFFSET ?", (max_sets,))]
            for old in reversed(over):                       # the oldest is remembered first
                c.execute(f"UPDATE result_set SET live=0, result=NULL, key='', used={_NEXT} WHERE id=?", (old,))
            if over:
                c.execute("DELETE FROM result_set WHERE id IN (SELECT id FROM result_set WHERE live = 0"
                          " ORDER BY used DESC LIMIT -1 OFFSET ?)", (REMEMBER_EVICTED,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def touch(self, where: str, params: tuple, now: float) -> tuple | None:
        """The live set ``where`` selects (the most recently used of them), its idle time
        started again and made the most recently used."""
        # a read first (readers never wait in WAL mode): most lookups find nothing to renew
        found = self.conn.execute(f"SELECT id FROM result_set WHERE {where} AND {_LIVE} ORDER BY used DESC LIMIT 1",
                                  (*params, now)).fetchone()
        if found is None:
            return None
        return self.conn.execute(
            f"UPDATE result_set SET expires = CASE WHEN ttl IS NULL THEN NULL ELSE ? + ttl END, used={_NEXT}"
            f" WHERE id = ? AND {_LIVE} RETURNING {_COLUMNS}", (now, found[0], now)).fetchone()

    def generations(self, key: str, sort: str, now: float) -> list[str]:
        """The generations of the live sets of one query (one read, no write)."""
        return [r[0] for r in self.conn.execute(
            f"SELECT DISTINCT generation FROM result_set WHERE key = ? AND sort = ? AND {_LIVE}", (key, sort, now))]

    def live(self, name: str, now: float) -> tuple | None:
        return self.conn.execute(f"SELECT {_COLUMNS} FROM result_set WHERE id=? AND {_LIVE}", (name, now)).fetchone()

    def names(self, now: float) -> list[str]:
        return [r[0] for r in self.conn.execute(f"SELECT id FROM result_set WHERE {_LIVE} ORDER BY used", (now,))]

    def count(self, now: float) -> int:
        return self.conn.execute(f"SELECT COUNT(*) FROM result_set WHERE {_LIVE}", (now,)).fetchone()[0]

    def evicted(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM result_set WHERE id=? AND live = 0", (name,)).fetchone() is not None

    def remove(self, name: str) -> bool:
        row = self.conn.execute("DELETE FROM result_set WHERE id=? RETURNING live", (name,)).fetchone()
        return bool(row and row[0])

    def clear(self) -> int:
        n = self.conn.execute("SELECT COUNT(*) FROM result_set WHERE live = 1").fetchone()[0]
        self.conn.execute("DELETE FROM result_set")
        return n


# --------------------------------------------------------------------------- the store

class _SharedMapping(Mapping[str, SearchResult]):
    """name -> hits, read on demand (a search resolves one or two names, not every set)."""

    def __init__(self, store: "SharedResultSets"):
        self.store = store

    def __getitem__(self, name: str) -> SearchResult:
        rs = self.store._peek(name)
        if rs is None:
            raise KeyError(name)
        return rs.result

    def __iter__(self) -> Iterator[str]:
        return iter(self.store.names())

    def __len__(self) -> int:
        return len(self.store)


class SharedResultSets:
    """:class:`search.result_sets.ResultSets`' interface and behaviour, kept in a file that
    every SRU process of one data directory opens (``path``)."""

    def __init__(self, path: Path | str, max_sets: int = 1000, *, clock: Callable[[], float] = time.time,
                 evict: bool = True, backend: Any = None):
        """``backend``: the storage instead of the SQLite file at ``path`` (the same
        statements: search/result_sets_pg.py's PgBackend)."""
        self.path = Path(path)
        self._db = backend if backend is not None else _Backend(self.path)
        self.max_sets = max_sets
        self.clock = clock
        self.evict = evict
        self.local = ResultSets(max_sets, clock=clock, evict=evict)    # results that cannot be shared

    @classmethod
    def in_data_dir(cls, data_dir: Path | str, **kw) -> "SharedResultSets":
        return cls(Path(data_dir) / FILE_NAME, **kw)

    @classmethod
    def on_postgresql(cls, url: str, **kw) -> "SharedResultSets":
        """The store in a PostgreSQL database that gateways on several machines share."""
        from .result_sets_pg import PgBackend

        return cls(url, backend=PgBackend(url), **kw)

    @classmethod
    def open(cls, data_dir: Path | str, database: str | None = None, **kw) -> "SharedResultSets":
        """The SRU processes' store: in ``database`` (postgresql://...) when given, else the
        data directory's file."""
        return cls.on_postgresql(database, **kw) if database else cls.in_data_dir(data_dir, **kw)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _set(row: tuple) -> ResultSet:
        rs_id, result, db, ttl, expires, key, sort, generation = row
        name, library = json.loads(db) if db else (DEFAULT, None)
        return ResultSet(rs_id, decode_result(result), None, Database(name, library), ttl, expires, key,
                         _decode_sort(sort), generation)

    def _peek(self, name: str) -> ResultSet | None:
        """The live set of that name without renewing it."""
        if name in self.local:
            return self.local._sets[name]
        row = self._db.live(name, self.clock())
        return self._set(row) if row else None

    def full(self, name: str | None = None) -> bool:
        return not self.evict and name not in self and len(self) >= self.max_sets

    def put(self, result: SearchResult, *, name: str | None = None, ttl: int | None = None,
            query=None, database: Database = _DEFAULT_DATABASE, key: str = "", sort: tuple = (),
            generation: str = "") -> ResultSet:
        if database.catalog is not None or (ttl == 0 and name is None):
            # a federation's (its records are in this process), or one that is not kept (see ResultSets.put)
            return self.local.put(result, name=name, ttl=ttl, query=query, database=database, key=key, sort=sort,
                                  generation=generation)
        try:
            text = encode_result(result)
        except NotShareable:
            return self.local.put(result, name=name, ttl=ttl, query=query, database=database, key=key, sort=sort,
                                  generation=generation)
        now = self.clock()
        rs_id = name if name is not None else secrets.token_hex(6)
        expires = now + ttl if ttl is not None else None
        self.local.remove(rs_id)
        self._db.put((rs_id, text, json.dumps([database.name, database.library]), ttl, expires, _digest(key),
                      _encode_sort(sort), generation), now, self.max_sets)
        return ResultSet(rs_id, result, query, database, ttl, expires, key, tuple(sort), generation)

    def get(self, name: str) -> ResultSet | None:
        rs = self.local.get(name)
        if rs is not None:
            return rs
        row = self._db.touch("id = ?", (name,), self.clock())
        return self._set(row) if row else None

    def generations(self, key: str, sort: tuple) -> frozenset[str]:
        if not key:
            return frozenset()
        return frozenset(self._db.generations(_digest(key), _encode_sort(sort), self.clock())) \
            | self.local.generations(key, sort)

    def find(self, key: str, sort: tuple, generation: str = "") -> ResultSet | None:
        if not key:
            return None
        row = self._db.touch("key = ? AND sort = ? AND generation = ?", (_digest(key), _encode_sort(sort), generation),
                             self.clock())
        return self._set(row) if row else self.local.find(key, sort, generation)

    def was_evicted(self, name: str) -> bool:
        return self.local.was_evicted(name) or self._db.evicted(name)

    def remove(self, name: str) -> bool:
        return self.local.remove(name) | self._db.remove(name)

    def clear(self) -> int:
        return self.local.clear() + self._db.clear()

    def as_mapping(self) -> Mapping[str, SearchResult]:
        return _SharedMapping(self)

    def names(self) -> list[str]:
        return self._db.names(self.clock()) + self.local.names()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.local or self._db.live(name, self.clock()) is not None)

    def __len__(self) -> int:
        return self._db.count(self.clock()) + len(self.local)
