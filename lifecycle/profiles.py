"""Policy profiles: every number and rule switch of a library system, read from
``config/profiles/<system>.toml`` and validated.

The loader is the only I/O in the package (it reads a file).  Unknown keys are
errors, so a misspelt setting cannot silently fall back to a default.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from .calendar import DAY_KINDS, BranchCalendar, Hours, Season
from .model import CHANNELS, CONTACT_METHODS, MATERIAL_TYPES, RETURN_POINT_KINDS, Branch

PROFILE_DIR = Path(__file__).resolve().parents[1] / "config" / "profiles"

NOT_RESERVABLE_FLAGS = frozenset({"not_owned", "av", "ebook", "newest_issue", "not_circulating"})
RENEWAL_BASES = frozenset({"today", "due", "earlier_of_today_and_due"})
SHELF_COUNTS = frozenset({"open_days", "calendar_days"})
SHELF_STARTS = frozenset({"ready", "contact_or_allocation"})
PASSWORD_CHARSETS = frozenset({"ascii_alnum", "digits"})
DROP_EXCLUSIONS = frozenset({"ill", "partner"}) | MATERIAL_TYPES
# Mails the circulation service sends (circulation/notices.py, config/notices/).
NOTICE_KINDS = frozenset({"hold_received", "hold_ready", "hold_cancelled", "hold_changed",
                          "renewal_done", "password_registered", "test_mail"})
# Notices about one hold go by that hold's contact method; the others by the patron's default.
REQUEST_NOTICE_KINDS = frozenset({"hold_received", "hold_ready", "hold_cancelled", "hold_changed"})
# Mails about the address itself: sent whatever the contact method (the patron asked for them).
ADDRESS_NOTICE_KINDS = frozenset({"test_mail"})


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Eligibility:
    reservation_home: frozenset[str]
    reservation_work_or_school: frozenset[str]
    request_home: frozenset[str]
    request_work_or_school: frozenset[str]
    categories: frozenset[str]


@dataclass(frozen=True)
class BranchMaterialRule:
    branch: str
    material: str
    channels: frozenset[str]
    only_when_on_loan: bool


@dataclass(frozen=True)
class Placing:
    reservation_channels: frozenset[str]
    request_channels: frozenset[str]
    request_at_pickup_branch: bool
    contact_methods: frozenset[str]
    not_reservable: frozenset[str]
    request_refused_materials: frozenset[str]
    magazine_from_release_date: bool
    requests_only_after_publication: bool
    request_publication_wait_days: int | None
    overdue_block_days: int | None
    limits: dict[str, int]
    total_limit: int | None
    branch_material_rules: tuple[BranchMaterialRule, ...]
    patron_pickup_change: bool = True      # may a patron change the pickup branch after placing?


@dataclass(frozen=True)
class LoanRule:
    limit: int | None
    days: int


@dataclass(frozen=True)
class Renewal:
    max: int | None
    requires_no_waiting: bool
    window_days_before_due: int | None
    window_days_after_due: int | None
    base: str
    overdue_base: str
    days: int
    web_renewal_blocks_counter: bool


@dataclass(frozen=True)
class Shelf:
    days: int
    count: str
    start: str


@dataclass(frozen=True)
class Cancel:
    patron_channels: frozenset[str]
    secured_only_at_pickup_branch: bool
    visible_days: int


@dataclass(frozen=True)
class Returns:
    processed_date_points: frozenset[str]
    drop_point_excluded: frozenset[str]
    partner_return_to_lending_counter: bool


@dataclass(frozen=True)
class Login:
    lockout_attempts: int
    lockout_minutes: int
    password_min: int
    password_max: int
    password_charset: str


@dataclass(frozen=True)
class NoticeRules:
    suppressed_when_no_contact: frozenset[str] = frozenset()
    undeliverable_domains: tuple[str, ...] = ()   # "hotmail": hotmail.com, hotmail.co.jp, ...
    from_address: str | None = None               # the library's sender address, if configured


@dataclass(frozen=True)
class BranchConfig:
    branch: Branch
    weekly: dict[str, Hours | None]
    seasons: tuple[Season, ...]
    holiday_like: frozenset[tuple[int, int]]
    closed: frozenset[date]


@dataclass(frozen=True)
class Profile:
    system: str
    name: str
    seed: str
    eligibility: Eligibility
    placing: Placing
    loans: dict[str, LoanRule]
    renewal: Renewal
    shelf: Shelf
    cancel: Cancel
    returns: Returns
    login: Login
    walk_in_first: bool
    branches: dict[str, BranchConfig] = field(default_factory=dict)
    notices: NoticeRules = field(default_factory=NoticeRules)

    def branch(self, code: str) -> Branch | None:
        bc = self.branches.get(code)
        return bc.branch if bc else None

    def calendar(self, code: str, *, closed=(), holidays=()) -> BranchCalendar:
        """The branch's calendar, with extra closed dates and public holidays."""
        bc = self.branches.get(code)
        if bc is None:
            raise ProfileError(f"{self.system}: unknown branch {code!r}")
        if not any(bc.weekly.values()):
            raise ProfileError(f"{self.system}: branch {code!r} has no opening hours configured")
        return BranchCalendar(code, bc.weekly, bc.seasons, bc.closed | frozenset(closed),
                              frozenset(holidays), bc.holiday_like)


