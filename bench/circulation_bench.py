"""Circulation on a database: holds and loans under concurrency, and the nightly jobs.

What is measured
----------------
The circulation service (``circulation/``: holds, loans, notices, jobs) against a
real PostgreSQL (or, with ``--sqlite``, the embedded SQLite default), with the
three systems of ``config/profiles`` installed as the network (``install_network``).

1. **Data** (not a result; its time is only recorded in the JSON under ``setup``):
   patrons of the three systems (``--systems``: Hiroshima 70 %, Iizuka 15 %, Komae
   15 % by default; 5,000 in all), titles (20,000) and copies (40,000) spread over
   each system's lending branches (popular titles get more copies), a quarter of the
   titles with 1-4 holds already queued, and the loans the ``renew`` phase renews
   (lent 8 days ago).  Everything is inserted in bulk (``insert(table)`` with lists of
   rows, 5,000 per statement batch), with explicit ids (sequences reset after).
2. **Phases**, each at 1, 16 and 64 concurrent clients (``--concurrency``): asyncio
   tasks in this one process sharing one :class:`circulation.store.Database`
   (the service's pool, ``config/circulation.toml``, unless ``--pool N``), bounded by ``--seconds`` and
   ``--ops`` (operations started) per concurrency level:

   ``place``
       ``holds.place`` (channel ``web``, role patron, the patron's pickup branch and
       contact method) for patrons taken round-robin from a shuffled list (so the
       clients act for distinct patrons and the 20-request limits are rarely hit) on
       titles of the patron's own system: 10 % on the 0.5 % "hot" titles (queues
       form), the rest uniform.  Refusals (a ``Decision``) are counted by code.
   ``checkout+checkin``
       Each client takes an available copy from a shared pool, lends it at the
       copy's branch (``loans.check_out``, staff at the counter) to the next patron of
       that system, and takes it back (``loans.check_in``), at another branch of the
       system with probability ``--other-branch`` (0.3).  The copy is then followed
       where the routing sends it: a transit (home, or to a hold's pickup branch) is
       checked in at its destination (``arrive``: ``loans.check_in`` of a copy in
       transit), a copy trapped on a hold shelf is borrowed by the hold's patron
       (``pickup``: ``loans.check_out`` with the CHECK_OUT transition) and returned
       again; back on its home shelf it goes back to the pool.  Titles with queued
       holds (the pre-queued ones and whatever ``place`` added) make check-ins trap.
       Latencies are per operation kind: check_out, check_in, arrive, pickup.
   ``renew``
       ``loans.renew`` (web, role patron, the borrower's card) of loans nobody waits
       for, each loan once; each concurrency level has its own loans.
   ``mix`` (not in the default ``--phases``)
       The three at once: the clients of a level split by ``--mix`` (shares of the
       clients, default ``place=0.2,checkout=0.6,renew=0.2``: lending dominates a
       counter), each doing its kind as above; operations/s in total, p50/p99 per
       kind, per group (placing, lending, renewing) and over all. The renewing clients
       renew loans reserved for the mix in the data (each level its own: the renewals
       offered at a paced rate, or 15/s per closed-loop renewing client; the patrons
       and copies are raised when those loans would pass 3 a patron -- the profiles'
       loan limits hold -- or 35 % of the copies). Bounded by ``--seconds`` alone
       unless ``--ops`` is given.

   ``--rate R[,R...]``: after the closed-loop level (each client sends its next
   operation when the last returns; ``--no-closed`` skips it), paced (open-loop)
   levels: R operations/s offered in total, each client at R/clients on its own
   schedule (a phase in the first interval and a jitter of a quarter interval either
   way, from ``--seed`` and the client's number); a client behind schedule sends at
   once and latency counts from each operation's **scheduled** start (no coordinated
   omission, as in wrk2); reported beside it: the achieved rate, operations that
   started > 10 ms late, the service time (from the actual start), and the slots
   never sent when a client was still behind 2 s (or 20 % of ``--seconds``) after the
   end. Keys in the JSON: ``c64`` (closed), ``c64@500/s`` (paced); a level given
   twice (``--concurrency 64,64``) is ``c64#2``, ``c64#2@500/s``, with its own
   reserved loans; with ``--rate`` or the mix, every level has ``mode``.

   ``--warmup SECONDS``: each level's operations run that long, unmeasured, on the
   same engine before the level is measured (default 0). ``--stall-probe``: during
   each level, the client's GC pauses and event-loop lateness and the server's lock
   waits (with what their holders are doing), autovacuum and deadlocks
   (``bench/circ_stalls.py``; JSON ``stalls``). The loaded data is frozen
   (``gc.freeze()``) before the phases; ``--no-gc-freeze`` leaves it to the collector.

   ``--workers 1,2``: each phase and concurrency also with the clients spread over N
   client processes of their own (spawned once; each its own engine, pool and event
   loop, as N API worker processes of ``unioncat serve --api-workers`` would be), the
   patrons, the pool of copies and the renewals split between them (disjoint shares),
   started together; their latencies, statements and CPU are added up.

   Per phase and concurrency: operations, operations/s, p50 and p99 latency (ms,
   nearest rank, per call from start to return), errors (exceptions; the first
   tracebacks are kept), refusals by code, CPU of the database server's process
   tree (``procmon.tree_cpu_s`` of the postmaster, when this script started it) and
   of this client process (``time.process_time``; with ``--sqlite`` it includes the
   SQLite engine, which runs in-process) per operation, SQL statements per
   operation (an engine event), and the 1-minute load average before the phase.
   At one client the operations run one at a time, so statements and client CPU are
   also given per operation kind (check_out, check_in, arrive, pickup);
   ``--trace-sql N`` prints the statements of the first N operations of each kind.
   After the phases, consistency checks on the data (items vs open loans, secured
   requests vs item status, open transits, the Hiroshima limits).
3. **The nightly jobs** on a second database with ``--requests`` (100,000)
   requests in a realistic mix, bulk-inserted with the schema (queued, suspended,
   in transit, on the hold shelf -- 40 % of them past their deadline --, on loan,
   some overdue, completed, cancelled and shelf-expired ones older and newer than
   the 30 days they stay visible, Komae requests awaiting review unpublished past the
   30-day wait), plus walk-in loans, transits, audit events and sent notices; the
   profiles' loan and request limits hold in that state too.  Each
   job of ``circulation.jobs.JOBS`` runs once through ``run_job``: rows changed
   (against the rows that were due, counted beforehand), seconds, server CPU.
   ``notices`` sends to a real SMTP server (aiosmtpd on 127.0.0.1, in a thread of
   this process): ``run_job`` does one batch (50, what the scheduler sends a
   minute); then the rest of the queue the jobs filled is drained with
   ``dispatch_due`` (batches of 100, bounded by ``--notice-seconds``) and the rate
   reported.  Then every job runs a second time: idempotence means 0 changes.

usage::

    python bench/circulation_bench.py                        # PostgreSQL started here, full size
    python bench/circulation_bench.py --quick                # small data, 3 s per phase (smoke run)
    python bench/circulation_bench.py --quick --sqlite       # the same on the embedded SQLite
    python bench/circulation_bench.py --pg-url postgresql+asyncpg://u@host:5432/db
    python bench/circulation_bench.py --phases place,renew --no-nightly
    python bench/circulation_bench.py --no-nightly --workers 1,2   # also with 2 client processes
    python bench/circulation_bench.py --quick --no-nightly --concurrency 1 --trace-sql 1
    python bench/circulation_bench.py --quick --no-nightly --phases mix --concurrency 64 --rate 300,500
    python bench/circulation_bench.py --no-nightly --phases mix --mix place=0.3,checkout=0.4,renew=0.3
    python bench/circulation_bench.py --report bench/results-circulation.json

The PostgreSQL server is ``tools/postgres_node.py``'s (fsync and synchronous_commit
off: test settings) in a temporary directory, stopped by its PID at the end, also on
an error, Ctrl-C or SIGTERM (on SIGTERM the clients finish the operation in flight,
then the run is cancelled after a few seconds).  With ``--pg-url`` the script creates its two
databases on that server and drops them afterwards.  The client shares the machine
(2 cores here) with the server: its CPU per operation is reported.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))
sys.path.insert(2, str(REPO / "tools"))

from sqlalchemy import text  # noqa: E402

import postgres_node  # noqa: E402
import procmon  # noqa: E402
import run_bench as rb  # noqa: E402
from circ_data import Ids, build_phase_data, bulk_insert, finish_load, install_base, make_catalog, parse_shares, say  # noqa: E402
from circ_mix import DEFAULT_MIX, mix_needs_loans, parse_mix, split_clients, unique_keys  # noqa: E402
from circ_nightly import build_nightly, nightly, nightly_items_needed  # noqa: E402
from circ_phases import (  # noqa: E402
    STOPPING,
    TRACE,
    TickingClock,
    _warm,
    count_statements,
    phase_line,
    run_phase,
    run_phase_processes,
)
from circ_stalls import stall_line  # noqa: E402
from circulation import schema as s  # noqa: E402
from circulation.service import Circulation  # noqa: E402
from circulation.store import LIVE_REQUEST_STATES, Clock, Database  # noqa: E402
from lifecycle.profiles import load_all  # noqa: E402

# A Friday morning (the profiles' calendars: Hiroshima's branches close on Mondays).
PHASE_START = datetime(2026, 11, 20, 10, 0)
# The nightly jobs run on the night to Saturday.
NIGHT = datetime(2026, 11, 21, 3, 0)
PHASES = ("place", "checkout", "renew", "mix")
PHASE_LABEL = {"place": "place", "checkout": "checkout+checkin", "renew": "renew",
               "mix": "mix (place + checkout+checkin + renew at once)"}
MIX_ITEMS_SHARE = 0.35         # at most this share of the copies on loan for the renewals
MIX_LOANS_PER_PATRON = 3       # and at most this many such loans per patron (Hiroshima lends 10)

STARTED = procmon.Registry()   # PIDs started here and not yet reaped (the PostgreSQL server)
GRACE_S = 5.0                  # then the main task is cancelled


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ---------------------------------------------------------------- consistency checks

CHECKS = {
    "items on_loan without an open loan":
        "SELECT count(*) FROM items i WHERE i.status = 'on_loan' AND NOT EXISTS "
        "(SELECT 1 FROM loans l WHERE l.item_id = i.id AND l.returned_at IS NULL)",
    "open loans whose item is not on_loan":
        "SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id WHERE l.returned_at IS NULL "
        "AND l.state IN ('ON_LOAN', 'OVERDUE') AND i.status <> 'on_loan'",
    "ON_HOLD_SHELF requests whose item is not on_hold_shelf":
        "SELECT count(*) FROM requests r JOIN items i ON i.id = r.item_id "
        "WHERE r.state = 'ON_HOLD_SHELF' AND i.status <> 'on_hold_shelf'",
    "items on_hold_shelf without an ON_HOLD_SHELF request":
        "SELECT count(*) FROM items i WHERE i.status = 'on_hold_shelf' AND NOT EXISTS "
        "(SELECT 1 FROM requests r WHERE r.item_id = i.id AND r.state = 'ON_HOLD_SHELF')",
    "IN_TRANSIT requests whose item is not in_transit":
        "SELECT count(*) FROM requests r JOIN items i ON i.id = r.item_id "
        "WHERE r.state = 'IN_TRANSIT' AND i.status <> 'in_transit'",
    "items in_transit without an open transit":
        "SELECT count(*) FROM items i WHERE i.status = 'in_transit' AND NOT EXISTS "
        "(SELECT 1 FROM transits t WHERE t.item_id = i.id AND t.arrived_at IS NULL)",
    "ON_LOAN/OVERDUE requests without an open loan":
        "SELECT count(*) FROM requests r WHERE r.state IN ('ON_LOAN', 'OVERDUE') AND NOT EXISTS "
        "(SELECT 1 FROM loans l WHERE l.request_id = r.id AND l.returned_at IS NULL)",
    "Hiroshima patrons over 10 open loans":
        "SELECT count(*) FROM (SELECT l.patron_id FROM loans l JOIN patrons p ON p.id = l.patron_id "
        "WHERE l.returned_at IS NULL AND p.library = 'hiroshima' GROUP BY l.patron_id "
        "HAVING count(*) > 10) x",
    "Hiroshima patrons over 20 live requests":
        "SELECT count(*) FROM (SELECT r.patron_id FROM requests r JOIN patrons p ON p.id = r.patron_id "
        f"WHERE p.library = 'hiroshima' AND r.state IN ({', '.join(repr(x) for x in LIVE_REQUEST_STATES)}) "
        "GROUP BY r.patron_id HAVING count(*) > 20) x",
}


async def consistency(db: Database) -> dict:
    out = {}
    async with db.read() as conn:
        for name, sql in CHECKS.items():
            out[name] = (await conn.execute(text(sql))).scalar_one()
    return out


async def state_counts(db: Database) -> dict:
    async with db.read() as conn:
        reqs = dict((await conn.execute(text(
            "SELECT state, count(*) FROM requests GROUP BY state ORDER BY state"))).all())
        items = dict((await conn.execute(text(
            "SELECT status, count(*) FROM items GROUP BY status ORDER BY status"))).all())
        open_loans = (await conn.execute(text(
            "SELECT count(*) FROM loans WHERE returned_at IS NULL"))).scalar_one()
    return {"requests": reqs, "items": items, "open_loans": open_loans}


# ---------------------------------------------------------------- report

def _fmt_table(lines: list[list[str]]) -> str:
    w = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]))]
    out = []
    for j, r in enumerate(lines):
        out.append("  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r)))
        if j == 0:
            out.append("  ".join("-" * x for x in w))
    return "\n".join(out)


def _f(v, fmt="{:.2f}"):
    return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def _level(r: dict) -> str:
    """``c64`` (and `` x2p``); a level of a run with the mix or paced levels also
    says ``closed`` or ``paced R/s``."""
    out = f"c{r['concurrency']}" + (f" x{r['processes']}p" if r.get("processes", 1) > 1 else "")
    return out + (f" {r['mode']}" if r.get("mode") else "")


def report(results: dict) -> str:
    parts = []
    meta = results.get("meta", {})
    parts.append(f"circulation benchmark on {meta.get('database', '?')} "
                 f"({meta.get('machine', {}).get('cpus', '?')} CPUs, started {meta.get('started')})")
    for phase, levels in results.get("phases", {}).items():
        head = ["conc / op", "ops", "ops/s", "p50 ms", "p99 ms", "mean ms", "errors", "refusals",
                "srv CPU ms/op", "cli CPU ms/op", "SQL/op", "load before", "bounded by"]
        lines = [head]
        for _key, r in levels.items():
            lines.append([_level(r),
                          r["ops"], _f(r["ops_per_s"], "{:.1f}"), _f(r["p50_ms"]),
                          _f(r["p99_ms"]), _f(r["mean_ms"]), r["errors"], r["refusals"],
                          _f(r.get("server_cpu_ms_per_op")), _f(r.get("client_cpu_ms_per_op")),
                          _f(r.get("sql_statements_per_op"), "{:.1f}"), _f(r["loadavg_before"]), r["bounded_by"]])
            for g, o in r.get("per_group", {}).items():
                if g in r["per_op"]:                  # placing and renewing are one kind each
                    continue
                lines.append([f"  = {g}", o["ops"], _f(o["ops_per_s"], "{:.1f}"), _f(o["p50_ms"]),
                              _f(o["p99_ms"]), "", "", "", "", "", "", "", ""])
            if len(r["per_op"]) > 1:
                for kind, o in r["per_op"].items():
                    lines.append([f"  {kind}", o["ops"], _f(o["ops_per_s"], "{:.1f}"), _f(o["p50_ms"]),
                                  _f(o["p99_ms"]), _f(o["mean_ms"]), "", sum(o["refusals"].values()),
                                  "", _f(o.get("client_cpu_ms_per_op")),
                                  _f(o.get("sql_statements_per_op"), "{:.1f}"), "", ""])
        parts.append(f"\n{PHASE_LABEL.get(phase, phase)}\n" + _fmt_table(lines))
        for _key, r in levels.items():
            extras = []
            ref = {k: v for o in r["per_op"].values() for k, v in o["refusals"].items()}
            if ref:
                extras.append(f"refusals {ref}")
            if r.get("routing"):
                extras.append(f"routing {r['routing']}")
            if r.get("notes"):
                extras.append(f"notes {r['notes']}")
            if r.get("errors_by_kind"):
                extras.append(f"ERRORS {r['errors_by_kind']}")
            if r.get("mix_clients"):
                extras.append("clients " + ", ".join(f"{k} {v}" for k, v in r["mix_clients"].items()))
            pc = r.get("paced")
            if pc and "offered_per_s" in pc:
                got, late_max = _f(pc["achieved_per_s"], "{:.1f}"), _f(pc["late_max_ms"], "{:.1f}")
                extras.append(f"paced: offered {pc['offered_per_s']:g}/s, achieved {got}/s, "
                              f"started > 10 ms late {pc['late_over_10ms']} (max {late_max} ms), "
                              f"not sent {pc['not_sent']}; latency from the scheduled start (p50/p99 above), "
                              f"service time p50 {_f(pc['service_p50_ms'])} / p99 {_f(pc['service_p99_ms'])} ms")
            if extras:
                parts.append(f"  {_level(r) if r.get('mode') else 'c' + str(r['concurrency'])}: " + "; ".join(extras))
    if results.get("consistency"):
        bad = {k: v for k, v in results["consistency"].items() if v}
        parts.append("\nconsistency after the phases: " + ("all checks 0" if not bad else f"VIOLATIONS {bad}"))
    ni = results.get("nightly")
    if ni and ni.get("passes"):
        head = ["job", "due", "changed", "seconds", "srv CPU s", "2nd run changed", "2nd run s"]
        lines = [head]
        first = ni["passes"][0]
        second = ni["passes"][1] if len(ni["passes"]) > 1 else []
        for i, r in enumerate(first):
            r2 = second[i] if i < len(second) else {}
            lines.append([r["job"], _f(r["due"], "{}"), _f(r["changed"], "{}"), _f(r["seconds"]),
                          _f(r.get("server_cpu_s")), _f(r2.get("changed"), "{}"), _f(r2.get("seconds"))])
        b = ni.get("build", {}).get("rows", {})
        parts.append(f"\nnightly jobs ({b.get('requests', '?')} requests, {b.get('loans', '?')} loans, "
                     f"{b.get('events', '?')} events, {b.get('notices', '?')} notices)\n" + _fmt_table(lines))
        d = ni.get("notices_drain")
        if d:
            parts.append(f"notices after the first batch: {d['sent']} sent + {d['suppressed']} suppressed "
                         f"+ {d['failed']} failed in {d['seconds']} s = {d['per_s']} notices/s "
                         f"({d['sent_per_s']} mails/s over SMTP); left pending {d['left_pending']}; "
                         f"SMTP server received {ni.get('smtp_messages_received')} messages")
        if ni.get("consistency"):
            bad = {k: v for k, v in ni["consistency"].items() if v}
            parts.append("consistency after the jobs: " + ("all checks 0" if not bad else f"VIOLATIONS {bad}"))
    return "\n".join(parts)


# ---------------------------------------------------------------- main

def level_key(conc: int, workers: int, rate: float | None) -> str:
    """``c64``, ``c64w2`` (closed loop, as before); ``c64@500/s``, ``c64w2@500/s`` (paced)."""
    return f"c{conc}" + ("" if workers == 1 else f"w{workers}") + ("" if not rate else f"@{rate:g}/s")


class Terminated(Exception):
    """SIGTERM arrived while the event loop ran (the main task was cancelled)."""


async def bench_main(a, urls: dict[str, str], server_pid: int | None, results: dict, save) -> None:
    """:func:`bench` with SIGTERM handled inside the loop: it cancels the main task
    (as ``asyncio.run`` does for Ctrl-C), so every ``finally`` runs and the
    connections are closed.  A Python-level handler raising in the middle of a
    driver call can be swallowed or leave the loop in a bad state."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_term():
        # clients finish the operation in flight, then the task is cancelled
        if not STOPPING:
            STOPPING.append(True)
            loop.call_later(GRACE_S, task.cancel)

    loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        await bench(a, urls, server_pid, results, save)
        if STOPPING:
            raise Terminated()
    except asyncio.CancelledError:
        if STOPPING:
            raise Terminated() from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _sigterm)   # remove_signal_handler left SIG_DFL


