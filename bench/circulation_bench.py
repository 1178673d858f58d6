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
   (pool large enough for the largest concurrency), bounded by ``--seconds`` and
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
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))
sys.path.insert(2, str(REPO / "tools"))

from sqlalchemy import func, insert, or_, select, text  # noqa: E402

import postgres_node  # noqa: E402
import procmon  # noqa: E402
import run_bench as rb  # noqa: E402
from circulation import holds, loans  # noqa: E402
from circulation import routing as rt  # noqa: E402
from circulation import schema as s  # noqa: E402
from circulation.jobs import JOBS, run_job  # noqa: E402
from circulation.notices import DispatchCounts, dispatch_due  # noqa: E402
from circulation.service import Circulation  # noqa: E402
from circulation.store import LIVE_REQUEST_STATES, Clock, Database, install_network  # noqa: E402
from lifecycle import policies  # noqa: E402
from lifecycle.profiles import Profile, load_all  # noqa: E402

# A Friday morning (the profiles' calendars: Hiroshima's branches close on Mondays).
PHASE_START = datetime(2026, 11, 20, 10, 0)
# The nightly jobs run on the night to Saturday.
NIGHT = datetime(2026, 11, 21, 3, 0)
PHASES = ("place", "checkout", "renew")
PHASE_LABEL = {"place": "place", "checkout": "checkout+checkin", "renew": "renew"}
CHUNK = 5000
PARTNERS = {"hiroshima-u": "広島大学図書館", "shudo-u": "広島修道大学図書館"}

SYSTEM_DEFAULTS = {
    # home municipality, card/barcode prefix, contact methods (as the profile offers them)
    "hiroshima": ("広島市", "H", (("email", 0.75), ("phone", 0.25))),
    "iizuka": ("飯塚市", "I", (("email", 0.80), ("none", 0.20))),
    "komae": ("狛江市", "K", (("email", 0.60), ("phone", 0.15), ("none", 0.25))),
}

STARTED = procmon.Registry()   # PIDs started here and not yet reaped (the PostgreSQL server)
STOPPING: list[bool] = []      # SIGTERM/Ctrl-C seen: start no new operation
STATEMENTS = [0]               # SQL statements sent (engine event), for statements per operation
TRACE: list = []               # [remaining ops to trace per kind, {kind: count}, current list] (--trace-sql)
GRACE_S = 5.0                  # then the main task is cancelled


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def say(msg: str) -> None:
    print(msg, flush=True)


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


# ---------------------------------------------------------------- catalogue (in memory)

@dataclass
class Patron:
    id: int
    card: str
    system: str
    pickup: str
    contact: str


@dataclass
class System:
    code: str
    profile: Profile
    home: str
    prefix: str
    contacts: tuple
    lending: list[str]                 # branches that own and lend copies
    pickup: list[str]                  # pickup points
    patrons: list[Patron] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)          # most popular first
    copies: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class Catalog:
    systems: dict[str, System]
    patron_rows: list[dict]
    item_rows: list[dict]
    title_names: dict[str, str]
    patrons_by_id: dict[int, Patron]


