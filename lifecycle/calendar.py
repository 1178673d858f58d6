"""Branch calendars: opening hours per weekday and season, holidays, closed days.

Pure: the caller supplies the closed dates and public holidays (from the profile,
the library's published calendar or a holiday table); nothing here reads a clock
or a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_KINDS = WEEKDAYS + ("holiday",)


@dataclass(frozen=True)
class Hours:
    opens: time
    closes: time

    @classmethod
    def parse(cls, text: str) -> "Hours":
        """``"09:30-19:00"`` → Hours(9:30, 19:00)."""
        a, b = text.split("-")
        h = cls(time.fromisoformat(a.strip()), time.fromisoformat(b.strip()))
        if h.closes <= h.opens:
            raise ValueError(f"closing time before opening time: {text!r}")
        return h


@dataclass(frozen=True)
class Season:
    """Hours that replace the regular ones in some months (e.g. July and August)."""
    months: frozenset[int]
    hours: dict[str, Hours | None]   # day kind → hours (None = closed); kinds not given keep the regular hours


@dataclass(frozen=True)
class BranchCalendar:
    branch: str
    weekly: dict[str, Hours | None]          # "mon".."sun", "holiday"; a missing/None day is closed
    seasons: tuple[Season, ...] = ()
    closed: frozenset[date] = frozenset()    # 休館日 published by the library (override everything)
    holidays: frozenset[date] = frozenset()  # public holidays: use the "holiday" hours if given
    holiday_like: frozenset[tuple[int, int]] = frozenset()  # (month, day) with holiday hours, e.g. (8, 6)
    extra_open: dict[date, Hours] = field(default_factory=dict)  # special opening on a usually closed day

    def day_kind(self, d: date) -> str:
        if (d in self.holidays or (d.month, d.day) in self.holiday_like) and "holiday" in self.weekly:
            return "holiday"
        return WEEKDAYS[d.weekday()]

    def hours(self, d: date) -> Hours | None:
        """Opening hours on ``d``, or None when the branch is closed."""
        if d in self.closed:
            return None
        if d in self.extra_open:
            return self.extra_open[d]
        kind = self.day_kind(d)
        for season in self.seasons:
            if d.month in season.months and kind in season.hours:
                return season.hours[kind]
        return self.weekly.get(kind)

    def is_open(self, d: date) -> bool:
        return self.hours(d) is not None

    def add_open_days(self, start: date, n: int, *, horizon: int = 800) -> date:
        """The ``n``-th open day after ``start`` (``start`` itself not counted).

        ``n == 0`` gives ``start`` if open, else the next open day.  Raises
        ValueError if the branch is not open that often within ``horizon`` days
        (a configuration error, not a rule refusal)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        d, counted = start, 0
        if n == 0:
            for _ in range(horizon):
                if self.is_open(d):
                    return d
                d += timedelta(days=1)
            raise ValueError(f"branch {self.branch} has no open day within {horizon} days")
        for _ in range(horizon):
            d += timedelta(days=1)
            if self.is_open(d):
                counted += 1
                if counted == n:
                    return d
        raise ValueError(f"branch {self.branch} has fewer than {n} open days within {horizon} days")

    def next_open_day(self, d: date) -> date:
        """``d`` if open, else the next open day."""
        return self.add_open_days(d, 0)

    def open_days_between(self, start: date, end: date) -> int:
        """Open days in (start, end]."""
        n, d = 0, start
        while d < end:
            d += timedelta(days=1)
            n += self.is_open(d)
        return n
