"""The record store: every member library's source records, the union records
they form, and their holdings.  It is the truth an index is built (and rebuilt)
from; an index backend receives UnionDocuments through the IndexWriter interface.

SQLite, WAL mode: one writer (an ingest) and any number of readers (a running
server) at once; readers see a batch when its transaction commits, so a union
record is never seen half-written.  With the Elasticsearch backend the same Store
runs on PostgreSQL (indexers/store_sql.py: the dialect, the connection, the design).
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import pymarc

from . import union as un
from .backend import BackendUnavailable
from .holdings import load_libraries
from .mapping import FieldMapping
from .marc_display import iso2709_value, marcxml_of_iso2709, splice_iso2709
from .marc_reader import decode_stored
from .records import Holding, UnionRecord
from .store_batch import MISS, PgBatch
from .store_sql import PG_SCHEMA, Conn, dialect_of, is_store_url, open_connection, shown_url

if TYPE_CHECKING:              # prepare imports the index writers; its type only
    from .prepare import Prepared

log = logging.getLogger("unioncat.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS run(
  id INTEGER PRIMARY KEY AUTOINCREMENT, library TEXT NOT NULL, "full" INTEGER NOT NULL,
  started REAL NOT NULL, finished REAL, counts TEXT, outcome TEXT);
CREATE TABLE IF NOT EXISTS union_rec(id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL, modified REAL);
CREATE TABLE IF NOT EXISTS source(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  library TEXT NOT NULL, local_id TEXT NOT NULL,
  union_id INTEGER NOT NULL REFERENCES union_rec(id),
  digest TEXT NOT NULL, run_id INTEGER NOT NULL,
  marc BLOB NOT NULL, data TEXT NOT NULL, titles TEXT NOT NULL DEFAULT '{}',
  holdings TEXT NOT NULL DEFAULT '[]', added REAL,
  UNIQUE(library, local_id));
CREATE INDEX IF NOT EXISTS source_union ON source(union_id);
CREATE INDEX IF NOT EXISTS source_run ON source(library, run_id);
CREATE TABLE IF NOT EXISTS matchkey(
  key TEXT NOT NULL, library TEXT NOT NULL, union_id INTEGER NOT NULL, source_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS matchkey_key ON matchkey(key, library, union_id);
CREATE INDEX IF NOT EXISTS matchkey_source ON matchkey(source_id);
CREATE TABLE IF NOT EXISTS union_gone(
  union_id INTEGER NOT NULL, library TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY(union_id, library));
CREATE TABLE IF NOT EXISTS display(union_id INTEGER PRIMARY KEY, iso BLOB);
"""
# union_rec.modified: when the union record (or any member, or its holdings) last changed;
# union_gone: a library whose last member left a union record, and when (the whole record
# is gone when union_rec has no row): the OAI-PMH provider's persistent deletions
# (connectors/oai/provider.py) read both
# display: each union record's display record as UTF-8 ISO 2709 (display_iso2709; NULL
# where the splice declines and the record is decoded instead), written with the record
# in the same transaction (Store._flush); readers use it once meta 'display' says it was
# filled for the libraries' current holdings tags (display_format), else they splice


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode.  Readers (the server) map the file (fast page
    access, shared between threads); the writer (ingest) does not, and keeps a
    32 MB page cache, so its memory stays flat however large the catalog grows."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA cache_size={-65536 if readonly else -32768}")
    conn.execute(f"PRAGMA mmap_size={1 << 30 if readonly else 0}")
    conn.execute("PRAGMA temp_store=MEMORY")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


MAX_CANDIDATES = 50


class IndexWriter(Protocol):
    def setup(self, conn: Any) -> None: ...
    def payload(self, doc: un.UnionDocument):
        """Rows for a document, computed without the database (may run in a worker)."""

    def put(self, conn: Any, doc: un.UnionDocument, fresh: bool = False, payload=None) -> None:
        """Write a union record's document; ``fresh``: the id was never indexed;
        ``payload``: what payload(doc) returned, if already computed."""
    def delete(self, conn: Any, union_id: int) -> None: ...


