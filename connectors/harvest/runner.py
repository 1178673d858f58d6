"""A harvest run, and the scheduler ``serve`` runs.

``harvest(data_dir, source)`` takes the data directory's writer lock, reads the
source's state, fetches pages on an event loop of its own (the next page is asked
for while the current one is ingested) and hands every record to
``indexers.ingest.ingest_records`` -- the ingest's own path: quarantine with
reasons, union merge, counts, batch commits.  After each page a checkpoint saves
the cursor in the same transaction as the page's records, so an interrupted or
failed run resumes after the last committed page (records read twice are
"unchanged", never duplicated).  The run's report (``RunReport``) is kept in the
store: ``unioncat harvest`` prints it, ``unioncat stats`` and ``GET /harvest``
show the last one of each source.

Modes: *incremental* (OAI-PMH ``from`` the last harvest's start, SRU with its
``incremental_query``; Z39.50 reads everything), *full* (``--full``: everything,
and the library's records that no longer come are withdrawn at the end, also
when the full harvest took several runs), *resumed* (an unfinished harvest goes
on where it stopped, in the mode it had).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

from indexers.ingest import Hook, IngestResult, StorageError, Withdraw, db_path, ingest_records, writer_lock
from indexers.store import connect

from . import state as st
from .config import Source
from .sources import HarvestError, OaiFetcher, Page, Retrying, SruFetcher, Z3950Fetcher

log = logging.getLogger("unioncat.harvest")


class _Loop:
    """An event loop in a thread of its own, for the fetcher's I/O."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="harvest-io", daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _fetcher(source: Source, retrying: Retrying):
    if source.protocol == "oai-pmh":
        return OaiFetcher(source, retrying)
    if source.protocol == "sru":
        return SruFetcher(source, retrying)
    return Z3950Fetcher(source, retrying)


def harvest(data_dir: Path, source: Source, *, full: bool = False, retrying: Retrying | None = None,
            progress: Callable[[st.RunReport, Page], None] | None = None,
            clock: Callable[[], float] = time.time, es=None) -> st.RunReport:
    """One run of one source (see the module doc); never raises for the source's
    failures -- they are the report's outcome and errors."""
    retrying = retrying or Retrying(attempts=source.retries)
    lock = writer_lock(data_dir)        # Busy / StorageError go to the caller
    try:
        return _harvest(Path(data_dir), source, full, retrying, progress, clock, es)
    finally:
        lock.close()


def _harvest(data_dir, source, full, retrying, progress, clock, es) -> st.RunReport:
    try:
        conn = connect(db_path(data_dir))
        st.setup(conn)
        saved = st.load_state(conn, source.name)
    except (sqlite3.Error, OSError) as e:
        raise StorageError(f"cannot open the record store {db_path(data_dir)}: {e}") from e
    resuming = saved.cursor is not None and not (full and not saved.cursor.get("full"))
    mode = "resumed" if resuming else "full" if full else "incremental"
    is_full = bool(saved.cursor.get("full")) if resuming and saved.cursor else full
    rep = st.RunReport(source.name, source.library, source.protocol, mode, clock())
    rep.id = st.start_run(conn, rep)
    retrying.errors = rep.errors
    fetcher = _fetcher(source, retrying)
    io = _Loop()
    res: IngestResult | None = None
    run_ids: list[int] = []
    try:
        cursor = saved.cursor if resuming else None
        if cursor is None:
            from_ = None if full else saved.next_from
            if isinstance(fetcher, OaiFetcher):
                ident = io.submit(fetcher.identify()).result()
                cursor = fetcher.start(ident.granularity, from_)
            elif isinstance(fetcher, SruFetcher):
                cursor = fetcher.start(from_)
            else:
                cursor = fetcher.start()
            cursor["full"] = is_full
            cursor["started"] = clock()
        full_since = saved.full_first_run if resuming and is_full else None
        cur = dict(cursor)

        def stream() -> Iterator:
            nonlocal cur
            if is_full and full_since is None:
                # the first run of a full harvest: what disappeared is judged against it
                yield Hook(lambda c: st.save_state(c, source.name, st.SourceState(
                    cur, saved.next_from, run_ids[0])))
            pending = io.submit(fetcher.fetch(cur))
            while True:
                page = pending.result()
                if not page.done:
                    pending = io.submit(fetcher.fetch(page.cursor))   # the next page while this one is ingested
                ids = []
                for item in page.items:
                    if item.kind == "deleted":
                        ident = item.identifier or ""
                        yield Withdraw(lambda c, i=ident: st.local_id_of(c, source.name, i), item.where)
                    else:
                        rec = getattr(item.record, "record", None)
                        f001 = rec.get_fields("001") if rec is not None and item.identifier else []
                        if f001 and f001[0].data:
                            new = f001[0].data.strip()
                            ids.append((item.identifier, new))
                            # the same identifier under another 001 than before: the old one goes
                            yield Withdraw(lambda c, i=item.identifier, n=new: _renumbered(c, source.name, i, n),
                                           item.where, renumbered=True)
                        yield item.where, item.record
                rep.pages += 1
                cur = {**page.cursor, "full": is_full, "started": cursor["started"]}
                first = full_since if full_since is not None else (run_ids[0] if is_full else None)
                snapshot = dict(cur)

                def checkpoint(c, ids=ids, snapshot=snapshot, first=first):
                    if ids:
                        st.remember_ids(c, source.name, ids)
                    st.save_state(c, source.name, st.SourceState(snapshot, saved.next_from, first))

                yield Hook(checkpoint, commit=True)
                if progress:
                    progress(rep, page)
                if page.done:
                    return

        res = ingest_records(data_dir, source.library, stream(), full=is_full, full_since_run=full_since,
                             on_start=run_ids.append, es=es, lock=False)
        rep.run_id = res.run_id
        rep.counts = res.counts.as_dict()
        if res.error:
            rep.outcome = f"failed: {res.error}"
        elif res.interrupted:
            rep.outcome = "interrupted"
        else:
            rep.outcome = "complete"
            if isinstance(fetcher, OaiFetcher):
                next_from = fetcher.next_from(cur) or saved.next_from
            else:
                started = dt.datetime.fromtimestamp(cursor["started"], dt.timezone.utc)
                next_from = started.strftime("%Y-%m-%d")
            conn.execute("BEGIN IMMEDIATE")
            st.save_state(conn, source.name, st.SourceState(None, next_from, None))
            conn.execute("COMMIT")
    except HarvestError as e:
        rep.outcome = f"failed: {e}"
        rep.errors.append(str(e))
    except Exception as e:
        log.exception("harvest of %s failed", source.name)
        rep.outcome = f"failed: {type(e).__name__}: {e}"
        rep.errors.append(rep.outcome[len("failed: "):])
    finally:
        try:
            io.submit(fetcher.aclose()).result(10)
        except Exception:  # noqa: BLE001 - closing a dead connection must not hide the run's outcome
            pass
        io.close()
    if res is None and run_ids:
        rep.run_id = run_ids[0]
        row = conn.execute("SELECT counts FROM run WHERE id=?", (run_ids[0],)).fetchone()
        rep.counts = json.loads(row[0]) if row and row[0] else {}
    rep.retries = retrying.retries
    rep.finished = clock()
    try:
        conn.execute("BEGIN IMMEDIATE")
        st.finish_run(conn, rep)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return rep


