"""What stalls a level (issue 18, fourth round): ``--stall-probe`` of
``bench/circulation_bench.py``.

While a level runs, three recorders watch what could hold many operations at once:

* the client's **garbage collector**: ``gc.callbacks`` time every collection
  (generation, milliseconds, objects collected);
* the client's **event loop**: a task that sleeps ``TICK_S`` and records how late it
  wakes (a pause of the whole process -- a collection, CPU starvation -- shows here);
* the **server**: a connection of its own (asyncpg, outside the measured pool) samples
  ``pg_stat_activity`` every ``SAMPLE_S``: backends waiting on a lock (with the pids
  that block them, ``pg_blocking_pids``), autovacuum workers and what they run, and the
  database's deadlock counter and the checkpoints before and after.

The pure part (:func:`summarise_pauses`, :func:`episodes`) is tested in
``tests/test_bench_circ_mix.py``.
"""
from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter

TICK_S = 0.005          # the event loop's probe
SAMPLE_S = 0.02         # pg_stat_activity
PAUSE_MS = 20.0         # a pause worth listing


def summarise_pauses(pauses: list[tuple[float, float]], threshold_ms: float = PAUSE_MS) -> dict:
    """``pauses``: (seconds since the level's start, milliseconds). Count, total,
    max, and those >= ``threshold_ms`` (at most 20, the longest first)."""
    ms = [p for _t, p in pauses]
    big = sorted((p for p in pauses if p[1] >= threshold_ms), key=lambda p: -p[1])
    return {"count": len(ms), "total_ms": round(sum(ms), 1), "max_ms": round(max(ms), 1) if ms else 0.0,
            f"over_{threshold_ms:g}ms": len(big),
            "longest": [[round(t, 3), round(p, 1)] for t, p in big[:20]]}


def episodes(samples: list[tuple[float, int]], gap_s: float) -> list[dict]:
    """Runs of consecutive samples with waiters (count > 0) -- ``samples`` as (seconds,
    waiting backends), in time order; a run ends at a sample with none or a gap over
    ``gap_s``. Each: start, seconds, the most waiting at once."""
    out: list[dict] = []
    cur: dict | None = None
    last_t = None
    for t, n in samples:
        if n and cur is not None and last_t is not None and t - last_t <= gap_s:
            cur["end"] = t
            cur["max_waiting"] = max(cur["max_waiting"], n)
        elif n:
            cur = {"start": t, "end": t, "max_waiting": n}
            out.append(cur)
        else:
            cur = None
        last_t = t
    return [{"start_s": round(e["start"], 3), "seconds": round(e["end"] - e["start"], 3),
             "max_waiting": e["max_waiting"]} for e in out]


