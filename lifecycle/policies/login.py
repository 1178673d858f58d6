"""Login: the password rules of the profile and the lockout after wrong passwords."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Iterable

from ..model import Decision
from ..profiles import Profile
from ..reasons import OK, decide

_ALNUM = re.compile(r"[0-9A-Za-z]+")


_DIGITS = re.compile(r"[0-9]+")


def password_acceptable(profile: Profile, password: str) -> Decision:
    lg = profile.login
    if not lg.password_min <= len(password) <= lg.password_max:
        return decide("password_length", min=lg.password_min, max=lg.password_max)
    pattern = _ALNUM if lg.password_charset == "ascii_alnum" else _DIGITS
    if not pattern.fullmatch(password):
        return decide("password_charset")
    return OK


def login_locked(profile: Profile, failures: Iterable[datetime], now: datetime) -> Decision:
    """Locked when the last ``lockout_attempts`` consecutive failures (times of wrong
    passwords since the last success) end less than ``lockout_minutes`` ago."""
    lg = profile.login
    fails = sorted(f for f in failures if f <= now)
    if len(fails) >= lg.lockout_attempts:
        last = fails[-1]
        until = last + timedelta(minutes=lg.lockout_minutes)
        if now < until:
            return decide("locked_out", until=until)
    return OK
