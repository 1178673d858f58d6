"""Holds under concurrency (circulation/holds.py): many units of work at the same moment,
each on its own connection (asyncio.gather). On PostgreSQL they really overlap (row locks,
READ COMMITTED; the tests check that transactions were open at the same time); on SQLite
BEGIN IMMEDIATE serializes the writers, and the same outcomes must hold."""
from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime, timedelta

import pytest

from circ_helpers import NOW, add_item, add_patron, new_circulation, rows
from circulation import holds, jobs, lists
from circulation import routing as rt
from circulation import schema as s
from circulation.store import Database

STAFF = dict(role="staff", actor="staff1")
N_PATRONS = 40


class CountingDatabase(Database):
    """A Database that records how many units of work were open at the same time."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.active = 0
        self.max_active = 0

    @contextlib.asynccontextmanager
    async def transaction(self):
        async with super().transaction() as conn:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                yield conn
            finally:
                self.active -= 1


@pytest.fixture
async def circ(db_url):
    c = await new_circulation(db_url)
    await c.db.dispose()
    c.db = CountingDatabase(db_url, pool_size=30)     # up to 60 connections at once
    yield c
    await c.db.dispose()


def overlapped(circ) -> bool:
    """On PostgreSQL the units of work must really have run at the same time."""
    return circ.db.is_sqlite or circ.db.max_active > 1


async def web_place(circ, card, title_id, pickup="iizuka"):
    return await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup, channel="web",
                             role="patron", actor=card)


async def route(circ, barcode, branch):
    it = (await rows(circ, s.items, s.items.c.barcode == barcode))[0]
    return await circ.db.run(lambda conn: rt.route_copy(circ, conn, it, branch, **STAFF))


async def test_many_patrons_placing_on_one_title_at_once_get_positions_one_to_n(circ):
    cards = [f"C{i:04d}" for i in range(N_PATRONS)]
    for c in cards:
        await add_patron(circ, c, "iizuka")
    await add_item(circ, "POP", "T-POPULAR", "iizuka", "iizuka", status="on_loan")
    results = await asyncio.gather(*(web_place(circ, c, "T-POPULAR") for c in cards))
    assert all(r.decision.allowed for r in results)
    assert overlapped(circ)
    assert sorted(r.position for r in results) == list(range(1, N_PATRONS + 1))
    # the positions reported at placement are the queue order afterwards
    by_position = sorted(results, key=lambda r: r.position)
    shown = [(await lists.patron_requests(circ, c))[0] for c in cards]
    assert sorted(d["position"] for d in shown) == list(range(1, N_PATRONS + 1))
    assert {d["request_id"]: d["position"] for d in shown} == {r.request_id: r.position for r in results}
    assert [r.request_id for r in by_position] == sorted(r.request_id for r in results)
    events = await rows(circ, s.events)
    for name in ("PLACE", "VALIDATE", "ENQUEUE"):
        per_request = Counter(e.request_id for e in events if e.event == name)
        assert set(per_request) == {r.request_id for r in results}
        assert set(per_request.values()) == {1}
    assert len(await rows(circ, s.title_queues)) == 1
    assert len(await rows(circ, s.notices, s.notices.c.kind == "hold_received")) == N_PATRONS


async def test_one_patron_firing_more_placements_than_the_limit_gets_exactly_the_limit(circ):
    await add_patron(circ, "GREEDY", "iizuka")
    titles = [f"T-{i:02d}" for i in range(16)]
    for i, t in enumerate(titles):
        await add_item(circ, f"B{i:02d}", t, "iizuka", "iizuka")
    results = await asyncio.gather(*(web_place(circ, "GREEDY", t) for t in titles))
    assert overlapped(circ)
    assert sum(r.decision.allowed for r in results) == 10          # Iizuka: 10 books
    assert {r.decision.code for r in results if not r.decision.allowed} == {"limit_material"}
    assert len(await rows(circ, s.requests)) == 10
    assert len([e for e in await rows(circ, s.events) if e.event == "PLACE"]) == 10


async def test_komae_patron_firing_placements_at_once_stays_within_twenty_together(circ):
    await add_patron(circ, "K-GREEDY", "komae")
    titles = [f"K-{i:02d}" for i in range(26)]
    for i, t in enumerate(titles):
        await add_item(circ, f"K{i:02d}", t, "komae", "komae-central")
    results = await asyncio.gather(*(web_place(circ, "K-GREEDY", t, "komae-central") for t in titles))
    assert sum(r.decision.allowed for r in results) == 20
    assert {r.decision.code for r in results if not r.decision.allowed} == {"limit_total"}
    assert len(await rows(circ, s.requests)) == 20


async def test_copies_checked_in_at_once_go_to_the_first_of_the_queue_each_once(circ):
    n_requests, n_copies = 14, 5
    cards = [f"Q{i:03d}" for i in range(n_requests)]
    for c in cards:
        await add_patron(circ, c, "iizuka")
    barcodes = [f"MANY-{k}" for k in range(n_copies)]
    for b in barcodes:
        await add_item(circ, b, "T-MANY", "iizuka", "iizuka", status="on_loan")
    placed = []
    for i, c in enumerate(cards):
        circ.clock.fixed = NOW + timedelta(minutes=i // 3)        # ties within the same minute
        pickup = "iizuka" if i % 2 == 0 else "chikuho"
        placed.append(await web_place(circ, c, "T-MANY", pickup))
    assert all(p.decision.allowed for p in placed)
    fifo = [p.request_id for p in placed]                          # placement order
    circ.clock.fixed = NOW + timedelta(hours=1)
    # every copy scanned twice, at two counters, at the same moment
    routings = await asyncio.gather(*(route(circ, b, branch) for b in barcodes
                                      for branch in ("iizuka", "honami")))
    assert overlapped(circ)
    trapped = [r for r in routings if r.kind in (rt.HOLD_SHELF, rt.TRANSIT_HOLD)]
    assert len(trapped) == n_copies
    assert Counter(r.kind for r in routings)[rt.ALREADY_SECURED] == n_copies
    assert sorted(r.request_id for r in trapped) == fifo[:n_copies]
    reqs = {r.id: r for r in await rows(circ, s.requests)}
    secured = [reqs[i] for i in fifo if reqs[i].state in ("ON_HOLD_SHELF", "IN_TRANSIT")]
    assert [r.id for r in secured] == fifo[:n_copies]
    items = {i.id: i for i in await rows(circ, s.items)}
    assert sorted(items[r.item_id].barcode for r in secured) == barcodes   # each copy once
    assert all(reqs[i].state == "QUEUED" for i in fifo[n_copies:])
    traps = Counter(e.request_id for e in await rows(circ, s.events)
                    if e.event in ("TRAP_AT_PICKUP", "TRAP_ELSEWHERE"))
    assert set(traps.values()) == {1} and len(traps) == n_copies


async def test_two_copies_of_one_group_checked_in_at_once_secure_one_member(circ):
    await add_patron(circ, "K-GRP", "komae")
    await add_patron(circ, "K-NEXT", "komae")
    await add_item(circ, "HC", "T-HC", "komae", "komae-central", status="on_loan")
    await add_item(circ, "PB", "T-PB", "komae", "komae-central", status="on_loan")
    g = await holds.place_group(circ, card="K-GRP", title_ids=["T-HC", "T-PB"],
                                pickup_branch="komae-central", channel="web", role="patron", actor="K-GRP")
    circ.clock.fixed = NOW + timedelta(minutes=5)
    nxt = await web_place(circ, "K-NEXT", "T-PB", "komae-central")
    routings = await asyncio.gather(route(circ, "HC", "komae-central"), route(circ, "PB", "komae-central"))
    group_states = sorted([(await rows(circ, s.requests, s.requests.c.id == i))[0].state
                           for i in g.request_ids])
    assert group_states == ["CANCELLED", "ON_HOLD_SHELF"]
    winner = [r.request_id for r in routings if r.request_id in g.request_ids]
    assert len(winner) == 1
    # the copy the group did not take went to the next patron if it was theirs, else back on the shelf
    other = [r for r in routings if r.request_id not in g.request_ids][0]
    assert other.kind == rt.RESHELVE or other.request_id == nxt.request_id
    gs = [e for e in await rows(circ, s.events) if e.event == "GROUP_SATISFIED"]
    assert len(gs) == 1


async def test_expiry_jobs_running_twice_at_once_expire_each_hold_once(circ):
    n = 8
    for i in range(n):
        await add_patron(circ, f"E{i}", "iizuka")
        await add_patron(circ, f"W{i}", "iizuka")
        await add_item(circ, f"X{i}", f"T-X{i}", "iizuka", "iizuka", status="on_loan")
    first = [await web_place(circ, f"E{i}", f"T-X{i}") for i in range(n)]
    circ.clock.fixed = NOW + timedelta(minutes=1)
    waiting = [await web_place(circ, f"W{i}", f"T-X{i}") for i in range(n)]
    for i in range(n):
        assert (await route(circ, f"X{i}", "iizuka")).request_id == first[i].request_id
    circ.clock.fixed = datetime(2026, 12, 1, 8, 0)
    counts = await asyncio.gather(jobs.expire_shelf(circ), jobs.expire_shelf(circ))
    assert sum(counts) == n
    events = await rows(circ, s.events)
    expired = Counter(e.request_id for e in events if e.event == "SHELF_EXPIRE")
    assert expired == Counter({r.request_id: 1 for r in first})
    trapped = Counter(e.request_id for e in events if e.event == "TRAP_AT_PICKUP")
    assert all(trapped[w.request_id] == 1 for w in waiting)
    ready = Counter(x.request_id for x in await rows(circ, s.notices, s.notices.c.kind == "hold_ready"))
    assert all(ready[w.request_id] == 1 for w in waiting)
    assert await jobs.expire_shelf(circ) == 0
