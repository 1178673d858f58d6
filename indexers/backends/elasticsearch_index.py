"""The Elasticsearch backend, indexing side: configuration, documents, the
outbox and the bulk push, index builds behind an alias (reindex).

The record store (indexers/store.py, SQLite) stays the truth: every member
library's source record, the union records and their holdings.  Elasticsearch
holds a projection of it, rebuilt from the store whenever needed:

* An ingest batch commits its source records *and* the ids of the union records
  it touched (table ``es_outbox``) in one SQLite transaction.  After the commit,
  the pusher builds those union records' documents from the store and sends them
  with the official async bulk helper (bounded concurrency, retries with backoff
  on 429, 5xx and connection errors, tenacity).  An outbox row is deleted (and
  counted) as soon as Elasticsearch acknowledged that exact version of it, so a
  crash, a killed run or a node that is down leaves the rest in the outbox, and
  the next ingest (or ``unioncat sync``) finishes it.  Documents are keyed by
  union id: pushing twice is harmless.
* Every retry of one operation (a drain, a reindex) draws on one budget
  (``Outage``): it gives up after ``retry_seconds`` of continuous
  unavailability, however many requests are in flight or still to come.  The
  tasks of an operation belong to it (asyncio.TaskGroup): the first chunk that
  fails for good cancels its siblings and is raised; none is left running.
* A document Elasticsearch rejects for good (a mapping error) is not dropped: it
  moves to ``es_failed`` with the reason, is counted, and ``unioncat reindex``
  retries it.
* ``unioncat reindex`` (indexers/backends/elasticsearch_reindex.py) builds a new
  physical index from the store, checks that it holds every union record of the
  store, and only then swaps the alias in one atomic request; searches keep
  answering from the old index until then.  A reindex that fails leaves the
  alias, the old index, the outbox and es_failed as they were and deletes what it
  built (noted in the store first, so that the next reindex or drain deletes it
  when the cluster was gone).

Documents use the field prefixes of config/elasticsearch-index.json; the values
come from indexers/terms.py, the same functions the embedded index uses.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import tomllib
from dataclasses import dataclass, field
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from config import locate

from .. import terms as T
from ..mapping import FieldMapping, load_mapping
from ..store import union_display_parts
from ..store_sql import PG_OUTBOX_SCHEMA, Conn, dialect_of, open_connection
from ..union import MemberSource, UnionDocument, build_document

log = logging.getLogger("unioncat.elasticsearch")

KD_SEP = "\x1f"  # between key and display in kd_ fields (sorts below every key character)
SORT_KEY_MAX = 1000  # characters of a sort key kept (Lucene terms are limited to 32 KB)
META_SUFFIX = "-meta"  # small index holding the catalog generation


# ---------------------------------------------------------------- configuration
@dataclass
class EsConfig:
    urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:9200"])
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    index: str = "unioncat"
    shards: int = 1
    replicas: int = 0
    refresh: str = "after_batch"  # after_batch | interval
    request_timeout: float = 5.0
    index_timeout: float = 120.0
    bulk_chunk: int = 500
    bulk_concurrency: int = 2
    retry_seconds: float = 60.0
    reindex_workers: int = 0  # processes building documents in a reindex; 0: one per CPU, at most 4

    @classmethod
    def load(cls, files: Iterable[Path] = (), **overrides) -> "EsConfig":
        """Defaults from config/elasticsearch.toml, then the [elasticsearch] section
        of each given file, then the non-None overrides (command line)."""
        data: dict = {}
        with open(locate("elasticsearch.toml"), "rb") as fh:
            data.update(tomllib.load(fh))
        for f in files:
            with open(f, "rb") as fh:
                data.update(tomllib.load(fh).get("elasticsearch", {}))
        data.update({k: v for k, v in overrides.items() if v not in (None, [], ())})
        known = {f.name for f in dc_fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Elasticsearch settings: {', '.join(sorted(unknown))}")
        if data.get("refresh", "after_batch") not in ("after_batch", "interval"):
            raise ValueError("refresh must be after_batch or interval")
        workers = data.get("reindex_workers", 0)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ValueError("reindex_workers must be a whole number, 0 (one per CPU) or more")
        return cls(**data)

    def client(self, *, indexing: bool = False):
        """The async client: searches time out after request_timeout (SRU answers
        diagnostic 1 promptly); indexing (bulk, index creation, alias swaps) gets
        index_timeout, so a busy cluster is waited for instead of being sent the
        same bulk request again."""
        from elasticsearch import AsyncElasticsearch

        timeout = self.index_timeout if indexing else self.request_timeout
        kw: dict = {"request_timeout": timeout, "max_retries": 0, "retry_on_timeout": False}
        if self.api_key:
            kw["api_key"] = self.api_key
        elif self.username:
            kw["basic_auth"] = (self.username, self.password or "")
        if self.ca_certs:
            kw["ca_certs"] = self.ca_certs
        return AsyncElasticsearch(self.urls, **kw)


def index_body(cfg: EsConfig) -> dict:
    with open(locate("elasticsearch-index.json"), encoding="utf-8") as fh:
        body = json.load(fh)
    body.pop("_comment", None)
    body["settings"]["index"].update({"number_of_shards": cfg.shards, "number_of_replicas": cfg.replicas})
    return body


# ---------------------------------------------------------------- documents
class DocumentBuilder:
    """Union documents -> Elasticsearch documents (pure)."""

    def __init__(self, mapping: FieldMapping):
        self.types = mapping.field_types()
        self.text_fields = [n for n, t in self.types.items() if t == "text"]
        self.transforms = {r.name: r.transform for r in mapping.rules}

    def source(self, doc: UnionDocument, display: dict | None) -> dict:
        e = T.index_entries(doc.fields, self.types, self.transforms, self.text_fields)
        out: dict = {"union_id": doc.union_id}
        for f, vals in e.texts.items():
            if vals:
                out["t_" + f] = [" ".join(toks) for toks in vals]
        for f, key, disp in sorted(e.keys):
            out.setdefault("k_" + f, [])
            if key not in out["k_" + f]:
                out["k_" + f].append(key)
            out.setdefault("kd_" + f, []).append(key + KD_SEP + disp)
        for f, n in sorted(e.numbers):
            out.setdefault("n_" + f, []).append(n)
            out.setdefault("ns_" + f, []).append(str(n))
        if doc.sort_title is not None:
            out["sort_title"] = doc.sort_title[:SORT_KEY_MAX]
        if doc.sort_creator is not None:
            out["sort_creator"] = doc.sort_creator[:SORT_KEY_MAX]
        if doc.sort_date is not None:
            out["sort_date"] = doc.sort_date
        if display is not None:
            out["display"] = display
        return out


def members_of(conn: Conn, uids: Sequence[int]) -> dict[int, list[MemberSource]]:
    out: dict[int, list[MemberSource]] = {}
    for i in range(0, len(uids), 500):
        chunk = list(uids[i:i + 500])
        for uid, sid, lib, lid, data in conn.execute(
            "SELECT union_id, id, library, local_id, data FROM source"
            f" WHERE union_id IN ({','.join('?' * len(chunk))})",
            chunk,
        ):
            d = json.loads(data)
            out.setdefault(uid, []).append(
                MemberSource(sid, lib, lid, d["fields"], d["display"], d["title_forms"], d["nonfiling"], d["holdings"]))
    return out


def build_actions(conn: Conn, builder: DocumentBuilder, uids: Sequence[int], index: str) -> list[dict]:
    """Bulk actions for union ids: an index action with the whole document (search
    fields and the display record) for each live union record, a delete for the rest."""
    members = members_of(conn, uids)
    live = [u for u in uids if u in members]
    displays = union_display_parts(conn, live)
    actions: list[dict[str, Any]] = []
    for uid in uids:
        ms = members.get(uid)
        parts = displays.get(uid)
        if not ms or parts is None:
            actions.append({"_op_type": "delete", "_index": index, "_id": str(uid)})
            continue
        marc, library, holdings, mems = parts
        # the parts of the display record (store.display_record assembles them at fetch
        # time, as the embedded backend does); stored MARC is UTF-8 ISO 2709
        display = {
            "marc": marc.decode("utf-8", "replace"),
            "library": library,
            "holdings": [[h.library, h.local_id, h.branch, h.call_number, h.location, h.barcode] for h in holdings],
            "members": [list(m) for m in mems],
        }
        actions.append({"_op_type": "index", "_index": index, "_id": str(uid),
                        "_source": builder.source(build_document(uid, ms), display)})
    return actions


# ---------------------------------------------------------------- the outbox
OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS es_outbox(union_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS es_failed(union_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, at REAL NOT NULL);
"""