def parse_shares(spec: str, profiles: dict[str, Profile]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in spec.split(","):
        code, _, share = part.partition("=")
        code = code.strip()
        if code not in profiles or code not in SYSTEM_DEFAULTS:
            raise ValueError(f"unknown system {code!r} (known: {', '.join(SYSTEM_DEFAULTS)})")
        out[code] = float(share) if share else 1.0
    total = sum(out.values())
    return {k: v / total for k, v in out.items()}


def _split(n: int, shares: dict[str, float]) -> dict[str, int]:
    counts = {k: int(n * v) for k, v in shares.items()}
    first = next(iter(counts))
    counts[first] += n - sum(counts.values())
    return counts


def make_catalog(rng: random.Random, profiles: dict[str, Profile], shares: dict[str, float],
                 n_patrons: int, n_titles: int, n_items: int, created: datetime) -> Catalog:
    """Patrons, titles and copies of the systems as rows (ids explicit, from 1)."""
    systems: dict[str, System] = {}
    patron_rows, item_rows = [], []
    names: dict[str, str] = {}
    by_id: dict[int, Patron] = {}
    np_, nt, ni = _split(n_patrons, shares), _split(n_titles, shares), _split(n_items, shares)
    pid = iid = 0
    for code in shares:
        prof = profiles[code]
        home, prefix, contacts = SYSTEM_DEFAULTS[code]
        lending = [b for b, bc in prof.branches.items() if bc.branch.kind != "mobile"]
        pickup = [b for b, bc in prof.branches.items() if bc.branch.pickup and bc.branch.kind != "mobile"]
        sy = System(code, prof, home, prefix, contacts, lending, pickup)
        systems[code] = sy
        methods, weights = zip(*contacts)
        for i in range(np_[code]):
            pid += 1
            card = f"{prefix}{i + 1:08d}"
            contact = rng.choices(methods, weights)[0]
            p = Patron(pid, card, code, rng.choice(pickup), contact)
            sy.patrons.append(p)
            by_id[pid] = p
            patron_rows.append(dict(
                id=pid, card_number=card, library=code, name=f"利用者{i + 1}", home_municipality=home,
                work_or_school_municipality=None, category="individual",
                email=f"{card.lower()}@example.jp", phone=f"082-000-{i % 10000:04d}", fax=None,
                locale="en" if rng.random() < 0.1 else "ja", default_pickup_branch=p.pickup,
                default_contact_method=contact, password_hash=None, password_set_at=None,
                history_opt_in=rng.random() < 0.1, reading_goal=None, new_book_alerts=False,
                created_at=created))
        titles = [f"{code}-{j + 1:06d}" for j in range(nt[code])]
        sy.titles = titles
        for j, t in enumerate(titles):
            names[t] = f"ベンチマーク資料 {code} {j + 1}"
        # one copy each, the rest to popular titles (weight 1/(rank+1)^0.6)
        per_title = [1] * len(titles)
        extra = max(0, ni[code] - len(titles))
        if extra:
            weights = [1 / (r + 1) ** 0.6 for r in range(len(titles))]
            for r in rng.choices(range(len(titles)), weights, k=extra):
                per_title[r] += 1
        n = 0
        for t, k in zip(titles, per_title):
            sy.copies[t] = []
            for _ in range(k):
                iid += 1
                n += 1
                br = rng.choice(lending)
                row = dict(id=iid, barcode=f"{prefix}-{n:08d}", title_id=t, library=code,
                           owning_branch=br, current_branch=br, location="一般", call_number=f"913.6/B{n}",
                           material_type="book", circulating=True, newest_issue=False,
                           lending_release=None, partner=None, ill=False, status="available",
                           updated_at=created)
                sy.copies[t].append(row)
                item_rows.append(row)
    return Catalog(systems, patron_rows, item_rows, names, by_id)


# ---------------------------------------------------------------- bulk loading

class Ids:
    """Explicit primary keys for bulk rows (sequences are reset afterwards)."""

    def __init__(self):
        self.n: Counter[str] = Counter()

    def next(self, table: str) -> int:
        self.n[table] += 1
        return self.n[table]


REQ_KEYS = ("id", "patron_id", "library", "title_id", "kind", "material_type", "pickup_branch",
            "contact_method", "channel", "state", "placed_at", "item_id", "submitted_at_branch",
            "publication_date", "ready_at", "contacted_at", "shelf_deadline", "cancelled_at",
            "cancel_reason", "cancel_channel", "title", "updated_at")
EVENT_KEYS = ("id", "at", "request_id", "loan_id", "item_id", "event", "from_state", "to_state",
              "actor_role", "actor", "channel", "branch", "reason")
LOAN_KEYS = ("id", "item_id", "patron_id", "request_id", "branch", "channel", "lent_at", "due",
             "renewals", "renewed_via", "state", "returned_at", "return_branch", "return_kind")
NOTICE_KEYS = ("id", "dedupe_key", "kind", "patron_id", "request_id", "loan_id", "data", "status",
               "attempts", "next_attempt_at", "claimed_until", "last_error", "message_id",
               "created_at", "sent_at")
TRANSIT_KEYS = ("id", "item_id", "request_id", "from_branch", "to_branch", "reason", "sent_at",
                "arrived_at")


def _row(keys, **kw) -> dict:
    d = dict.fromkeys(keys)
    d.update(kw)
    return d


async def bulk_insert(db: Database, table, rows: list[dict]) -> None:
    for i in range(0, len(rows), CHUNK):
        async with db.transaction() as conn:
            await conn.execute(insert(table), rows[i:i + CHUNK])


async def finish_load(db: Database) -> None:
    """Sequences after explicit ids; planner statistics."""
    async with db.transaction() as conn:
        if not db.is_sqlite:
            for t in s.metadata.sorted_tables:
                if "id" in t.c and t.c.id.primary_key:
                    await conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                        f"COALESCE((SELECT max(id) FROM {t.name}), 0) + 1, false)"))
        await conn.exec_driver_sql("ANALYZE")


async def install_base(db: Database, circ: Circulation, cat: Catalog) -> None:
    await db.create_all()
    async with db.transaction() as conn:
        await install_network(conn, circ.profiles, partners=PARTNERS)
    # a public holiday and the new-year closure at every branch
    cal = []
    for sy in cat.systems.values():
        for b in sy.profile.branches:
            cal.append(dict(branch=b, day=date(2026, 11, 23), kind="holiday", title="勤労感謝の日"))
            for d in range(6):
                cal.append(dict(branch=b, day=date(2026, 12, 29) + timedelta(days=d), kind="closed",
                                title="年末年始"))
    await bulk_insert(db, s.calendar_entries, cal)
    await bulk_insert(db, s.patrons, cat.patron_rows)


# ---------------------------------------------------------------- the phase database

@dataclass
class PhaseData:
    cat: Catalog
    pool: deque                                  # available copies: item row dicts
    place_titles: dict[str, list[str]]           # per system
    hot_titles: dict[str, list[str]]
    renew_loans: list[tuple[int, str]]           # (loan id, card)
    request_cards: dict[int, str]                # request id -> patron card
    counts: dict