@dataclass
class Counts:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    merged: int = 0
    quarantined: int = 0
    deleted_unknown: int = 0  # leader/05 'd' for a record the library never had here
    repaired: int = 0  # stored, but read with warnings (listed in the run's repaired file)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Store:
    def __init__(self, conn: Conn, mapping: FieldMapping, index: IndexWriter):
        self.conn = conn
        self.mapping = mapping
        self.index = index
        self.dialect = dialect_of(conn)
        if self.dialect.name == "sqlite":
            conn.executescript(SCHEMA)
            if "outcome" not in self.dialect.columns(conn, "run"):  # a store from before
                conn.execute("ALTER TABLE run ADD COLUMN outcome TEXT")
            if "modified" not in self.dialect.columns(conn, "union_rec"):
                conn.execute("ALTER TABLE union_rec ADD COLUMN modified REAL")
                conn.execute("UPDATE union_rec SET modified=created")    # once: a store from before
            conn.execute("CREATE INDEX IF NOT EXISTS union_rec_modified ON union_rec(modified)")
            add_added_column(conn)
        else:                       # a PostgreSQL store is made whole (store_sql.py)
            conn.executescript(PG_SCHEMA)
        index.setup(conn)
        # PostgreSQL: look-ups per window, writes deferred, ids reserved (store_batch.py)
        self._batch = PgBatch(conn, MAX_CANDIDATES) if self.dialect.name == "postgresql" else None
        self._dirty: set[int] = set()
        self._gone: set[int] = set()
        # union records created in this batch whose only member is known in memory
        # (indexers.prepare.Prepared): their documents were built by the preparer
        self._fresh: dict[int, Prepared] = {}
        # libraries whose member left a union record in this batch (withdrawn or moved)
        self._left: dict[int, set[str]] = {}

    # -- transactions -------------------------------------------------------
    def begin(self) -> None:
        self.dialect.begin(self.conn)

    def prefetch(self, library: str, ps) -> None:
        """The prepared records ``ps`` are applied next (in this order, by ``apply``): on
        PostgreSQL, read what they will ask in a few statements (store_batch.py); nothing on
        SQLite, where a look-up is a function call."""
        if self._batch is not None:
            self._batch.prefetch(library, ps)

    def sync(self) -> None:
        """Send the deferred writes (PostgreSQL): before someone else reads the store's
        tables through ``conn`` inside the batch (an ingest's hooks)."""
        if self._batch is not None:
            self._batch.sync()

    def commit(self) -> None:
        self._flush()
        if self._batch is not None:
            self._batch.at_commit()
        # the stored display records stay current through this commit: the stamp moves to
        # the next generation (a writer that does not keep them, e.g. an older version,
        # bumps the generation alone, and readers go back to splicing)
        fmt = display_format_cached()
        self.conn.execute(
            "UPDATE meta SET value = CAST(? AS TEXT) || '@' || CAST(COALESCE(CAST((SELECT value FROM meta"
            " WHERE key='generation') AS INTEGER), 0) + 1 AS TEXT) WHERE key='display'"
            " AND value = CAST(? AS TEXT) || '@' || COALESCE((SELECT value FROM meta WHERE key='generation'), '0')",
            (fmt, fmt))
        # readers compare the generation to know whether cached result sets are still current
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
        )
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        discard = getattr(self.index, "discard", None)
        if discard is not None:
            discard()
        self._left.clear()
        self._dirty.clear()
        self._gone.clear()
        self._fresh.clear()
        if self._batch is not None:
            self._batch.reset()
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except self.dialect.errors:
                if self.dialect.name == "sqlite":
                    raise
                # PostgreSQL: the connection is gone, and the server rolled the transaction back with it

    def _flush(self) -> None:
        """Rebuild the index documents of every union record touched in this batch,
        stamp them modified, and record the libraries that left them."""
        self.sync()
        if self._batch is not None:
            self._batch.touched(self._dirty)
        now = time.time()
        made: dict[int, bytes | None] = {}
        for uid in sorted(self._dirty - self._gone):
            p = self._fresh.get(uid)
            if p is not None and p.solo is not None:  # alone in a new union record: built by the preparer
                p.solo.union_id = uid
                self.index.put(self.conn, p.solo, fresh=True, payload=p.payload)
                if getattr(p, "display_made", False):
                    made[uid] = p.display
                continue
            members = self._members(uid)
            left = self._left.get(uid, set())
            if members:
                self.index.put(self.conn, un.build_document(uid, members))
                self.conn.execute("UPDATE union_rec SET modified=? WHERE id=?", (now, uid))
                libs = {m.library for m in members}
                self.conn.executemany("DELETE FROM union_gone WHERE union_id=? AND library=?",
                                      [(uid, lib) for lib in libs])
                left = left - libs
            else:
                self.conn.execute("DELETE FROM union_rec WHERE id=?", (uid,))
                self.index.delete(self.conn, uid)
            self.conn.executemany(
                "INSERT INTO union_gone(union_id, library, at) VALUES (?,?,?)"
                " ON CONFLICT(union_id, library) DO UPDATE SET at=excluded.at",
                [(uid, lib, now) for lib in sorted(left)])
        self._write_display(sorted(self._dirty), made)
        flush = getattr(self.index, "flush", None)      # a writer that batches its writes (the ES outbox)
        if flush is not None:
            flush(self.conn)
        self._dirty.clear()
        self._gone.clear()
        self._fresh.clear()
        self._left.clear()

    def _write_display(self, ids: list[int], made: dict[int, bytes | None] | None = None) -> None:
        """The display records of these union records written again (gone ones removed);
        ``made``: those the preparer already made (new union records of one member)."""
        made = made or {}
        if made:
            self.conn.executemany("INSERT INTO display(union_id, iso) VALUES (?, ?)"
                                  " ON CONFLICT(union_id) DO UPDATE SET iso=excluded.iso", made.items())
            ids = [uid for uid in ids if uid not in made]
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            shown = _splice_display(self.conn, chunk)
            self.conn.executemany("INSERT INTO display(union_id, iso) VALUES (?, ?)"
                                  " ON CONFLICT(union_id) DO UPDATE SET iso=excluded.iso", shown.items())
            gone = [(uid,) for uid in chunk if uid not in shown]
            if gone:
                self.conn.executemany("DELETE FROM display WHERE union_id=?", gone)

    def fill_display(self) -> int:
        """When the stored display records were not made for the libraries' current
        holdings tags (or not at all: a catalog from before them), write every one
        and record the format; returns how many (0: current). Called by the ingest
        when it opens the store, as ``rebuild_stale_index`` is."""
        fmt = display_format_cached()
        row = self.conn.execute("SELECT (SELECT value FROM meta WHERE key='display'),"
                                " (SELECT value FROM meta WHERE key='generation')").fetchone()
        if row[0] == f"{fmt}@{row[1] or '0'}":
            return 0
        ids = [r[0] for r in self.conn.execute("SELECT id FROM union_rec ORDER BY id")]
        if ids:
            log.info("writing the display records of %d union records", len(ids))
        # in transactions of 5,000 (the WAL stays small); readers keep splicing until
        # the last one records the format
        for i in range(0, max(len(ids), 1), 5000):
            self.begin()
            try:
                if i == 0:
                    self.conn.execute("DELETE FROM meta WHERE key='display'")
                    self.conn.execute("DELETE FROM display")
                self._write_display(ids[i:i + 5000])
                if i + 5000 >= len(ids):
                    self.conn.execute("INSERT INTO meta(key, value) VALUES ('display', CAST(? AS TEXT) || '@' ||"
                                      " COALESCE((SELECT value FROM meta WHERE key='generation'), '0'))"
                                      " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (fmt,))
                self.conn.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise
        return len(ids)

    # -- index format ---------------------------------------------------------
    def index_format(self) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key='index_format'").fetchone()
        return row[0] if row else None

    def rebuild_stale_index(self) -> int:
        """When the index documents were made by another INDEX_FORMAT (indexers/terms.py),
        rebuild every union record's document (through the index writer: the embedded
        index, or the Elasticsearch outbox, pushed by this ingest); record the format.
        Returns how many were rebuilt (0: the index was current, or the store empty)."""
        from .terms import INDEX_FORMAT

        # the embedded index adds its own tables to the shared format (sqlite_index.INDEX_FORMAT)
        fmt = getattr(self.index, "index_format", INDEX_FORMAT)
        if self.index_format() == fmt:
            return 0
        ids = [r[0] for r in self.conn.execute("SELECT id FROM union_rec")]
        self.begin()
        try:
            if ids:
                log.warning("the index was made by an older format (%s, now %s): rebuilding %d union records",
                            self.index_format() or "1", fmt, len(ids))
            self._dirty.update(ids)
            self.conn.execute("INSERT INTO meta(key, value) VALUES ('index_format', ?)"
                              " ON CONFLICT(key) DO UPDATE SET value=excluded.value", (fmt,))
            self.commit()
        except BaseException:
            self.rollback()
            raise
        optimize = getattr(self.index, "optimize", None)   # the embedded index: one segment again
        if ids and optimize is not None:
            optimize(self.conn)
        return len(ids)

    # -- runs ---------------------------------------------------------------
    def start_run(self, library: str, full: bool) -> int:
        return self.dialect.insert_id(self.conn, 'INSERT INTO run(library, "full", started) VALUES (?,?,?)',
                                      (library, int(full), time.time()))

    def finish_run(self, run_id: int, counts: Counts, outcome: str = "complete") -> None:
        """Close a run with the counts of what it committed and how it ended
        ("complete", "interrupted" or "failed: <why>")."""
        self.conn.execute(
            "UPDATE run SET finished=?, counts=?, outcome=? WHERE id=?",
            (time.time(), json.dumps(counts.as_dict()), outcome, run_id),
        )

    # -- sources ------------------------------------------------------------
    def apply(self, p, library: str, run_id: int, counts: Counts) -> None:
        """Add, update or withdraw one prepared library record (indexers.prepare.Prepared;
        call inside begin/commit)."""
        if p.deleted:
            if self.withdraw(library, p.local_id):
                counts.withdrawn += 1
            else:
                counts.deleted_unknown += 1
            return
        row = self._source_row(library, p.local_id)
        if row and row[2] == p.digest:
            self._write("run_id", "UPDATE source SET run_id=? WHERE id=?", (run_id, row[0]), row[0])
            counts.unchanged += 1
            return
        if row:
            source_id, old_union = row[0], row[1]
            self._write("unkey", "DELETE FROM matchkey WHERE source_id=?", (source_id,), source_id)
            self._dirty.add(old_union)
            self._fresh.pop(old_union, None)
            self._left.setdefault(old_union, set()).add(library)
        uid = None
        if p.keys:
            candidates = self._candidates(p.keys, library, exclude_source=row[0] if row else None)
            uid = un.choose_union(library, p.data["titles"], candidates)
        fresh = uid is None
        if uid is None:
            now = time.time()
            uid = self._batch.new_id("union_rec") if self._batch is not None else None
            if uid is not None:
                assert self._batch is not None
                self._batch.put("union_rec", (uid, now, now), 0)
            else:
                uid = self.dialect.insert_id(self.conn, "INSERT INTO union_rec(created, modified) VALUES (?, ?)",
                                             (now, now))
        else:
            counts.merged += 1
            self._fresh.pop(uid, None)
        titles = json.dumps(p.data["titles"], ensure_ascii=False)
        holdings = json.dumps(p.data["holdings"], ensure_ascii=False)
        if row:
            self._write("update",
                        "UPDATE source SET union_id=?, digest=?, run_id=?, marc=?, data=?, titles=?, holdings=?"
                        " WHERE id=?", (uid, p.digest, run_id, p.marc, p.blob, titles, holdings, source_id),
                        source_id)
            counts.updated += 1
        else:
            added = time.time()
            new_id = self._batch.new_id("source") if self._batch is not None else None
            if new_id is not None:
                assert self._batch is not None
                source_id = new_id
                self._batch.put("source", (source_id, library, p.local_id, uid, p.digest, run_id, p.marc, p.blob,
                                           titles, holdings, added), source_id)
            else:
                source_id = self.dialect.insert_id(
                    self.conn,
                    "INSERT INTO source(library, local_id, union_id, digest, run_id, marc, data, titles, holdings,"
                    " added) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (library, p.local_id, uid, p.digest, run_id, p.marc, p.blob, titles, holdings, added),
                )
            counts.added += 1
        if self._batch is not None:
            self._batch.wrote_source(library, p.local_id, (source_id, uid, p.digest))
        if p.keys:
            keys = [(f"{k}:{v}", library, uid, source_id) for k, v in p.keys]
            if self._batch is not None:
                self._batch.put_many("key", keys, source_id)
            else:
                self.conn.executemany("INSERT INTO matchkey(key, library, union_id, source_id) VALUES (?,?,?,?)", keys)
        if fresh:
            self._fresh[uid] = p
        self._dirty.add(uid)

    def _candidates(self, keys: list[tuple[str, str]], library: str, exclude_source: int | None) -> list[un.Candidate]:
        """Union records sharing a key with another library's source.  Bounded:
        at most MAX_CANDIDATES union records per key are examined (oldest first), so
        a key shared by thousands of records (a set ISBN, a typo) stays cheap."""
        out: dict[tuple[int, str], un.Candidate] = {}
        libs_of: dict[int, frozenset[str]] = {}
        for kind, value in keys:
            k = f"{kind}:{value}"
            rows = self._batch.key_rows(library, k) if self._batch is not None else MISS
            if rows is MISS:
                self.sync()
                # two index ranges (library < x, library > x): "<>" would scan every row of the key
                rows = sorted(
                    self.conn.execute(
                        "SELECT * FROM (SELECT union_id, source_id FROM matchkey WHERE key=? AND library<?"
                        " ORDER BY library, union_id LIMIT ?) AS lo"
                        " UNION ALL"
                        " SELECT * FROM (SELECT union_id, source_id FROM matchkey WHERE key=? AND library>?"
                        " ORDER BY library, union_id LIMIT ?) AS hi",
                        (k, library, MAX_CANDIDATES, k, library, MAX_CANDIDATES),
                    ).fetchall()
                )[:MAX_CANDIDATES]
            for uid, sid in rows:
                if sid == exclude_source:
                    continue
                if uid not in libs_of:
                    libs = self._batch.libraries(uid, exclude_source, self._dirty) if self._batch else MISS
                    if libs is MISS:
                        self.sync()
                        libs = frozenset(
                            r[0] for r in self.conn.execute(
                                "SELECT library FROM source WHERE union_id=? AND id <> COALESCE(?, 0)",
                                (uid, exclude_source))
                        )
                    libs_of[uid] = libs
                if library in libs_of[uid]:
                    continue
                c = out.get((uid, kind))
                if c is None:
                    c = out[(uid, kind)] = un.Candidate(uid, kind, libs_of[uid], [])
                if kind == "isbn":
                    t = self._batch.source_titles(sid) if self._batch is not None else MISS
                    if t is MISS:
                        self.sync()
                        t = self.conn.execute("SELECT titles FROM source WHERE id=?", (sid,)).fetchone()[0]
                    c.titles.append(json.loads(t))
        return list(out.values())

    def withdraw(self, library: str, local_id: str) -> bool:
        self.sync()
        row = self.conn.execute(
            "SELECT id, union_id FROM source WHERE library=? AND local_id=?", (library, local_id)
        ).fetchone()
        if not row:
            return False
        self.conn.execute("DELETE FROM matchkey WHERE source_id=?", (row[0],))
        self.conn.execute("DELETE FROM source WHERE id=?", (row[0],))
        if self._batch is not None:
            self._batch.wrote_source(library, local_id, None)
        self._dirty.add(row[1])
        self._fresh.pop(row[1], None)
        self._left.setdefault(row[1], set()).add(library)
        return True

    def missing_from_run(self, library: str, run_id: int) -> list[str]:
        self.sync()
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT local_id FROM source WHERE library=? AND run_id<>?", (library, run_id)
            )
        ]

    def missing_since_run(self, library: str, first_run: int) -> list[str]:
        """The library's records no run from ``first_run`` on has read (a whole
        catalogue read over several runs, as a resumed full harvest is)."""
        self.sync()
        return [r[0] for r in self.conn.execute(
            "SELECT local_id FROM source WHERE library=? AND run_id<?", (library, first_run))]

    def _source_row(self, library: str, local_id: str):
        row = self._batch.source_row(library, local_id) if self._batch is not None else MISS
        if row is MISS:
            self.sync()
            row = self.conn.execute(
                "SELECT id, union_id, digest FROM source WHERE library=? AND local_id=?", (library, local_id)
            ).fetchone()
        return row

    def _write(self, kind: str, sql: str, params: tuple, source_id: int) -> None:
        """A write whose result is not read: deferred on PostgreSQL (store_batch.py)."""
        if self._batch is not None:
            self._batch.put(kind, params, source_id)
        else:
            self.conn.execute(sql, params)

    # -- reading --------------------------------------------------------------
    def _members(self, uid: int) -> list[un.MemberSource]:
        out = []
        for sid, lib, lid, data in self.conn.execute(
            "SELECT id, library, local_id, data FROM source WHERE union_id=?", (uid,)
        ):
            d = json.loads(data)
            out.append(
                un.MemberSource(sid, lib, lid, d["fields"], d["display"], d["title_forms"], d["nonfiling"],
                                d["holdings"])
            )
        return out


