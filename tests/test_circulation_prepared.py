"""circulation/prepared.py: the hot statements run by asyncpg on PostgreSQL answer exactly
what SQLAlchemy answers (rows, attribute and mapping access, counts, errors), in the unit
of work's transaction; on SQLite they go through SQLAlchemy."""
from __future__ import annotations

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, bindparam, event, insert, select, text, update
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, NoResultFound

from circulation import prepared
from circulation import schema as s
from circulation.prepared import Prepared
from circulation.prepared import execute as run_prepared
from circulation.store import Database, _retryable, is_unique_violation

Q = s.title_queues
_INSERT = Prepared(insert(Q))
_BY_IDS = Prepared(select(Q).where(Q.c.title_id.in_(("t1", "t2", "t9"))).order_by(Q.c.title_id))
_BY_ID = Prepared(select(Q.c.title).where(Q.c.title_id == bindparam("w_id")))
_RENAME = Prepared(update(Q).where(Q.c.title_id == bindparam("w_id")))


@pytest.fixture
async def db(db_url):
    d = Database(db_url)
    await d.create_all()
    yield d
    await d.dispose()


async def test_same_answers_as_sqlalchemy(db):
    async with db.transaction() as conn:
        for tid, title in (("t1", "一"), ("t2", "二"), ("t3", "三")):
            await run_prepared(conn, _INSERT, {"title_id": tid, "title": title})
    async with db.transaction() as conn:
        ours = (await run_prepared(conn, _BY_IDS)).all()
        theirs = (await conn.execute(_BY_IDS.statement)).all()
        assert [tuple(r) for r in ours] == [tuple(r) for r in theirs] == [("t1", "一"), ("t2", "二")]
        assert [r.title for r in ours] == ["一", "二"]
        assert [dict(r._mapping) for r in ours] == [dict(r._mapping) for r in theirs]
        assert {**ours[0]._mapping, "x": 1} == {"title_id": "t1", "title": "一", "x": 1}
        tid, title = ours[1]
        assert (tid, title) == ("t2", "二")
        with pytest.raises(AttributeError):
            _ = ours[0].no_such_column
        assert (await run_prepared(conn, _BY_ID, {"w_id": "t3"})).scalar() == "三"
        assert (await run_prepared(conn, _BY_ID, {"w_id": "t3"})).one().title == "三"
        assert (await run_prepared(conn, _BY_ID, {"w_id": "nope"})).first() is None
        assert (await run_prepared(conn, _BY_ID, {"w_id": "nope"})).scalar() is None
        with pytest.raises(NoResultFound):
            (await run_prepared(conn, _BY_ID, {"w_id": "nope"})).one()
        # UPDATE without RETURNING: the row count, from the parameters' SET column
        assert (await run_prepared(conn, _RENAME, {"w_id": "t1", "title": "壱"})).rowcount == 1
        assert (await run_prepared(conn, _RENAME, {"w_id": "nope", "title": "x"})).rowcount == 0
    async with db.read() as conn:   # committed by the unit of work above
        assert (await conn.execute(_BY_ID.statement, {"w_id": "t1"})).scalar() == "壱"


async def test_rolled_back_with_the_unit_of_work(db):
    class Stop(Exception):
        pass

    with pytest.raises(Stop):
        async with db.transaction() as conn:
            await run_prepared(conn, _INSERT, {"title_id": "gone", "title": "x"})
            raise Stop
    async with db.read() as conn:
        assert (await run_prepared(conn, _BY_ID, {"w_id": "gone"})).first() is None


async def test_unique_violation_is_sqlalchemys_integrity_error(db):
    async with db.transaction() as conn:
        await run_prepared(conn, _INSERT, {"title_id": "dup", "title": "a"})
    with pytest.raises(IntegrityError) as e:
        async with db.transaction() as conn:
            await run_prepared(conn, _INSERT, {"title_id": "dup", "title": "b"})
    assert is_unique_violation(e.value)
    async with db.read() as conn:       # the connection is usable again, the first row kept
        assert (await run_prepared(conn, _BY_ID, {"w_id": "dup"})).scalar() == "a"


async def test_postgresql_statements_go_by_the_driver(db):
    """On PostgreSQL the statement is not SQLAlchemy's (its cursor event does not see it)
    and the ON_STATEMENT hooks do; on SQLite it is SQLAlchemy's."""
    seen_by_sqlalchemy: list[str] = []
    seen_by_hook: list[str] = []

    def cursor_event(_conn, _cursor, statement, *_args):
        seen_by_sqlalchemy.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", cursor_event)
    prepared.ON_STATEMENT.append(seen_by_hook.append)
    try:
        async with db.transaction() as conn:
            await run_prepared(conn, _BY_ID, {"w_id": "x"})
    finally:
        prepared.ON_STATEMENT.remove(seen_by_hook.append)
        event.remove(db.engine.sync_engine, "before_cursor_execute", cursor_event)
    on_pg = not db.is_sqlite
    assert any("FROM title_queues" in q for q in seen_by_hook) is on_pg
    assert any("FROM title_queues" in q for q in seen_by_sqlalchemy) is not on_pg