def build_phase_data(rng: random.Random, cat: Catalog, *, renew_loans: int, queued_share: float,
                     hot_fraction: float, start: datetime, ids: Ids):
    """Decide the state of the phase database; returns (PhaseData, rows per table)."""
    requests, events, loans_rows, tq = [], [], [], []
    place_titles, hot_titles = {}, {}
    pool: list[dict] = []
    renew: list[tuple[int, str]] = []
    cards: dict[int, str] = {}
    total_items = sum(len(c) for sy in cat.systems.values() for c in sy.copies.values())
    for sy in cat.systems.values():
        n_hot = max(1, int(len(sy.titles) * hot_fraction))
        hot = sy.titles[:n_hot]
        # renew titles: from the less popular ones, all copies on loan
        want = round(renew_loans * sum(len(c) for c in sy.copies.values()) / max(1, total_items))
        tail = sy.titles[n_hot:]
        order = list(range(len(tail)))
        rng.shuffle(order)
        renew_titles, got = set(), 0
        for k in order:
            if got >= want:
                break
            renew_titles.add(tail[k])
            got += len(sy.copies[tail[k]])
        circ_titles = [t for t in sy.titles if t not in renew_titles]
        place_titles[sy.code] = circ_titles
        hot_titles[sy.code] = hot
        # loans to renew: lent 8 days ago, patrons round-robin
        lent = start - timedelta(days=8)
        order_p = list(sy.patrons)
        rng.shuffle(order_p)
        k = 0
        for t in sorted(renew_titles):
            for it in sy.copies[t]:
                p = order_p[k % len(order_p)]
                k += 1
                lid = ids.next("loans")
                it.update(status="on_loan", current_branch=it["owning_branch"])
                loans_rows.append(_row(LOAN_KEYS, id=lid, item_id=it["id"], patron_id=p.id,
                                       branch=it["owning_branch"], channel="counter", lent_at=lent,
                                       due=lent.date() + timedelta(days=14), renewals=0, state="ON_LOAN"))
                events.append(_row(EVENT_KEYS, id=ids.next("events"), at=lent, loan_id=lid,
                                   item_id=it["id"], event="CHECK_OUT", to_state="ON_LOAN",
                                   actor_role="staff", actor="bulk", channel="counter",
                                   branch=it["owning_branch"], reason="bulk load"))
                renew.append((lid, p.card))
        # holds already queued on a share of the circulating titles
        for t in circ_titles:
            pool.extend(sy.copies[t])
            if rng.random() >= queued_share:
                continue
            tq.append(dict(title_id=t, title=cat.title_names[t]))
            for _ in range(rng.randint(1, 4)):
                p = rng.choice(sy.patrons)
                at = start - timedelta(days=rng.uniform(1, 60))
                rid = ids.next("requests")
                cards[rid] = p.card
                requests.append(_row(REQ_KEYS, id=rid, patron_id=p.id, library=sy.code, title_id=t,
                                     kind="reservation", material_type="book", pickup_branch=p.pickup,
                                     contact_method=p.contact, channel="web", state="QUEUED",
                                     placed_at=at, title=cat.title_names[t], updated_at=at))
                events.append(_row(EVENT_KEYS, id=ids.next("events"), at=at, request_id=rid,
                                   event="PLACE", to_state="NEW", actor_role="patron", actor=p.card,
                                   channel="web", branch=p.pickup, reason="reservation"))
    rng.shuffle(pool)
    rng.shuffle(renew)
    data = PhaseData(cat, deque(pool), place_titles, hot_titles, renew, cards,
                     {"patrons": len(cat.patron_rows), "titles": len(cat.title_names),
                      "items": len(cat.item_rows), "queued_requests": len(requests),
                      "titles_with_queue": len(tq), "loans_to_renew": len(renew),
                      "pool_items": len(pool)})
    return data, {"requests": requests, "events": events, "loans": loans_rows, "title_queues": tq}


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

    def begin(self) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def take(self) -> bool:
        if STOPPING:
            self.bounded_by = "interrupted"
            return False
        if self.started >= self.max_ops:
            self.bounded_by = "ops"
            return False
        if time.perf_counter() >= self.deadline:
            self.bounded_by = "seconds"
            return False
        self.started += 1
        return True

    async def op(self, kind: str, call, refused=None):
        """Run one operation; time it; count a refusal or an exception. Returns the
        result, or None after an exception. ``refused(result)`` tells a refusal
        (default: the result's decision is not allowed)."""
        s0, c0 = STATEMENTS[0], time.process_time()
        tracing = self.sequential and TRACE and TRACE[1][kind] < TRACE[0]
        if tracing:
            TRACE[1][kind] += 1
            TRACE[2] = []
        t0 = time.perf_counter()
        try:
            res = await call()
        except Exception as e:  # noqa: BLE001 -- an error is a finding: counted and kept
            self.lat[kind].append((time.perf_counter() - t0) * 1000)
            self._attribute(kind, s0, c0, tracing)
            key = f"{kind}: {type(e).__name__}"
            self.errors[key] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append({"op": kind, "error": f"{type(e).__name__}: {e}"[:1000],
                                           "traceback": traceback.format_exc()[-6000:]})
            return None
        self.lat[kind].append((time.perf_counter() - t0) * 1000)
        self._attribute(kind, s0, c0, tracing)
        d = getattr(res, "decision", None)
        if d is not None and (refused(res) if refused is not None else not d.allowed):
            self.refusals[kind][d.code] += 1
        return res

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
               "bounded_by": self.bounded_by, "per_op": {}}
        for kind, xs in self.lat.items():
            xs = sorted(xs)
            out["per_op"][kind] = {"ops": len(xs), "ops_per_s": round(len(xs) / wall, 1) if wall else None,
                                   "p50_ms": _r(pct(xs, 0.50)), "p99_ms": _r(pct(xs, 0.99)),
                                   "mean_ms": _r(sum(xs) / len(xs)),
                                   "refusals": dict(self.refusals.get(kind, {}))}
            if self.sequential and xs:
                out["per_op"][kind]["sql_statements_per_op"] = round(self.kind_sql[kind] / len(xs), 1)
                out["per_op"][kind]["client_cpu_ms_per_op"] = round(1000 * self.kind_cpu[kind] / len(xs), 3)
        if self.routing:
            out["routing"] = dict(self.routing)
        if self.notes:
            out["notes"] = dict(self.notes)
        if self.error_samples:
            out["error_samples"] = self.error_samples
        return out


def _r(x, nd=2):
    return None if x is None else round(x, nd)


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


def make_clients(phase: str, conc: int, circ: Circulation, run: Run, data: PhaseData, a, rng: random.Random,
                 renew_slice: deque | None, part: tuple[int, int] = (0, 1)) -> list:
    """The ``conc`` client coroutines of a phase; ``part`` (i, n): this process's share
    of the patrons when n processes run the phase (disjoint slices)."""
    i, n = part
    if phase == "place":
        everyone = [p for sy in data.cat.systems.values() for p in sy.patrons]
        rng.shuffle(everyone)
        rotor = Rotor(everyone[i::n])
        return [place_worker(circ, run, data, rotor, random.Random(rng.random()), a.hot_share)
                for _ in range(conc)]
    if phase == "checkout":
        borrowers = {}
        for code, sy in data.cat.systems.items():
            ps = list(sy.patrons)
            rng.shuffle(ps)
            borrowers[code] = Rotor(ps[i::n] or ps)
        return [checkout_worker(circ, run, data, borrowers, random.Random(rng.random()), a.other_branch)
                for _ in range(conc)]
    return [renew_worker(circ, run, renew_slice) for _ in range(conc)]


