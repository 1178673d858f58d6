"""`unioncat ingest`: read a library's MARC files into the store and index.

Pipeline: the main process reads the file and cuts ISO 2709 input into blocks of
whole records (at record terminators); worker processes decode, extract, normalize
and tokenize each block (indexers/prepare.py); the main process applies the
prepared records to the store in order, in batched transactions.  MARCXML is
prepared in the main process.  Memory stays flat: a bounded number of blocks is
in flight.

A batch is the unit of commit: a killed run leaves whole batches, never half a
union record.  Running it again is safe: unchanged records are recognised by
digest and only re-stamped with the new run, so nothing is duplicated.  Bad
records are quarantined with file, offset and reason; records stored although
the reader had to repair or guess something are listed (with their bytes as
read) in the run's repaired file; counts come at the end.
"""
from __future__ import annotations

import base64
import errno
import gzip
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from .holdings import load_libraries
from .mapping import FieldMapping, load_mapping
from .marc_reader import BadRecord, ReadRecord, detect_format, read_marc
from .ordered_pool import OrderedPool
from .prepare import Preparer, prepare_block, worker_init
from .store import Counts, Store, connect
from .store_sql import Conn, PgConnection, PgWriterLock, shown_url, store_errors

BATCH = 1000  # records per transaction
BLOCK_BYTES = 1 << 19  # ISO 2709 bytes per worker task
RT = b"\x1d"


@dataclass
class IngestResult:
    counts: Counts
    quarantine_file: Path | None
    seconds: float
    interrupted: bool = False
    repaired_file: Path | None = None  # records stored with warnings (Repairs)
    run_id: int | None = None
    error: str | None = None  # why the run stopped early (the store or the data directory failed)
    index: object = None  # Elasticsearch: the PushReport of the run
    index_pending: int = 0  # Elasticsearch: union records still waiting in the outbox
    index_error: str | None = None


def db_path(data_dir: Path) -> Path:
    return Path(data_dir) / "catalog.sqlite"


def store_location(data_dir: Path, store_url: str | None = None) -> Path | str:
    """Where the record store is: ``store_url`` (a PostgreSQL database, Elasticsearch
    backend only: indexers/store_sql.py) when given, else DATA_DIR/catalog.sqlite."""
    return store_url if store_url else db_path(data_dir)


def shown_store(data_dir: Path, store_url: str | None = None) -> str:
    """The store's location as messages say it (a URL without its password)."""
    return shown_url(store_url) if store_url else str(db_path(data_dir))


def open_store(data_dir: Path, mapping: FieldMapping | None = None, index=None,
               store_url: str | None = None) -> Store:
    """The record store of ``data_dir``, or the PostgreSQL one at ``store_url``."""
    from .backends.sqlite_index import SqliteIndexWriter

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    mapping = mapping or load_mapping()
    kind = "sqlite" if index is None or isinstance(index, SqliteIndexWriter) else "elasticsearch"
    if store_url and kind == "sqlite":
        raise BackendMismatch("a record store in PostgreSQL is for the Elasticsearch backend (the embedded "
                              "index lives in the data directory's catalog.sqlite)")
    conn = PgConnection(store_url) if store_url else connect(db_path(data_dir))
    conn.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
    row = conn.execute("SELECT value FROM meta WHERE key='backend'").fetchone()
    if row and row[0] != kind:
        conn.close()
        raise BackendMismatch(
            f"{store_url and shown_url(store_url) or data_dir} is indexed by the {row[0]} backend;"
            f" use --backend {row[0]}")
    if not row:
        conn.execute("INSERT INTO meta(key, value) VALUES ('backend', ?)", (kind,))
    return Store(conn, mapping, index or SqliteIndexWriter(mapping))


class BackendMismatch(Exception):
    """The data directory's store feeds another index backend."""


class Busy(Exception):
    """Another ingest or reindex holds the data directory."""


class StorageError(Exception):
    """The data directory or the record store cannot be written (disk full, read-only,
    a file where a directory should be ...); said in one line."""


class _Locks:
    """The data directory's writer.lock and the PostgreSQL store's advisory lock, closed together."""

    def __init__(self, fh, pg: PgWriterLock):
        self.fh, self.pg = fh, pg

    def close(self) -> None:
        try:
            self.pg.close()
        except store_errors():
            pass                    # a lost connection: the server released the lock with it
        finally:
            self.fh.close()