async def test_deadlock_is_retried_by_run(db):
    if db.is_sqlite:
        pytest.skip("a PostgreSQL error code")
    deadlock = Prepared(text("DO $$ BEGIN RAISE EXCEPTION 'test deadlock' USING ERRCODE = '40P01'; END $$"))
    attempts = []

    async def work(conn):
        attempts.append(1)
        if len(attempts) == 1:
            await run_prepared(conn, deadlock)
        await run_prepared(conn, _INSERT, {"title_id": "after", "title": "retried"})
        return len(attempts)

    assert await db.run(work) == 2
    try:
        async with db.transaction() as conn:
            await run_prepared(conn, deadlock)
    except DBAPIError as e:
        assert _retryable(e)
    else:
        raise AssertionError("no error raised")
    async with db.read() as conn:
        assert (await run_prepared(conn, _BY_ID, {"w_id": "after"})).scalar() == "retried"


def test_what_needs_sqlalchemys_processing_is_left_to_it():
    """A column default computed in Python, or a result type SQLAlchemy converts, would be
    lost on the driver's path: such a statement is left to SQLAlchemy (compiled() is None),
    plain ones are not."""
    t = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("a", String, default="x"),
              Column("f", Float))
    dialect = pg_asyncpg.dialect()
    assert Prepared(insert(t)).compiled(dialect, frozenset({"id"})) is None
    assert Prepared(insert(t)).compiled(dialect, frozenset({"id", "a"})) is not None
    assert Prepared(select(t.c.id, t.c.f)).compiled(dialect, frozenset()) is None
    assert Prepared(select(t.c.id, t.c.a)).compiled(dialect, frozenset()).sql.startswith("SELECT t.id, t.a")


async def test_a_statement_left_to_sqlalchemy_answers_alike(db):
    """job_schedule.next_due is a Float: its statements run through SQLAlchemy on every backend."""
    by_job = Prepared(select(s.job_schedule).where(s.job_schedule.c.job == bindparam("w_job")))
    async with db.transaction() as conn:
        await conn.execute(insert(s.job_schedule).values(job="j", next_due=1.5, owner="me"))
        row = (await run_prepared(conn, by_job, {"w_job": "j"})).one()
    assert (row.job, row.next_due, row.owner) == ("j", 1.5, "me")


# --------------------------------------------------------------------------- the audited write paths
# On PostgreSQL a write and its audit row are one statement (store._moved_and_logged,
# insert_logged, open_loan); on SQLite two. Either way: the same rows, and nothing at all
# written when the conditional update loses.

async def _audit(circ, *where):
    from circ_helpers import rows
    return [(e.event, e.from_state, e.to_state, e.actor_role, e.actor, e.channel, e.branch, e.reason,
             e.request_id, e.loan_id, e.item_id)
            for e in await rows(circ, s.events, *where, order_by=s.events.c.id)]