async def bench(a, urls: dict[str, str], server_pid: int | None, results: dict, save) -> None:
    rng = random.Random(a.seed)
    profiles = load_all()
    shares = parse_shares(a.systems, profiles)
    results["setup"] = {"note": "load times are recorded for reference, they are not results"}

    if a.phases:
        # the service's pool (config/circulation.toml's [pool]) unless --pool N (N kept + N more)
        db = Database(urls["phases"], pool_size=a.pool)
        if db.pool is not None:
            results["setup"]["pool"] = {"size": db.pool.size, "overflow": db.pool.overflow,
                                        "from": "--pool" if a.pool else "config/circulation.toml [pool]"}
            say(f"pool: {db.pool.size} connections kept + {db.pool.overflow} more under a burst "
                f"({results['setup']['pool']['from']})")
        a.stall_dsn = (urls["phases"].replace("postgresql+asyncpg://", "postgresql://")
                       if urls["phases"].startswith("postgresql") else None)
        executor = None
        count_statements(db)
        circ = Circulation(db, profiles, TickingClock(PHASE_START))
        try:
            t0 = time.perf_counter()
            levels = [(w, c, r) for w in a.workers for c in a.concurrency for r in a.modes]
            renew_total = min(a.ops * len(levels), int(0.35 * a.items)) if "renew" in a.phases else 0
            # the mix's renewing clients renew loans reserved for them (each loan once), per level
            # each level its own reservation and its own key, a repeated level too (c64, c64#2)
            keys = unique_keys([level_key(c, w, r) for w, c, r in levels])
            mix_need = {i: mix_needs_loans(lv[2], split_clients(lv[1], a.mix)["renew"], lv[1],
                                           a.seconds + a.warmup)
                        for i, lv in enumerate(levels)} if "mix" in a.phases else {}
            patrons, items = a.patrons, a.items
            if mix_need:              # room for those loans within the profiles' limits
                loans_needed = renew_total + sum(mix_need.values())
                patrons = max(patrons, math.ceil(loans_needed / MIX_LOANS_PER_PATRON))
                items = max(items, math.ceil(loans_needed / MIX_ITEMS_SHARE))
                if (patrons, items) != (a.patrons, a.items):
                    say(f"the mix's renewals need {sum(mix_need.values())} loans: {patrons} patrons and {items} "
                        f"copies instead of {a.patrons} and {a.items}")
                    results["setup"]["raised_for_mix"] = {"patrons": [a.patrons, patrons], "items": [a.items, items]}
            say(f"loading the phase database ({patrons} patrons, {a.titles} titles, {items} copies)")
            cat = make_catalog(rng, profiles, shares, patrons, a.titles, items, PHASE_START - timedelta(days=400))
            ids = Ids()
            data, rows = build_phase_data(rng, cat, renew_loans=renew_total + sum(mix_need.values()),
                                          queued_share=a.queued_share,
                                          hot_fraction=a.hot_titles, start=PHASE_START, ids=ids)
            await install_base(db, circ, cat)
            await bulk_insert(db, s.items, cat.item_rows)
            await bulk_insert(db, s.title_queues, rows["title_queues"])
            await bulk_insert(db, s.requests, rows["requests"])
            await bulk_insert(db, s.loans, rows["loans"])
            await bulk_insert(db, s.events, rows["events"])
            await finish_load(db)
            results["setup"]["phase_db"] = dict(data.counts, load_s=round(time.perf_counter() - t0, 1))
            say(f"  loaded in {time.perf_counter() - t0:.1f} s: {data.counts}")
            results["phases"] = {}
            renew_slices: dict = {}
            mix_slices: dict = {}
            mix_loans = data.renew_loans[renew_total:] if mix_need else []
            renew_loans = data.renew_loans[:renew_total] if mix_need else data.renew_loans
            if "renew" in a.phases:
                per = len(renew_loans) // len(levels)
                for i in range(len(levels)):
                    renew_slices[i] = deque(renew_loans[i * per:(i + 1) * per])
            at = 0
            for i, k in mix_need.items():
                mix_slices[i] = deque(mix_loans[at:at + k])
                at += k
            if max(a.workers) > 1:
                import concurrent.futures
                import multiprocessing
                executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=max(a.workers), mp_context=multiprocessing.get_context("spawn"))
                list(executor.map(_warm, range(max(a.workers))))     # started before any phase
            # The load generator's own data (the catalog, the rows, the loans kept for the
            # renewals: hundreds of thousands of objects) is not the service's heap: left to
            # the collector, every gen2 collection walks it (~50-100 ms), a pause of every
            # transaction in flight -- with a hot title's queue lock held, a convoy behind
            # it. Frozen once here (--no-gc-freeze: as before).
            results["setup"]["gc_objects_after_load"] = len(gc.get_objects())
            if a.gc_freeze:
                gc.collect()
                gc.freeze()
            results["setup"]["gc_frozen"] = gc.get_freeze_count()
            for phase in PHASES:
                if phase not in a.phases:
                    continue
                say(f"phase {PHASE_LABEL[phase]}")
                res = results["phases"].setdefault(phase, {})
                for i, (w, c, rate) in enumerate(levels):
                    if STOPPING:
                        raise Terminated()
                    todo = (mix_slices if phase == "mix" else renew_slices).get(i)
                    if a.warmup > 0:
                        # the level's operations, unmeasured, on the same engine first
                        wa = copy.copy(a)
                        wa.seconds, wa.ops, wa.ops_given, wa.stall_probe = a.warmup, 10 ** 9, True, False
                        if w == 1:
                            await run_phase(phase, c, circ, data, wa, rng, server_pid, todo, rate=rate)
                        else:
                            await run_phase_processes(phase, c, w, executor, urls["phases"], circ, data, wa, rng,
                                                      server_pid, todo, rate=rate)
                    if w == 1:
                        r = await run_phase(phase, c, circ, data, a, rng, server_pid, todo, rate=rate)
                    else:
                        r = await run_phase_processes(phase, c, w, executor, urls["phases"], circ, data, a, rng,
                                                      server_pid, todo, rate=rate)
                    res[keys[i]] = r
                    say(phase_line(PHASE_LABEL[phase], r))
                    if "stalls" in r:
                        say(stall_line(r["stalls"]))
                    for e in r.get("error_samples", [])[:2]:
                        say(f"    error sample ({e['op']}): {e['error']}\n" +
                            "\n".join("      " + ln for ln in e["traceback"].splitlines()[-25:]))
                    save()
            results["consistency"] = await consistency(db)
            results["state_after_phases"] = await state_counts(db)
            bad = {k: v for k, v in results["consistency"].items() if v}
            say("consistency after the phases: " + ("all checks 0" if not bad else f"VIOLATIONS {bad}"))
            save()
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
            await db.dispose()

    if a.nightly and not STOPPING:
        db = Database(urls["nightly"], pool_size=8)
        circ = Circulation(db, profiles, Clock(NIGHT))
        try:
            n_items = max(a.items, int(nightly_items_needed(a.requests) * 1.4))
            say(f"loading the nightly database ({a.requests} requests, {a.patrons} patrons, "
                f"{a.titles} titles, {n_items} copies)")
            t0 = time.perf_counter()
            cat = make_catalog(random.Random(a.seed + 1), profiles, shares, a.patrons, a.titles, n_items,
                               NIGHT - timedelta(days=400))
            await install_base(db, circ, cat)
            build = await build_nightly(db, circ, cat, random.Random(a.seed + 2), a.requests, NIGHT)
            build["load_s"] = round(time.perf_counter() - t0, 1)
            results["setup"]["nightly_db"] = build
            say(f"  loaded in {build['load_s']} s: {build['rows']}")
            results["nightly"] = {"build": build, "state_before": await state_counts(db)}
            save()
            results["nightly"].update(await nightly(db, circ, a, server_pid))
            results["nightly"]["state_after"] = await state_counts(db)
            results["nightly"]["consistency"] = await consistency(db)
            save()
        finally:
            await db.dispose()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="circulation holds/loans on PostgreSQL (or SQLite) and the nightly jobs",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--pg-url", default=None, help="use this PostgreSQL server (SQLAlchemy URL, "
                    "postgresql+asyncpg://...); the script creates and drops its own databases there")
    ap.add_argument("--sqlite", action="store_true", help="the embedded SQLite default instead of PostgreSQL")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 500 patrons, 2,000 titles, 4,000 copies, 3 s per phase, 5,000 requests")
    ap.add_argument("--concurrency", default="1,16,64", help="concurrent clients per phase (default 1,16,64)")
    ap.add_argument("--seconds", type=float, default=None, help="max seconds per phase and concurrency (20)")
    ap.add_argument("--ops", type=int, default=None, help="max operations per phase and concurrency (5000)")
    ap.add_argument("--phases", default="place,checkout,renew",
                    help="phases to run (place,checkout,renew,mix; '' for none; mix is not in the default)")
    ap.add_argument("--mix", default=DEFAULT_MIX,
                    help=f"the mix phase: share of the clients doing each kind ({DEFAULT_MIX})")
    ap.add_argument("--rate", default="", metavar="R[,R...]",
                    help="paced (open-loop) levels after the closed-loop one: R operations/s offered in total "
                         "by the clients of each concurrency, each client at R/clients on a schedule jittered "
                         "from --seed; latency from the scheduled start")
    ap.add_argument("--no-closed", dest="closed", action="store_false",
                    help="with --rate: only the paced levels (the closed loop is run by default)")
    ap.add_argument("--no-nightly", dest="nightly", action="store_false", help="skip the nightly jobs")
    ap.add_argument("--pool", type=int, default=None, metavar="N",
                    help="PostgreSQL: a pool of N connections and N more under a burst for the phases "
                         "(default: what the service uses, config/circulation.toml's [pool]; "
                         "before the fifth round the benchmark used the largest concurrency + 8)")
    ap.add_argument("--patrons", type=int, default=None, help="patrons (5000)")
    ap.add_argument("--titles", type=int, default=None, help="titles (20000)")
    ap.add_argument("--items", type=int, default=None, help="copies (40000)")
    ap.add_argument("--requests", type=int, default=None, help="requests in the nightly database (100000)")
    ap.add_argument("--systems", default="hiroshima=0.7,iizuka=0.15,komae=0.15",
                    help="systems and their shares of patrons, titles and copies")
    ap.add_argument("--queued-share", type=float, default=0.25,
                    help="share of the circulating titles with 1-4 holds queued beforehand (0.25)")
    ap.add_argument("--hot-titles", type=float, default=0.005, help="fraction of titles that are 'hot' (0.005)")
    ap.add_argument("--hot-share", type=float, default=0.10, help="share of placements on hot titles (0.10)")
    ap.add_argument("--other-branch", type=float, default=0.30,
                    help="probability that a check-in happens at another branch (0.30)")
    ap.add_argument("--notice-seconds", type=float, default=None,
                    help="max seconds to drain the notice queue after the first notices batch (300)")
    ap.add_argument("--seed", type=int, default=20261120)
    ap.add_argument("--workers", default="1",
                    help="client processes per phase, e.g. 1,2 (default 1: the clients in this process; N > 1: "
                         "the clients spread over N processes of their own, as over N API worker processes)")
    ap.add_argument("--trace-sql", type=int, default=0, metavar="N",
                    help="print the SQL of the first N operations of each kind at concurrency 1")
    ap.add_argument("--stall-probe", action="store_true",
                    help="record GC pauses, event-loop lateness and the server's lock waits during each level "
                         "(bench/circ_stalls.py; JSON 'stalls')")
    ap.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS",
                    help="run each level's operations this long, unmeasured, on the same engine before "
                         "measuring it (default 0: measured from the first operation)")
    ap.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                    help="leave the loaded data to the garbage collector (default: gc.freeze() after the load)")
    ap.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--out", type=Path, default=HERE / "results-circulation.json")
    ap.add_argument("--report", type=Path, default=None, metavar="JSON", help="print saved results and exit")
    a = ap.parse_args(argv)
    if a.report:
        print(report(json.loads(a.report.read_text())))
        return 0
    if a.sqlite and a.pg_url:
        ap.error("--sqlite and --pg-url exclude each other")
    a.ops_given = a.ops is not None
    quick = dict(patrons=500, titles=2000, items=4000, seconds=3.0, ops=1500, requests=5000, notice_seconds=60.0)
    full = dict(patrons=5000, titles=20000, items=40000, seconds=20.0, ops=5000, requests=100000,
                notice_seconds=300.0)
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.concurrency = [int(x) for x in a.concurrency.split(",") if x.strip()]
    a.phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    a.workers = [int(x) for x in a.workers.split(",") if x.strip()]
    try:
        a.mix = parse_mix(a.mix)
    except ValueError as e:
        ap.error(str(e))
    try:
        rates = [float(x) for x in a.rate.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--rate {a.rate!r}: operations/s, a number or numbers separated by commas")
    if any(not (0 < r < float("inf")) for r in rates):
        ap.error(f"--rate {a.rate!r}: operations/s > 0")
    if not a.closed and not rates:
        ap.error("--no-closed needs --rate")
    a.rate = rates
    a.modes = ([None] if a.closed else []) + rates
    if not a.workers or min(a.workers) < 1:
        ap.error("--workers: process counts of at least 1")
    for p in a.phases:
        if p not in PHASES:
            ap.error(f"unknown phase {p!r} (phases: {', '.join(PHASES)})")
    if not (0 <= a.warmup < float("inf")):
        ap.error("--warmup: seconds >= 0")
    if a.items < a.titles:
        ap.error("--items must be at least --titles (every title has a copy)")

    if a.trace_sql:
        TRACE[:] = [a.trace_sql, Counter(), None]
    signal.signal(signal.SIGTERM, _sigterm)
    results: dict = {"meta": {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv,
                              "machine": rb.host_info(), "loadavg_at_start": os.getloadavg(),
                              "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}}}

    def save():
        rb.write_json(a.out, results)

    node = None
    tmp = None
    made: list[str] = []
    admin_url = None
    server_pid = None
    rc = 0
    try:
        if a.sqlite:
            tmp = Path(tempfile.mkdtemp(prefix="circbench-sqlite-"))
            urls = {"phases": f"sqlite+aiosqlite:///{tmp / 'phases.db'}",
                    "nightly": f"sqlite+aiosqlite:///{tmp / 'nightly.db'}"}
            results["meta"]["database"] = "SQLite (embedded, aiosqlite, WAL)"
        else:
            if a.pg_url:
                admin_url = a.pg_url
                results["meta"]["database"] = "PostgreSQL (given): " + postgres_node.check_url(admin_url)
            else:
                tmp = Path(tempfile.mkdtemp(prefix="circbench-pg-"))
                say(f"starting PostgreSQL in {tmp}")
                node = postgres_node.PostgresNode(tmp)
                node.start()
                server_pid = node.pid
                STARTED.add(server_pid)
                admin_url = node.url
                version = node.sql("SHOW server_version")[0]
                results["meta"]["database"] = (f"PostgreSQL {version} (tools/postgres_node.py: fsync, "
                                               "synchronous_commit, full_page_writes off)")
                results["meta"]["server_pid"] = server_pid
                say(f"  up after {node.startup_seconds:.1f} s, pid {server_pid}")
            urls = {}
            for key in ("phases", "nightly"):
                name = postgres_node.unique_database_name(f"circbench_{key}")
                urls[key] = postgres_node.create_database(admin_url, name)
                made.append(name)
        if a.event_loop == "uvloop":
            import uvloop
            uvloop.install()
        asyncio.run(bench_main(a, urls, server_pid, results, save))
        results["meta"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
        print()
        print(report(results))
        save()
        print(f"\nresults: {a.out}")
        errors = sum(r["errors"] for lv in results.get("phases", {}).values() for r in lv.values())
        if errors:
            rc = 1
    except (KeyboardInterrupt, Terminated) as e:
        print(f"\ninterrupted ({type(e).__name__}): stopping everything", file=sys.stderr)
        rc = 130
    finally:
        if admin_url and a.pg_url:
            for name in made:
                try:
                    postgres_node.drop_database(admin_url, name)
                except Exception as e:  # noqa: BLE001 -- best effort, reported
                    print(f"could not drop database {name}: {e}", file=sys.stderr)
        if node is not None:
            try:
                node.stop()                 # SIGINT to the postmaster's PID, SIGKILL after 30 s
                STARTED.discard(server_pid)
            except Exception as e:  # noqa: BLE001 -- then by PID below
                print(f"stopping PostgreSQL: {e}", file=sys.stderr)
        STARTED.stop_all()     # only what node.stop() could not end
        try:
            save()
        except OSError:
            pass
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
