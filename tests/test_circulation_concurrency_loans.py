"""Loans under concurrency (circulation/loans.py), on PostgreSQL (row locks, READ
COMMITTED) and SQLite (one writer at a time): simultaneous check-ins of one copy,
check-out racing hold-shelf expiry, many patrons wanting one copy, simultaneous
renewals. Each operation runs through its own pooled connection (asyncio.gather)."""
from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from circ_helpers import NOW, add_item, add_patron, new_circulation, one_row, rows
from circulation import holds, jobs, loans
from circulation import schema as s
from lifecycle.profiles import load_all

STAFF = dict(role="staff", actor="counter-1")


async def person(circ, card, library):
    return await add_patron(circ, card, library, email=f"{card.lower()}@example.jp")


async def place(circ, card, title_id, pickup):
    res = await holds.place(circ, card=card, title_id=title_id, pickup_branch=pickup, channel="web",
                            role="patron", actor=card, contact_method="email")
    assert res.decision.allowed, res.decision
    return res.request_id


async def lend(circ, barcode, card, branch):
    r = await loans.check_out(circ, barcode=barcode, card=card, branch=branch, **STAFF)
    assert r.decision.allowed, r.decision
    return r


async def _after(delay, coro):
    await asyncio.sleep(delay)
    return await coro


@pytest.mark.parametrize("pickup, routed", [("iizuka", "hold_shelf"), ("honami", "transit_hold")])
async def test_two_staff_checking_in_the_same_copy_at_once_return_it_once_and_route_it_once(
        circ, pickup, routed):
    await person(circ, "I001", "iizuka")
    await person(circ, "I002", "iizuka")
    rounds = 4
    for i in range(rounds):
        await add_item(circ, f"IB{i}", f"bib-{i}", "iizuka", "iizuka")
        await lend(circ, f"IB{i}", "I001", "iizuka")
        await place(circ, "I002", f"bib-{i}", pickup)
    for i in range(rounds):
        a, b = await asyncio.gather(
            loans.check_in(circ, barcode=f"IB{i}", branch="iizuka", role="staff", actor="desk-a"),
            loans.check_in(circ, barcode=f"IB{i}", branch="iizuka", role="staff", actor="desk-b"))
        returned = [r for r in (a, b) if r.loan_id is not None]
        assert len(returned) == 1, (a, b)
        other = b if returned[0] is a else a
        assert returned[0].decision.allowed and returned[0].routing.kind == routed
        assert other.decision.code == "not_on_loan" and other.routing is None
        item = await one_row(circ, s.items, s.items.c.barcode == f"IB{i}")
        loan = await one_row(circ, s.loans, s.loans.c.item_id == item.id)
        assert (loan.state, loan.returned_at) == ("RETURNED", NOW)
        req = await one_row(circ, s.requests, s.requests.c.title_id == f"bib-{i}")
        assert req.item_id == item.id
        assert req.state == ("ON_HOLD_SHELF" if routed == "hold_shelf" else "IN_TRANSIT")
        item_events = Counter(e.event for e in await rows(circ, s.events, s.events.c.item_id == item.id))
        assert item_events["CHECK_IN"] == 1
        assert item_events["TRAP_AT_PICKUP"] + item_events["TRAP_ELSEWHERE"] == 1
        assert len(await rows(circ, s.transits, s.transits.c.item_id == item.id)) == (
            1 if routed == "transit_hold" else 0)
        assert len(await rows(circ, s.notices, s.notices.c.request_id == req.id,
                              s.notices.c.kind == "hold_ready")) == (1 if routed == "hold_shelf" else 0)


