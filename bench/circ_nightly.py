"""The nightly jobs of the circulation benchmark (``bench/circulation_bench.py``).

What it holds: the nightly database (:func:`build_nightly`: ``--requests`` requests
in a realistic mix with their loans, transits, audit events and sent notices, the
profiles' limits respected), the rows each job should change counted beforehand
(:func:`due_counts`), and the run of every job of ``circulation.jobs.JOBS`` twice
against a real SMTP server (:func:`nightly`, with :func:`drain` emptying the notice
queue after the first batch).

A module of the benchmark, not an entry point: ``circulation_bench.py`` puts
``bench/``, the repository and ``tools/`` on ``sys.path`` before importing it.
"""
from __future__ import annotations

import json
import os
import random
import time
import traceback
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, text

import procmon
from circ_data import (
    EVENT_KEYS,
    LOAN_KEYS,
    NOTICE_KEYS,
    REQ_KEYS,
    TRANSIT_KEYS,
    Catalog,
    Ids,
    Patron,
    System,
    _row,
    bulk_insert,
    finish_load,
    say,
)
from circulation import schema as s
from circulation.jobs import JOBS, run_job
from circulation.notices import DispatchCounts, dispatch_due
from circulation.service import Circulation
from circulation.store import Database
from lifecycle import policies

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