class StallProbe:
    """Start before a level's clients, ``stop()`` after them; ``summary()`` goes into
    the level's JSON under ``stalls``."""

    def __init__(self, dsn: str | None, pool=None):
        self.dsn = dsn
        self.pool = pool                                  # the measured engine's pool (checked out)
        self.pool_samples: list[tuple[float, int]] = []
        # the first samples with waiters, in detail: who holds, in what state, idle how long
        self.timeline: list[dict] = []
        self.t0 = 0.0
        self.gc: list[tuple[float, float, int]] = []      # (t, ms, generation)
        self._gc_start = 0.0
        self.loop: list[tuple[float, float]] = []         # (t, ms late)
        self.lock_samples: list[tuple[float, int]] = []
        self.lock_what: Counter[str] = Counter()           # wait events and blocked statements
        self.autovacuum: Counter[str] = Counter()
        self.holders: Counter[str] = Counter()             # state, wait event, statement of a lock holder
        self.db_before: dict = {}
        self.db_after: dict = {}
        self._tasks: list[asyncio.Task] = []
        self._stop = asyncio.Event()
        self.error: str | None = None

    def _on_gc(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_start = now
        else:
            self.gc.append((self._gc_start - self.t0, (now - self._gc_start) * 1000, info.get("generation", -1)))

    def _watch_introspection(self) -> None:
        """asyncpg looks up a type it has no codec for (``_introspect_types``: a recursive
        query on ``pg_type``) the first time a connection prepares a statement using it --
        inside the unit of work, holding its locks. Counted and timed here (the private
        method wrapped for the level; put back by ``stop()``)."""
        try:
            import asyncpg.connection as apc
        except ImportError:                   # pragma: no cover - SQLite-only
            return
        original = apc.Connection._introspect_types
        probe = self

        async def timed(conn, typeoids, timeout):
            t = time.perf_counter()
            try:
                return await original(conn, typeoids, timeout)
            finally:
                probe.introspections.append((t - probe.t0, (time.perf_counter() - t) * 1000,
                                             tuple(sorted(typeoids))))

        apc.Connection._introspect_types = timed
        self._unwatch = lambda: setattr(apc.Connection, "_introspect_types", original)

    def _watch_prepares(self) -> None:
        """A statement's first use on a connection costs asyncpg a Parse/Describe round
        trip (``_get_statement`` missing its cache; SQLAlchemy's adapter prepares through
        it too). Counted here: per level, inside a transaction or not, the slowest, and the
        statements prepared most (the private method wrapped for the level; put back by
        ``stop()``)."""
        try:
            import asyncpg.connection as apc
        except ImportError:                   # pragma: no cover - SQLite-only
            return
        original = apc.Connection._get_statement
        probe = self

        async def counted(conn, query, timeout, *, named=False, use_cache=True,
                          ignore_custom_codec=False, record_class=None):
            if use_cache:
                rc = record_class if record_class is not None else conn._protocol.get_record_class()
                if conn._stmt_cache.get((query, rc, ignore_custom_codec)) is not None:
                    return await original(conn, query, timeout, named=named, use_cache=use_cache,
                                          ignore_custom_codec=ignore_custom_codec, record_class=record_class)
            t = time.perf_counter()
            in_tx = conn.is_in_transaction()
            try:
                return await original(conn, query, timeout, named=named, use_cache=use_cache,
                                      ignore_custom_codec=ignore_custom_codec, record_class=record_class)
            finally:
                probe.prepares.append((t - probe.t0, (time.perf_counter() - t) * 1000, in_tx,
                                       " ".join(query.split())[:70]))

        apc.Connection._get_statement = counted
        self._unwatch_prepares = lambda: setattr(apc.Connection, "_get_statement", original)

    def _watch_pool(self) -> None:
        """The measured pool's connections opened, closed and invalidated during the level."""
        if self.pool is None:
            return
        from sqlalchemy import event
        self.pool_events: Counter[str] = Counter()
        self._pool_listeners = []
        for name in ("connect", "close", "invalidate", "soft_invalidate", "close_detached"):
            def fn(*_a, _n=name):
                self.pool_events[_n] += 1
            event.listen(self.pool, name, fn)
            self._pool_listeners.append((name, fn))

        # which client (task) got which connection: with every connection busy (a closed
        # loop) the pool hands a client back the connection it just returned, so each
        # connection serves one client -- and meets only that client's statements
        def checkout(dbapi_conn, _record, _proxy):
            try:
                task = id(asyncio.current_task())
            except RuntimeError:
                task = 0
            self.checkouts[(task, id(dbapi_conn))] += 1
        event.listen(self.pool, "checkout", checkout)
        self._pool_listeners.append(("checkout", checkout))

    async def start(self) -> None:
        self.t0 = time.perf_counter()
        self.introspections: list[tuple[float, float, tuple]] = []
        self.prepares: list[tuple[float, float, bool, str]] = []
        self.pool_events = Counter()
        self.checkouts: Counter[tuple[int, int]] = Counter()
        self._pool_listeners: list = []
        self._unwatch = None
        self._unwatch_prepares = None
        self._watch_introspection()
        self._watch_prepares()
        self._watch_pool()
        gc.callbacks.append(self._on_gc)
        self._tasks.append(asyncio.create_task(self._tick()))
        if self.dsn:
            import asyncpg
            try:
                self._conn = await asyncpg.connect(self.dsn)
                self.db_before = await self._db_counters()
                self._tasks.append(asyncio.create_task(self._sample()))
            except Exception as e:  # noqa: BLE001 -- the probe is optional; say why it is missing
                self.error = f"{type(e).__name__}: {e}"
                self.dsn = None

    async def _tick(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(TICK_S)
            late = (time.perf_counter() - t - TICK_S) * 1000
            self.loop.append((t - self.t0, max(late, 0.0)))
            if self.pool is not None:
                self.pool_samples.append((t - self.t0, self.pool.checkedout()))

    async def _db_counters(self) -> dict:
        row = await self._conn.fetchrow(
            "SELECT d.deadlocks, d.conflicts, b.checkpoints_timed + b.checkpoints_req AS checkpoints, "
            "(SELECT count(*) FROM pg_stat_user_tables WHERE last_autovacuum IS NOT NULL) AS vacuumed, "
            "(SELECT sum(autovacuum_count) FROM pg_stat_user_tables) AS autovacuums, "
            "(SELECT sum(autoanalyze_count) FROM pg_stat_user_tables) AS autoanalyzes "
            "FROM pg_stat_database d, pg_stat_bgwriter b WHERE d.datname = current_database()")
        return {k: (int(v) if v is not None else 0) for k, v in dict(row).items()}

    async def _sample(self) -> None:
        # the waiting backends, autovacuum, and what the lock holders are doing: a holder
        # 'idle in transaction' waits for its client's next statement, an 'active' one
        # runs on the server
        q = ("WITH a AS (SELECT pid, backend_type, wait_event_type, wait_event, state, state_change, xact_start, "
             "pg_blocking_pids(pid) AS blockers, left(query, 60) AS q FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> pg_backend_pid()) "
             "SELECT w.backend_type, w.wait_event_type, w.wait_event, w.q, "
             "(SELECT array_agg(coalesce(h.state, '?') || ' ' || coalesce(h.wait_event, '-') || ': ' || h.q) "
             " FROM a h WHERE h.pid = ANY(w.blockers)) AS holders, "
             "(SELECT array_agg(h.pid || ' ' || coalesce(h.state, '?') || ' idle ' "
             "  || round(extract(epoch FROM now() - h.state_change)::numeric * 1000) || ' ms, xact ' "
             "  || round(extract(epoch FROM now() - h.xact_start)::numeric * 1000) || ' ms: ' || h.q) "
             " FROM a h WHERE h.pid = ANY(w.blockers)) AS detail, w.pid "
             "FROM a w WHERE w.wait_event_type = 'Lock' OR w.backend_type = 'autovacuum worker'")
        while not self._stop.is_set():
            t = time.perf_counter() - self.t0
            rows = await self._conn.fetch(q)
            waiting = 0
            for r in rows:
                if r["backend_type"] == "autovacuum worker":
                    self.autovacuum[" ".join((r["q"] or "").split())] += 1
                else:
                    waiting += 1
                    self.lock_what[f"{r['wait_event']}: {' '.join((r['q'] or '').split())}"] += 1
                    for h in r["holders"] or ():
                        self.holders[" ".join(h.split())[:90]] += 1
            self.lock_samples.append((t, waiting))
            if waiting and len(self.timeline) < 60:
                self.timeline.append({"t": round(t, 3), "waiting": waiting, "waiters_holders": [
                    [r["pid"], [" ".join(d.split())[:110] for d in (r["detail"] or ())]]
                    for r in rows if r["backend_type"] != "autovacuum worker"][:6]})
            try:
                await asyncio.wait_for(self._stop.wait(), SAMPLE_S)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            await task
        if self._unwatch is not None:
            self._unwatch()
        if self._unwatch_prepares is not None:
            self._unwatch_prepares()
        if self._pool_listeners:
            from sqlalchemy import event
            for name, fn in self._pool_listeners:
                event.remove(self.pool, name, fn)
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self.dsn:
            self.db_after = await self._db_counters()
            await self._conn.close()

    def summary(self) -> dict:
        out: dict = {"gc": {}, "event_loop_late": summarise_pauses(self.loop)}
        for gen in (0, 1, 2):
            out["gc"][f"gen{gen}"] = summarise_pauses([(t, ms) for t, ms, g in self.gc if g == gen])
        if self.error:
            out["server_error"] = self.error
        out["type_introspections"] = {
            "count": len(self.introspections), "total_ms": round(sum(ms for _t, ms, _o in self.introspections), 1),
            "max_ms": round(max((ms for _t, ms, _o in self.introspections), default=0.0), 1),
            "oids": dict(Counter(str(list(o)) for _t, _ms, o in self.introspections)),
            "first": [[round(t, 3), round(ms, 1)] for t, ms, _o in self.introspections[:10]]}
        inside = [p for p in self.prepares if p[2]]
        out["prepares"] = {
            "count": len(self.prepares), "in_transaction": len(inside),
            "in_transaction_ms": round(sum(ms for _t, ms, _i, _q in inside), 1),
            "max_ms": round(max((ms for _t, ms, _i, _q in self.prepares), default=0.0), 1),
            "first_s": [[round(t, 3), round(ms, 1), q[:40]] for t, ms, _i, q in self.prepares[:10]],
            "statements_in_transaction": dict(Counter(q for _t, _ms, _i, q in inside).most_common(12))}
        out["pool_events"] = dict(self.pool_events)
        if self.checkouts:
            per_client: dict[int, set] = {}
            same = Counter()
            for (task, conn), n in self.checkouts.items():
                per_client.setdefault(task, set()).add(conn)
                same[task] = max(same[task], n)
            total = sum(self.checkouts.values())
            out["checkouts"] = {
                "total": total, "clients": len(per_client),
                "connections": len({c for _t, c in self.checkouts}),
                "connections_per_client_mean": round(sum(len(v) for v in per_client.values()) / len(per_client), 1),
                # the share of checkouts that went to each client's most used connection
                "to_the_clients_usual_connection": round(sum(same.values()) / total, 3)}
        if self.pool_samples:
            out["pool_checked_out"] = {"max": max(n for _t, n in self.pool_samples),
                                       "first_s": [[round(t, 2), n] for t, n in self.pool_samples[::200][:20]]}
        if self.db_before:
            out["server"] = {
                "samples": len(self.lock_samples),
                "samples_with_lock_waits": sum(1 for _t, n in self.lock_samples if n),
                "max_waiting": max((n for _t, n in self.lock_samples), default=0),
                "lock_wait_episodes": sorted(episodes(self.lock_samples, 3 * SAMPLE_S),
                                             key=lambda e: -e["seconds"])[:10],
                "lock_waits_by_statement": dict(self.lock_what.most_common(8)),
                "lock_holders": dict(self.holders.most_common(10)),
                "autovacuum_seen": dict(self.autovacuum.most_common(8)),
                "timeline_first_waits": self.timeline,
                "counters_delta": {k: self.db_after.get(k, 0) - v for k, v in self.db_before.items()},
            }
        return out


def stall_line(st: dict) -> str:
    """One line for the log."""
    g2 = st["gc"]["gen2"]
    loop = st["event_loop_late"]
    s = (f"    stalls: loop late max {loop['max_ms']} ms ({loop['over_20ms']} ticks >= 20 ms); "
         f"gc gen2 {g2['count']}x max {g2['max_ms']} ms, gen1 max {st['gc']['gen1']['max_ms']} ms")
    pr = st.get("prepares")
    if pr is not None:
        s += (f"; prepares {pr['count']} ({pr['in_transaction']} in a transaction, "
              f"{pr['in_transaction_ms']} ms, max {pr['max_ms']} ms); pool {st.get('pool_events') or '-'}")
    co = st.get("checkouts")
    if co:
        s += (f"; checkouts {co['total']} by {co['clients']} clients on {co['connections']} connections, "
              f"{co['connections_per_client_mean']} per client, {co['to_the_clients_usual_connection']:.0%} "
              f"to the client's usual one")
    srv = st.get("server")
    if srv:
        ep = srv["lock_wait_episodes"][:1]
        s += (f"; server: lock waits in {srv['samples_with_lock_waits']}/{srv['samples']} samples, "
              f"max {srv['max_waiting']} waiting, longest episode {ep[0] if ep else '-'}; "
              f"counters {srv['counters_delta']}; autovacuum {srv['autovacuum_seen'] or '-'}")
    return s