async def test_check_out_racing_shelf_expiry_gives_the_copy_to_exactly_one_side(circ):
    # Either the patron borrows it (request ON_LOAN, loan linked) or the shelf expired
    # (SHELF_EXPIRED) and the copy went on to the next patron — never both, never a loan
    # whose request is not ON_LOAN.
    outcomes = Counter()
    start = NOW
    for i in range(20):
        circ.clock.fixed = start
        first, second = f"P{i:02}A", f"P{i:02}B"
        await person(circ, first, "iizuka")
        await person(circ, second, "iizuka")
        await add_item(circ, f"X{i:02}", f"race-{i}", "iizuka", "iizuka")
        r1 = await place(circ, first, f"race-{i}", "iizuka")
        r2 = await place(circ, second, f"race-{i}", "iizuka")
        trapped = await loans.check_in(circ, barcode=f"X{i:02}", branch="iizuka", **STAFF)
        assert (trapped.routing.kind, trapped.routing.request_id) == ("hold_shelf", r1)
        circ.clock.fixed = start + timedelta(days=8)          # past 7 open days on the shelf
        # vary who gets a head start, so that both orders and the overlaps between occur
        lag = (i % 5) * 0.004
        out, expired = await asyncio.gather(
            _after(lag if i % 2 else 0,
                   loans.check_out(circ, barcode=f"X{i:02}", card=first, branch="iizuka", **STAFF)),
            _after(0 if i % 2 else lag, jobs.expire_shelf(circ)))
        item = await one_row(circ, s.items, s.items.c.barcode == f"X{i:02}")
        req1 = await one_row(circ, s.requests, s.requests.c.id == r1)
        req2 = await one_row(circ, s.requests, s.requests.c.id == r2)
        item_loans = await rows(circ, s.loans, s.loans.c.item_id == item.id)
        if out.decision.allowed:
            outcomes["lent"] += 1
            assert expired == 0          # nothing else is on any hold shelf
            (loan,) = item_loans
            assert (loan.id, loan.request_id, loan.state) == (out.loan_id, r1, "ON_LOAN")
            assert (req1.state, req2.state, item.status) == ("ON_LOAN", "QUEUED", "on_loan")
        else:
            outcomes["expired"] += 1
            assert expired == 1 and out.decision.code == "held_for_another_patron"
            assert item_loans == []
            assert (req1.state, req2.state, req2.item_id, item.status) == (
                "SHELF_EXPIRED", "ON_HOLD_SHELF", item.id, "on_hold_shelf")
            # the copy went on: the next patron borrows it (and nothing is left on the shelf)
            assert (await lend(circ, f"X{i:02}", second, "iizuka")).request_id == r2
        assert [e.event for e in await rows(circ, s.events, s.events.c.request_id == r1)].count(
            "SHELF_EXPIRE" if not out.decision.allowed else "CHECK_OUT") == 1
        start += timedelta(days=9)
    print("race outcomes:", dict(outcomes))
    assert sum(outcomes.values()) == 20


async def test_many_patrons_checking_out_one_copy_at_once_get_exactly_one_loan(circ):
    n = 12
    for i in range(n):
        await person(circ, f"H{i:03}", "hiroshima")
    await add_item(circ, "HB1", "bib-1", "hiroshima", "central")
    results = await asyncio.gather(*(
        loans.check_out(circ, barcode="HB1", card=f"H{i:03}", branch="central", **STAFF)
        for i in range(n)))
    winners = [r for r in results if r.decision.allowed]
    assert len(winners) == 1
    assert Counter(r.decision.code for r in results if not r.decision.allowed) == {"item_on_loan": n - 1}
    (loan,) = await rows(circ, s.loans)
    assert loan.id == winners[0].loan_id and loan.returned_at is None
    assert [e.event for e in await rows(circ, s.events)] == ["CHECK_OUT"]
    assert (await one_row(circ, s.items, s.items.c.barcode == "HB1")).status == "on_loan"


async def test_two_kiosks_cannot_take_a_patron_past_the_loan_limit(circ):
    # Hiroshima: 10 items per card across all libraries; the patron row lock serializes
    # check-outs of different copies for one card.
    await person(circ, "H001", "hiroshima")
    for i in range(14):
        await add_item(circ, f"HB{i:02}", f"bib-{i}", "hiroshima", "central")
    for i in range(8):
        await lend(circ, f"HB{i:02}", "H001", "central")
    results = await asyncio.gather(*(
        loans.check_out(circ, barcode=f"HB{i:02}", card="H001", branch="central", channel="kiosk",
                        role="patron", actor="H001")
        for i in range(8, 14)))
    assert sum(r.decision.allowed for r in results) == 2
    assert Counter(r.decision.code for r in results if not r.decision.allowed) == {"loan_limit": 4}
    assert len(await rows(circ, s.loans, s.loans.c.returned_at.is_(None))) == 10