# --------------------------------------------------------------------------- new arrivals

def add_added_column(conn: Conn) -> None:
    """``source.added``: when the library's ingest first stored the record (epoch seconds;
    kept when the record is updated, new when it comes back after a withdrawal). A store
    made before the column existed gets it empty: its records are not new arrivals."""
    if "added" not in {r[1] for r in conn.execute("PRAGMA table_info(source)")}:
        conn.execute("ALTER TABLE source ADD COLUMN added REAL")
    conn.execute("CREATE INDEX IF NOT EXISTS source_added ON source(library, added)")


def added_since(conn: Conn, library: str, since: float) -> list[int]:
    """The union records holding a record that ``library``'s ingests added at or after
    ``since`` (epoch seconds), newest first, each once. One range of ``source_added``."""
    rows = conn.execute("SELECT union_id, MAX(added) AS a FROM source WHERE library=? AND added>=?"
                        " GROUP BY union_id ORDER BY a DESC, union_id", (library, since))
    return [r[0] for r in rows]


class StoreArrivals:
    """The record store as the search route's source of new arrivals
    (search.arrivals.ArrivalsSource): each question opens a read-only connection in a
    worker thread (new arrivals are asked rarely; nothing stays open). A store that
    cannot be read is BackendUnavailable.  ``path``: the SQLite file, or the
    postgresql:// URL of a store in PostgreSQL (indexers/store_sql.py)."""

    def __init__(self, path: Path | str):
        self.url = str(path) if is_store_url(str(path)) else None
        self.path = Path(path)

    def _added_since(self, library: str, since: float) -> list[int]:
        if self.url is not None:
            return self._added_since_pg(library, since)
        if not self.path.exists():
            raise BackendUnavailable(f"no record store at {self.path}")
        conn = None
        try:
            conn = connect(self.path, readonly=True)
            return added_since(conn, library, since)
        except sqlite3.OperationalError as e:
            if "no such column" in str(e):       # a store from before source.added: nothing is new
                return []
            raise BackendUnavailable(f"the record store cannot be read: {e}") from e
        finally:
            if conn is not None:
                conn.close()

    def _added_since_pg(self, library: str, since: float) -> list[int]:
        import psycopg

        assert self.url is not None
        conn = None
        try:
            conn = open_connection(self.url, readonly=True)
            return added_since(conn, library, since)
        except psycopg.errors.UndefinedTable:    # no ingest has made the store yet: nothing is new
            return []
        except psycopg.Error as e:
            raise BackendUnavailable(f"the record store {shown_url(self.url)} cannot be read:"
                                     f" {type(e).__name__}") from e
        finally:
            if conn is not None:
                conn.close()

    async def added_since(self, library: str, since: float) -> list[int]:
        return await asyncio.to_thread(self._added_since, library, since)


