"""The mobile library (移動図書館「ともはと号」, Hiroshima) on the database: its stop
schedule (the check-out reads a stop's visits from it).

The schedule (運行スケジュール) is kept in ``calendar_entries``: one row per stop and
visit day, ``branch`` = the mobile branch, ``kind`` = ``visit`` (or ``school_visit``
for a stop at a school, where 学校内での児童・生徒への貸出は、一人5冊まで applies) and
``title`` = the stop's name. A stop is a school stop when any of its visits is a
``school_visit``.

The rules themselves are pure (:mod:`lifecycle.policies`): ``card_usable_at`` (only
mobile cards borrow on the mobile, and only there), ``mobile_terms_at_stop`` (due on the
next visit to the same stop, else the category's loan days; the school-stop limit; a
stop not in the schedule at all is refused with NotFound by ``loans.check_out``),
``mobile_return_refused`` (back to the mobile or the central library only),
``pickup_ok`` / ``mobile_card_placing`` (holds of mobile cards: on paper, collected on
the mobile) and ``can_renew`` (``mobile.renewable``).
"""
from __future__ import annotations

from datetime import date
from typing import Iterable

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle import policies

from . import schema as s
from .service import Circulation

VISIT_KINDS = ("visit", policies.SCHOOL_VISIT)


async def stop_visits(conn: AsyncConnection, branch: str, stop: str) -> list:
    """The scheduled visits (day, kind) of the mobile ``branch`` to ``stop``, by day."""
    c = s.calendar_entries.c
    return list((await conn.execute(
        select(c.day, c.kind).where(c.branch == branch, c.title == stop, c.kind.in_(VISIT_KINDS))
        .order_by(c.day))).all())


async def add_visits(circ: Circulation, branch: str, stop: str, days: Iterable[date], *,
                     school: bool = False) -> int:
    """Put visits of the mobile ``branch`` to ``stop`` into the schedule (days already
    there are skipped); returns how many were added."""
    if not policies.is_mobile_branch(circ.profile_of_branch(branch), branch):
        raise ValueError(f"{branch!r} is not a mobile library")
    kind = policies.SCHOOL_VISIT if school else "visit"

    async def work(conn: AsyncConnection) -> int:
        have = {v.day for v in await stop_visits(conn, branch, stop)}
        new = sorted(set(days) - have)
        for day in new:
            await conn.execute(insert(s.calendar_entries).values(branch=branch, day=day, kind=kind,
                                                                 title=stop))
        return len(new)

    return await circ.db.run(work)


async def schedule(circ: Circulation, branch: str) -> list[dict]:
    """The schedule of the mobile ``branch`` (staff): every stop with its visits (day and
    whether it is a school visit), stops by name, visits by day."""
    c = s.calendar_entries.c
    async with circ.db.read() as conn:
        rows = (await conn.execute(
            select(c.title, c.day, c.kind).where(c.branch == branch, c.kind.in_(VISIT_KINDS))
            .order_by(c.title, c.day))).all()
    stops: dict[str, dict] = {}
    for r in rows:
        stop = stops.setdefault(r.title, {"stop": r.title, "school": False, "visits": []})
        stop["school"] = stop["school"] or r.kind == policies.SCHOOL_VISIT
        stop["visits"].append({"day": r.day, "school": r.kind == policies.SCHOOL_VISIT})
    return list(stops.values())
