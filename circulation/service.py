"""The state every circulation operation shares: the database, the policy profiles
of the member systems, the clock in the network's time zone, and branch calendars
(profile hours + the closed days and holidays in ``calendar_entries``).

Branch calendars are cached per process (:meth:`Circulation.calendar`), keyed by the
version the database bumps on every change to ``calendar_entries`` (a trigger,
``schema.circ_versions``), so a change made by any process or connection is seen by the
next operation. The version is read once per unit of work: by a statement the operation
makes anyway (the hot paths fold ``CALENDAR_VERSION`` into their first locking read and
hand it over with :func:`note_calendar_version`), else by one small statement of its own."""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from lifecycle.calendar import BranchCalendar
from lifecycle.profiles import Profile, ProfileError, load_all, network_zone

from . import schema as s
from .prepared import Prepared
from .prepared import execute as run_prepared
from .store import Clock, Database, NotFound

_CLOSED_DAYS = Prepared(select(s.calendar_entries.c.day, s.calendar_entries.c.kind)
                        .where(s.calendar_entries.c.branch == bindparam("w_branch"),
                               s.calendar_entries.c.kind.in_(("closed", "holiday"))))
# the calendar version, as a column of another statement (``.label(...)`` it) ...
CALENDAR_VERSION = (select(s.circ_versions.c.version).where(s.circ_versions.c.name == "calendar")
                    .scalar_subquery())
# ... or on its own
_CALENDAR_VERSION = Prepared(select(s.circ_versions.c.version).where(s.circ_versions.c.name == "calendar"))

# the calendar version each open unit of work has read (by its connection: a retried unit
# of work has a new one, so it reads it again)
_VERSION_OF: "weakref.WeakKeyDictionary[Any, int | None]" = weakref.WeakKeyDictionary()


def note_calendar_version(conn, version: int | None) -> None:
    """The calendar version this unit of work read (folded into a statement it made);
    None when the database has no version row (nothing is then cached)."""
    _VERSION_OF[conn] = version


@dataclass
class Circulation:
    db: Database
    profiles: dict[str, Profile] = field(default_factory=load_all)   # by system code
    clock: Clock = field(default_factory=Clock)
    # branch -> (calendar version, calendar): see the module's note
    _calendars: dict[str, tuple[int, BranchCalendar]] = field(default_factory=dict, init=False, repr=False,
                                                              compare=False)

    def __post_init__(self):
        # One network runs in one time zone, its profiles' (ProfileError when they differ);
        # the clock keeps it, whatever the host's zone is.
        zone = network_zone(self.profiles)
        if self.clock.zone is None:
            self.clock.zone = zone
        elif self.clock.zone.key != zone.key:
            raise ProfileError(f"the clock runs in {self.clock.zone.key} but the profiles name {zone.key}")

    def now(self) -> datetime:
        """Now, as the database keeps times: the wall-clock time of the network's zone."""
        return self.clock.now()

    def profile(self, system: str) -> Profile:
        try:
            return self.profiles[system]
        except KeyError:
            raise NotFound(f"no policy profile for library {system!r}") from None

    def profile_of_branch(self, branch: str) -> Profile:
        for p in self.profiles.values():
            if branch in p.branches:
                return p
        raise NotFound(f"unknown branch {branch!r}")

    def branch_name(self, code: str | None) -> str:
        """The name of branch ``code`` as its profile gives it (a university partner's
        branches included); the code itself when no profile names it, "" for none."""
        if not code:
            return ""
        for p in self.profiles.values():
            b = p.branch(code)
            if b is not None:
                return b.name
        return code

    async def calendar(self, conn, branch: str) -> BranchCalendar:
        """The branch's calendar: opening hours from its profile, closed days and
        public holidays from the database. A branch whose profile gives no hours
        (Komae's seed has none) is open every day except its recorded closed days.

        Cached per process while the database's calendar version is the one the
        cached calendar was read at (see the module's note)."""
        try:
            version = _VERSION_OF[conn]
        except KeyError:
            version = _VERSION_OF[conn] = (await run_prepared(conn, _CALENDAR_VERSION)).scalar()
        if version is not None:
            hit = self._calendars.get(branch)
            if hit is not None and hit[0] == version:
                return hit[1]
        cal = await self._read_calendar(conn, branch)
        if version is not None:
            self._calendars[branch] = (version, cal)
        return cal

    async def _read_calendar(self, conn, branch: str) -> BranchCalendar:
        rows = (await run_prepared(conn, _CLOSED_DAYS, {"w_branch": branch})).all()
        closed = [r.day for r in rows if r.kind == "closed"]
        holidays = [r.day for r in rows if r.kind == "holiday"]
        prof = self.profile_of_branch(branch)
        bc = prof.branches[branch]
        if any(bc.weekly.values()):
            return prof.calendar(branch, closed=closed, holidays=holidays)
        from datetime import time

        from lifecycle.calendar import Hours
        always = {d: Hours(time(0), time(23, 59)) for d in
                  ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")}
        return BranchCalendar(branch, always, (), frozenset(closed) | bc.closed, frozenset(holidays),
                              bc.holiday_like)