async def test_audited_writes_and_lost_updates(circ):
    from datetime import timedelta

    from circ_helpers import add_item, add_patron, one_row
    from circulation import holds, store
    from circulation.store import ConcurrentChange

    await add_patron(circ, "P1", "hiroshima", email="p1@example.jp")
    await add_patron(circ, "P2", "hiroshima", email="p2@example.jp")
    item_id = await add_item(circ, "B1", "T1", "hiroshima", "central")
    placed = await holds.place(circ, card="P1", title_id="T1", pickup_branch="central", channel="web",
                               role="patron", actor="P1", contact_method="email")
    rid = placed.request_id
    assert placed.decision.allowed and placed.position == 1
    assert await _audit(circ, s.events.c.request_id == rid) == [
        ("PLACE", None, "NEW", "patron", "P1", "web", "central", "reservation", rid, None, None),
        ("VALIDATE", "NEW", "VALIDATED", "system", "P1", "web", None, "", rid, None, None),
        ("ENQUEUE", "VALIDATED", "QUEUED", "system", "P1", "web", None, "", rid, None, None)]
    req = await one_row(circ, s.requests, s.requests.c.id == rid)
    assert (req.state, req.title_id, req.pickup_branch) == ("QUEUED", "T1", "central")

    now = circ.now()
    stale = store.Written(req, state="VALIDATED")          # a row read before someone moved it
    with pytest.raises(ConcurrentChange):
        async with circ.db.transaction() as conn:
            await store.transition(conn, stale, "ENQUEUE", role="system", actor="x", at=now)
    async with circ.db.transaction() as conn:
        await store.transition(conn, req, "SUSPEND", role="patron", actor="P1", at=now, channel="web",
                               reason="away")
    assert (await _audit(circ, s.events.c.request_id == rid))[-1] == (
        "SUSPEND", "QUEUED", "SUSPENDED", "patron", "P1", "web", None, "away", rid, None, None)

    async with circ.db.transaction() as conn:
        lid = await store.open_loan(conn, item_id=item_id, patron_id=req.patron_id, branch="central",
                                    channel="counter", at=now, due=now.date() + timedelta(days=14),
                                    role="staff", actor="c1", reason="test")
        again = await store.open_loan(conn, item_id=item_id, patron_id=req.patron_id, branch="central",
                                      channel="counter", at=now, due=now.date() + timedelta(days=14),
                                      role="staff", actor="c1", reason="twice")
    assert lid is not None and again is None            # the open loan's unique index: nothing written
    loan_events = await _audit(circ, s.events.c.loan_id == lid)
    assert loan_events == [("CHECK_OUT", None, "ON_LOAN", "staff", "c1", "counter", "central", "test",
                            None, lid, item_id)]
    loan = await one_row(circ, s.loans, s.loans.c.id == lid)
    with pytest.raises(ConcurrentChange):                 # renewed meanwhile: renewals differ
        async with circ.db.transaction() as conn:
            await store.loan_transition(conn, loan, "RENEW", role="staff", actor="c1", at=now,
                                        if_open=True, if_renewals=loan.renewals + 1, renewals=9)
    async with circ.db.transaction() as conn:
        await store.loan_transition(conn, loan, "RENEW", role="staff", actor="c1", at=now, channel="counter",
                                    if_open=True, if_renewals=loan.renewals, renewals=1)
    assert (await _audit(circ, s.events.c.loan_id == lid))[1:] == [
        ("RENEW", "ON_LOAN", "ON_LOAN", "staff", "c1", "counter", None, "", None, lid, item_id)]
    assert (await one_row(circ, s.loans, s.loans.c.id == lid)).renewals == 1


async def test_transitions_write_what_the_calls_one_by_one_write(circ):
    """store.transitions: the steps' audit rows and the final values as transition() after
    transition() writes them; an illegal step writes nothing; a lost race writes nothing."""
    from circ_helpers import add_item, add_patron, one_row
    from circulation import holds, store
    from circulation.store import ConcurrentChange, Step
    from lifecycle.table import IllegalTransition

    await add_patron(circ, "P1", "hiroshima", email="p1@example.jp")
    item_id = await add_item(circ, "B1", "T1", "hiroshima", "central")
    placed = await holds.place(circ, card="P1", title_id="T1", pickup_branch="central", channel="web",
                               role="patron", actor="P1", contact_method="email")
    rid = placed.request_id
    req = await one_row(circ, s.requests, s.requests.c.id == rid)
    now = circ.now()
    before = await _audit(circ, s.events.c.request_id == rid)

    with pytest.raises(IllegalTransition):               # the second step is illegal from SUSPENDED:
        async with circ.db.transaction() as conn:        # nothing is written, not even the first
            await store.transitions(conn, req, Step("SUSPEND", "patron", "P1", now, "web"),
                                    Step("CHECK_OUT", "staff", "c1", now))
    stale = store.Written(req, state="SUSPENDED")
    with pytest.raises(ConcurrentChange):
        async with circ.db.transaction() as conn:
            await store.transitions(conn, stale, Step("RESUME", "patron", "P1", now, "web"),
                                    Step("SUSPEND", "patron", "P1", now, "web", reason="again"))
    assert await _audit(circ, s.events.c.request_id == rid) == before

    async with circ.db.transaction() as conn:
        new = await store.transitions(
            conn, req, Step("TRAP_AT_PICKUP", "staff", "c1", now, None, "central", "",
                            {"item_id": item_id, "ready_at": now}),
            Step("SHELF_EXPIRE", "system", "job", now, None, "central", "not collected",
                 {"cancel_reason": "shelf_expired"}))
    assert new.value == "SHELF_EXPIRED"
    assert (await _audit(circ, s.events.c.request_id == rid))[len(before):] == [
        ("TRAP_AT_PICKUP", "QUEUED", "ON_HOLD_SHELF", "staff", "c1", None, "central", "", rid, None, item_id),
        ("SHELF_EXPIRE", "ON_HOLD_SHELF", "SHELF_EXPIRED", "system", "job", None, "central", "not collected",
         rid, None, item_id)]
    row = await one_row(circ, s.requests, s.requests.c.id == rid)
    assert (row.state, row.item_id, row.ready_at, row.cancel_reason) == ("SHELF_EXPIRED", item_id, now,
                                                                         "shelf_expired")
