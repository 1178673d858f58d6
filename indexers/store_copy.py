"""`unioncat copy-store`: a data directory's record store (DATA_DIR/catalog.sqlite) copied
into an empty PostgreSQL store (issue 18; indexers/store_sql.py), so that a network that
outgrows one machine keeps its catalog when it moves to ``--store-db``.

What is copied: every table of the record store -- ``meta``, ``run`` (the run history),
``union_rec``, ``source``, ``matchkey``, ``union_gone``, ``display`` and the Elasticsearch
outbox (``es_outbox``, ``es_failed``) -- row for row, ids kept (union record ids are what
the index, OAI-PMH identifiers and result sets name). The identity sequences are set past
the highest id the source ever gave (SQLite's ``sqlite_sequence``, not only the ids still
present), so a union record id that was deleted is never given again, as on SQLite.

How: one read transaction on the source (opened read-only: nothing of it is written, and
the data directory's writer.lock keeps an ingest from changing it meanwhile), one write
transaction on the target (``COPY ... FROM STDIN`` in batches, the run lock and the
write lock of the store held), the target's row counts compared with the source's before
COMMIT. An interrupted or failed copy leaves the target as it was: empty.

A target that holds any row of these tables is refused (:class:`TargetNotEmpty`): the
copy never merges into a catalog.

An embedded catalog (``meta.backend`` 'sqlite', the default SQLite index) is converted:
a PostgreSQL store is for the Elasticsearch backend, so the copy is recorded as an
Elasticsearch catalog (``backend``), its index format as the Elasticsearch documents'
when the embedded index was current, and the embedded index's own tables and meta
entries (its full-text index, ``num_multi:*``) stay behind. The Elasticsearch index is
then built from the copy by ``unioncat reindex --store-db URL --es-url ...`` -- the way
a lost index is rebuilt. The source keeps serving as before.

Harvest state (``harvest_*``) is not copied: harvests are not run on a store in
PostgreSQL (docs/elasticsearch.md); the report says how many sources had some.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .store_sql import PG_OUTBOX_SCHEMA, PG_SCHEMA, WRITE_KEY, PgConnection

BATCH = 5000            # rows per progress step


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    order: str                          # the source's order (the rows' ids, so ids come in order)
    identity: bool = False              # an id column with a sequence (INTEGER PRIMARY KEY AUTOINCREMENT)
    # a column an older store may lack, and what stands for it (as Store's upgrade fills it)
    fallback: tuple[tuple[str, str], ...] = ()


TABLES: tuple[Table, ...] = (
    Table("meta", ("key", "value"), "key"),
    Table("run", ("id", "library", '"full"', "started", "finished", "counts", "outcome"), "id", True,
          (("outcome", "NULL"),)),
    Table("union_rec", ("id", "created", "modified"), "id", True, (("modified", "created"),)),
    Table("source", ("id", "library", "local_id", "union_id", "digest", "run_id", "marc", "data", "titles",
                     "holdings", "added"), "id", True, (("added", "NULL"),)),
    Table("matchkey", ("key", "library", "union_id", "source_id"), "rowid"),
    Table("union_gone", ("union_id", "library", "at"), "union_id, library"),
    Table("display", ("union_id", "iso"), "union_id"),
    Table("es_outbox", ("union_id", "seq"), "union_id"),
    Table("es_failed", ("union_id", "reason", "at"), "union_id"),
)

# the meta entries of the record store itself (the rest of an embedded catalog's are its index's)
STORE_META = ("backend", "generation", "display", "index_format")


class CopyError(Exception):
    """The copy cannot start or did not complete (said in one line); the target is unchanged."""


class TargetNotEmpty(CopyError):
    """The PostgreSQL database already holds a record store (or a part of one)."""


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    converted: bool = False             # the source was an embedded (SQLite-index) catalog
    harvest_sources: int = 0            # sources with harvest state, left in the data directory
    es_recorded: bool = False           # the cluster's URLs and alias are in the copy's meta


def _source_columns(src: sqlite3.Connection, table: str) -> list[str] | None:
    cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    return cols or None


def _select(t: Table, present: list[str]) -> str:
    fallback = dict(t.fallback)
    exprs = []
    for c in t.columns:
        bare = c.strip('"')
        if bare in present:
            exprs.append(c)
        elif bare in fallback:
            exprs.append(fallback[bare])
        else:
            raise CopyError(f"the source store's table {t.name} has no column {bare}: open the data directory "
                            "once with this unioncat (`unioncat stats`) and copy again")
    return f"SELECT {', '.join(exprs)} FROM {t.name} ORDER BY {t.order}"


def _one(cur):
    row = cur.fetchone()
    assert row is not None
    return row[0]


def _target_rows(pg: PgConnection) -> list[str]:
    """The store's tables that exist in the target and hold a row."""
    full = []
    with pg.raw.cursor() as cur:
        for t in TABLES:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (t.name,))
            if _one(cur):
                cur.execute(f"SELECT EXISTS (SELECT 1 FROM {t.name})")
                if _one(cur):
                    full.append(t.name)
    return full