def union_display_parts(conn: Conn, ids: Sequence[int]) -> dict[int, tuple]:
    """For each union id present: (stored MARC of the preferred (oldest) member,
    its library, the holdings of every member, the (library, local_id) members)."""
    if not ids:
        return {}
    qmarks = ",".join("?" * len(ids))
    out: dict[int, tuple] = {}
    for uid, _sid, lib, lid, marc, data in conn.execute(
        f"SELECT union_id, id, library, local_id, marc, holdings FROM source WHERE union_id IN ({qmarks})"
        " ORDER BY union_id, id",
        list(ids),
    ):
        cur = out.get(uid)
        if cur is None:
            cur = out[uid] = (marc, lib, [], [])
        cur[3].append((lib, lid))
        cur[2].extend([_holding(h) for h in json.loads(data)])
    return out


def display_record(uid: int, marc: bytes, library: str, holdings: list[Holding], members: list) -> UnionRecord:
    """The display record: the preferred member's record with its own holdings
    fields replaced by one 852 per holding of every member:
    $a library $b branch $c location $h call number $p barcode."""
    rec = decode_stored(marc)
    for f in rec.get_fields(*_own_holdings_tag_names(library)):   # 852 and e.g. 952 for a Koha library
        rec.remove_field(f)
    for h in holdings:
        subs = [pymarc.Subfield("a", h.library)]
        for code, val in (("b", h.branch), ("c", h.location), ("h", h.call_number), ("p", h.barcode)):
            if val:
                subs.append(pymarc.Subfield(code, val))
        rec.add_ordered_field(pymarc.Field(tag="852", indicators=pymarc.Indicators(" ", " "), subfields=subs))
    return UnionRecord(uid, rec, holdings, members)