def outbox_schema(conn) -> str:
    """The outbox's tables in the store's database (indexers/store_sql.py)."""
    return PG_OUTBOX_SCHEMA if dialect_of(conn).name == "postgresql" else OUTBOX_SCHEMA


class OutboxWriter:
    """IndexWriter (indexers/store.py) for the Elasticsearch backend: a touched
    union record's id goes into the outbox in the batch's own transaction (the marks
    of a batch are written in one executemany by ``flush``, which Store._flush calls
    before the commit: one round trip instead of one per record on PostgreSQL)."""

    def __init__(self):
        self._seq = time.time_ns()
        self._marks: list[tuple[int, int]] = []

    def setup(self, conn) -> None:
        conn.executescript(outbox_schema(conn))

    def payload(self, doc):  # nothing to precompute: documents are built at push time
        return None

    def _mark(self, conn: Conn, uid: int) -> None:
        self._seq += 1
        self._marks.append((uid, self._seq))

    def flush(self, conn: Conn) -> None:
        """Write the marks made since the last flush (inside the batch's transaction)."""
        marks, self._marks = self._marks, []
        if marks:
            conn.executemany("INSERT INTO es_outbox(union_id, seq) VALUES (?, ?)"
                             " ON CONFLICT(union_id) DO UPDATE SET seq=excluded.seq", marks)

    def discard(self) -> None:
        """Forget unwritten marks (the batch was rolled back)."""
        self._marks = []

    def put(self, conn, doc: UnionDocument, fresh: bool = False, payload=None) -> None:
        self._mark(conn, doc.union_id)

    def delete(self, conn, union_id: int) -> None:
        self._mark(conn, union_id)


