"""The Elasticsearch backend: ``unioncat reindex``, a new physical index built from
the record store behind the alias, with documents built by parallel workers.

Building a document (the search fields from indexers/terms.py, the display
record's parts, the JSON of the bulk request) is Python CPU: one process uses one
core.  ``workers`` processes (fork) therefore build the documents of disjoint
chunks of union ids, each on its own query-only connection to the store, and hand
back each document already serialized as the two NDJSON lines of a bulk request.
The reindexing process only reads the ids, sends the bulk requests and settles
their outcome, with the guarantees of elasticsearch_index.py: one retry budget
(``Outage``) for every request of the reindex; items refused with 429/5xx sent
again within it; documents refused for good kept in ``es_failed``; every task
(building or sending) owned by one TaskGroup, so the first failure -- a chunk the
cluster will not take, a worker that raised or died -- cancels the others, the
worker processes are stopped, and nothing is left running behind it.

The reindex itself: the new index is noted in the store before it is created, is
built without refreshes or replicas, gets its settings back, and is checked (it
must hold every union record of the store but those refused for good) before the
alias moves in one ``_aliases`` request.  A reindex that fails or is interrupted
moves nothing: the alias, the old index, the outbox and es_failed stay as they
were, and the index it was building is deleted (or, when the cluster is gone, by
the next reindex or drain).
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..mapping import load_mapping
from ..store_sql import Conn, dialect_of, open_connection
from .elasticsearch_index import (
    BulkOutcome,
    DocumentBuilder,
    EsConfig,
    Outage,
    ReindexFailed,
    _first_error,
    _ItemsRejected,
    _retried,
    _retryable,
    _retrying,
    alias_target,
    build_actions,
    create_physical,
    drop_abandoned,
    index_body,
    note_abandoned,
    outbox_schema,
    physical_name,
    record_failures,
    set_generation,
)

MAX_AUTO_WORKERS = 4

# one document of a bulk request: (union id, its two NDJSON lines: action and source)
Line = tuple[int, bytes]


def default_workers(cfg: EsConfig) -> int:
    """cfg.reindex_workers, or (0) one per CPU, at most MAX_AUTO_WORKERS."""
    if cfg.reindex_workers > 0:
        return cfg.reindex_workers
    return max(1, min(MAX_AUTO_WORKERS, os.cpu_count() or 1))


# ---------------------------------------------------------------- building documents
def _dumps(obj) -> bytes:
    # the official client's own serialization (compact, non-ASCII kept)
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def document_lines(conn: Conn, builder: DocumentBuilder, uids: Sequence[int], index: str) -> list[Line]:
    """The bulk lines of the live union records among ``uids`` (a union id without
    members has no document in a fresh index), in the order of ``uids``."""
    out: list[Line] = []
    for a in build_actions(conn, builder, uids, index):
        if a["_op_type"] != "index":
            continue
        head = _dumps({"index": {"_index": index, "_id": a["_id"]}})
        out.append((int(a["_id"]), head + b"\n" + _dumps(a["_source"]) + b"\n"))
    return out


_worker: dict = {}  # the worker process's connection and builder


def _worker_start(parent: int, db_path: str) -> None:
    """Initializer of a building worker: ends with its parent, reads the store on its
    own query-only connection."""
    from ..ingest import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupted reindex stops its workers itself
    die_with_parent(parent)
    # (SQLite: not mapped, so each worker's memory stays at its 32 MB page cache; PostgreSQL:
    # a connection of its own, never the parent's, read-only)
    conn = open_connection(db_path, readonly=True)
    _worker["conn"] = conn
    _worker["builder"] = DocumentBuilder(load_mapping())


def _ready() -> int:
    return os.getpid()


def build_chunk(uids: list[int], index: str) -> list[Line]:
    """A worker's task: the bulk lines of one chunk of union ids."""
    return document_lines(_worker["conn"], _worker["builder"], uids, index)


class _Builders:
    """Where documents are built: in this process (one worker) or in a pool of
    ``workers`` processes.  ``close`` stops the pool, cancelling what it had queued."""

    def __init__(self, db_path: Path | str, conn: Conn, workers: int):
        self.conn = conn
        self.builder = DocumentBuilder(load_mapping())
        self.workers = workers
        self.pool: Executor | None = None
        if workers > 1:
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            self.pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start,
                                            initargs=(os.getpid(), str(db_path)))
            try:  # the first task starts every worker now, before an event loop or a client exists
                self.pool.submit(_ready).result()
            except BaseException as e:  # (also an interruption: no worker is left behind)
                self.close()
                if not isinstance(e, Exception):
                    raise
                raise ReindexFailed(f"the {workers} document builders could not start: {e!r}; nothing was "
                                    "changed") from e

    async def build(self, uids: list[int], index: str) -> list[Line]:
        if self.pool is None:
            return document_lines(self.conn, self.builder, uids, index)
        try:
            return await asyncio.wrap_future(self.pool.submit(build_chunk, uids, index))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a worker raised or died: said as what it is, never as an outage
            raise ReindexFailed(f"building documents failed: {e!r}") from e

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