def converted_meta(rows: list[tuple[str, str]], *, es_urls: list[str] | None = None,
                   es_index: str | None = None) -> list[tuple[str, str]]:
    """The meta entries of an embedded catalog as its copy keeps them: an Elasticsearch
    catalog, its index format the Elasticsearch documents' when the embedded index was
    current (else none: the first ingest rebuilds them), the embedded index's own entries
    left out; the cluster's URLs and alias when given."""
    import json

    from .backends.sqlite_writer import INDEX_FORMAT as EMBEDDED_FORMAT
    from .terms import INDEX_FORMAT

    out = {k: v for k, v in rows if k in STORE_META}
    out["backend"] = "elasticsearch"
    if out.pop("index_format", None) == EMBEDDED_FORMAT:
        out["index_format"] = INDEX_FORMAT
    if es_urls:
        out["es_urls"] = json.dumps(list(es_urls))
        out["es_index"] = es_index or "unioncat"
    return sorted(out.items())


def copy_store(source: Path, url: str, *, es_urls: list[str] | None = None, es_index: str | None = None,
               batch: int = BATCH, progress: Callable[[str, int, int], None] | None = None) -> CopyReport:
    """Copy the SQLite record store at ``source`` into the empty PostgreSQL store at
    ``url`` (the caller holds the data directory's writer lock and the store's run lock:
    indexers.ingest.writer_lock). ``progress(table, rows done, rows in all)`` after each
    batch. ``es_urls``/``es_index``: recorded in a converted embedded catalog's meta.
    Raises TargetNotEmpty, CopyError, sqlite3.Error or psycopg.Error; the target is
    unchanged unless it returns."""
    t0 = time.monotonic()
    if not Path(source).is_file():
        raise CopyError(f"{source}: no record store")
    src = sqlite3.connect(Path(source).resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    pg = None
    try:
        src.execute("BEGIN")                    # one state of the source, whatever happens meanwhile
        present = {t.name: _source_columns(src, t.name) for t in TABLES}
        if not present["union_rec"] or not present["source"]:
            raise CopyError(f"{source} holds no record store")
        meta = [tuple(r) for r in src.execute("SELECT key, value FROM meta")] if present["meta"] else []
        backend = dict(meta).get("backend", "sqlite")
        report = CopyReport(converted=backend != "elasticsearch")
        if report.converted:
            meta = converted_meta(meta, es_urls=es_urls, es_index=es_index)
            report.es_recorded = bool(es_urls)
        if _source_columns(src, "harvest_state"):
            report.harvest_sources = src.execute("SELECT COUNT(*) FROM harvest_state").fetchone()[0]
        seqs = dict(src.execute("SELECT name, seq FROM sqlite_sequence")) if _source_columns(
            src, "sqlite_sequence") else {}

        pg = PgConnection(url)
        pg.execute("BEGIN")
        pg.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_KEY,))
        full = _target_rows(pg)
        if full:
            raise TargetNotEmpty(f"it already holds a record store ({', '.join(full)} not empty)")
        pg.executescript(PG_SCHEMA + PG_OUTBOX_SCHEMA)
        for t in TABLES:
            cols = present[t.name]
            if cols is None:                    # e.g. no outbox in an embedded catalog
                report.rows[t.name] = 0
                continue
            if t.name == "meta":
                rows_in: object = iter(meta)
                total = len(meta)
            elif t.name in ("es_outbox", "es_failed") and report.converted:
                rows_in, total = iter(()), 0    # an embedded catalog has no Elasticsearch state
            else:
                total = src.execute(f"SELECT COUNT(*) FROM {t.name}").fetchone()[0]
                rows_in = src.execute(_select(t, cols))
            report.rows[t.name] = _copy_table(pg, t, rows_in, total, batch, progress)
        _set_sequences(pg, seqs)
        _check_counts(pg, report.rows)
        pg.execute("COMMIT")
        for t in TABLES:                        # the planner's statistics, as after a bulk load
            pg.execute(f"ANALYZE {t.name}")
        report.seconds = time.monotonic() - t0
        return report
    finally:
        src.close()
        if pg is not None:
            pg.close()                          # an open transaction is rolled back with it


def _copy_table(pg: PgConnection, t: Table, rows, total: int, batch: int,
                progress: Callable[[str, int, int], None] | None) -> int:
    done = 0
    with pg.raw.cursor() as cur:
        with cur.copy(f"COPY {t.name} ({', '.join(t.columns)}) FROM STDIN") as cp:
            while True:
                chunk = rows.fetchmany(batch) if hasattr(rows, "fetchmany") else _take(rows, batch)
                if not chunk:
                    break
                for row in chunk:
                    cp.write_row(row)
                done += len(chunk)
                if progress is not None:
                    progress(t.name, done, total)
    if progress is not None and done == 0:
        progress(t.name, 0, total)
    return done


def _take(it, n: int) -> list:
    out = []
    for row in it:
        out.append(row)
        if len(out) == n:
            break
    return out


def _set_sequences(pg: PgConnection, seqs: dict[str, int]) -> None:
    """Each identity sequence past the highest id the source ever gave (deleted ones too)."""
    with pg.raw.cursor() as cur:
        for t in TABLES:
            if not t.identity:
                continue
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {t.name}")
            high = max(_one(cur), int(seqs.get(t.name) or 0))
            cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)",
                        (t.name, max(high, 1), high > 0))


def _check_counts(pg: PgConnection, rows: dict[str, int]) -> None:
    with pg.raw.cursor() as cur:
        for name, n in rows.items():
            cur.execute(f"SELECT COUNT(*) FROM {name}")
            got = _one(cur)
            if got != n:                        # pragma: no cover - a defect, never left committed
                raise CopyError(f"{name}: {got} rows in the copy, {n} read")