async def run_phase(phase: str, conc: int, circ: Circulation, data: PhaseData, a, rng: random.Random,
                    server_pid: int | None, renew_slice: deque | None) -> dict:
    run = Run(a.seconds, a.ops, sequential=conc == 1)
    load = os.getloadavg()[0]
    stmts0 = STATEMENTS[0]
    cpu_s0 = procmon.tree_cpu_s(server_pid) if server_pid else None
    cpu_c0 = time.process_time()
    workers = make_clients(phase, conc, circ, run, data, a, rng, renew_slice)
    t0 = time.perf_counter()
    run.begin()
    await asyncio.gather(*workers)
    wall = time.perf_counter() - t0
    out = run.summary(wall)
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
                               renew, part=job["part"])
        await asyncio.sleep(max(0.0, job["start_at"] - time.time()))
        s0, c0, t0 = STATEMENTS[0], time.process_time(), time.perf_counter()
        run.begin()
        await asyncio.gather(*clients)
        wall = time.perf_counter() - t0
        return {"lat": dict(run.lat), "refusals": {k: dict(v) for k, v in run.refusals.items()},
                "errors": dict(run.errors), "error_samples": run.error_samples, "routing": dict(run.routing),
                "notes": dict(run.notes), "kind_sql": dict(run.kind_sql), "kind_cpu": dict(run.kind_cpu),
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
                              renew_slice: deque | None) -> dict:
    """A phase with its ``conc`` clients spread over ``procs`` client processes (each
    its own engine and event loop, as API worker processes would be). The pool of
    copies and the renewals are split between them; what they leave is merged back."""
    n = min(procs, conc)
    shares = [conc // n + (1 if i < conc % n else 0) for i in range(n)]
    pool = list(data.pool)
    cat = Catalog(data.cat.systems, [], [], data.cat.title_names, {})
    now = time.time()
    start_at = now + 1.0 + 0.02 * conc            # after the children opened their connections
    jobs = []
    for i in range(n):
        part = PhaseData(cat, deque(pool[i::n]), data.place_titles, data.hot_titles, [], dict(data.request_cards), {})
        renew = list(renew_slice)[i::n] if renew_slice is not None else None
        jobs.append({"a": a, "data": part, "url": url, "clients": shares[i], "profiles": circ.profiles,
                     "clock_at": circ.clock.now(), "sent_at": now, "seconds": a.seconds,
                     "max_ops": a.ops // n + (1 if i < a.ops % n else 0), "sequential": conc == 1,
                     "renew": renew, "seed": rng.random(), "part": (i, n), "phase": phase,
                     "start_at": start_at})
    load = os.getloadavg()[0]
    cpu_s0 = procmon.tree_cpu_s(server_pid) if server_pid else None
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(*(loop.run_in_executor(executor, child_phase, j) for j in jobs))
    run = Run(a.seconds, a.ops, sequential=conc == 1)
    data.pool = deque(x for r in results for x in r["pool"])
    if renew_slice is not None and phase == "renew":
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
    return out


def phase_line(label: str, r: dict) -> str:
    def f(v, fmt="{:.2f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"
    procs = f" x{r['processes']}p" if r.get("processes", 1) > 1 else ""
    return (f"  {label:<18s} c{r['concurrency']:<3d}{procs} ops={r['ops']:<6d} {f(r['ops_per_s'], '{:.1f}')}/s "
            f"p50={f(r['p50_ms'])}ms p99={f(r['p99_ms'])}ms errors={r['errors']} refusals={r['refusals']} "
            f"server CPU {f(r.get('server_cpu_ms_per_op'))}ms/op client CPU {f(r.get('client_cpu_ms_per_op'))}ms/op "
            f"({r['bounded_by']}; load avg before {r['loadavg_before']})")


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


# ---------------------------------------------------------------- the nightly database

NIGHTLY_MIX = (   # share of --requests
    ("QUEUED", 0.40), ("SUSPENDED", 0.02), ("PURCHASE_REVIEW", 0.02), ("IN_TRANSIT", 0.03),
    ("ON_HOLD_SHELF", 0.08), ("ON_LOAN", 0.10), ("COMPLETED", 0.15),
    ("CANCELLED_OLD", 0.09), ("CANCELLED_NEW", 0.05), ("SHELF_EXPIRED_OLD", 0.04),
    ("SHELF_EXPIRED_NEW", 0.02),
)
WALK_IN_LOANS = 0.15            # loans without a request, share of --requests
SHELF_PAST_DEADLINE = 0.40      # of ON_HOLD_SHELF
LOAN_OVERDUE_ALREADY = 0.15     # of loans past due: marked OVERDUE by an earlier night
KOMAE_REVIEW_SHARE = 0.70       # of PURCHASE_REVIEW (the rest: Hiroshima, which never lapses)
LIVE_STATES = ("QUEUED", "SUSPENDED", "PURCHASE_REVIEW", "IN_TRANSIT", "ON_HOLD_SHELF")
LAST_EVENT = {"QUEUED": ("VALIDATED", "ENQUEUE"), "SUSPENDED": ("QUEUED", "SUSPEND"),
              "PURCHASE_REVIEW": ("VALIDATED", "SEND_TO_PURCHASE_REVIEW"),
              "IN_TRANSIT": ("QUEUED", "TRAP_ELSEWHERE"), "ON_HOLD_SHELF": ("QUEUED", "TRAP_AT_PICKUP"),
              "ON_LOAN": ("ON_HOLD_SHELF", "CHECK_OUT"), "OVERDUE": ("ON_LOAN", "DUE_DATE_PASSED"),
              "COMPLETED": ("RETURNED", "CLOSE"), "CANCELLED": ("QUEUED", "CANCEL"),
              "SHELF_EXPIRED": ("ON_HOLD_SHELF", "SHELF_EXPIRE")}


def nightly_items_needed(n_requests: int) -> int:
    share = dict(NIGHTLY_MIX)
    return int(n_requests * (share["IN_TRANSIT"] + share["ON_HOLD_SHELF"] + share["ON_LOAN"]
                             + WALK_IN_LOANS))


async def build_nightly(db: Database, circ: Circulation, cat: Catalog, rng: random.Random,
                        n_requests: int, now: datetime) -> dict:
    """Insert the nightly state (the catalogue's patrons and items are inserted here
    too, with the statuses the requests and loans give them)."""
    ids = Ids()
    today = now.date()
    requests, events, notices_rows, loans_rows, transits = [], [], [], [], []
    tq_titles: set[str] = set()
    free = {}
    for code, sy in cat.systems.items():
        its = [it for c in sy.copies.values() for it in c]
        rng.shuffle(its)
        free[code] = its
    everyone = [p for sy in cat.systems.values() for p in sy.patrons]
    hot = {code: sy.titles[:max(1, len(sy.titles) // 200)] for code, sy in cat.systems.items()}
    calendars: dict[str, object] = {}
    async with db.read() as conn:
        for sy in cat.systems.values():
            for b in sy.pickup:
                calendars[b] = await circ.calendar(conn, b)

    # the profiles' limits hold in the built state too: live requests per patron
    # (placing.total_limit, placing.limits['book'] for reservations) and open loans
    live: Counter[int] = Counter()
    live_res: Counter[int] = Counter()
    open_loans: Counter[int] = Counter()

    def has_room(p: Patron, *, request: bool = False, loan: bool = False) -> bool:
        prof = cat.systems[p.system].profile
        if request:
            if prof.placing.total_limit is not None and live[p.id] >= prof.placing.total_limit:
                return False
            book = prof.placing.limits.get("book")
            if book is not None and live_res[p.id] >= book:
                return False
        if loan:
            rule = prof.loans.get("individual")
            if rule is not None and rule.limit is not None and open_loans[p.id] >= rule.limit:
                return False
        return True

    def pick(pool: list[Patron], **need) -> Patron:
        for _ in range(200):
            p = rng.choice(pool)
            if has_room(p, **need):
                return p
        counts["patron_over_limit_fallback"] += 1
        return rng.choice(pool)

    def days_ago(lo: float, hi: float) -> datetime:
        return (now - timedelta(days=rng.uniform(lo, hi))).replace(microsecond=0)

    def title_for(sy: System) -> str:
        return rng.choice(hot[sy.code]) if rng.random() < 0.3 else rng.choice(sy.titles)

    def take_item(sy: System):
        return free[sy.code].pop() if free[sy.code] else None

    def add_request(p: Patron, state: str, *, title_id: str, placed: datetime, updated: datetime,
                    **kw) -> int:
        rid = ids.next("requests")
        kind = kw.pop("kind", "reservation")
        name = cat.title_names.get(title_id, f"リクエスト資料 {title_id}")
        requests.append(_row(REQ_KEYS, id=rid, patron_id=p.id, library=p.system, title_id=title_id,
                             kind=kind, material_type="book",
                             pickup_branch=kw.pop("pickup", p.pickup), contact_method=p.contact,
                             channel=kw.pop("channel", "web"), state=state, placed_at=placed,
                             title=name, updated_at=updated, **kw))
        if kind == "reservation":
            tq_titles.add(title_id)
        if state in LIVE_STATES:
            live[p.id] += 1
            live_res[p.id] += kind == "reservation"
        events.append(_row(EVENT_KEYS, id=ids.next("events"), at=placed, request_id=rid, event="PLACE",
                           to_state="NEW", actor_role="patron", actor=p.card, channel="web",
                           branch=p.pickup, reason=kind))
        frm, ev = LAST_EVENT.get(state, ("VALIDATED", "ENQUEUE"))
        events.append(_row(EVENT_KEYS, id=ids.next("events"), at=updated, request_id=rid, event=ev,
                           from_state=frm, to_state=state, actor_role="system", actor="bulk",
                           item_id=kw.get("item_id"), branch=p.pickup, reason="bulk load"))
        notices_rows.append(_row(NOTICE_KEYS, id=ids.next("notices"), dedupe_key=f"hold_received:{rid}",
                                 kind="hold_received", patron_id=p.id, request_id=rid,
                                 data=json.dumps({"title": name}, ensure_ascii=False),
                                 status="sent" if p.contact != "none" else "suppressed", attempts=1,
                                 next_attempt_at=placed, created_at=placed,
                                 sent_at=placed if p.contact != "none" else None,
                                 message_id=f"<notice-{rid}@bench.invalid>"))
        return rid

    def add_loan(p: Patron, it: dict, branch: str, lent: datetime, request_id: int | None,
                 *, returned: datetime | None = None) -> str:
        due = lent.date() + timedelta(days=14)
        state = "ON_LOAN"
        if returned is not None:
            state = "RETURNED"
        elif due < today and rng.random() < LOAN_OVERDUE_ALREADY:
            state = "OVERDUE"
        lid = ids.next("loans")
        loans_rows.append(_row(LOAN_KEYS, id=lid, item_id=it["id"], patron_id=p.id, request_id=request_id,
                               branch=branch, channel="counter", lent_at=lent, due=due, renewals=0,
                               state=state, returned_at=returned,
                               return_branch=branch if returned else None,
                               return_kind="counter" if returned else None))
        events.append(_row(EVENT_KEYS, id=ids.next("events"), at=lent, loan_id=lid, item_id=it["id"],
                           request_id=request_id, event="CHECK_OUT", to_state="ON_LOAN",
                           actor_role="staff", actor="bulk", channel="counter", branch=branch,
                           reason=f"due {due.isoformat()}"))
        if returned is None:
            it.update(status="on_loan", current_branch=branch)
            open_loans[p.id] += 1
        return state

    mix = {k: int(n_requests * v) for k, v in NIGHTLY_MIX}
    mix["QUEUED"] += n_requests - sum(mix.values())
    counts: Counter[str] = Counter()
    for kind, n in mix.items():
        for _ in range(n):
            p = pick(everyone, request=kind in LIVE_STATES, loan=kind == "ON_LOAN")
            sy = cat.systems[p.system]
            if kind in ("QUEUED", "SUSPENDED"):
                at = days_ago(0.5, 120)
                add_request(p, kind, title_id=title_for(sy), placed=at, updated=at)
            elif kind == "PURCHASE_REVIEW":
                want = "komae" if rng.random() < KOMAE_REVIEW_SHARE else "hiroshima"
                if want in cat.systems:
                    sy = cat.systems[want]
                    p = pick(sy.patrons, request=True)
                u = rng.random()
                if sy.code == "komae" and u < 0.6:          # unpublished past the 30-day wait
                    at, pub = days_ago(31, 90), rng.choice([None, today + timedelta(days=rng.randint(1, 60))])
                elif u < 0.75:                               # published meanwhile
                    at, pub = days_ago(31, 90), today - timedelta(days=rng.randint(1, 20))
                else:                                         # recent
                    at, pub = days_ago(0.5, 29), None
                counts["review_titles"] += 1
                add_request(p, "PURCHASE_REVIEW", title_id=f"{sy.code}-req-{counts['review_titles']:06d}",
                            placed=at,
                            updated=at, kind="request", channel="counter", submitted_at_branch=p.pickup,
                            publication_date=pub)
            elif kind == "IN_TRANSIT":
                it = take_item(sy)
                others = [b for b in sy.pickup if b != it["owning_branch"]] if it else []
                if not others:
                    at = days_ago(0.5, 120)
                    add_request(p, "QUEUED", title_id=title_for(sy), placed=at, updated=at)
                    if it:
                        free[sy.code].append(it)
                    continue
                to = rng.choice(others)
                sent = days_ago(0, 2)
                placed = sent - timedelta(days=rng.uniform(1, 60))
                rid = add_request(p, "IN_TRANSIT", title_id=it["title_id"], placed=placed, updated=sent,
                                  pickup=to, item_id=it["id"])
                it.update(status="in_transit", current_branch=it["owning_branch"])
                transits.append(_row(TRANSIT_KEYS, id=ids.next("transits"), item_id=it["id"],
                                     request_id=rid, from_branch=it["owning_branch"], to_branch=to,
                                     reason="hold", sent_at=sent))
            elif kind == "ON_HOLD_SHELF":
                it = take_item(sy)
                if it is None:
                    at = days_ago(0.5, 120)
                    add_request(p, "QUEUED", title_id=title_for(sy), placed=at, updated=at)
                    continue
                expired = rng.random() < SHELF_PAST_DEADLINE
                ready = days_ago(13, 25) if expired else days_ago(0, 4)
                contacted = ready if p.contact != "none" else None
                deadline = policies.shelf_deadline(sy.profile, calendars[p.pickup], ready, contacted)
                counts["shelf_past_deadline_built"] += deadline < today
                rid = add_request(p, "ON_HOLD_SHELF", title_id=it["title_id"],
                                  placed=ready - timedelta(days=rng.uniform(1, 60)), updated=ready,
                                  item_id=it["id"], ready_at=ready, contacted_at=contacted,
                                  shelf_deadline=deadline)
                it.update(status="on_hold_shelf", current_branch=p.pickup)
                notices_rows.append(_row(NOTICE_KEYS, id=ids.next("notices"), dedupe_key=f"hold_ready:{rid}",
                                         kind="hold_ready", patron_id=p.id, request_id=rid, data="{}",
                                         status="sent" if contacted else "suppressed", attempts=1,
                                         next_attempt_at=ready, created_at=ready,
                                         sent_at=ready if contacted else None))
            elif kind == "ON_LOAN":
                it = take_item(sy)
                if it is None:
                    at = days_ago(0.5, 120)
                    add_request(p, "QUEUED", title_id=title_for(sy), placed=at, updated=at)
                    continue
                lent = days_ago(1, 20)
                rid = add_request(p, "ON_LOAN", title_id=it["title_id"],
                                  placed=lent - timedelta(days=rng.uniform(2, 60)), updated=lent,
                                  item_id=it["id"])
                if add_loan(p, it, p.pickup, lent, rid) == "OVERDUE":
                    requests[-1]["state"] = "OVERDUE"
            elif kind == "COMPLETED":
                t = title_for(sy)
                it = rng.choice(sy.copies[t])
                lent = days_ago(35, 365)
                back = lent + timedelta(days=rng.uniform(1, 20))
                rid = add_request(p, "COMPLETED", title_id=t, placed=lent - timedelta(days=rng.uniform(2, 60)),
                                  updated=back, item_id=it["id"])
                add_loan(p, it, p.pickup, lent, rid, returned=back)
            else:                                             # cancelled / shelf-expired
                state = "CANCELLED" if kind.startswith("CANCELLED") else "SHELF_EXPIRED"
                ended = days_ago(31, 120) if kind.endswith("_OLD") else days_ago(0.2, 29)
                t = title_for(sy)
                extra = {}
                if state == "SHELF_EXPIRED":
                    ready = ended - timedelta(days=9)
                    extra = dict(item_id=rng.choice(sy.copies[t])["id"], ready_at=ready,
                                 contacted_at=ready, shelf_deadline=(ended - timedelta(days=1)).date())
                rid = add_request(p, state, title_id=t, placed=ended - timedelta(days=rng.uniform(1, 60)),
                                  updated=ended, cancelled_at=ended,
                                  cancel_reason="WEBキャンセル" if state == "CANCELLED" else "取置期限切れ",
                                  cancel_channel="web" if state == "CANCELLED" else "system", **extra)
            counts[kind] += 1
    # walk-in loans (no request)
    for _ in range(int(n_requests * WALK_IN_LOANS)):
        p = pick(everyone, loan=True)
        sy = cat.systems[p.system]
        it = take_item(sy)
        if it is None:
            counts["walk_in_loans_skipped_no_copy"] += 1
            continue
        add_loan(p, it, it["owning_branch"], days_ago(1, 20), None)
        counts["WALK_IN_LOAN"] += 1

    t0 = time.perf_counter()
    await bulk_insert(db, s.items, cat.item_rows)
    await bulk_insert(db, s.title_queues, [dict(title_id=t, title=cat.title_names[t]) for t in sorted(tq_titles)])
    await bulk_insert(db, s.requests, requests)
    await bulk_insert(db, s.loans, loans_rows)
    await bulk_insert(db, s.transits, transits)
    await bulk_insert(db, s.events, events)
    await bulk_insert(db, s.notices, notices_rows)
    await finish_load(db)
    return {"built": dict(counts), "rows": {"requests": len(requests), "loans": len(loans_rows),
                                            "transits": len(transits), "events": len(events),
                                            "notices": len(notices_rows), "items": len(cat.item_rows),
                                            "patrons": len(cat.patron_rows)},
            "insert_s": round(time.perf_counter() - t0, 1)}


async def due_counts(db: Database, circ: Circulation) -> dict:
    """What each job should change, counted before it runs (Core expressions, so
    dates and times compare as the schema stores them, on SQLite too)."""
    now = circ.now()
    today = now.date()
    r, lo, n = s.requests.c, s.loans.c, s.notices.c

    async def count(*where) -> int:       # the table is that of the first condition's column
        return (await conn.execute(select(func.count()).select_from(where[0].left.table)
                                   .where(*where))).scalar_one()

    out = {}
    async with db.read() as conn:
        out["shelf_expiry"] = await count(r.state == "ON_HOLD_SHELF", r.shelf_deadline < today)
        out["overdue"] = await count(lo.state == "ON_LOAN", lo.returned_at.is_(None), lo.due < today)
        purge = lapse = 0
        for prof in circ.profiles.values():
            cutoff = now - timedelta(days=prof.cancel.visible_days)
            purge += await count(r.library == prof.system,
                                 r.state.in_(("CANCELLED", "SHELF_EXPIRED", "REJECTED")),
                                 func.coalesce(r.cancelled_at, r.updated_at) <= cutoff)
            wait = prof.placing.request_publication_wait_days
            if wait is not None:
                lapse += await count(r.library == prof.system, r.state == "PURCHASE_REVIEW",
                                     r.kind == "request", r.placed_at <= now - timedelta(days=wait),
                                     or_(r.publication_date.is_(None), r.publication_date > today))
        out["purge_cancelled"] = purge
        out["lapse_requests"] = lapse
        out["notices"] = await count(n.status == "pending", n.next_attempt_at <= now)
    return out


class Sink:
    """aiosmtpd handler: counts accepted messages."""

    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        return "250 OK"


async def nightly(db: Database, circ: Circulation, a, server_pid: int | None) -> dict:
    from aiosmtpd.controller import Controller

    from connectors.smtp import Mailer

    sink, port = Sink(), procmon.free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    out: dict = {"passes": []}
    try:
        mailer = Mailer("127.0.0.1", port, from_address="noreply@unioncat.test", starttls=False, timeout=10)
        for n_pass in (1, 2):
            due = await due_counts(db, circ)
            rows = []
            for name in JOBS:
                if name == "notices":
                    due["notices"] = (await due_counts(db, circ))["notices"]
                load = os.getloadavg()[0]
                cpu0 = procmon.tree_cpu_s(server_pid) if server_pid else None
                c0 = time.process_time()
                t0 = time.perf_counter()
                err = None
                try:
                    changed = await run_job(circ, name, mailer)
                except Exception as e:  # noqa: BLE001 -- reported
                    changed, err = None, f"{type(e).__name__}: {e}"
                    out.setdefault("error_samples", []).append(
                        {"job": name, "pass": n_pass, "traceback": traceback.format_exc()[-6000:]})
                secs = time.perf_counter() - t0
                row = {"job": name, "due": due.get(name), "changed": changed, "seconds": round(secs, 3),
                       "client_cpu_s": round(time.process_time() - c0, 3), "loadavg_before": round(load, 2)}
                if server_pid:
                    row["server_cpu_s"] = round(procmon.tree_cpu_s(server_pid) - cpu0, 3)
                if err:
                    row["error"] = err
                rows.append(row)
                say(f"  pass {n_pass} {name:<16s} due={row['due']!s:<6s} changed={changed!s:<6s} "
                    f"{secs:8.2f} s" + (f"  ERROR {err}" if err else ""))
                if name == "notices" and n_pass == 1:
                    out["notices_drain"] = await drain(circ, mailer, a.notice_seconds, server_pid)
                    d = out["notices_drain"]
                    say(f"  drain notices: sent={d['sent']} suppressed={d['suppressed']} failed={d['failed']} "
                        f"retried={d['retried']} in {d['seconds']} s = {d['per_s']}/s "
                        f"(left pending: {d['left_pending']}; {d['bounded_by']})")
            out["passes"].append(rows)
        out["smtp_messages_received"] = sink.count
    finally:
        ctl.stop()
    return out


async def drain(circ: Circulation, mailer, seconds: float, server_pid: int | None) -> dict:
    total = DispatchCounts()
    cpu0 = procmon.tree_cpu_s(server_pid) if server_pid else None
    c0 = time.process_time()
    t0 = time.perf_counter()
    bounded = "empty queue"
    while True:
        if time.perf_counter() - t0 >= seconds:
            bounded = "seconds"
            break
        got = await dispatch_due(circ, mailer, batch=100)
        total = total + got
        if got.total == 0:
            break
    secs = time.perf_counter() - t0
    async with circ.db.read() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM notices WHERE status = 'pending'"))).scalar_one()
    out = {"sent": total.sent, "suppressed": total.suppressed, "failed": total.failed,
           "retried": total.retried, "seconds": round(secs, 2),
           "per_s": round(total.total / secs, 1) if secs else None,
           "sent_per_s": round(total.sent / secs, 1) if secs else None,
           "left_pending": left, "bounded_by": bounded,
           "client_cpu_s": round(time.process_time() - c0, 2)}
    if server_pid:
        out["server_cpu_s"] = round(procmon.tree_cpu_s(server_pid) - cpu0, 2)
    return out


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
            lines.append([f"c{r['concurrency']}" + (f" x{r['processes']}p" if r.get("processes", 1) > 1 else ""),
                          r["ops"], _f(r["ops_per_s"], "{:.1f}"), _f(r["p50_ms"]),
                          _f(r["p99_ms"]), _f(r["mean_ms"]), r["errors"], r["refusals"],
                          _f(r.get("server_cpu_ms_per_op")), _f(r.get("client_cpu_ms_per_op")),
                          _f(r.get("sql_statements_per_op"), "{:.1f}"), _f(r["loadavg_before"]), r["bounded_by"]])
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
            if extras:
                parts.append(f"  c{r['concurrency']}: " + "; ".join(extras))
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


def count_statements(db: Database) -> None:
    from sqlalchemy import event

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, *_args):
        STATEMENTS[0] += 1
        if TRACE and TRACE[2] is not None:
            TRACE[2].append(statement)


async def bench(a, urls: dict[str, str], server_pid: int | None, results: dict, save) -> None:
    rng = random.Random(a.seed)
    profiles = load_all()
    shares = parse_shares(a.systems, profiles)
    pool = max(a.concurrency) + 8
    results["setup"] = {"note": "load times are recorded for reference, they are not results"}

    if a.phases:
        db = Database(urls["phases"], pool_size=pool)
        executor = None
        count_statements(db)
        circ = Circulation(db, profiles, TickingClock(PHASE_START))
        try:
            t0 = time.perf_counter()
            say(f"loading the phase database ({a.patrons} patrons, {a.titles} titles, {a.items} copies)")
            cat = make_catalog(rng, profiles, shares, a.patrons, a.titles, a.items, PHASE_START - timedelta(days=400))
            ids = Ids()
            levels = [(w, c) for w in a.workers for c in a.concurrency]
            renew_total = min(a.ops * len(levels), int(0.35 * a.items)) if "renew" in a.phases else 0
            data, rows = build_phase_data(rng, cat, renew_loans=renew_total, queued_share=a.queued_share,
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
            renew_slices = {}
            if "renew" in a.phases:
                per = len(data.renew_loans) // len(levels)
                for i, lv in enumerate(levels):
                    renew_slices[lv] = deque(data.renew_loans[i * per:(i + 1) * per])
            if max(a.workers) > 1:
                import concurrent.futures
                import multiprocessing
                executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=max(a.workers), mp_context=multiprocessing.get_context("spawn"))
                list(executor.map(_warm, range(max(a.workers))))     # started before any phase
            for phase in PHASES:
                if phase not in a.phases:
                    continue
                say(f"phase {PHASE_LABEL[phase]}")
                res = results["phases"].setdefault(phase, {})
                for w, c in levels:
                    if STOPPING:
                        raise Terminated()
                    if w == 1:
                        r = await run_phase(phase, c, circ, data, a, rng, server_pid, renew_slices.get((w, c)))
                    else:
                        r = await run_phase_processes(phase, c, w, executor, urls["phases"], circ, data, a, rng,
                                                      server_pid, renew_slices.get((w, c)))
                    res[f"c{c}" if w == 1 else f"c{c}w{w}"] = r
                    say(phase_line(PHASE_LABEL[phase], r))
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
                    help="phases to run (place,checkout,renew; '' for none)")
    ap.add_argument("--no-nightly", dest="nightly", action="store_false", help="skip the nightly jobs")
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
    ap.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--out", type=Path, default=HERE / "results-circulation.json")
    ap.add_argument("--report", type=Path, default=None, metavar="JSON", help="print saved results and exit")
    a = ap.parse_args(argv)
    if a.report:
        print(report(json.loads(a.report.read_text())))
        return 0
    if a.sqlite and a.pg_url:
        ap.error("--sqlite and --pg-url exclude each other")
    quick = dict(patrons=500, titles=2000, items=4000, seconds=3.0, ops=1500, requests=5000, notice_seconds=60.0)
    full = dict(patrons=5000, titles=20000, items=40000, seconds=20.0, ops=5000, requests=100000,
                notice_seconds=300.0)
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.concurrency = [int(x) for x in a.concurrency.split(",") if x.strip()]
    a.phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    a.workers = [int(x) for x in a.workers.split(",") if x.strip()]
    if not a.workers or min(a.workers) < 1:
        ap.error("--workers: process counts of at least 1")
    for p in a.phases:
        if p not in PHASES:
            ap.error(f"unknown phase {p!r} (phases: {', '.join(PHASES)})")
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