# ---------------------------------------------------------------- sending them
async def send_lines(es, lines: list[Line], outage: Outage, out: BulkOutcome | None = None) -> BulkOutcome:
    """One bulk request of prepared lines, with the retries of send_bulk
    (elasticsearch_index.py): connection errors, 5xx and items refused with 429/5xx
    are sent again with backoff within the outage budget, then the error is raised;
    items refused for good are collected in ``out.failed`` with the cluster's reason."""
    out = BulkOutcome() if out is None else out
    todo = lines
    async for attempt in _retrying(outage):
        with attempt:
            resp = await es.bulk(operations=b"".join(body for _, body in todo), refresh=False)
            again: list[Line] = []
            if resp.get("errors"):
                for (uid, body), item in zip(todo, resp["items"]):
                    info = next(iter(item.values()))
                    status = info.get("status", 0)
                    if status < 300:
                        out.done.add(uid)
                    elif status == 429 or status >= 500:
                        again.append((uid, body))
                    else:
                        out.failed[uid] = json.dumps(info.get("error"), ensure_ascii=False)[:2000]
            else:
                out.done.update(uid for uid, _ in todo)
            if again:
                todo = again
                raise _ItemsRejected(f"{len(again)} documents refused with 429/5xx")
    outage.ok()
    return out


# ---------------------------------------------------------------- reindex
@dataclass
class ReindexReport:
    index: str
    previous: str | None
    documents: int
    seconds: float
    rejected: int = 0  # refused for good by the cluster (kept in es_failed)
    dropped: list[str] = field(default_factory=list)  # indexes left by failed reindexes, deleted now
    warning: str | None = None  # something after the swap that did not work (the reindex is complete)
    workers: int = 1  # processes that built the documents