# ---------------------------------------------------------------- reading

_REQUIRED = object()


class _Table:
    """A TOML table whose keys are taken one by one; leftovers are errors."""

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise ProfileError(f"{where}: expected a table")
        self.data, self.where, self.seen = data, where, set()

    def get(self, key, typ, default=_REQUIRED):
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ProfileError(f"{self.where}.{key}: missing")
            return default
        v = self.data[key]
        if typ is int and isinstance(v, bool) or not isinstance(v, typ):
            raise ProfileError(f"{self.where}.{key}: expected {getattr(typ, '__name__', typ)}, got {v!r}")
        if typ is int and v < 0:
            raise ProfileError(f"{self.where}.{key}: must be >= 0")
        return v

    def words(self, key, allowed=None, default=_REQUIRED) -> frozenset[str]:
        v = self.get(key, list, default)
        if not all(isinstance(x, str) for x in v):
            raise ProfileError(f"{self.where}.{key}: expected a list of strings")
        if allowed is not None and not set(v) <= allowed:
            raise ProfileError(f"{self.where}.{key}: unknown {sorted(set(v) - allowed)}; "
                               f"allowed: {sorted(allowed)}")
        return frozenset(v)

    def choice(self, key, allowed, default=_REQUIRED) -> str:
        v = self.get(key, str, default)
        if v not in allowed:
            raise ProfileError(f"{self.where}.{key}: {v!r} not one of {sorted(allowed)}")
        return v

    def sub(self, key, default=_REQUIRED) -> "_Table":
        return _Table(self.get(key, dict, default), f"{self.where}.{key}")

    def done(self):
        extra = set(self.data) - self.seen
        if extra:
            raise ProfileError(f"{self.where}: unknown keys {sorted(extra)}")


def _opt_int(t: _Table, key: str) -> int | None:
    """Optional count: absent or -1 means 'no limit'."""
    v = t.data.get(key)
    t.seen.add(key)
    if v is None or v == -1:
        return None
    return t.get(key, int)


def _hours_table(t: _Table) -> dict[str, Hours | None]:
    """``every_day``, then ``weekdays`` (mon-fri) / ``weekend`` (sat, sun, holiday),
    then single day kinds, each overriding the broader ones; "closed" = closed."""
    out: dict[str, Hours | None] = {}
    groups = (("every_day", DAY_KINDS), ("weekdays", DAY_KINDS[:5]),
              ("weekend", ("sat", "sun", "holiday"))) + tuple((k, (k,)) for k in DAY_KINDS)
    for key, days in groups:
        if key not in t.data:
            continue
        v = t.get(key, str)
        try:
            h = None if v == "closed" else Hours.parse(v)
        except ValueError as e:
            raise ProfileError(f"{t.where}.{key}: {e}") from None
        for d in days:
            out[d] = h
    return out


