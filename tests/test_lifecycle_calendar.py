"""Branch calendars and the hold-shelf deadline counted in open days."""
from __future__ import annotations

from datetime import date, datetime, time

import pytest

from lifecycle.calendar import BranchCalendar, Hours
from lifecycle.policies import shelf_deadline
from lifecycle.profiles import load_profile

IIZUKA = load_profile("iizuka")
KOMAE = load_profile("komae")
HIROSHIMA = load_profile("hiroshima")


def test_hiroshima_district_library_opens_later_on_weekdays_than_on_weekends():
    cal = HIROSHIMA.calendar("naka")
    assert cal.hours(date(2026, 11, 10)) == Hours(time(9), time(19))   # Tuesday
    assert cal.hours(date(2026, 11, 14)) == Hours(time(9), time(17))   # Saturday
    assert not cal.is_open(date(2026, 11, 9))                          # Monday


def test_hiroshima_august_6_has_holiday_hours_and_central_stays_open_later_in_summer():
    central, naka = HIROSHIMA.calendar("central"), HIROSHIMA.calendar("naka")
    aug6 = date(2026, 8, 6)                                            # a Thursday
    assert naka.hours(aug6) == Hours(time(9), time(17))
    assert central.hours(aug6) == Hours(time(9), time(18))             # July/August, central only
    assert central.hours(date(2026, 11, 14)) == Hours(time(9), time(17))


def test_public_holidays_use_holiday_hours_and_closed_days_override_everything():
    cal = HIROSHIMA.calendar("naka", holidays=[date(2026, 11, 3)], closed=[date(2026, 11, 4)])
    assert cal.hours(date(2026, 11, 3)) == Hours(time(9), time(17))    # 文化の日, a Tuesday
    assert not cal.is_open(date(2026, 11, 4))


def test_iizuka_branches_have_their_own_hours():
    assert IIZUKA.calendar("iizuka").hours(date(2026, 11, 10)).closes == time(19)
    assert IIZUKA.calendar("honami").hours(date(2026, 11, 10)) == Hours(time(9), time(17))


def test_open_days_skip_closed_days():
    cal = BranchCalendar("x", {d: Hours(time(9), time(17)) for d in ("tue", "wed", "thu", "fri", "sat", "sun")})
    # Friday + 3 open days: Sat, Sun, (Mon closed) Tue
    assert cal.add_open_days(date(2026, 11, 13), 3) == date(2026, 11, 17)
    assert cal.next_open_day(date(2026, 11, 16)) == date(2026, 11, 17)
    assert cal.open_days_between(date(2026, 11, 13), date(2026, 11, 17)) == 3


def test_a_branch_that_never_opens_is_a_configuration_error():
    with pytest.raises(ValueError):
        BranchCalendar("x", {}).add_open_days(date(2026, 1, 1), 1)
    with pytest.raises(ValueError):
        KOMAE.calendar("komae-central")                                       # hours not in the seed


def test_iizuka_shelf_deadline_is_seven_open_days_after_the_hold_is_ready():
    closed = [date(2026, 11, 16), date(2026, 11, 23), date(2026, 11, 24)]  # two Mondays + a day after a holiday
    cal = IIZUKA.calendar("iizuka", closed=closed)
    ready = datetime(2026, 11, 13, 15, 0)                               # Friday
    # open days after Fri 13: 14,15,17,18,19,20,21 → the 7th is Sat 21
    assert shelf_deadline(IIZUKA, cal, ready) == date(2026, 11, 21)
    # with the year-end closure the deadline moves past it
    year_end = [date(2026, 12, d) for d in range(29, 32)] + [date(2027, 1, d) for d in range(1, 4)]
    cal = IIZUKA.calendar("iizuka", closed=year_end)
    # open days after Sat 26 Dec: 27, 28, (29 Dec - 3 Jan closed), 4, 5, 6, 7, 8
    assert shelf_deadline(IIZUKA, cal, datetime(2026, 12, 26, 10)) == date(2027, 1, 8)


def test_komae_shelf_deadline_counts_from_the_contact_date_when_the_patron_was_contacted():
    cal = BranchCalendar("central", {d: Hours(time(10), time(18)) for d in ("tue", "wed", "thu", "fri", "sat", "sun")})
    allocated = datetime(2026, 11, 10, 11)                              # Tuesday
    assert shelf_deadline(KOMAE, cal, allocated) == date(2026, 11, 18)  # no contact: from allocation
    contacted = datetime(2026, 11, 12, 9)
    assert shelf_deadline(KOMAE, cal, allocated, contacted) == date(2026, 11, 20)