def reindex(db_path: Path | str, cfg: EsConfig, *, workers: int | None = None,
            progress: Callable[[int], None] | None = None, retry_seconds: float | None = None) -> ReindexReport:
    """Build a new physical index from every union record in the store, check that it
    holds every one of them (but those the cluster rejected for good), and only then
    point the alias at it in one atomic request and drop the old index; the outbox
    and the rejected list are then folded in (everything was rebuilt).

    ``workers`` (default: default_workers(cfg)) processes build the documents; with
    one, this process builds them itself.  A reindex that fails (ReindexFailed)
    changes nothing that answers searches: the alias, the old index, the outbox and
    the rejected list stay as they were, and the index it was building is deleted --
    or, when the cluster is gone, noted in the store and deleted by the next reindex
    or drain.  It gives up after ``retry_seconds`` (default cfg.retry_seconds) of
    continuous unavailability.  ``db_path``: the store's SQLite file, or the
    postgresql:// URL of a store in PostgreSQL (indexers/store_sql.py)."""
    n_workers = default_workers(cfg) if workers is None else workers
    if n_workers < 1:
        raise ValueError("a reindex needs at least one worker")
    t0 = time.monotonic()
    conn = open_connection(db_path)
    outage = Outage(cfg.retry_seconds if retry_seconds is None else retry_seconds)
    builders: _Builders | None = None

    async def run() -> ReindexReport:
        assert builders is not None
        es = cfg.client(indexing=True)
        name: str | None = None
        previous: str | None = None
        live = False
        try:
            dropped = await drop_abandoned(es, conn, cfg.index, outage)
            previous = await _retried(outage, alias_target, es, cfg.index)
            name = physical_name(cfg)
            note_abandoned(conn, add=[name])  # until it is verified and live
            await _retried(outage, create_physical, es, cfg, building=True, name=name)
            # ids touched from here on are pushed to the alias again after the swap
            start_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM es_outbox").fetchone()[0]
            total, rejected = await _fill(es, conn, builders, cfg, name, outage, progress)
            builders.close()
            await _retried(outage, es.indices.put_settings, index=name, settings={"index": {
                "refresh_interval": index_body(cfg)["settings"]["index"]["refresh_interval"],
                "number_of_replicas": cfg.replicas}})
            await _retried(outage, es.indices.refresh, index=name)
            in_store = conn.execute("SELECT COUNT(DISTINCT union_id) FROM source").fetchone()[0]
            count = (await _retried(outage, es.count, index=name))["count"]
            if count != in_store - len(rejected):
                raise ReindexFailed(
                    f"the new index holds {count} documents but the store has {in_store} union records"
                    + (f" ({len(rejected)} rejected by the cluster)" if rejected else ""))
            actions = [{"add": {"index": name, "alias": cfg.index}}]
            if previous:
                actions.insert(0, {"remove": {"index": previous, "alias": cfg.index}})
            await _retried(outage, es.indices.update_aliases, actions=actions)
            live = True
            note_abandoned(conn, remove=[name], add=[previous] if previous else [])
            dialect_of(conn).begin(conn)
            conn.execute("DELETE FROM es_failed")
            record_failures(conn, rejected)
            # outbox rows older than the build are in the new index already
            conn.execute("DELETE FROM es_outbox WHERE seq <= ?", (start_seq,))
            conn.execute("COMMIT")
            rep = ReindexReport(name, previous, total, 0.0, rejected=len(rejected), dropped=dropped,
                                workers=n_workers)
            try:
                if previous:
                    await _retried(outage, es.options(ignore_status=404).indices.delete, index=previous)
                    note_abandoned(conn, remove=[previous])
                gen = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
                await _retried(outage, set_generation, es, cfg, f"{name}:{gen[0] if gen else 0}")
            except Exception as e:  # noqa: BLE001 - the new index answers already
                rep.warning = f"after the swap: {e!r} (a later reindex or sync finishes it)"
            rep.seconds = time.monotonic() - t0
            return rep
        except asyncio.CancelledError:
            builders.close()
            if name is not None and not live:
                await _drop_built(es, conn, name)
            raise
        except Exception as e:  # noqa: BLE001 - re-raised below as ReindexFailed, with what was cleaned up
            builders.close()  # no worker goes on building for a reindex that is over
            err = _first_error(e)
            why = (f"Elasticsearch unavailable for {outage.seconds:g} s ({err!r})" if _retryable(err)
                   else str(err) if isinstance(err, ReindexFailed) else repr(err))
            cleanup = ""
            if name is not None and not live:
                cleanup = "; " + await _drop_built(es, conn, name)
            target = f"the alias still points at {previous}" if previous else "the alias was not created"
            raise ReindexFailed(f"{why}; {target}{cleanup}") from err
        finally:
            await es.close()

    try:
        conn.executescript(outbox_schema(conn))
        builders = _Builders(db_path, conn, n_workers)  # forked before any event loop or client exists
        return asyncio.run(run())
    finally:
        if builders is not None:
            builders.close()
        conn.close()


async def _fill(es, conn: Conn, builders: _Builders, cfg: EsConfig, name: str, outage: Outage,
                progress) -> tuple[int, dict[int, str]]:
    """Send every live union record's document to index ``name``: (documents sent,
    {union id: reason} refused for good).  Chunks of cfg.bulk_chunk ids are built
    (by the workers) and sent (cfg.bulk_concurrency requests at a time) a bounded
    number at a time; the first chunk that fails for good cancels the others and is
    raised."""
    rejected: dict[int, str] = {}
    window = asyncio.Semaphore(2 * builders.workers + cfg.bulk_concurrency)  # chunks being built or sent
    sending = asyncio.Semaphore(cfg.bulk_concurrency)
    total = 0

    async def one(uids: list[int]) -> None:
        nonlocal total
        try:
            lines = await builders.build(uids, name)
            if not lines:
                return
            async with sending:
                out = await send_lines(es, lines, outage)
            rejected.update(out.failed)
            total += len(lines)
            if progress:
                progress(total)
        finally:
            window.release()

    last = 0
    try:
        async with asyncio.TaskGroup() as tg:
            while True:
                uids = [r[0] for r in conn.execute(
                    "SELECT id FROM union_rec WHERE id > ? ORDER BY id LIMIT ?", (last, cfg.bulk_chunk))]
                if not uids:
                    break
                last = uids[-1]
                await window.acquire()
                tg.create_task(one(uids))
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    return total, rejected


async def _drop_built(es, conn: Conn, name: str) -> str:
    """Delete the index a failed reindex was building (a short try); say what happened."""
    try:
        await _retried(Outage(2.0), es.options(ignore_status=404).indices.delete, index=name)
    except Exception:  # noqa: BLE001 - the cluster is gone: the next reindex or drain deletes it
        return f"the index it was building ({name}) is deleted by the next reindex or sync"
    note_abandoned(conn, remove=[name])
    return f"the index it was building ({name}) was deleted"