# ---------------------------------------------------------------- errors and retries
class IndexUnavailable(Exception):
    """Elasticsearch could not be reached (or kept refusing) within the retry time."""


class ReindexFailed(Exception):
    """A reindex did not complete; the alias was left where it was."""


def _retryable(exc: BaseException) -> bool:
    from elasticsearch import ApiError, ConnectionTimeout
    from elasticsearch import ConnectionError as EsConnectionError

    if isinstance(exc, (EsConnectionError, ConnectionTimeout, asyncio.TimeoutError, OSError)):
        return True
    if isinstance(exc, ApiError):
        return exc.meta.status in (429, 502, 503, 504) or exc.meta.status >= 500
    return False


class Outage:
    """The retry budget of one operation (a drain of the outbox, a reindex), shared by
    all its requests, however many are in flight or still to come: the clock starts
    at the first failure after a success, any success stops it, and the operation
    gives up once the cluster has been unavailable for ``seconds`` in a row.  (One
    budget per request made a reindex wait retry_seconds for every chunk in turn.)
    ``clock`` is injectable for tests."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.since: float | None = None

    def ok(self) -> None:
        self.since = None

    def failed(self) -> bool:
        """Note a failure; True while the budget allows another try."""
        now = self.clock()
        if self.since is None:
            self.since = now
        return now - self.since < self.seconds

    def remaining(self) -> float:
        return self.seconds if self.since is None else max(0.0, self.seconds - (self.clock() - self.since))


def _retrying(outage: Outage):
    from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

    backoff = wait_exponential(multiplier=0.25, max=5)
    return AsyncRetrying(retry=retry_if_exception(_retryable), stop=lambda _state: not outage.failed(),
                         wait=lambda state: min(backoff(state), outage.remaining()), reraise=True)


async def _retried(outage: Outage, call, *args, **kwargs):
    """await call(*args, **kwargs), retried on connection errors, 429 and 5xx within the
    outage budget (then the last error is raised)."""
    async for attempt in _retrying(outage):
        with attempt:
            result = await call(*args, **kwargs)
    outage.ok()
    return result


def _first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups from a TaskGroup."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


# ---------------------------------------------------------------- index management
async def alias_target(es, alias: str) -> str | None:
    from elasticsearch import NotFoundError

    try:
        got = await es.indices.get_alias(name=alias)
    except NotFoundError:
        return None
    names = sorted(got.body)
    return names[-1] if names else None


async def alias_indexes(es, alias: str) -> set[str]:
    """Every physical index the alias points at (normally one)."""
    from elasticsearch import NotFoundError

    try:
        return set((await es.indices.get_alias(name=alias)).body)
    except NotFoundError:
        return set()


def physical_name(cfg: EsConfig) -> str:
    return f"{cfg.index}-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{time.time_ns() % 1000000:06d}"


async def create_physical(es, cfg: EsConfig, *, building: bool = False, name: str | None = None) -> str:
    from elasticsearch import BadRequestError

    name = name or physical_name(cfg)
    body = index_body(cfg)
    if building:  # a fresh build: no refreshes and no replicas until it is complete
        body["settings"]["index"].update({"refresh_interval": "-1", "number_of_replicas": 0})
    try:
        await es.indices.create(index=name, settings=body["settings"], mappings=body["mappings"])
    except BadRequestError as e:  # a retried create whose first try had succeeded
        error_type = e.body.get("error", {}).get("type") if isinstance(e.body, dict) else None
        if error_type != "resource_already_exists_exception":
            raise
    await es.cluster.health(index=name, wait_for_status="yellow", timeout="60s")
    return name


async def ensure_index(es, cfg: EsConfig) -> str:
    """The physical index behind the alias, created (with the alias) when missing."""
    target = await alias_target(es, cfg.index)
    if target:
        return target
    name = await create_physical(es, cfg)
    await es.indices.update_aliases(actions=[{"add": {"index": name, "alias": cfg.index}}])
    return name


async def set_generation(es, cfg: EsConfig, value: str) -> None:
    meta = cfg.index + META_SUFFIX
    if not (await es.indices.exists(index=meta)):
        await es.options(ignore_status=400).indices.create(  # 400: created meanwhile by another process
            index=meta, settings={"index": {"number_of_shards": 1, "number_of_replicas": cfg.replicas}})
    await es.index(index=cfg.index + META_SUFFIX, id="generation", document={"value": value}, refresh=True)


# Physical indexes to delete (meta key, a JSON list): one a reindex is building (noted
# before it is created, so that not even a killed reindex leaves it behind unnoticed),
# and an old one whose deletion failed.  The next reindex or drain deletes them.
ABANDONED_KEY = "es_abandoned"


def abandoned(conn: Conn) -> list[str]:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (ABANDONED_KEY,)).fetchone()
    return json.loads(row[0]) if row else []


def note_abandoned(conn: Conn, *, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
    names = (set(abandoned(conn)) | set(add)) - set(remove)
    conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                 (ABANDONED_KEY, json.dumps(sorted(names))))


async def drop_abandoned(es, conn: Conn, alias: str, outage: "Outage") -> list[str]:
    """Delete the indexes noted as abandoned (never one the alias points at); returns their names."""
    names = abandoned(conn)
    if not names:
        return []
    live = await _retried(outage, alias_indexes, es, alias)
    dropped = []
    for name in names:
        if name not in live:
            await _retried(outage, es.options(ignore_status=404).indices.delete, index=name)
            dropped.append(name)
    note_abandoned(conn, remove=names)
    if dropped:
        log.warning("deleted %d index(es) left by a failed reindex: %s", len(dropped), ", ".join(dropped))
    return dropped


# ---------------------------------------------------------------- the pusher
@dataclass
class PushReport:
    indexed: int = 0
    deleted: int = 0
    failed: int = 0  # rejected for good, kept in es_failed
    pending: int = 0  # still in the outbox (the cluster was unavailable)
    seconds: float = 0.0


class Pusher:
    """Sends the outbox to Elasticsearch (see the module docstring).  Every
    acknowledged document leaves the outbox and is counted as soon as its chunk is
    acknowledged, so a drain that fails or is interrupted still accounts for what
    got in; the tasks of a drain belong to it (a TaskGroup): none outlives it."""

    def __init__(self, db_path: Path | str, cfg: EsConfig, mapping: FieldMapping | None = None):
        """``db_path``: the store's SQLite file, or its postgresql:// URL."""
        self.db_path = db_path
        self.cfg = cfg
        self.conn = open_connection(db_path)
        self.conn.executescript(outbox_schema(self.conn))
        self.builder = DocumentBuilder(mapping or load_mapping())
        self.loop = asyncio.new_event_loop()
        self.es = None
        self.index: str | None = None
        self._task: asyncio.Task | None = None

    def close(self) -> None:
        self.settle()
        if self.es is not None:
            self.loop.run_until_complete(self.es.close())
        self.loop.close()
        self.conn.close()

    def settle(self) -> None:
        """Cancel whatever an interrupted drain left in the loop and let it settle
        (its acknowledged documents leave the outbox and are counted)."""
        if self.loop.is_closed() or self.loop.is_running():  # (running: its own thread settles it)
            return
        left = asyncio.all_tasks(self.loop)
        for t in left:
            t.cancel()
        if left:
            self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))

    def cancel(self) -> None:
        """Stop the drain running in another thread (thread-safe); it raises
        asyncio.CancelledError there after settling."""
        task = self._task
        if task is not None:
            self.loop.call_soon_threadsafe(task.cancel)

    def pending(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM es_outbox").fetchone()[0]

    def drain(self, retry_seconds: float | None = None, refresh: bool = True,
              report: PushReport | None = None) -> PushReport:
        """Push the whole outbox; on a cluster that stays unavailable for
        ``retry_seconds`` in a row raise IndexUnavailable (the rest stays in the
        outbox).  ``refresh``: make the pushed documents searchable at once (refresh
        policy after_batch); otherwise the index's refresh_interval does it.
        ``report``: a PushReport to add to (as documents are acknowledged)."""
        rep = PushReport() if report is None else report
        outage = Outage(self.cfg.retry_seconds if retry_seconds is None else retry_seconds)
        task = self.loop.create_task(self._drain(outage, refresh, rep))
        self._task = task
        try:
            return self.loop.run_until_complete(task)
        except BaseException:
            if not task.done():  # interrupted (KeyboardInterrupt) while the loop ran
                task.cancel()
                try:
                    self.loop.run_until_complete(task)  # its finally blocks settle the outbox
                except BaseException:  # noqa: BLE001 - the interruption is what is raised
                    pass
            raise
        finally:
            self._task = None

    async def _client(self):
        if self.es is None:
            self.es = self.cfg.client(indexing=True)
        return self.es

    async def _drain(self, outage: Outage, refresh: bool, rep: PushReport) -> PushReport:
        t0 = time.monotonic()
        es = await self._client()
        try:
            self.index = await _retried(outage, ensure_index, es, self.cfg)
            await drop_abandoned(es, self.conn, self.cfg.index, outage)
            while True:
                rows = self.conn.execute(
                    "SELECT union_id, seq FROM es_outbox ORDER BY union_id LIMIT ?",
                    (self.cfg.bulk_chunk * self.cfg.bulk_concurrency * 4,),
                ).fetchall()
                if not rows:
                    break
                await self._push_rows(es, rows, rep, outage)
            if refresh and self.cfg.refresh == "after_batch":
                await _retried(outage, es.indices.refresh, index=self.cfg.index)
            gen = self.conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
            await _retried(outage, set_generation, es, self.cfg, f"{self.index}:{gen[0] if gen else 0}")
        except Exception as e:  # anything that outlived the retries
            if _retryable(e):
                rep.pending = self.pending()
                raise IndexUnavailable(f"Elasticsearch unavailable ({e!r}); {rep.pending} union records wait in "
                                       "the outbox") from e
            raise
        finally:
            rep.seconds += time.monotonic() - t0
        return rep

    async def _push_rows(self, es, rows: list[tuple[int, int]], rep: PushReport, outage: Outage) -> None:
        seq = dict(rows)
        actions = build_actions(self.conn, self.builder, [r[0] for r in rows], self.cfg.index)
        out = BulkOutcome()
        try:
            await send_bulk(es, actions, self.cfg, outage, out)
        finally:  # also when a chunk failed or the drain was cancelled: what got in is settled
            self._settle(actions, seq, out, rep)

    def _settle(self, actions: list[dict], seq: dict[int, int], out: "BulkOutcome", rep: PushReport) -> None:
        if not out.done and not out.failed:
            return
        for a in actions:
            if int(a["_id"]) in out.done:
                if a["_op_type"] == "delete":
                    rep.deleted += 1
                else:
                    rep.indexed += 1
        # whatever was acknowledged leaves the outbox (that version only); rejected ones move to es_failed
        dialect_of(self.conn).begin(self.conn)
        self.conn.executemany("DELETE FROM es_outbox WHERE union_id=? AND seq=?",
                              [(u, seq[u]) for u in out.done | set(out.failed)])
        record_failures(self.conn, out.failed)
        self.conn.execute("COMMIT")
        rep.failed += len(out.failed)


@dataclass
class BulkOutcome:
    """What a bulk send got acknowledged so far: ids done, ids refused for good (reason)."""

    done: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)


