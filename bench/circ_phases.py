"""Running the phases of the circulation benchmark (``bench/circulation_bench.py``).

What it holds: the service clock of the phases (:class:`TickingClock`), the budget
and measurements of one phase at one concurrency (:class:`Run`), the client
coroutines of ``place``, ``checkout+checkin`` and ``renew`` (:func:`make_clients`),
one phase in this process (:func:`run_phase`) or with its clients spread over
several client processes (:func:`run_phase_processes`, :func:`child_phase`), the
one-line summary of a result (:func:`phase_line`), and the state the run shares:
``STOPPING`` (SIGTERM/Ctrl-C seen), ``STATEMENTS`` (the SQL statement counter fed
by :func:`count_statements`) and ``TRACE`` (``--trace-sql``).

A module of the benchmark, not an entry point: ``circulation_bench.py`` puts
``bench/``, the repository and ``tools/`` on ``sys.path`` before importing it (a
client process of ``--workers`` gets the same ``sys.path`` from ``spawn``).
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import time
import traceback
from collections import Counter, defaultdict, deque
from datetime import datetime, timedelta

from sqlalchemy import text

import procmon
from circ_data import Catalog, Patron, PhaseData, say
from circ_mix import Pacer, group_of, paced_latency, split_clients, split_loans, split_over_processes
from circ_stalls import StallProbe
from circulation import holds, loans
from circulation import routing as rt
from circulation.service import Circulation
from circulation.store import Clock, Database

STOPPING: list[bool] = []      # SIGTERM/Ctrl-C seen: start no new operation
STATEMENTS = [0]               # SQL statements sent (engine event), for statements per operation
TRACE: list = []               # [remaining ops to trace per kind, {kind: count}, current list] (--trace-sql)


def _seen(statement: str) -> None:
    STATEMENTS[0] += 1
    if TRACE and TRACE[2] is not None:
        TRACE[2].append(statement)


def count_statements(db: Database) -> None:
    from sqlalchemy import event

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, *_args):
        _seen(statement)

    try:                          # the statements circulation runs by the driver itself
        from circulation import prepared
    except ImportError:           # an older tree (a "before" run of the benchmark)
        return
    if _seen not in prepared.ON_STATEMENT:
        prepared.ON_STATEMENT.append(_seen)


# ---------------------------------------------------------------- clock

class TickingClock(Clock):
    """Service time that starts at ``start`` and advances with the wall clock, so
    the calendar of the run is fixed (a Friday) while timestamps still move."""

    def __init__(self, start: datetime):
        super().__init__(None)
        self.start = start
        self.t0 = time.monotonic()

    def now(self) -> datetime:
        return (self.start + timedelta(seconds=time.monotonic() - self.t0)).replace(microsecond=0)


# ---------------------------------------------------------------- running a phase

def pct(sorted_ms: list[float], q: float) -> float | None:
    """Nearest-rank percentile of a sorted list."""
    if not sorted_ms:
        return None
    i = min(len(sorted_ms) - 1, max(0, math.ceil(q * len(sorted_ms)) - 1))
    return sorted_ms[i]


class Run:
    """One phase at one concurrency: the budget (ops and seconds), the measurements."""

    def __init__(self, seconds: float, max_ops: int, sequential: bool = False):
        self.max_ops = max_ops
        # one client: statements and client CPU are attributed to each operation kind
        self.sequential = sequential
        self.kind_sql: Counter[str] = Counter()
        self.kind_cpu: Counter[str] = Counter()
        self.seconds = seconds
        self.deadline = 0.0
        self.started = 0
        self.bounded_by = "supply"         # until the budget says otherwise
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.refusals: dict[str, Counter] = defaultdict(Counter)
        self.errors: Counter[str] = Counter()
        self.error_samples: list[dict] = []
        self.routing: Counter[str] = Counter()
        self.notes: Counter[str] = Counter()
        # paced (open-loop) clients: latency counts from the scheduled start
        self.service: dict[str, list[float]] = defaultdict(list)   # from the actual start
        self.late = 0                      # started > 10 ms after the slot
        self.late_max_ms = 0.0
        self.not_sent = 0                  # slots before the end never sent (a client too far behind)
        self.t_begin = 0.0
        self.grouped = False               # the mix: also per group (placing, lending, renewing)

    def begin(self) -> None:
        self.t_begin = time.perf_counter()
        self.deadline = self.t_begin + self.seconds

    def take(self, at: float | None = None) -> bool:
        """May one more operation start? ``at``: its scheduled time (a paced client;
        then the schedule, not the clock, decides whether it is still in the run)."""
        if STOPPING:
            self.bounded_by = "interrupted"
            return False
        if self.started >= self.max_ops:
            self.bounded_by = "ops"
            return False
        if (time.perf_counter() if at is None else at) >= self.deadline:
            self.bounded_by = "seconds"
            return False
        self.started += 1
        return True

    async def op(self, kind: str, call, refused=None, scheduled: float | None = None):
        """Run one operation; time it; count a refusal or an exception. Returns the
        result, or None after an exception. ``refused(result)`` tells a refusal
        (default: the result's decision is not allowed). ``scheduled``: a paced
        operation's slot (perf_counter time): its latency counts from there."""
        s0, c0 = STATEMENTS[0], time.process_time()
        tracing = self.sequential and TRACE and TRACE[1][kind] < TRACE[0]
        if tracing:
            TRACE[1][kind] += 1
            TRACE[2] = []
        t0 = time.perf_counter()
        try:
            res = await call()
        except Exception as e:  # noqa: BLE001 -- an error is a finding: counted and kept
            self._timed(kind, t0, scheduled)
            self._attribute(kind, s0, c0, tracing)
            key = f"{kind}: {type(e).__name__}"
            self.errors[key] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append({"op": kind, "error": f"{type(e).__name__}: {e}"[:1000],
                                           "traceback": traceback.format_exc()[-6000:]})
            return None
        self._timed(kind, t0, scheduled)
        self._attribute(kind, s0, c0, tracing)
        d = getattr(res, "decision", None)
        if d is not None and (refused(res) if refused is not None else not d.allowed):
            self.refusals[kind][d.code] += 1
        return res

    def _timed(self, kind: str, t0: float, scheduled: float | None) -> None:
        t1 = time.perf_counter()
        if scheduled is None:
            self.lat[kind].append((t1 - t0) * 1000)
            return
        lat, service, late = paced_latency(scheduled, t0, t1)
        self.lat[kind].append(lat)
        self.service[kind].append(service)
        if late:
            self.late += 1
            self.late_max_ms = max(self.late_max_ms, (t0 - scheduled) * 1000)

    def _attribute(self, kind: str, s0: int, c0: float, tracing: bool) -> None:
        if not self.sequential:
            return
        self.kind_sql[kind] += STATEMENTS[0] - s0
        self.kind_cpu[kind] += time.process_time() - c0
        if tracing:
            say(f"    SQL of one {kind} ({len(TRACE[2])} statements):")
            for st in TRACE[2]:
                say("      " + " ".join(st.split())[:160])
            TRACE[2] = None

    def summary(self, wall: float) -> dict:
        everything = sorted(x for v in self.lat.values() for x in v)
        n = len(everything)
        out = {"ops": n, "wall_s": round(wall, 3), "ops_per_s": round(n / wall, 1) if wall else None,
               "p50_ms": _r(pct(everything, 0.50)), "p99_ms": _r(pct(everything, 0.99)),
               "mean_ms": _r(sum(everything) / n) if n else None,
               "errors": sum(self.errors.values()), "errors_by_kind": dict(self.errors),
               "refusals": sum(sum(c.values()) for c in self.refusals.values()),
               "bounded_by": self.bounded_by + (", behind schedule" if self.not_sent else ""), "per_op": {}}
        for kind, xs in self.lat.items():
            xs = sorted(xs)
            out["per_op"][kind] = {"ops": len(xs), "ops_per_s": round(len(xs) / wall, 1) if wall else None,
                                   "p50_ms": _r(pct(xs, 0.50)), "p99_ms": _r(pct(xs, 0.99)),
                                   "mean_ms": _r(sum(xs) / len(xs)),
                                   "refusals": dict(self.refusals.get(kind, {}))}
            if self.sequential and xs:
                out["per_op"][kind]["sql_statements_per_op"] = round(self.kind_sql[kind] / len(xs), 1)
                out["per_op"][kind]["client_cpu_ms_per_op"] = round(1000 * self.kind_cpu[kind] / len(xs), 3)
        if self.grouped:                                      # the mix: placing, lending, renewing
            out["per_group"] = {}
            for g in sorted({group_of(k) for k in self.lat}):
                xs = sorted(x for k, v in self.lat.items() if group_of(k) == g for x in v)
                out["per_group"][g] = {"ops": len(xs), "ops_per_s": round(len(xs) / wall, 1) if wall else None,
                                       "p50_ms": _r(pct(xs, 0.50)), "p99_ms": _r(pct(xs, 0.99))}
        if self.service:
            svc = sorted(x for v in self.service.values() for x in v)
            out["paced"] = {"late_over_10ms": self.late, "late_max_ms": _r(self.late_max_ms),
                            "not_sent": self.not_sent,
                            "service_p50_ms": _r(pct(svc, 0.50)), "service_p99_ms": _r(pct(svc, 0.99))}
        if self.routing:
            out["routing"] = dict(self.routing)
        if self.notes:
            out["notes"] = dict(self.notes)
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


def _r(x, nd=2):
    return None if x is None else round(x, nd)


class PacedRun:
    """What one paced (open-loop) client sees of its :class:`Run`: each operation waits
    for its slot of the client's :class:`circ_mix.Pacer` and is timed from it. A client
    behind schedule sends at once; after ``grace`` seconds past the end of the run it
    gives up and the slots it still owed are counted as ``not_sent``."""

    def __init__(self, run: Run, pacer: Pacer, grace: float):
        self.run, self.pacer, self.grace = run, pacer, grace
        self.notes, self.routing = run.notes, run.routing

    def take(self) -> bool:
        run = self.run
        if not run.take(at=run.t_begin + self.pacer.peek()):
            return False
        if time.perf_counter() > run.deadline + self.grace:
            run.started -= 1
            while run.t_begin + self.pacer.take() < run.deadline:
                run.not_sent += 1
            return False
        return True

    async def op(self, kind: str, call, refused=None):
        at = self.run.t_begin + self.pacer.take()
        wait = at - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        return await self.run.op(kind, call, refused, scheduled=at)


class Rotor:
    """Round-robin over a list, shared by the clients."""

    def __init__(self, xs: list):
        self.xs, self.i = xs, 0

    def next(self):
        x = self.xs[self.i % len(self.xs)]
        self.i += 1
        return x


STAFF = dict(role="staff", actor="bench-counter")


async def place_worker(circ: Circulation, run: Run, data: PhaseData, patrons: Rotor,
                       rng: random.Random, hot_share: float) -> None:
    while run.take():
        p: Patron = patrons.next()
        pool = data.hot_titles[p.system] if rng.random() < hot_share else data.place_titles[p.system]
        t = rng.choice(pool)
        res = await run.op("place", lambda: holds.place(
            circ, card=p.card, title_id=t, pickup_branch=p.pickup, channel="web", role="patron",  # noqa: B023 - called at once, in this iteration
            actor=p.card, contact_method=p.contact, title=data.cat.title_names[t]))  # noqa: B023 - called at once, in this iteration
        if res is not None and res.request_id is not None:
            data.request_cards[res.request_id] = p.card


async def checkout_worker(circ: Circulation, run: Run, data: PhaseData, borrowers: dict[str, Rotor],
                          rng: random.Random, other_branch: float) -> None:
    systems = data.cat.systems
    while True:
        if not data.pool:
            run.notes["pool_empty"] += 1
            return
        item = data.pool.popleft()
        sy = systems[item["library"]]
        if not run.take():
            data.pool.appendleft(item)
            return
        barcode, branch = item["barcode"], item["current_branch"]
        p: Patron = borrowers[sy.code].next()
        res = await run.op("check_out", lambda: loans.check_out(
            circ, barcode=barcode, card=p.card, branch=branch, channel="counter", **STAFF))  # noqa: B023 - called at once, in this iteration
        if res is None or not res.decision.allowed:
            if res is not None and res.decision.code in ("loan_limit",):
                data.pool.append(item)        # the patron's problem, not the copy's
            else:
                run.notes["copy_dropped_after_refused_check_out"] += 1
            continue
        at = branch
        for _step in range(12):
            if rng.random() < other_branch and len(sy.lending) > 1:
                at = rng.choice([b for b in sy.lending if b != at])
            if not run.take():
                run.notes["cycle_cut_by_budget"] += 1
                break
            res = await run.op("check_in", lambda at=at: loans.check_in(
                circ, barcode=barcode, branch=at, **STAFF))  # noqa: B023 - called at once, in this iteration
            routing = res.routing if res is not None else None
            # follow the copy until it is on a shelf: transits arrive, holds are picked up
            while routing is not None and routing.kind in (rt.TRANSIT_HOME, rt.TRANSIT_HOLD,
                                                           rt.TRANSIT_ONWARD):
                run.routing[routing.kind] += 1
                if not run.take():
                    routing = None
                    run.notes["cycle_cut_by_budget"] += 1
                    break
                dest = routing.to_branch
                # a copy in transit has no loan: check_in answers not_on_loan and routes it
                res = await run.op("arrive", lambda dest=dest: loans.check_in(
                    circ, barcode=barcode, branch=dest, **STAFF), refused=lambda r: r.routing is None)  # noqa: B023 - called at once, in this iteration
                at = dest
                routing = res.routing if res is not None else None
            if routing is None:
                break
            run.routing[routing.kind] += 1
            if routing.kind in (rt.RESHELVE, rt.WALK_IN):
                item["current_branch"] = routing.to_branch or at
                data.pool.append(item)
                break
            if routing.kind != rt.HOLD_SHELF:
                run.notes[f"unexpected_routing_{routing.kind}"] += 1
                break
            # the hold's patron collects it at the pickup branch
            card = data.request_cards.get(routing.request_id) or await card_of_request(circ, routing.request_id)
            if not run.take():
                run.notes["cycle_cut_by_budget"] += 1
                break
            at = routing.to_branch
            res = await run.op("pickup", lambda at=at: loans.check_out(
                circ, barcode=barcode, card=card, branch=at, channel="counter", **STAFF))  # noqa: B023 - called at once, in this iteration
            if res is None or not res.decision.allowed:
                run.notes["copy_left_on_hold_shelf"] += 1
                break
        else:
            run.notes["cycle_step_limit"] += 1


async def card_of_request(circ: Circulation, request_id: int) -> str:
    async with circ.db.read() as conn:
        return (await conn.execute(text(
            "SELECT p.card_number FROM requests r JOIN patrons p ON p.id = r.patron_id "
            "WHERE r.id = :rid"), {"rid": request_id})).scalar_one()


async def renew_worker(circ: Circulation, run: Run, todo: deque) -> None:
    while todo:
        if not run.take():
            return
        loan_id, card = todo.popleft()
        await run.op("renew", lambda: loans.renew(circ, loan_id=loan_id, role="patron", actor=card,  # noqa: B023 - called at once, in this iteration
                                                  channel="web", card=card))  # noqa: B023 - called at once, in this iteration


async def mix_renew_worker(circ: Circulation, run, todo: deque) -> None:
    await renew_worker(circ, run, todo)
    if not todo and not STOPPING:
        run.notes["renew_client_out_of_loans"] += 1


def make_clients(phase: str, conc: int, circ: Circulation, run: Run, data: PhaseData, a, rng: random.Random,
                 renew_slice: deque | None, part: tuple[int, int] = (0, 1), rate: float | None = None,
                 mix_counts: dict[str, int] | None = None, total_clients: int | None = None) -> list:
    """The ``conc`` client coroutines of a phase; ``part`` (i, n): this process's share
    of the patrons when n processes run the phase (disjoint slices). ``mix``: the
    clients split by ``mix_counts`` (this process's; default ``--mix`` over ``conc``).
    ``rate``: offered operations/s in total over ``total_clients`` (default ``conc``)
    paced clients, each at ``rate / total_clients``."""
    i, n = part
    kinds = (mix_counts or split_clients(conc, a.mix)) if phase == "mix" else {phase: conc}
    view = [run] * sum(kinds.values())
    if rate:
        per = rate / (total_clients or conc)
        view = [PacedRun(run, Pacer(per, a.seed, f"{i}.{k}"), grace=max(2.0, 0.2 * run.seconds))
                for k in range(len(view))]
    clients: list = []
    if kinds.get("place"):
        everyone = [p for sy in data.cat.systems.values() for p in sy.patrons]
        rng.shuffle(everyone)
        rotor = Rotor(everyone[i::n])
        clients += [place_worker(circ, view[len(clients) + k], data, rotor, random.Random(rng.random()),
                                 a.hot_share) for k in range(kinds["place"])]
    if kinds.get("checkout"):
        borrowers = {}
        for code, sy in data.cat.systems.items():
            ps = list(sy.patrons)
            rng.shuffle(ps)
            borrowers[code] = Rotor(ps[i::n] or ps)
        clients += [checkout_worker(circ, view[len(clients) + k], data, borrowers, random.Random(rng.random()),
                                    a.other_branch) for k in range(kinds["checkout"])]
    if kinds.get("renew"):
        worker = mix_renew_worker if phase == "mix" else renew_worker
        clients += [worker(circ, view[len(clients) + k], renew_slice) for k in range(kinds["renew"])]
    return clients


def max_ops(phase: str, a, rate: float | None) -> int:
    """The operations bound of one level: ``--ops``; the mix and paced levels are
    bounded by ``--seconds`` alone unless ``--ops`` was given (the quick default of
    1,500 would end them after a few seconds)."""
    if (phase == "mix" or rate) and not getattr(a, "ops_given", True):
        return 10 ** 9
    return a.ops


def mode_fields(out: dict, phase: str, a, rate: float | None, counts: dict[str, int] | None) -> None:
    out["mode"] = f"paced {rate:g}/s" if rate else "closed"
    if rate:
        out["paced"] = dict(out.get("paced", {}), offered_per_s=rate,
                            achieved_per_s=out["ops_per_s"])
    if phase == "mix":
        out["mix_clients"] = counts


async def run_phase(phase: str, conc: int, circ: Circulation, data: PhaseData, a, rng: random.Random,
                    server_pid: int | None, renew_slice: deque | None, rate: float | None = None) -> dict:
    run = Run(a.seconds, max_ops(phase, a, rate), sequential=conc == 1)
    run.grouped = phase == "mix"
    counts = split_clients(conc, a.mix) if phase == "mix" else None
    load = os.getloadavg()[0]
    stmts0 = STATEMENTS[0]
    cpu_s0 = procmon.tree_cpu_s(server_pid) if server_pid else None
    cpu_c0 = time.process_time()
    workers = make_clients(phase, conc, circ, run, data, a, rng, renew_slice, rate=rate, mix_counts=counts)
    probe = None
    if getattr(a, "stall_probe", False):
        probe = StallProbe(getattr(a, "stall_dsn", None), pool=circ.db.engine.pool)
        await probe.start()
    t0 = time.perf_counter()
    run.begin()
    await asyncio.gather(*workers)
    wall = time.perf_counter() - t0
    out = run.summary(wall)
    if probe is not None:
        await probe.stop()
        out["stalls"] = probe.summary()
    cpu_c = time.process_time() - cpu_c0
    n = out["ops"]
    out["sql_statements_per_op"] = round((STATEMENTS[0] - stmts0) / n, 1) if n else None
    out["client_cpu_s"] = round(cpu_c, 3)
    out["client_cpu_ms_per_op"] = round(1000 * cpu_c / n, 3) if n else None
    if server_pid:
        cpu_srv = procmon.tree_cpu_s(server_pid) - cpu_s0
        out["server_cpu_s"] = round(cpu_srv, 3)
        out["server_cpu_ms_per_op"] = round(1000 * cpu_srv / n, 3) if n else None
    out["loadavg_before"] = round(load, 2)
    out["concurrency"] = conc
    if phase == "mix" or a.rate:
        mode_fields(out, phase, a, rate, counts)
    return out


# ---------------------------------------------------------------- several client processes

async def _child_phase(job: dict) -> dict:
    """One client process's share of a phase (``--workers N``): its own engine, its share
    of the clients and of the data, started at ``job['start_at']`` (wall clock)."""
    a, data = job["a"], job["data"]
    db = Database(job["url"], pool_size=job["clients"] + 8)
    count_statements(db)
    clock = TickingClock(job["clock_at"])
    clock.t0 -= time.time() - job["sent_at"]          # the parent's service time, as it goes on
    circ = Circulation(db, job["profiles"], clock)
    try:
        async def hold():                             # open the pool's connections before the start
            async with db.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
                await asyncio.sleep(0.2)
        await asyncio.gather(*(hold() for _ in range(job["clients"])))
        run = Run(job["seconds"], job["max_ops"], sequential=job["sequential"])
        renew = deque(job["renew"]) if job["renew"] is not None else None
        clients = make_clients(job["phase"], job["clients"], circ, run, data, a, random.Random(job["seed"]),
                               renew, part=job["part"], rate=job.get("rate"), mix_counts=job.get("mix_counts"),
                               total_clients=job.get("total_clients"))
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        s0, c0, t0 = STATEMENTS[0], time.process_time(), time.perf_counter()
        run.begin()
        await asyncio.gather(*clients)
        wall = time.perf_counter() - t0
        return {"lat": dict(run.lat), "refusals": {k: dict(v) for k, v in run.refusals.items()},
                "errors": dict(run.errors), "error_samples": run.error_samples, "routing": dict(run.routing),
                "notes": dict(run.notes), "kind_sql": dict(run.kind_sql), "kind_cpu": dict(run.kind_cpu),
                "service": dict(run.service), "late": run.late, "late_max_ms": run.late_max_ms,
                "not_sent": run.not_sent,
                "statements": STATEMENTS[0] - s0, "cpu_s": time.process_time() - c0, "wall": wall,
                "bounded_by": run.bounded_by, "pool": list(data.pool), "request_cards": data.request_cards}
    finally:
        await db.dispose()


def child_phase(job: dict) -> dict:
    """Entry point of a client process (ProcessPoolExecutor, spawn)."""
    return asyncio.run(_child_phase(job))


def _warm(_i: int) -> int:
    time.sleep(0.5)
    return os.getpid()


async def run_phase_processes(phase: str, conc: int, procs: int, executor, url: str, circ: Circulation,
                              data: PhaseData, a, rng: random.Random, server_pid: int | None,
                              renew_slice: deque | None, rate: float | None = None) -> dict:
    """A phase with its ``conc`` clients spread over ``procs`` client processes (each
    its own engine and event loop, as API worker processes would be). The pool of
    copies and the renewals are split between them; what they leave is merged back."""
    n = min(procs, conc)
    shares = [conc // n + (1 if i < conc % n else 0) for i in range(n)]
    counts = split_clients(conc, a.mix) if phase == "mix" else None
    per_proc = split_over_processes(counts, n) if counts else [None] * n
    ops = max_ops(phase, a, rate)
    pool = list(data.pool)
    cat = Catalog(data.cat.systems, [], [], data.cat.title_names, {})
    now = time.time()
    start_at = now + 1.0 + 0.02 * conc            # after the children opened their connections
    jobs = []
    for i in range(n):
        part = PhaseData(cat, deque(pool[i::n]), data.place_titles, data.hot_titles, [], dict(data.request_cards), {})
        if renew_slice is None:
            renew = None
        elif phase == "mix":                   # in proportion to the renewing clients of each process
            renew = split_loans(list(renew_slice), [c["renew"] for c in per_proc])[i]
        else:
            renew = list(renew_slice)[i::n]
        jobs.append({"a": a, "data": part, "url": url, "clients": shares[i], "profiles": circ.profiles,
                     "clock_at": circ.clock.now(), "sent_at": now, "seconds": a.seconds,
                     "max_ops": ops // n + (1 if i < ops % n else 0), "sequential": conc == 1,
                     "renew": renew, "seed": rng.random(), "part": (i, n), "phase": phase,
                     "start_at": start_at, "rate": rate, "mix_counts": per_proc[i], "total_clients": conc})
    load = os.getloadavg()[0]
    cpu_s0 = procmon.tree_cpu_s(server_pid) if server_pid else None
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(*(loop.run_in_executor(executor, child_phase, j) for j in jobs))
    run = Run(a.seconds, ops, sequential=conc == 1)
    run.grouped = phase == "mix"
    data.pool = deque(x for r in results for x in r["pool"])
    if renew_slice is not None and phase in ("renew", "mix"):
        renew_slice.clear()                   # each level has its own loans; the rest are not reused
    for r in results:
        data.request_cards.update(r["request_cards"])
        for k, xs in r["lat"].items():
            run.lat[k].extend(xs)
        for k, c in r["refusals"].items():
            run.refusals[k].update(c)
        run.errors.update(r["errors"])
        run.error_samples.extend(r["error_samples"][: max(0, 10 - len(run.error_samples))])
        run.routing.update(r["routing"])
        run.notes.update(r["notes"])
        run.kind_sql.update(r["kind_sql"])
        run.kind_cpu.update(r["kind_cpu"])
        for k, xs in r.get("service", {}).items():
            run.service[k].extend(xs)
        run.late += r.get("late", 0)
        run.late_max_ms = max(run.late_max_ms, r.get("late_max_ms", 0.0))
        run.not_sent += r.get("not_sent", 0)
    run.bounded_by = ",".join(sorted({r["bounded_by"] for r in results}))
    wall = max(r["wall"] for r in results)
    out = run.summary(wall)
    nops = out["ops"]
    stmts, cpu_c = sum(r["statements"] for r in results), sum(r["cpu_s"] for r in results)
    out["sql_statements_per_op"] = round(stmts / nops, 1) if nops else None
    out["client_cpu_s"] = round(cpu_c, 3)
    out["client_cpu_ms_per_op"] = round(1000 * cpu_c / nops, 3) if nops else None
    if server_pid:
        cpu_srv = procmon.tree_cpu_s(server_pid) - cpu_s0
        out["server_cpu_s"] = round(cpu_srv, 3)
        out["server_cpu_ms_per_op"] = round(1000 * cpu_srv / nops, 3) if nops else None
        out["server_cpu_note"] = "includes opening the client processes' connections"
    out["loadavg_before"] = round(load, 2)
    out["concurrency"] = conc
    out["processes"] = n
    if phase == "mix" or a.rate:
        mode_fields(out, phase, a, rate, counts)
    return out


def phase_line(label: str, r: dict) -> str:
    def f(v, fmt="{:.2f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"
    procs = f" x{r['processes']}p" if r.get("processes", 1) > 1 else ""
    if r.get("mode", "closed") != "closed":
        procs += f" {r['mode']}"
    return (f"  {label:<18s} c{r['concurrency']:<3d}{procs} ops={r['ops']:<6d} {f(r['ops_per_s'], '{:.1f}')}/s "
            f"p50={f(r['p50_ms'])}ms p99={f(r['p99_ms'])}ms errors={r['errors']} refusals={r['refusals']} "
            f"server CPU {f(r.get('server_cpu_ms_per_op'))}ms/op client CPU {f(r.get('client_cpu_ms_per_op'))}ms/op "
            f"({r['bounded_by']}; load avg before {r['loadavg_before']})")