def _renumbered(conn: sqlite3.Connection, source: str, identifier: str, new: str) -> str | None:
    row = conn.execute("SELECT local_id FROM harvest_id WHERE source=? AND identifier=?",
                       (source, identifier)).fetchone()
    return row[0] if row and row[0] != new else None


# --------------------------------------------------------------------------- the scheduler

def due(source: Source, last: st.RunReport | None, now: float) -> bool:
    """Whether a scheduled source should run now (its last run is the last report)."""
    sch = source.schedule
    if sch is None:
        return False
    if last is None:
        return True
    if last.finished is None:
        return False                               # running (or killed: the next start resumes it)
    if not last.outcome.startswith("complete"):
        return now - last.finished >= min(sch.every or 3600.0, 3600.0)   # failed: again within the hour
    if sch.every is not None:
        return now - last.finished >= sch.every
    assert sch.daily is not None
    zone = ZoneInfo(sch.zone)
    local = dt.datetime.fromtimestamp(now, zone)
    today = local.replace(hour=sch.daily[0], minute=sch.daily[1], second=0, microsecond=0).timestamp()
    return now >= today and last.started < today


class Scheduler:
    """Runs the sources that are due, one at a time, in a worker thread (``serve``)."""

    def __init__(self, data_dir: Path, sources: dict[str, Source], *, interval: float = 60.0,
                 clock: Callable[[], float] = time.time, es=None):
        self.data_dir = Path(data_dir)
        self.sources = sources
        self.interval = interval
        self.clock = clock
        self.es = es
        self.running: str | None = None
        self._task: asyncio.Task | None = None

    def last_runs(self) -> dict[str, st.RunReport]:
        path = db_path(self.data_dir)
        if not path.exists():
            return {}
        conn = connect(path, readonly=True)
        try:
            return st.last_runs(conn)
        finally:
            conn.close()

    async def tick(self) -> list[st.RunReport]:
        """Run every due source once; the reports."""
        done = []
        last = await asyncio.to_thread(self.last_runs)
        for name, source in self.sources.items():
            if not due(source, last.get(name), self.clock()):
                continue
            self.running = name
            try:
                rep = await asyncio.to_thread(harvest, self.data_dir, source, clock=self.clock, es=self.es)
                log.info("harvest %s: %s, %s", name, rep.outcome, rep.counts)
                done.append(rep)
            except Exception as e:  # noqa: BLE001 - busy (an ingest runs) or no store: next tick
                log.warning("harvest %s not run: %s", name, e)
            finally:
                self.running = None
        return done

    async def _run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: nothing to report
                pass