async def test_simultaneous_renewals_of_a_loan_renewable_once_renew_it_exactly_once(circ):
    await person(circ, "I001", "iizuka")
    await add_item(circ, "IB1", "bib-1", "iizuka", "iizuka")
    circ.clock.fixed = datetime(2026, 11, 10, 10)
    lent = await lend(circ, "IB1", "I001", "iizuka")              # due 24 Nov
    circ.clock.fixed = NOW
    results = await asyncio.gather(*(
        loans.renew(circ, loan_id=lent.loan_id, role="patron", actor="I001", channel="web")
        for _ in range(8)))
    assert sum(r.decision.allowed for r in results) == 1
    assert {r.decision.code for r in results if not r.decision.allowed} == {"renewal_limit"}
    loan = await one_row(circ, s.loans, s.loans.c.id == lent.loan_id)
    assert (loan.renewals, loan.due) == (1, date(2026, 12, 8))
    assert [e.event for e in await rows(circ, s.events, s.events.c.event == "RENEW")] == ["RENEW"]
    assert len(await rows(circ, s.notices, s.notices.c.kind == "renewal_done")) == 1


async def test_simultaneous_renewals_without_a_limit_are_all_counted(db_url):
    # A profile without a renewal limit (Komae's, edited): eight renewals at once must
    # give renewals == 8 and eight two-week extensions, none lost to a race.
    profiles = load_all()
    k = profiles["komae"]
    profiles["komae"] = dataclasses.replace(k, renewal=dataclasses.replace(k.renewal, max=None))
    circ = await new_circulation(db_url, profiles=profiles)
    try:
        await person(circ, "K001", "komae")
        await add_item(circ, "KB1", "bib-1", "komae", "komae-central")
        lent = await lend(circ, "KB1", "K001", "komae-central")   # due 4 Dec
        n = 8
        results = await asyncio.gather(*(
            loans.renew(circ, loan_id=lent.loan_id, role="staff", actor=f"desk-{i}", channel="counter")
            for i in range(n)))
        assert all(r.decision.allowed for r in results)
        assert sorted(r.renewals for r in results) == list(range(1, n + 1))
        loan = await one_row(circ, s.loans, s.loans.c.id == lent.loan_id)
        assert (loan.renewals, loan.due) == (n, date(2026, 12, 4) + timedelta(days=14 * n))
        keys = sorted(x.dedupe_key for x in await rows(circ, s.notices))
        assert keys == sorted(f"renewal_done:{lent.loan_id}:{i}" for i in range(1, n + 1))
        assert len(await rows(circ, s.events, s.events.c.event == "RENEW")) == n
    finally:
        await circ.db.dispose()


async def test_a_check_in_locks_the_title_queue_before_the_copy_in_one_statement(circ):
    """PostgreSQL (issue 18, fifth round): ``loans._lock_item`` takes the queue row and
    the item row in one statement, in the documented order -- while it waits for the
    copy (held by another transaction) it already holds the queue."""
    if circ.db.is_sqlite:
        pytest.skip("SQLite has one writer at a time, no row locks")
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    await add_item(circ, "LQ1", "bib-lq", "iizuka", "iizuka")
    async with circ.db.transaction() as conn:
        await loans._lock_item(conn, "LQ1", create_queue=True)           # the queue row exists now
    statements: list[str] = []
    from circulation import prepared
    prepared.ON_STATEMENT.append(statements.append)
    try:
        async with circ.db.transaction() as holder:                       # holds the copy only
            await holder.execute(text("SELECT id FROM items WHERE barcode = 'LQ1' FOR UPDATE"))
            pid: asyncio.Future = asyncio.get_running_loop().create_future()

            async def lock_both():
                async with circ.db.transaction() as conn:
                    pid.set_result((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                    return await loans._lock_item(conn, "LQ1", create_queue=True)

            task = asyncio.ensure_future(lock_both())
            waiter = await pid
            async with circ.db.read() as watch:                           # until it waits on a lock
                for _ in range(2000):
                    blocked = (await watch.execute(text("SELECT cardinality(pg_blocking_pids(:p))"),
                                                   {"p": waiter})).scalar_one()
                    if blocked:
                        break
                    await asyncio.sleep(0.005)
            assert blocked, "the locking statement never waited for the copy"
            with pytest.raises(DBAPIError) as e:                          # and holds the queue meanwhile
                async with circ.db.transaction() as other:
                    await other.execute(text("SELECT 1 FROM title_queues WHERE title_id = 'bib-lq' "
                                             "FOR UPDATE NOWAIT"))
            assert getattr(e.value.orig, "sqlstate", None) == "55P03"
        item = await task                                                 # the copy released: done
    finally:
        prepared.ON_STATEMENT.remove(statements.append)
    assert item.barcode == "LQ1"
    assert sum("FOR UPDATE OF title_queues, items" in q for q in statements) == 1
    assert not any(q.startswith("SELECT title_queues") for q in statements)  # not the two-step path