async def send_bulk(es, actions: list[dict], cfg: EsConfig, outage: Outage,
                    out: BulkOutcome | None = None) -> BulkOutcome:
    """Send actions in chunks of cfg.bulk_chunk, cfg.bulk_concurrency at a time,
    with the official async bulk helper.  Connection errors, 5xx and items refused
    with 429/5xx are retried with backoff (tenacity) within the outage budget; then
    the error is raised (IndexUnavailable follows from it) after the other chunks
    were cancelled (a TaskGroup owns them).  ``out`` (returned) collects the ids
    acknowledged and the ids refused for good with the cluster's reason, chunk by
    chunk, also when an error is raised."""
    from elasticsearch.helpers import async_bulk

    out = BulkOutcome() if out is None else out
    sem = asyncio.Semaphore(cfg.bulk_concurrency)

    async def send(chunk: list[dict]) -> None:
        todo = chunk
        async with sem:
            async for attempt in _retrying(outage):
                with attempt:
                    _, errors = await async_bulk(es, todo, raise_on_error=False, raise_on_exception=True,
                                                 max_retries=3, initial_backoff=0.5, refresh=False)
                    again = set()
                    assert isinstance(errors, list)     # not stats_only: the failed items
                    for err in errors:
                        op, info = next(iter(err.items()))
                        uid, status = int(info["_id"]), info.get("status", 0)
                        if op == "delete" and status == 404:
                            continue  # already gone: fine
                        if status == 429 or status >= 500:
                            again.add(uid)
                        else:
                            out.failed[uid] = json.dumps(info.get("error"), ensure_ascii=False)[:2000]
                    out.done.update(int(a["_id"]) for a in todo
                                    if int(a["_id"]) not in again and int(a["_id"]) not in out.failed)
                    if again:
                        todo = [a for a in todo if int(a["_id"]) in again]
                        raise _ItemsRejected(f"{len(again)} documents refused with 429/5xx")
            outage.ok()

    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(0, len(actions), cfg.bulk_chunk):
                tg.create_task(send(actions[i:i + cfg.bulk_chunk]))
    except BaseExceptionGroup as eg:
        raise _first_error(eg) from None
    return out


def record_failures(conn: Conn, failed: dict[int, str]) -> None:
    if failed:
        conn.executemany("INSERT INTO es_failed(union_id, reason, at) VALUES (?,?,?) ON CONFLICT(union_id)"
                         " DO UPDATE SET reason=excluded.reason, at=excluded.at",
                         [(u, r, time.time()) for u, r in failed.items()])
        log.error("%d documents refused by Elasticsearch (kept in es_failed): %s", len(failed),
                  next(iter(failed.values())))


class _ItemsRejected(OSError):
    """Some bulk items were refused with 429/5xx: retried with backoff (an OSError
    so that _retryable treats it like a connection error)."""