def _holding_852(h: Holding) -> bytes:
    body = b"  \x1fa" + iso2709_value(h.library)
    for code, val in ((b"b", h.branch), (b"c", h.location), (b"h", h.call_number), (b"p", h.barcode)):
        if val:
            body += b"\x1f" + code + iso2709_value(val)
    return body


@functools.lru_cache(maxsize=256)
def _own_holdings_tags(library: str) -> frozenset[bytes]:
    return frozenset({b"852", load_libraries().get(library).holdings.tag.encode("ascii")})


@functools.lru_cache(maxsize=256)
def _own_holdings_tag_names(library: str) -> tuple[str, ...]:
    """The tags ``display_record`` drops, read once per process as ``_own_holdings_tags``."""
    return tuple({"852", load_libraries().get(library).holdings.tag})


def display_iso2709(marc: bytes, library: str, holdings: list[Holding]) -> bytes | None:
    """The display record (``display_record``) written as UTF-8 ISO 2709, spliced
    from the stored bytes without decoding them (``splice_iso2709``): the member's
    own holdings fields dropped, one 852 per holding of every member inserted.
    The bytes equal ``iso2709_bytes(display_record(...).marc)`` (tests compare
    every record of the test sets); None when the stored record is not in the
    canonical form or does not fit ISO 2709 -- the caller then decodes it."""
    return splice_iso2709(marc, _own_holdings_tags(library), b"852", [_holding_852(h) for h in holdings])


