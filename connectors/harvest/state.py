"""What a harvest keeps in the record store (DATA_DIR/catalog.sqlite), written in
the ingest's transactions so that it is committed with the records it describes:

``harvest_state``  per source: the cursor of an unfinished harvest (JSON: the
                   listing, the next position ...), where the next incremental
                   harvest starts (``next_from``), and the first ingest run of a
                   ``--full`` harvest still in progress (what disappeared is
                   withdrawn against it when the listing ends)
``harvest_id``     per source: OAI-PMH identifier -> the record's 001, so a
                   deleted header withdraws the right record
``harvest_run``    one row per run: when, mode, pages, counts, outcome, the
                   errors and retries -- the last one of each source is what
                   ``unioncat stats`` and ``GET /harvest`` show
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field

SCHEMA = """
CREATE TABLE IF NOT EXISTS harvest_state(
  source TEXT PRIMARY KEY, cursor TEXT, next_from TEXT, full_first_run INTEGER);
CREATE TABLE IF NOT EXISTS harvest_id(
  source TEXT NOT NULL, identifier TEXT NOT NULL, local_id TEXT NOT NULL, PRIMARY KEY(source, identifier));
CREATE TABLE IF NOT EXISTS harvest_run(
  id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, library TEXT NOT NULL, protocol TEXT NOT NULL,
  mode TEXT NOT NULL, started REAL NOT NULL, finished REAL, run_id INTEGER, pages INTEGER NOT NULL DEFAULT 0,
  counts TEXT, outcome TEXT, errors TEXT NOT NULL DEFAULT '[]', retries INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS harvest_run_source ON harvest_run(source, id);
"""


def setup(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


@dataclass
class SourceState:
    cursor: dict | None = None
    next_from: str | None = None
    full_first_run: int | None = None


def load_state(conn: sqlite3.Connection, source: str) -> SourceState:
    row = conn.execute("SELECT cursor, next_from, full_first_run FROM harvest_state WHERE source=?",
                       (source,)).fetchone()
    if row is None:
        return SourceState()
    return SourceState(json.loads(row[0]) if row[0] else None, row[1], row[2])


def save_state(conn: sqlite3.Connection, source: str, state: SourceState) -> None:
    conn.execute(
        "INSERT INTO harvest_state(source, cursor, next_from, full_first_run) VALUES (?,?,?,?)"
        " ON CONFLICT(source) DO UPDATE SET cursor=excluded.cursor, next_from=excluded.next_from,"
        " full_first_run=excluded.full_first_run",
        (source, json.dumps(state.cursor) if state.cursor is not None else None, state.next_from,
         state.full_first_run))


def remember_ids(conn: sqlite3.Connection, source: str, pairs: list[tuple[str, str]]) -> None:
    conn.executemany("INSERT INTO harvest_id(source, identifier, local_id) VALUES (?,?,?)"
                     " ON CONFLICT(source, identifier) DO UPDATE SET local_id=excluded.local_id",
                     [(source, ident, local) for ident, local in pairs])


def local_id_of(conn: sqlite3.Connection, source: str, identifier: str) -> str | None:
    """The 001 of a harvested identifier; unknown identifiers fall back to the
    identifier's last ``:`` part (``oai:lib.example:12345`` -> ``12345``), which is
    what many providers build their identifiers from."""
    row = conn.execute("SELECT local_id FROM harvest_id WHERE source=? AND identifier=?",
                       (source, identifier)).fetchone()
    if row:
        return row[0]
    tail = identifier.rsplit(":", 1)[-1]
    return tail or None


@dataclass
class RunReport:
    """A harvest run, as it is kept and shown."""

    source: str
    library: str
    protocol: str
    mode: str                           # incremental | full | resumed
    started: float
    finished: float | None = None
    run_id: int | None = None           # the ingest run (its quarantine files are named after it)
    pages: int = 0
    counts: dict = field(default_factory=dict)
    outcome: str = "running"            # complete | interrupted | failed: <why>
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    id: int | None = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("source", "library", "protocol", "mode", "started", "finished",
                                              "run_id", "pages", "counts", "outcome", "errors", "retries")}


def start_run(conn: sqlite3.Connection, rep: RunReport) -> int:
    cur = conn.execute("INSERT INTO harvest_run(source, library, protocol, mode, started) VALUES (?,?,?,?,?)",
                       (rep.source, rep.library, rep.protocol, rep.mode, rep.started))
    assert cur.lastrowid is not None
    return cur.lastrowid


def finish_run(conn: sqlite3.Connection, rep: RunReport) -> None:
    conn.execute("UPDATE harvest_run SET finished=?, run_id=?, pages=?, counts=?, outcome=?, errors=?, retries=?"
                 " WHERE id=?",
                 (rep.finished or time.time(), rep.run_id, rep.pages, json.dumps(rep.counts), rep.outcome,
                  json.dumps(rep.errors[-20:], ensure_ascii=False), rep.retries, rep.id))


def last_runs(conn) -> dict[str, RunReport]:
    """The last run of every source that has run.  ``conn``: the record store's, in SQLite
    or in PostgreSQL (indexers/store_sql.py; harvests write the SQLite store only, so a
    store in PostgreSQL has no harvest_run table: no runs)."""
    from indexers.store_sql import PgConnection

    out = {}
    if isinstance(conn, PgConnection):
        from psycopg.errors import UndefinedTable

        try:
            conn.execute("SELECT 1 FROM harvest_run LIMIT 1")
        except UndefinedTable:
            return {}
    try:
        rows = conn.execute(
            "SELECT id, source, library, protocol, mode, started, finished, run_id, pages, counts, outcome,"
            " errors, retries FROM harvest_run WHERE id IN (SELECT MAX(id) FROM harvest_run GROUP BY source)"
            " ORDER BY source").fetchall()
    except sqlite3.OperationalError:       # a store no harvest has touched
        return {}
    for (rid, source, library, protocol, mode, started, finished, run_id, pages, counts, outcome, errors,
         retries) in rows:
        out[source] = RunReport(source, library, protocol, mode, started, finished, run_id, pages,
                                json.loads(counts) if counts else {}, outcome or "running",
                                json.loads(errors or "[]"), retries, rid)
    return out
