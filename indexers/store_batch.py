"""The record store's writes on PostgreSQL in batches (issue 18): the round trips of an
ingest taken out of the per-record path, the answers unchanged.

On SQLite a statement is a function call; on PostgreSQL each is a round trip, and a new
record needed 4-6 of them (its library and local id looked up, one lookup per match key,
the union record, the source row, its keys). :class:`PgBatch` (used by
indexers/store.py ``Store`` on a PostgreSQL store only) does instead:

* **Look-ups per window.** Before the ingest applies a window of prepared records (the
  rest of the current batch, ``Store.prefetch``), three statements read what those
  records will ask: their rows in ``source`` (``local_id = ANY(?)``), the candidates of
  every match key (one ``LATERAL`` statement running the per-key query for each key),
  and the members of the candidate union records with their titles. Each answer is what
  the per-record statement would have given at the time of the record:

  - ``source`` rows of the ingest's own library change only through this Store, which
    updates the cached rows as it writes them;
  - match keys and sources of *other* libraries (all that the candidate look-up reads)
    do not change during the run: one ingest writes a store at a time (the run lock,
    indexers/store_sql.py), and the pusher writes only the outbox;
  - the members of a union record do change when the ingest's own records join or
    leave it: a union record touched since the window was read is asked again.

  Anything not in the window (a record read twice, a withdrawal) is asked as before.
* **Writes deferred.** The statements whose results are not read (the source row, its
  keys, the union record, the run stamp of an unchanged record, the keys an update
  removes) are kept and sent as one ``executemany`` per statement (psycopg pipelines it)
  before anything reads the tables again (``sync``): at the batch's flush, before a
  look-up that goes to the database, before a source row written in the window is
  written again (so each row's own statements keep their order).
* **Ids reserved.** The ids a window's new records will need come from the identity
  sequences in one statement each (``nextval`` over ``generate_series``); those left at
  the commit are given back (``setval``), so the ids are the ones one ``INSERT ...
  RETURNING id`` per record would have given (nobody else draws from these sequences:
  the run lock). A killed ingest leaves a gap, as a rolled-back insert does.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

# the deferred statements, in the order a sync sends them: for any one source row its own
# statements keep their order (unkey before key; a row written twice in a window is synced
# in between), and statements on different rows commute
PENDING_SQL = {
    "unkey": "DELETE FROM matchkey WHERE source_id=?",
    "union_rec": "INSERT INTO union_rec(id, created, modified) VALUES (?, ?, ?)",
    "source": "INSERT INTO source(id, library, local_id, union_id, digest, run_id, marc, data, titles, holdings,"
              " added) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
    "update": "UPDATE source SET union_id=?, digest=?, run_id=?, marc=?, data=?, titles=?, holdings=? WHERE id=?",
    "run_id": "UPDATE source SET run_id=? WHERE id=?",
    "key": "INSERT INTO matchkey(key, library, union_id, source_id) VALUES (?,?,?,?)",
}

# the candidates of many keys in one statement: per key, the same two index ranges (and
# limits) Store._candidates asks one key at a time
KEYS_SQL = (
    "SELECT k.key, m.union_id, m.source_id FROM unnest(CAST(? AS TEXT[])) AS k(key) CROSS JOIN LATERAL"
    " (SELECT union_id, source_id FROM matchkey WHERE key=k.key AND library<? ORDER BY library, union_id LIMIT ?) m"
    " UNION ALL"
    " SELECT k.key, m.union_id, m.source_id FROM unnest(CAST(? AS TEXT[])) AS k(key) CROSS JOIN LATERAL"
    " (SELECT union_id, source_id FROM matchkey WHERE key=k.key AND library>? ORDER BY library, union_id LIMIT ?) m"
)

MISS: Any = object()   # not in the window: ask the database


class PgBatch:
    def __init__(self, conn: Any, max_candidates: int):
        self.conn = conn
        self.max_candidates = max_candidates
        self.pending: dict[str, list[tuple]] = {k: [] for k in PENDING_SQL}
        self.pending_sids: set[int] = set()
        self.reserved: dict[str, list[int]] = {"union_rec": [], "source": []}
        self.library: str | None = None
        self.sources: dict[str, tuple | None] = {}
        self.keys: dict[str, list[tuple[int, int]]] = {}
        self.members: dict[int, list[tuple[int, str]]] = {}
        self.titles: dict[int, str] = {}
        self.stale: set[int] = set()            # union records touched since the window was read

    # -- the window ---------------------------------------------------------------
    def prefetch(self, library: str, ps: Sequence[Any]) -> None:
        """Read what the records ``ps`` (prepared, in the order they will be applied) ask."""
        self.sync()
        self.library = library
        lids = list(dict.fromkeys(p.local_id for p in ps if not p.deleted))
        self.sources = dict.fromkeys(lids)
        if lids:
            for lid, sid, uid, digest in self.conn.execute(
                    "SELECT local_id, id, union_id, digest FROM source WHERE library=? AND local_id = ANY(?)",
                    (library, lids)).fetchall():
                self.sources[lid] = (sid, uid, digest)
        keys = list(dict.fromkeys(f"{k}:{v}" for p in ps if not p.deleted for k, v in (p.keys or ())))
        found: dict[str, list[tuple[int, int]]] = {k: [] for k in keys}
        if keys:
            n = self.max_candidates
            for key, uid, sid in self.conn.execute(KEYS_SQL, (keys, library, n, keys, library, n)).fetchall():
                found[key].append((uid, sid))
        self.keys = {k: sorted(rows)[:self.max_candidates] for k, rows in found.items()}
        uids = sorted({uid for rows in self.keys.values() for uid, _ in rows})
        self.members = {uid: [] for uid in uids}
        self.titles = {}
        if uids:
            for uid, sid, lib, titles in self.conn.execute(
                    "SELECT union_id, id, library, titles FROM source WHERE union_id = ANY(?)", (uids,)).fetchall():
                self.members[uid].append((sid, lib))
                self.titles[sid] = titles
        self.stale = set()
        new = sum(1 for row in self.sources.values() if row is None)
        for table in ("union_rec", "source"):
            self.release(table)
            if new:
                self.reserved[table] = [r[0] for r in self.conn.execute(
                    "SELECT nextval(pg_get_serial_sequence(?, 'id')) FROM generate_series(1, ?)",
                    (table, new)).fetchall()]

    def source_row(self, library: str, local_id: str):
        """(id, union_id, digest), None (no such row), or MISS (ask the database)."""
        if library != self.library or local_id not in self.sources:
            return MISS
        row = self.sources[local_id]
        if row is not None and row[0] in self.pending_sids:
            self.sync()                         # the row's earlier statements go first
        return row

    def wrote_source(self, library: str, local_id: str, row: tuple | None) -> None:
        if library == self.library and local_id in self.sources:
            self.sources[local_id] = row

    def key_rows(self, library: str, key: str):
        if library != self.library or key not in self.keys:
            return MISS
        return self.keys[key]

    def libraries(self, uid: int, exclude_source: int | None, dirty: set[int]):
        if uid not in self.members or uid in self.stale or uid in dirty:
            return MISS
        return frozenset(lib for sid, lib in self.members[uid] if sid != (exclude_source or 0))

    def source_titles(self, sid: int):
        return self.titles.get(sid, MISS)

    def touched(self, uids: Iterable[int]) -> None:
        self.stale.update(uids)

    # -- writes ---------------------------------------------------------------------
    def put(self, kind: str, params: tuple, sid: int) -> None:
        self.pending[kind].append(params)
        self.pending_sids.add(sid)

    def put_many(self, kind: str, rows: list[tuple], sid: int) -> None:
        self.pending[kind].extend(rows)
        self.pending_sids.add(sid)

    def new_id(self, table: str) -> int | None:
        """A reserved id of ``table``, or None (insert with RETURNING id)."""
        ids = self.reserved[table]
        return ids.pop(0) if ids else None

    def sync(self) -> None:
        """Send the deferred statements (before anything reads the tables)."""
        for kind, rows in self.pending.items():
            if rows:
                self.conn.executemany(PENDING_SQL[kind], rows)
                rows.clear()
        self.pending_sids.clear()

    def release(self, table: str) -> None:
        """Give the unused reserved ids of ``table`` back to its sequence."""
        ids = self.reserved[table]
        if ids:
            self.conn.execute("SELECT setval(pg_get_serial_sequence(?, 'id'), ?, false)", (table, ids[0]))
            ids.clear()

    def at_commit(self) -> None:
        for table in self.reserved:
            self.release(table)

    def reset(self) -> None:
        """After a rollback: nothing deferred, nothing cached (a reserved id is lost, as a
        rolled-back insert's is)."""
        for rows in self.pending.values():
            rows.clear()
        self.pending_sids.clear()
        for ids in self.reserved.values():
            ids.clear()
        self.library = None
        self.sources, self.keys, self.members, self.titles = {}, {}, {}, {}
        self.stale = set()

