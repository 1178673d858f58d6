"""The per-process cache of branch calendars (circulation/service.py), on SQLite and
PostgreSQL: a calendar is read once per version, and any change to ``calendar_entries``
-- made by another process's connection, by plain SQL, inserting, updating or deleting --
is seen by the next operation of a service that has the calendar cached."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import event, text

from circ_helpers import add_item, add_patron
from circulation import loans
from circulation.store import Database

STAFF = dict(role="staff", actor="counter-1")


def count_calendar_reads(db: Database) -> list[str]:
    """The SQL of the statements that read ``calendar_entries`` (both execution paths)."""
    seen: list[str] = []
    from circulation import prepared

    def hook(sql: str) -> None:
        if "FROM calendar_entries" in sql:
            seen.append(sql)

    prepared.ON_STATEMENT.append(hook)

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _sa(_conn, _cursor, statement, *_a):
        hook(statement)

    return seen


@pytest.fixture
def calendar_reads(circ):
    from circulation import prepared
    before = list(prepared.ON_STATEMENT)
    seen = count_calendar_reads(circ.db)
    yield seen
    prepared.ON_STATEMENT[:] = before


async def other_process_sql(db_url: str, sql: str) -> None:
    """``sql`` committed by another engine (another connection pool, as another API process
    or an SQL console would)."""
    other = Database(db_url)
    try:
        async with other.transaction() as conn:
            await conn.execute(text(sql))
    finally:
        await other.dispose()


async def lend(circ, barcode: str) -> date:
    r = await loans.check_out(circ, barcode=barcode, card="I001", branch="iizuka", **STAFF)
    assert r.decision.allowed, (r.decision.code, r.decision.details)
    return r.due


async def test_a_calendar_change_by_another_connection_is_seen_by_the_next_check_out(circ, db_url,
                                                                                   calendar_reads):
    await add_patron(circ, "I001", "iizuka")
    for i in range(6):
        await add_item(circ, f"IB{i}", f"bib-{i}", "iizuka", "iizuka")
    assert await lend(circ, "IB0") == date(2026, 12, 4)           # Friday 20 Nov + 2 weeks
    assert len(calendar_reads) == 1
    assert await lend(circ, "IB1") == date(2026, 12, 4)           # cached: not read again
    assert len(calendar_reads) == 1

    # 休館日 added by another process: the next due date moves to the next open day
    await other_process_sql(db_url, "INSERT INTO calendar_entries (branch, day, kind, title) "
                                    "VALUES ('iizuka', '2026-12-04', 'closed', '')")
    assert await lend(circ, "IB2") == date(2026, 12, 5)
    assert len(calendar_reads) == 2
    assert await lend(circ, "IB3") == date(2026, 12, 5)
    assert len(calendar_reads) == 2

    # changed (the closed day is the 5th instead) and then removed, each seen at once
    await other_process_sql(db_url, "UPDATE calendar_entries SET day = '2026-12-05' WHERE branch = 'iizuka'")
    assert await lend(circ, "IB4") == date(2026, 12, 4)
    await other_process_sql(db_url, "DELETE FROM calendar_entries WHERE branch = 'iizuka'")
    assert await lend(circ, "IB5") == date(2026, 12, 4)
    assert len(calendar_reads) == 4

    # a renewal's new due date: the same
    circ.clock.fixed = datetime(2026, 12, 1, 10, 0)
    first = await loans.renew(circ, loan_id=1, channel="web", card="I001", role="patron", actor="I001")
    assert first.decision.allowed and len(calendar_reads) == 4     # nothing changed: cached
    await other_process_sql(db_url, "INSERT INTO calendar_entries (branch, day, kind, title) "
                                    f"VALUES ('iizuka', '{first.due.isoformat()}', 'closed', '')")
    second = await loans.renew(circ, loan_id=2, channel="web", card="I001", role="patron", actor="I001")
    assert second.decision.allowed and second.due == first.due + timedelta(days=1)
    assert len(calendar_reads) == 5


async def test_without_the_version_row_nothing_is_cached(circ, db_url, calendar_reads):
    """A database whose version row is gone (deleted by hand) still answers right: the
    calendar is read by every operation that needs it."""
    await add_patron(circ, "I001", "iizuka")
    for i in range(3):
        await add_item(circ, f"IB{i}", f"bib-{i}", "iizuka", "iizuka")
    await other_process_sql(db_url, "DELETE FROM circ_versions")
    assert await lend(circ, "IB0") == date(2026, 12, 4)
    await other_process_sql(db_url, "INSERT INTO calendar_entries (branch, day, kind, title) "
                                    "VALUES ('iizuka', '2026-12-04', 'closed', '')")
    assert await lend(circ, "IB1") == date(2026, 12, 5)
    assert len(calendar_reads) == 2


async def test_create_all_again_keeps_the_version_and_the_trigger(circ, db_url):
    """``create_all`` on an existing database (``unioncat circ init`` run again) leaves the
    version where it is and the trigger working."""
    await other_process_sql(db_url, "INSERT INTO calendar_entries (branch, day, kind, title) "
                                    "VALUES ('iizuka', '2026-12-04', 'closed', '')")
    async with circ.db.read() as conn:
        v1 = (await conn.execute(text("SELECT version FROM circ_versions WHERE name = 'calendar'"))).scalar()
    await circ.db.create_all()
    await other_process_sql(db_url, "DELETE FROM calendar_entries")
    async with circ.db.read() as conn:
        v2 = (await conn.execute(text("SELECT version FROM circ_versions WHERE name = 'calendar'"))).scalar()
    assert v1 >= 2 and v2 == v1 + 1