def _branch(code: str, t: _Table) -> BranchConfig:
    name = t.get("name", str)
    pickup = t.get("pickup", bool, True)
    kind = t.choice("kind", {"library", "reading_room", "mobile", "community_centre"}, "library")
    weekly: dict[str, Hours | None] = {}
    if "hours" in t.data:
        ht = t.sub("hours")
        weekly = _hours_table(ht)
        ht.done()
    seasons = []
    for i, s in enumerate(t.get("seasons", list, [])):
        st = _Table(s, f"{t.where}.seasons[{i}]")
        months = st.get("months", list)
        if not months or not all(isinstance(m, int) and 1 <= m <= 12 for m in months):
            raise ProfileError(f"{st.where}.months: expected month numbers 1-12")
        seasons.append(Season(frozenset(months), _hours_table(st)))
        st.done()
    holiday_like = set()
    for md in t.get("holiday_like", list, []):
        try:
            m, d = (int(x) for x in md.split("-"))
            date(2024, m, d)
        except (ValueError, AttributeError):
            raise ProfileError(f"{t.where}.holiday_like: expected 'MM-DD', got {md!r}") from None
        holiday_like.add((m, d))
    closed = set()
    for d in t.get("closed_dates", list, []):
        if not isinstance(d, date):
            raise ProfileError(f"{t.where}.closed_dates: expected TOML dates, got {d!r}")
        closed.add(d)
    t.done()
    return BranchConfig(Branch(code, name, pickup, kind), weekly, tuple(seasons),
                        frozenset(holiday_like), frozenset(closed))


def parse_profile(data: dict, where: str = "profile") -> Profile:
    top = _Table(data, where)
    system = top.get("system", str)
    name = top.get("name", str)
    seed = top.get("seed", str)

    e = top.sub("eligibility")
    elig = Eligibility(e.words("reservation_home"), e.words("reservation_work_or_school"),
                       e.words("request_home", default=[]), e.words("request_work_or_school", default=[]),
                       e.words("categories"))
    e.done()

    p = top.sub("placing")
    limits_t = p.sub("limits", {})
    limits = {}
    for k in list(limits_t.data):
        if k not in MATERIAL_TYPES:
            raise ProfileError(f"{limits_t.where}: unknown material type {k!r}")
        limits[k] = limits_t.get(k, int)
    limits_t.done()
    rules = []
    for i, r in enumerate(p.get("branch_material_rules", list, [])):
        rt = _Table(r, f"{p.where}.branch_material_rules[{i}]")
        rules.append(BranchMaterialRule(rt.get("branch", str), rt.choice("material", MATERIAL_TYPES),
                                        rt.words("channels", CHANNELS),
                                        rt.get("only_when_on_loan", bool, False)))
        rt.done()
    placing = Placing(
        reservation_channels=p.words("reservation_channels", CHANNELS),
        request_channels=p.words("request_channels", CHANNELS),
        request_at_pickup_branch=p.get("request_at_pickup_branch", bool, False),
        contact_methods=p.words("contact_methods", CONTACT_METHODS),
        not_reservable=p.words("not_reservable", NOT_RESERVABLE_FLAGS, []),
        request_refused_materials=p.words("request_refused_materials", MATERIAL_TYPES, []),
        magazine_from_release_date=p.get("magazine_from_release_date", bool, False),
        requests_only_after_publication=p.get("requests_only_after_publication", bool, False),
        request_publication_wait_days=_opt_int(p, "request_publication_wait_days"),
        overdue_block_days=_opt_int(p, "overdue_block_days"),
        limits=limits,
        total_limit=_opt_int(p, "total_limit"),
        branch_material_rules=tuple(rules),
        patron_pickup_change=p.get("patron_pickup_change", bool, True),
    )
    p.done()

    lt = top.sub("loans")
    loans = {}
    for cat in list(lt.data):
        c = lt.sub(cat)
        loans[cat] = LoanRule(_opt_int(c, "limit"), c.get("days", int))
        c.done()
    lt.done()
    missing = elig.categories - set(loans)
    if missing:
        raise ProfileError(f"{where}.loans: no loan rule for categories {sorted(missing)}")

    r = top.sub("renewal")
    renewal = Renewal(_opt_int(r, "max"), r.get("requires_no_waiting", bool),
                      _opt_int(r, "window_days_before_due"), _opt_int(r, "window_days_after_due"),
                      r.choice("base", RENEWAL_BASES), r.choice("overdue_base", RENEWAL_BASES),
                      r.get("days", int), r.get("web_renewal_blocks_counter", bool, False))
    r.done()

    s = top.sub("shelf")
    shelf = Shelf(s.get("days", int), s.choice("count", SHELF_COUNTS), s.choice("start", SHELF_STARTS))
    s.done()

    c = top.sub("cancel")
    cancel = Cancel(c.words("patron_channels", CHANNELS), c.get("secured_only_at_pickup_branch", bool, False),
                    c.get("visible_days", int))
    c.done()

    rt = top.sub("returns")
    returns = Returns(rt.words("processed_date_points", RETURN_POINT_KINDS),
                      rt.words("drop_point_excluded", DROP_EXCLUSIONS, []),
                      rt.get("partner_return_to_lending_counter", bool, False))
    rt.done()

    lg = top.sub("login")
    login = Login(lg.get("lockout_attempts", int), lg.get("lockout_minutes", int),
                  lg.get("password_min", int), lg.get("password_max", int),
                  lg.choice("password_charset", PASSWORD_CHARSETS))
    if login.password_min > login.password_max:
        raise ProfileError(f"{lg.where}: password_min > password_max")
    lg.done()

    q = top.sub("queue")
    walk_in_first = q.get("walk_in_first", bool)
    q.done()

    bt = top.sub("branches")
    branches = {code: _branch(code, bt.sub(code)) for code in list(bt.data)}
    bt.done()

    nt = top.sub("notices")
    domains = nt.words("undeliverable_domains", default=[])
    if any(not d or "@" in d or d != d.lower() for d in domains):
        raise ProfileError(f"{nt.where}.undeliverable_domains: expected lower-case domains without '@'")
    from_address = nt.get("from_address", str, None)
    if from_address is not None and from_address.count("@") != 1:
        raise ProfileError(f"{nt.where}.from_address: not an e-mail address: {from_address!r}")
    notice_rules = NoticeRules(nt.words("suppressed_when_no_contact", NOTICE_KINDS),
                               tuple(sorted(domains)), from_address)
    nt.done()
    top.done()

    known = set(branches)
    for rule in placing.branch_material_rules:
        if rule.branch not in known:
            raise ProfileError(f"{where}.placing.branch_material_rules: unknown branch {rule.branch!r}")
    if not any(b.branch.pickup for b in branches.values()):
        raise ProfileError(f"{where}.branches: no pickup branch")
    return Profile(system, name, seed, elig, placing, loans, renewal, shelf, cancel, returns,
                   login, walk_in_first, branches, notice_rules)