def display_format() -> str:
    """What the stored display records depend on besides the store: the holdings tag
    each library's own holdings fields have (dropped from the display record)."""
    libs = load_libraries()
    tags = sorted((code, libs.get(code).holdings.tag) for code in libs.names())
    return "1:" + json.dumps([libs.get("\x00").holdings.tag, tags], separators=(",", ":"))


def _splice_display(conn: Conn, ids: Sequence[int]) -> dict[int, bytes | None]:
    """``display_iso2709`` for the union ids present, spliced from the source records."""
    return {uid: display_iso2709(marc, lib, holdings)
            for uid, (marc, lib, holdings, _m) in union_display_parts(conn, ids).items()}


def display_of(marc: bytes, library: str, holdings: list[dict]) -> bytes | None:
    """``display_iso2709`` of a record with its holdings as the store keeps them (dicts)."""
    return display_iso2709(marc, library, [_holding(h) for h in holdings])


def _holding(h: dict) -> Holding:
    return Holding(h["library"], h["local_id"], h["branch"], h["call_number"], h["location"], h["barcode"])


def load_display_iso2709(conn: Conn, ids: Sequence[int]) -> dict[int, bytes | None]:
    """``display_iso2709`` for the union ids present (missing ids absent): the stored
    display records in one statement when they are current (meta 'display' is this
    process's ``display_format``), else spliced from the source records."""
    if not ids:
        return {}
    qmarks = ",".join("?" * len(ids))
    try:
        rows = conn.execute(f"SELECT -1, value FROM meta WHERE key='display' UNION ALL"
                            f" SELECT -2, value FROM meta WHERE key='generation' UNION ALL"
                            f" SELECT union_id, iso FROM display WHERE union_id IN ({qmarks})", list(ids)).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):        # a store from before the display table
            raise
        rows = []
    found = dict(rows)
    stamp, generation = found.pop(-1, None), found.pop(-2, None)
    if stamp is not None and stamp == f"{display_format_cached()}@{generation or '0'}":
        return found
    return _splice_display(conn, ids)


