"""The provider's repository over the record store (DATA_DIR/catalog.sqlite, or the
PostgreSQL database of ``--store-db``: indexers/store_sql.py), read-only: union records
with their ``modified`` stamps, withdrawn ones from ``union_gone`` (indexers/store.py),
sets = member libraries.  Thread-safe use: one connection per call (the provider's shell
runs calls on worker threads; OAI-PMH requests are few, so a PostgreSQL connection per
call costs little)."""
from __future__ import annotations

import builtins
from pathlib import Path
from typing import Sequence

from indexers.store import load_union_records
from indexers.store_sql import Conn, PgConnection, is_store_url, open_connection

from .provider import Entry

_FAR = 1e18


class StoreUnavailable(Exception):
    """The record store is not there (a gateway that serves an Elasticsearch index
    without a store of its own) or cannot be read."""


class StoreRepository:
    def __init__(self, path: Path | str, library_names: dict[str, str] | None = None):
        """``path``: the SQLite file, or a postgresql:// URL."""
        self.url = str(path) if is_store_url(str(path)) else None
        self.path = Path(path)
        self.library_names = library_names or {}

    def _conn(self) -> Conn:
        if self.url is not None:
            return open_connection(self.url, readonly=True)
        if not self.path.exists():      # never create an empty store by asking
            raise StoreUnavailable(f"no record store at {self.path}")
        return open_connection(self.path, readonly=True)

    def _has_gone(self, conn) -> bool:
        if isinstance(conn, PgConnection):      # made whole (store_sql.PG_SCHEMA)
            return True
        return conn.execute("SELECT 1 FROM sqlite_master WHERE name='union_gone'").fetchone() is not None

    def earliest(self) -> float | None:
        conn = self._conn()
        try:
            row = conn.execute("SELECT MIN(created) FROM union_rec").fetchone()
            return row[0] if row else None
        finally:
            conn.close()

    def sets(self) -> list[tuple[str, str]]:
        conn = self._conn()
        try:
            held = [r[0] for r in conn.execute("SELECT DISTINCT library FROM source ORDER BY library")]
        finally:
            conn.close()
        return [(lib, self.library_names.get(lib, lib)) for lib in sorted(set(held) | set(self.library_names))]

    def _select(self, set_spec: str | None, gone: bool) -> tuple[str, list]:
        """(SQL of (id, stamp, deleted) rows, its parameters)."""
        if set_spec is None:
            live = "SELECT id, modified AS stamp, 0 AS deleted FROM union_rec"
            dead = ("SELECT union_id AS id, MAX(at) AS stamp, 1 AS deleted FROM union_gone"
                    " WHERE union_id NOT IN (SELECT id FROM union_rec) GROUP BY union_id")
            params: list = []
        else:
            live = ("SELECT u.id, u.modified AS stamp, 0 AS deleted FROM union_rec u"
                    " WHERE EXISTS (SELECT 1 FROM source s WHERE s.union_id=u.id AND s.library=?)")
            dead = ("SELECT g.union_id AS id, g.at AS stamp, 1 AS deleted FROM union_gone g WHERE g.library=?"
                    " AND NOT EXISTS (SELECT 1 FROM source s WHERE s.union_id=g.union_id AND s.library=?)")
            params = [set_spec]
        if not gone:
            return live, params
        return f"{live} UNION ALL {dead}", params + ([set_spec, set_spec] if set_spec is not None else [])

    def list(self, *, from_: float | None, until: float | None, set_spec: str | None,
             after: tuple[float, int] | None, limit: int) -> list[Entry]:
        conn = self._conn()
        try:
            sql, params = self._select(set_spec, self._has_gone(conn))
            lo, hi = from_ if from_ is not None else -_FAR, until if until is not None else _FAR
            where = "stamp >= ? AND stamp < ?"
            params = params + [lo, hi]
            if after is not None:
                where += " AND (stamp > ? OR (stamp = ? AND id > ?))"
                params += [after[0], after[0], after[1]]
            rows = conn.execute(f"SELECT id, stamp, deleted FROM ({sql}) AS e WHERE {where} ORDER BY stamp, id"
                                " LIMIT ?",
                                params + [limit]).fetchall()
            return self._with_sets(conn, rows)
        finally:
            conn.close()

    def count(self, *, from_: float | None, until: float | None, set_spec: str | None) -> int:
        conn = self._conn()
        try:
            sql, params = self._select(set_spec, self._has_gone(conn))
            lo, hi = from_ if from_ is not None else -_FAR, until if until is not None else _FAR
            return conn.execute(f"SELECT COUNT(*) FROM ({sql}) AS e WHERE stamp >= ? AND stamp < ?",
                                params + [lo, hi]).fetchone()[0]
        finally:
            conn.close()

    def _with_sets(self, conn, rows) -> "builtins.list[Entry]":
        ids = [r[0] for r in rows]
        libs: dict[int, set[str]] = {i: set() for i in ids}
        if ids:
            q = ",".join("?" * len(ids))
            for uid, lib in conn.execute(f"SELECT DISTINCT union_id, library FROM source WHERE union_id IN ({q})",
                                         ids):
                libs[uid].add(lib)
            dead = [r[0] for r in rows if r[2]]
            if dead and self._has_gone(conn):
                q = ",".join("?" * len(dead))
                for uid, lib in conn.execute(f"SELECT union_id, library FROM union_gone WHERE union_id IN ({q})",
                                             dead):
                    if not any(r[0] == uid and not r[2] for r in rows):
                        libs[uid].add(lib)
        return [Entry(uid, stamp, bool(deleted), tuple(sorted(libs[uid]))) for uid, stamp, deleted in rows]

    def entry(self, uid: int) -> Entry | None:
        conn = self._conn()
        try:
            row = conn.execute("SELECT id, modified, 0 FROM union_rec WHERE id=?", (uid,)).fetchone()
            if row is None and self._has_gone(conn):
                row = conn.execute("SELECT union_id, MAX(at), 1 FROM union_gone WHERE union_id=?"
                                   " GROUP BY union_id", (uid,)).fetchone()
            return self._with_sets(conn, [row])[0] if row else None
        finally:
            conn.close()

    def records(self, ids: Sequence[int]) -> dict[int, object]:
        conn = self._conn()
        try:
            return {r.id: r for r in load_union_records(conn, list(ids))}
        finally:
            conn.close()