def notice_suppression(rules: NoticeRules, kind: str, contact_method: str,
                       email: str | None) -> tuple[str, str] | None:
    """Why a notice must not be e-mailed, as ``(code, explanation)``, or None to send it.

    ``contact_method`` is the hold's for :data:`REQUEST_NOTICE_KINDS`, the patron's
    default for the others. Codes: ``no_contact`` (連絡不要 and the profile lists the
    kind), ``contact_by_phone`` / ``_fax`` / ``_postcard`` (staff contact the patron;
    hold-ready notices go to the call list), ``no_email``, ``undeliverable_domain``."""
    if kind not in NOTICE_KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if kind not in ADDRESS_NOTICE_KINDS:
        if contact_method == "none" and kind in rules.suppressed_when_no_contact:
            return "no_contact", f"contact method is 'none' (連絡不要): {kind} is not sent"
        if contact_method in ("phone", "fax", "postcard"):
            return (f"contact_by_{contact_method}",
                    f"contact method is {contact_method}: staff contact the patron, no mail")
    if not email or "@" not in email:
        return "no_email", "the patron has no e-mail address"
    domain = email.rsplit("@", 1)[1].lower()
    for d in rules.undeliverable_domains:
        if domain == d or domain.startswith(d + "."):
            return "undeliverable_domain", f"the library's mail does not reach @{d} addresses"
    return None


def load_profile(name_or_path: str | Path) -> Profile:
    """Load ``config/profiles/<name>.toml`` (or a path) and validate it."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILE_DIR / f"{name_or_path}.toml"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: {e}") from None
    return parse_profile(data, str(path.name))


def load_all() -> dict[str, Profile]:
    return {p.stem: load_profile(p) for p in sorted(PROFILE_DIR.glob("*.toml"))}