@functools.lru_cache(maxsize=1)
def display_format_cached() -> str:
    """``display_format`` once per process (the libraries' holdings tags are read once,
    as ``_own_holdings_tags`` reads them)."""
    return display_format()


class StoredUnionRecord(UnionRecord):
    """A display record (``display_record``) as ``load_union_records`` gives it: the
    pymarc record is decoded on the first use of ``marc``, and ``marcxml()`` writes
    the MARCXML straight from the stored bytes -- an SRU page of MARCXML records
    decodes none of them. Equal to the UnionRecord ``display_record`` makes."""

    def __init__(self, id: int, marc: pymarc.Record | None = None, holdings: list[Holding] | None = None,
                 members: list | None = None, *, stored: bytes = b"", library: str = "",
                 display: bytes | None = None):
        # UnionRecord's fields first, so that dataclasses.replace(record, ...) works (it
        # passes every field, ``marc`` decoded: the copy renders that)
        self.id = id
        self.holdings = holdings if holdings is not None else []
        self.members = members if members is not None else []
        self._stored = stored
        self._library = library
        self._display = display         # the stored display record when it is current (else spliced here)
        self._marc: pymarc.Record | None = marc

    @property
    def marc(self) -> pymarc.Record:
        if self._marc is None:
            self._marc = display_record(self.id, self._stored, self._library, self.holdings, self.members).marc
        return self._marc

    @marc.setter
    def marc(self, value: pymarc.Record) -> None:
        self._marc = value

    def marcxml(self) -> str | None:
        """``marcxml_string(self.marc)`` from the stored bytes (``display_iso2709`` then
        ``marcxml_of_iso2709``, the leader the decoded record has); None when the record
        is not in the canonical form that needs (the caller then renders ``marc``)."""
        if self._marc is not None:
            return None
        stored = self._stored
        if len(stored) < 24 or stored[9:10] != b"a" or not stored[:24].isascii() \
                or not stored[:24].decode("ascii").isprintable():
            return None
        iso = self._display or display_iso2709(stored, self._library, self.holdings)
        return None if iso is None else marcxml_of_iso2709(iso, stored[:24].decode("ascii"))


