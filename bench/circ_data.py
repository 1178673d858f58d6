"""The data of the circulation benchmark (``bench/circulation_bench.py``).

What it holds: the catalogue in memory (the systems of the network, their patrons,
titles and copies as rows: :func:`make_catalog`), bulk loading (explicit ids,
``insert(table)`` with lists of rows, sequences reset after: :func:`bulk_insert`,
:func:`finish_load`, :func:`install_base`) and the state of the phase database
(:func:`build_phase_data`: the pool of copies, the queued holds, the loans to renew).
Also :func:`say`, the progress line every part of the benchmark prints.

A module of the benchmark, not an entry point: ``circulation_bench.py`` puts
``bench/``, the repository and ``tools/`` on ``sys.path`` before importing it.
"""
from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import insert, text

from circulation import schema as s
from circulation.service import Circulation
from circulation.store import Database, install_network
from lifecycle.profiles import Profile

CHUNK = 5000
PARTNERS = {"hiroshima-u": "広島大学図書館", "shudo-u": "広島修道大学図書館"}

SYSTEM_DEFAULTS = {
    # home municipality, card/barcode prefix, contact methods (as the profile offers them)
    "hiroshima": ("広島市", "H", (("email", 0.75), ("phone", 0.25))),
    "iizuka": ("飯塚市", "I", (("email", 0.80), ("none", 0.20))),
    "komae": ("狛江市", "K", (("email", 0.60), ("phone", 0.15), ("none", 0.25))),
}


def say(msg: str) -> None:
    print(msg, flush=True)


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
