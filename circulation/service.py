"""The state every circulation operation shares: the database, the policy profiles
of the member systems, the clock in the network's time zone, and branch calendars
(profile hours + the closed days and holidays in ``calendar_entries``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass
class Circulation:
    db: Database
    profiles: dict[str, Profile] = field(default_factory=load_all)   # by system code
    clock: Clock = field(default_factory=Clock)

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
        (Komae's seed has none) is open every day except its recorded closed days."""
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