def load_union_records(conn: Conn, ids: Sequence[int]) -> list[UnionRecord]:
    """Display records (display_record) for union ids, in the order given (missing ids
    skipped); each decoded when first used (StoredUnionRecord), with its stored display
    record (``load_display_iso2709``) when that is current -- read in the same statement
    as the source records, so both are of one state of the store."""
    if not ids:
        return []
    qmarks = ",".join("?" * len(ids))
    try:
        rows = conn.execute(
            "SELECT s.union_id, s.library, s.local_id, s.marc, s.holdings, d.iso,"
            " (SELECT value FROM meta WHERE key='display'), (SELECT value FROM meta WHERE key='generation')"
            f" FROM source s LEFT JOIN display d ON d.union_id = s.union_id WHERE s.union_id IN ({qmarks})"
            " ORDER BY s.union_id, s.id", list(ids)).fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" not in str(e):        # a store from before the display table
            raise
        parts = union_display_parts(conn, ids)
        return [StoredUnionRecord(uid, None, hs, ms, stored=marc, library=lib)
                for uid in ids if uid in parts for marc, lib, hs, ms in (parts[uid],)]
    current = bool(rows) and rows[0][6] is not None and rows[0][6] == f"{display_format_cached()}@{rows[0][7] or '0'}"
    out: dict[int, StoredUnionRecord] = {}
    for uid, lib, lid, marc, data, iso, _stamp, _generation in rows:
        rec = out.get(uid)
        if rec is None:
            rec = out[uid] = StoredUnionRecord(uid, stored=marc, library=lib, display=iso if current else None)
        rec.members.append((lib, lid))
        rec.holdings.extend([_holding(h) for h in json.loads(data)])
    return [out[uid] for uid in ids if uid in out]