def writer_lock(data_dir: Path, store_url: str | None = None):
    """An exclusive lock on DATA_DIR/writer.lock held by one ingest or reindex at a
    time (searches are not affected); released when the returned object closes.
    ``store_url``: the store in PostgreSQL is shared by the data directories of several
    machines, and one of their ingests writes it at a time (a session advisory lock)."""
    fh = _file_lock(data_dir)
    if not store_url:
        return fh
    try:
        return _Locks(fh, PgWriterLock(store_url))
    except BlockingIOError as e:
        fh.close()
        raise Busy(str(e)) from None
    except store_errors() as e:
        fh.close()
        raise StorageError(f"cannot open the record store {shown_url(store_url)}: {_why(e)}") from None


def _file_lock(data_dir: Path):
    import fcntl

    try:
        _mkdir(Path(data_dir))
        fh = open(Path(data_dir) / "writer.lock", "a+")
    except OSError as e:
        raise StorageError(f"cannot write to {data_dir}: {_why(e)}") from e
    try:
        # a POSIX record lock: it belongs to this process only (forked preparing workers
        # do not inherit it), so a killed ingest never leaves the directory locked
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise Busy(f"another ingest or reindex is running on {data_dir}") from None
    return fh


def _mkdir(path: Path) -> None:
    """mkdir -p, saying "Not a directory" when a file is in the way."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None


class _RecordLog:
    """One JSON object a line, the file created with the first line."""

    def __init__(self, path: Path):
        self.path = path
        self._fh: BinaryIO | None = None
        self._mark = 0

    def _write(self, obj: dict) -> None:
        if self._fh is None:
            _mkdir(self.path.parent)
            self._fh = open(self.path, "ab")
        self._fh.write((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
        self._fh.flush()

    def mark(self) -> None:
        """Remember the end of the file: the lines so far belong to committed batches."""
        self._mark = self._fh.tell() if self._fh else 0

    def undo(self) -> None:
        """Drop the lines written since mark() (their batch was rolled back)."""
        if self._fh is None:
            return
        self._fh.truncate(self._mark)
        if self._mark == 0:
            self._fh.close()
            self._fh = None
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fh:
            self._fh.close()
            self._fh = None


class Quarantine(_RecordLog):
    """Bad records go to DATA_DIR/quarantine/<library>-run<N>.jsonl, one JSON object
    a line: file, offset, position, reason and the raw bytes (base64)."""

    def __init__(self, data_dir: Path, library: str, run_id: int):
        super().__init__(Path(data_dir) / "quarantine" / f"{library}-run{run_id}.jsonl")

    def add(self, file: str, offset: int, position: int, reason: str, raw: bytes) -> None:
        self._write({"file": file, "offset": offset, "position": position, "reason": reason,
                     "raw_base64": base64.b64encode(raw).decode("ascii")})


class Repairs(_RecordLog):
    """Records stored although the reader had to repair or guess something (a wrong
    record length, a leader that lies about the character set, missing indicators,
    characters the MARC-8 converter drops ...) go to
    DATA_DIR/quarantine/<library>-run<N>-repaired.jsonl: file, offset, position,
    local id, the reader's warnings, whether the stored bytes differ from the bytes
    read, and those bytes as read (base64) -- nothing is changed without a trace."""

    def __init__(self, data_dir: Path, library: str, run_id: int):
        super().__init__(Path(data_dir) / "quarantine" / f"{library}-run{run_id}-repaired.jsonl")

    def add(self, file: str, p) -> None:
        self._write({"file": file, "offset": p.offset, "position": p.position, "local_id": p.local_id,
                     "warnings": p.warnings, "stored_as_read": p.marc == p.raw,
                     "raw_base64": base64.b64encode(p.raw).decode("ascii")})


class _Progress:
    """A one-line progress display on stderr when it is a terminal (bytes of
    input done, percent, records/s); silent otherwise."""

    def __init__(self, paths: list[Path], quiet: bool):
        self.on = not quiet and sys.stderr.isatty()
        self.total = sum(p.stat().st_size for p in paths if p.exists()) or 1
        self.base = 0  # bytes of the files already finished
        self.done = 0
        self.records = 0
        self.t0 = self.last = time.monotonic()

    def next_file(self, size: int) -> None:
        self.base += size

    def to(self, done_in_file: int, records: int | None = None) -> None:
        if not self.on:
            return
        self.done = self.base + done_in_file
        if records is not None:
            self.records = records
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        pct = min(100, 100 * self.done // self.total)
        rate = self.records / max(now - self.t0, 1e-9)
        sys.stderr.write(f"\ringest: {pct:3d}% {self.done / 1e6:8.1f}/{self.total / 1e6:.1f} MB"
                         f"  {self.records:,} records  {rate:,.0f}/s ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            self._draw(time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()


def _open(path: Path):
    raw = open(path, "rb")
    magic = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
    return raw, stream


def iso_blocks(stream, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[bytes, int]]:
    """Cut an ISO 2709 byte stream into (block, offset) pieces ending at record
    terminators (the tail after the last terminator is a block of its own)."""
    offset = 0
    carry = b""
    while True:
        chunk = stream.read(block_bytes)
        if not chunk:
            break
        buf = carry + chunk
        cut = buf.rfind(RT)
        if cut < 0:
            carry = buf
            if len(carry) > 64 * block_bytes:  # no terminator at all: let the reader judge it
                yield carry, offset
                offset += len(carry)
                carry = b""
            continue
        yield buf[: cut + 1], offset
        offset += cut + 1
        carry = buf[cut + 1 :]
    if carry:
        yield carry, offset


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int, *, use_prctl: bool = True, interval: float = 1.0) -> None:
    """Make this process end when process ``parent`` (its parent) ends, however that
    ends: a SIGKILLed ingest runs no cleanup, and its preparing workers would go on
    with the blocks queued for them.  On Linux the kernel sends SIGKILL at the
    parent's death (prctl PR_SET_PDEATHSIG); everywhere (and as a second line) a
    daemon thread checks every ``interval`` seconds that the parent is still the
    parent (an orphan is adopted by another process)."""
    if use_prctl and sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watch below still ends it
            pass
    if os.getppid() != parent:  # the parent died before we could ask to be told
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker_start(parent: int, library: str, with_payload: bool) -> None:
    """Initializer of a preparing worker process."""
    die_with_parent(parent)
    worker_init(library, with_payload)


def _prepared_stream(path: Path, library: str, workers: int, progress: _Progress, preparer: Preparer):
    """Prepared items of one file, in file order."""
    raw, stream = _open(path)
    try:
        head = stream.peek(64) if hasattr(stream, "peek") else b""
        fmt = detect_format(head[:64]) if head else "iso2709"
        if fmt != "iso2709" or workers <= 0:
            stream.close()
            raw.close()
            reader = read_marc(path)
            for item in reader:
                yield preparer.item(item)
                progress.to(reader.bytes_read)
            return
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        position = 0
        with OrderedPool(ctx, workers, prepare_block, _worker_start,
                         (os.getpid(), library, preparer.payload_fn is not None)) as pool:
            # three blocks in flight per worker (Pool.imap would read the whole file ahead
            # into its task queue): memory stays flat whatever the file size
            for items in pool.map(iso_blocks(stream)):
                for p in items:
                    p.position += position
                    yield p
                if items:
                    position = items[-1].position
                progress.to(raw.tell())
    finally:
        stream.close()
        raw.close()


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))


@dataclass
class Withdraw:
    """In a record stream: the library's record ``local_id`` is gone (an OAI-PMH
    deleted header).  ``local_id`` may be a function of the store's connection
    (run inside the batch's transaction) that finds it, or None when unknown."""

    local_id: str | Callable[[Conn], str | None]
    where: str = ""
    # a record that came again under a new 001 (a provider renumbered it): its old id is
    # withdrawn when found, and nothing is counted when there is none
    renumbered: bool = False


@dataclass
class Hook:
    """In a record stream: ``run(conn)`` runs inside the batch's transaction at this
    point (a harvester keeps its own bookkeeping there, committed with the records).
    ``commit``: the stream may be committed here -- a checkpoint: a harvester saves
    its cursor (resumption token, next position) in ``run`` and the batch commits
    with it, so an interrupted harvest resumes after what it committed, never before."""

    run: Callable[[Conn], None]
    commit: bool = False


# what a record stream (ingest_records) yields: a record read with the place it came from
Located = tuple[str, "ReadRecord | BadRecord"]


def ingest(
    data_dir: Path,
    library: str,
    files: Iterable[Path],
    *,
    full: bool = False,
    quiet: bool = False,
    workers: int | None = None,
    on_batch: Callable[[Counts], None] | None = None,
    es=None,
    store_url: str | None = None,
) -> IngestResult:
    """Load ``files`` as library ``library``'s records.  ``workers``: preparing
    processes (0 = all in this process; default: cores - 1).  ``es``: an
    EsConfig to index into Elasticsearch instead of the embedded index.
    ``store_url``: the record store is this PostgreSQL database (with ``es`` only)."""
    _check_store_url(es, store_url)
    lock = writer_lock(data_dir, store_url)
    try:
        files = [Path(f) for f in files]
        workers = default_workers() if workers is None else workers

        def items(preparer: Preparer, progress: _Progress):
            for path in files:
                for p in _prepared_stream(path, library, workers, progress, preparer):
                    yield str(path), p
                progress.next_file(path.stat().st_size)

        return _ingest(data_dir, library, items, full=full, progress=_Progress(files, quiet), on_batch=on_batch,
                       es=es, store_url=store_url)
    finally:
        lock.close()


def ingest_records(
    data_dir: Path,
    library: str,
    stream: Iterable["Located | Withdraw | Hook"],
    *,
    full: bool = False,
    full_since_run: int | None = None,
    on_batch: Callable[[Counts], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    es=None,
    lock: bool = True,
    store_url: str | None = None,
) -> IngestResult:
    """Load records that come as a stream rather than files (a harvest): the same
    path as ``ingest`` -- preparation, quarantine with reasons, union merge,
    counts, batch commits, the run report.  ``stream`` yields ``(where, item)``
    pairs (``where``: what the quarantine names as the record's file, e.g. the
    OAI identifier; ``item``: what indexers.marc_reader yields), ``Withdraw``
    and ``Hook`` items.  ``full``: the stream is the library's whole catalogue;
    at its end the library's records read by no run since ``full_since_run``
    (default: this run) are withdrawn.  ``on_start(run_id)``: told the run's id
    before the first record.  ``lock``: take the data directory's writer lock
    (False: the caller holds it).  ``store_url``: as for ``ingest``."""
    _check_store_url(es, store_url)
    fh = writer_lock(data_dir, store_url) if lock else None
    try:
        def items(preparer: Preparer, progress: _Progress):
            for x in stream:
                if isinstance(x, (Withdraw, Hook)):
                    yield x
                else:
                    where, item = x
                    yield where, preparer.item(item)

        return _ingest(data_dir, library, items, full=full, full_since_run=full_since_run,
                       progress=_Progress([], True), on_batch=on_batch, on_start=on_start, es=es,
                       store_url=store_url)
    finally:
        if fh is not None:
            fh.close()


def _check_store_url(es, store_url: str | None) -> None:
    if store_url and es is None:
        raise BackendMismatch("a record store in PostgreSQL is for the Elasticsearch backend (the embedded "
                              "index lives in the data directory's catalog.sqlite)")


def _ingest(data_dir, library, items, *, full, progress, on_batch, es, full_since_run=None,
            on_start=None, store_url: str | None = None) -> IngestResult:
    t0 = time.time()
    pusher = None
    where = shown_store(data_dir, store_url)
    errors = store_errors()
    store = None
    try:
        if es is not None:
            from .backends.elasticsearch_index import OutboxWriter, Pusher

            store = open_store(data_dir, index=OutboxWriter(), store_url=store_url)
            store.conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)"
                                   " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                                   [("es_urls", json.dumps(es.urls)), ("es_index", es.index)])
            pusher = _EsPush(Pusher(store_location(data_dir, store_url), es))
        else:
            store = open_store(data_dir)
        store.rebuild_stale_index()  # a catalog indexed before readings (docs/search.md "Reindex")
        store.fill_display()  # a catalog from before the stored display records (Z39.50 USMARC)
    except errors + (OSError,) as e:
        if store is not None:
            store.conn.close()
        raise StorageError(f"cannot open the record store {where}: {_why(e)}") from e
    lib = load_libraries().get(library)
    from .backends.sqlite_index import SqliteIndexWriter

    preparer = Preparer(lib, store.mapping, SqliteIndexWriter(store.mapping).payload if es is None else None)
    if pusher:
        pusher.push()  # what an interrupted run left in the outbox goes first
    counts = Counts()
    try:
        store.begin()
        run_id = store.start_run(library, full)
        store.commit()
    except errors as e:
        store.rollback()
        store.conn.close()
        if pusher:
            pusher.stop()
            pusher.pusher.close()
        raise StorageError(f"cannot write the record store {where}: {_why(e)}") from e
    if on_start:
        on_start(run_id)
    quarantine = Quarantine(data_dir, library, run_id)
    repairs = Repairs(data_dir, library, run_id)
    interrupted = False
    error: str | None = None
    in_batch = 0
    committed = replace(counts)  # the counts of what is committed (the files follow them)

    def commit() -> None:
        nonlocal committed
        store.commit()
        quarantine.mark()
        repairs.mark()
        committed = replace(counts)

    def next_batch() -> None:
        nonlocal in_batch
        commit()
        if pusher:
            pusher.push()
        store.begin()
        in_batch = 0
        if on_batch:
            on_batch(counts)

    def windows(stream):
        """The stream, with the store told each window of records (the rest of the
        batch) before they are applied: on PostgreSQL it reads what they will ask in a
        few statements (Store.prefetch, indexers/store_batch.py)."""
        buf: deque = deque()
        while True:
            if not buf:
                buf.extend(islice(stream, max(1, BATCH - in_batch)))
                if not buf:
                    return
                store.prefetch(library, [x[1] for x in buf if isinstance(x, tuple) and x[1].bad_reason is None])
            yield buf.popleft()

    try:
        store.begin()
        stream = items(preparer, progress)
        for x in (windows(stream) if store.dialect.name == "postgresql" else stream):
            if isinstance(x, Hook):
                store.sync()
                x.run(store.conn)
                if x.commit and in_batch:
                    next_batch()
                elif x.commit:
                    commit()
                    store.begin()
                continue
            if isinstance(x, Withdraw):
                if callable(x.local_id):
                    store.sync()
                local_id = x.local_id(store.conn) if callable(x.local_id) else x.local_id
                if x.renumbered:
                    if local_id and store.withdraw(library, local_id):
                        counts.withdrawn += 1
                    continue
                counts.read += 1
                if local_id and store.withdraw(library, local_id):
                    counts.withdrawn += 1
                else:
                    counts.deleted_unknown += 1
                in_batch += 1
                continue
            where, p = x
            counts.read += 1
            progress.records = counts.read
            if p.bad_reason is not None:
                counts.quarantined += 1
                quarantine.add(where, p.offset, p.position, p.bad_reason, p.raw)
                continue
            store.apply(p, library, run_id, counts)
            if p.warnings and not p.deleted:
                counts.repaired += 1
                repairs.add(where, p)
            in_batch += 1
            if in_batch >= BATCH:
                next_batch()
        commit()
        if full:
            store.begin()
            for local_id in store.missing_since_run(library, full_since_run or run_id):
                if store.withdraw(library, local_id):
                    counts.withdrawn += 1
            commit()
        if pusher:
            pusher.push(final=True)
    except KeyboardInterrupt:
        interrupted = True
    except errors + (OSError,) as e:
        # disk full, a read-only or vanished directory, a file where a directory should be:
        # the batch being written is rolled back and the run closed with what it committed
        error = f"{_why(e)} (record store {where})" if isinstance(e, errors) else _why(e)
    except BaseException as e:
        # the stream failed (a harvest whose provider stays away): what is committed stays,
        # the run is closed as failed, and the caller is told why
        store.rollback()
        counts = committed
        for log in (quarantine, repairs):
            try:
                log.undo()
            except OSError:
                pass
        quarantine.close()
        repairs.close()
        _close_run(store, run_id, counts, f"failed: {e}")
        store.conn.close()
        if pusher:
            pusher.stop(abort=True)
            pusher.pusher.close()
        raise
    finally:
        progress.close()
    if interrupted or error:
        store.rollback()
        counts = committed
        for log in (quarantine, repairs):
            try:
                log.undo()  # the lines of the rolled-back batch
            except OSError:
                pass
    quarantine.close()
    repairs.close()
    outcome = "complete" if not (interrupted or error) else "interrupted" if interrupted else f"failed: {error}"
    closing = _close_run(store, run_id, counts, outcome)
    if closing:
        error = (error + "; " if error else "") + closing
    store.conn.close()
    res = IngestResult(counts, quarantine.path if counts.quarantined else None, time.time() - t0, interrupted,
                       repairs.path if counts.repaired else None, run_id=run_id, error=error)
    if pusher:
        pusher.stop(abort=interrupted or error is not None)
        pusher.pusher.settle()
        res.index, res.index_pending, res.index_error = pusher.report, pusher.pusher.pending(), pusher.error
        pusher.pusher.close()
    return res


def _close_run(store: Store, run_id: int, counts: Counts, outcome: str) -> str | None:
    """Close the run in the store; what went wrong doing so, if anything."""
    try:
        store.begin()
        store.finish_run(run_id, counts, outcome)
        store.commit()
    except store_errors() as e:
        store.rollback()
        return f"the run could not be closed in the store: {_why(e)}"
    return None


def _why(e: BaseException) -> str:
    """An OSError or sqlite3 error said in one line (with the file when known)."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e) or type(e).__name__


class _EsPush:
    """Pushes the outbox while the ingest goes on: after each committed batch the
    pusher thread is woken and sends what waits (documents are built from the
    committed store, so it never sees half a batch).  Refreshes are spaced (the
    index's own refresh_interval shows new records meanwhile); the final push
    refreshes.  When the cluster stays unavailable beyond the retry time, the run
    goes on storing records (they wait in the outbox) and tries once more at the end."""

    REFRESH_EVERY = 5.0  # seconds between explicit refreshes during a run

    def __init__(self, pusher):
        import threading

        from .backends.elasticsearch_index import PushReport

        self.pusher = pusher
        self.report = PushReport()
        self.error: str | None = None
        self.down = False
        self._wake = threading.Event()
        self._exited = threading.Event()  # set by the thread as it ends (see stop)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_refresh = time.monotonic()

    def _drain(self, refresh: bool) -> None:
        """One drain into self.report (counted as documents are acknowledged, so a
        drain that fails or is cancelled still counts what got in)."""
        import asyncio

        from .backends.elasticsearch_index import IndexUnavailable

        try:
            self.pusher.drain(refresh=refresh, report=self.report)
        except IndexUnavailable as e:
            self.down = True
            self.error = str(e)
            return
        except asyncio.CancelledError:  # stop(abort=True)
            return
        except Exception as e:  # noqa: BLE001 - e.g. the store failed: said in the report, not a dead thread
            self.down = True
            self.error = f"{type(e).__name__}: {e}"
            return
        if refresh:
            self._last_refresh = time.monotonic()
        self.down = False
        self.error = None

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                if not self.down:
                    self._drain(time.monotonic() - self._last_refresh >= self.REFRESH_EVERY)
        finally:
            self._exited.set()

    def push(self, final: bool = False) -> None:
        import threading

        if final:
            self.stop()
            self._drain(refresh=True)
            return
        if self._thread is None:  # the first push (leftovers of an interrupted run) runs here
            self._drain(refresh=True)
            self._thread = threading.Thread(target=self._run, name="es-push", daemon=True)
            self._thread.start()
            return
        self._wake.set()

    def stop(self, abort: bool = False) -> None:
        """End the pusher thread; ``abort``: cancel the drain it is in (an interrupted
        or failed run) instead of letting it finish."""
        if self._thread is not None:
            self._stop = True
            if abort:
                self.pusher.cancel()
            self._wake.set()
            # not Thread.join(): a Ctrl-C inside a join can leave the thread marked as
            # ended while it runs on (CPython 3.11), and a later join would not wait
            self._exited.wait()
            self._thread.join()
            self._thread = None
