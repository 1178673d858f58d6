"""Policy profiles: every number and rule switch of a library system, read from
``config/profiles/<system>.toml`` and validated.

The loader is the only I/O in the package (it reads a file).  Unknown keys are
errors, so a misspelt setting cannot silently fall back to a default.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config import locate

from .calendar import DAY_KINDS, BranchCalendar, Hours, Season
from .model import CHANNELS, CONTACT_METHODS, MATERIAL_TYPES, RETURN_POINT_KINDS, Branch

NOT_RESERVABLE_FLAGS = frozenset({"not_owned", "av", "ebook", "newest_issue", "not_circulating"})
RENEWAL_BASES = frozenset({"today", "due", "earlier_of_today_and_due"})
SHELF_COUNTS = frozenset({"open_days", "calendar_days"})
SHELF_STARTS = frozenset({"ready", "contact_or_allocation"})
PASSWORD_CHARSETS = frozenset({"ascii_alnum", "digits"})
# 有料図書宅配: the 利用申請書 is handed in at a counter or sent by post
DELIVERY_REGISTRATION_CHANNELS = frozenset({"counter", "post"})
PROXY_LOANS = frozenset({"not_offered", "with_consent"})
DROP_EXCLUSIONS = frozenset({"ill", "partner"}) | MATERIAL_TYPES
# Mails the circulation service sends (circulation/notices.py, config/notices/).
NOTICE_KINDS = frozenset({"hold_received", "hold_ready", "hold_cancelled", "hold_changed",
                          "renewal_done", "password_registered", "test_mail",
                          # a partner's copy on loan (ISO 18626): the lender recalls it, says it
                          # is overdue, or refuses a renewal
                          "loan_recalled", "loan_overdue", "renewal_refused"})
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
    limit: int | None = None     # live reservations of this material admitted by this branch's rule


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
    channels: frozenset[str] | None = None   # channels a renewal may come through (None: any)


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
class Kiosk:
    """Self-checkout machines (自動貸出機): the branches without one and the materials
    they cannot lend."""
    branches_without: frozenset[str] = frozenset()
    excluded_materials: frozenset[str] = frozenset()


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


CARD_EXTEND_FROM = frozenset({"previous_expiry", "confirmation"})
MOBILE_DUE = frozenset({"next_visit", "loan_days"})


@dataclass(frozen=True)
class CardRule:
    """Registration rules of one card category (Hiroshima 団体貸出 and school grade cards)."""
    valid_years: int | None = None          # None: the card does not expire
    extend_from: str = "previous_expiry"    # the extra year runs on from: previous_expiry | confirmation
    extend_window_days: int | None = None   # extension possible from N days before expiry (None: any time)
    one_per_school_grade: bool = False      # 利用券は学年で1枚
    home: frozenset[str] = frozenset()      # municipalities the group must be based in (empty: any)


@dataclass(frozen=True)
class MobileRules:
    """The mobile library (移動図書館, a branch of kind "mobile") and its own cards."""
    card_categories: frozenset[str]         # cards made on the mobile: only these borrow there, only there
    due: str                                # next_visit (to the same stop) | loan_days
    school_stop_limit: int | None           # per person at a school stop (学校内での貸出)
    return_branches: frozenset[str]         # branches besides the mobile that take its loans back
    hold_channels: frozenset[str]           # how a mobile card places holds (paper card to staff)
    renewable: bool


@dataclass(frozen=True)
class ReadingSets:
    """読書会用図書: copies of one title lent together as a set (items.set_code)."""
    copies: int
    lend_at: frozenset[str]                 # branches that lend sets
    categories: frozenset[str]              # card categories that may borrow a set


@dataclass(frozen=True)
class Delivery:
    """有料図書宅配サービス (Hiroshima): who may register, what is sent, for how long,
    and the renewal rule of a shipped loan (its own :class:`Renewal`)."""
    enabled: bool
    home: frozenset[str]                     # municipalities whose residents may register
    work_or_school: frozenset[str]           # ... whose workers / students may register
    categories: frozenset[str]               # card categories that may register
    minors_need_guardian_consent: bool       # 未就学児、小・中学生は保護者の同意が必要
    registration_channels: frozenset[str]    # DELIVERY_REGISTRATION_CHANNELS
    request_channels: frozenset[str]         # channels a delivery reservation/request comes through
    materials: frozenset[str]                # material types that are shipped
    days: int                                # loan period including shipping both ways
    dispatch_branch: str                     # branch where delivery holds are readied and shipped
    renewal: Renewal


@dataclass(frozen=True)
class Proxy:
    """代理での貸出: ``not_offered`` (a loan names no proxy) or ``with_consent`` (a proxy
    may borrow with the holder's card when the holder's consent naming them is on record)."""
    loans: str


@dataclass(frozen=True)
class Partner:
    """A university library whose books are lent over the city's counters (連携貸出,
    Hiroshima), from ``[partners.<code>]``. ``branches`` are the partner's own branch
    rows in the network (code → name; not pickup points); a copy may be requested
    when its owning branch is in ``eligible_branches``, its shelving location in
    ``eligible_locations`` (empty: any), its material in ``eligible_materials`` and
    not in ``excluded_materials``, and (``exclude_on_loan_or_held``) it is neither on
    loan nor waited for at request time."""
    code: str
    name: str
    branches: dict[str, str]
    eligible_branches: frozenset[str]
    eligible_locations: frozenset[str]
    eligible_materials: frozenset[str]
    excluded_materials: frozenset[str]
    exclude_on_loan_or_held: bool
    channels: frozenset[str]                 # how the request is handed in (所定の用紙 at a counter)
    lend_at_request_counter: bool            # lent (and collected) at the counter it was requested at


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
    delivery: Delivery | None = None            # [delivery]: 有料図書宅配 (None: not offered)
    proxy: Proxy = field(default_factory=lambda: Proxy("not_offered"))   # [proxy]: 代理での貸出
    cards: dict[str, CardRule] = field(default_factory=dict)   # [cards.<category>]: validity, one per grade
    mobile: MobileRules | None = None                          # [mobile]: 移動図書館 and its cards
    reading_sets: ReadingSets | None = None                    # [reading_sets]: 読書会用図書
    partners: dict[str, Partner] = field(default_factory=dict)  # [partners.<code>]: 連携貸出
    kiosk: Kiosk = field(default_factory=Kiosk)                # [kiosk]: 自動貸出機
    # the system's time zone (an IANA name): its days, deadlines and the times it shows
    timezone: str = field(default="", kw_only=True)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

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
        self.data, self.where, self.seen = data, where, set[str]()

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


def _delivery(t: _Table) -> Delivery:
    """``[delivery]`` and its ``[delivery.renewal]`` (the Renewal keys plus ``channels``)."""
    rt = t.sub("renewal")
    renewal = Renewal(_opt_int(rt, "max"), rt.get("requires_no_waiting", bool),
                      _opt_int(rt, "window_days_before_due"), _opt_int(rt, "window_days_after_due"),
                      rt.choice("base", RENEWAL_BASES), rt.choice("overdue_base", RENEWAL_BASES),
                      rt.get("days", int), rt.get("web_renewal_blocks_counter", bool, False),
                      rt.words("channels", CHANNELS))
    rt.done()
    d = Delivery(
        enabled=t.get("enabled", bool),
        home=t.words("home"), work_or_school=t.words("work_or_school", default=[]),
        categories=t.words("categories"),
        minors_need_guardian_consent=t.get("minors_need_guardian_consent", bool),
        registration_channels=t.words("registration_channels", DELIVERY_REGISTRATION_CHANNELS),
        request_channels=t.words("request_channels", CHANNELS),
        materials=t.words("materials", MATERIAL_TYPES),
        days=t.get("days", int), dispatch_branch=t.get("dispatch_branch", str), renewal=renewal)
    t.done()
    if d.days < 1:
        raise ProfileError(f"{t.where}.days: must be at least 1")
    return d


def _proxy(t: _Table) -> Proxy:
    p = Proxy(t.choice("loans", PROXY_LOANS))
    t.done()
    return p


def _cards(top: _Table, where: str, loans: dict) -> dict[str, CardRule]:
    """``[cards.<category>]``: validity and registration rules per card category."""
    if "cards" not in top.data:
        top.seen.add("cards")
        return {}
    ct = top.sub("cards")
    out = {}
    for cat in list(ct.data):
        t = ct.sub(cat)
        if cat not in loans:
            raise ProfileError(f"{t.where}: no loan rule for category {cat!r}")
        valid = _opt_int(t, "valid_years")
        if valid == 0:
            raise ProfileError(f"{t.where}.valid_years: must be at least 1 (or -1: no expiry)")
        out[cat] = CardRule(valid, t.choice("extend_from", CARD_EXTEND_FROM, "previous_expiry"),
                            _opt_int(t, "extend_window_days"),
                            t.get("one_per_school_grade", bool, False), t.words("home", default=[]))
        t.done()
    ct.done()
    return out


def _mobile(t: _Table, loans: dict, known: set[str]) -> MobileRules:
    """``[mobile]``: the mobile library's own cards, due dates, returns and holds."""
    m = MobileRules(t.words("card_categories"), t.choice("due", MOBILE_DUE),
                    _opt_int(t, "school_stop_limit"), t.words("return_branches", default=[]),
                    t.words("hold_channels", CHANNELS), t.get("renewable", bool))
    t.done()
    if not m.card_categories <= set(loans):
        raise ProfileError(f"{t.where}.card_categories: no loan rule for {sorted(m.card_categories - set(loans))}")
    if not m.return_branches <= known:
        raise ProfileError(f"{t.where}.return_branches: unknown {sorted(m.return_branches - known)}")
    return m


def _reading_sets(t: _Table, loans: dict, known: set[str]) -> ReadingSets:
    """``[reading_sets]``: 読書会用図書 lent as whole sets."""
    r = ReadingSets(t.get("copies", int), t.words("lend_at"), t.words("categories"))
    t.done()
    if r.copies < 1:
        raise ProfileError(f"{t.where}.copies: must be at least 1")
    if not r.lend_at <= known:
        raise ProfileError(f"{t.where}.lend_at: unknown {sorted(r.lend_at - known)}")
    if not r.categories <= set(loans):
        raise ProfileError(f"{t.where}.categories: no loan rule for {sorted(r.categories - set(loans))}")
    return r


PARTNER_CHANNELS = frozenset({"counter", "form", "fax"})


def _partners(t: _Table, system: str, city_branches: set[str]) -> dict[str, Partner]:
    """``[partners.<code>]``: university libraries of the 連携貸出 (their branches must
    not reuse a city branch code: branch codes are unique across the network)."""
    out: dict[str, Partner] = {}
    seen_branches: set[str] = set()
    for code in list(t.data):
        pt = t.sub(code)
        if code == system:
            raise ProfileError(f"{pt.where}: a partner cannot be the system itself")
        bt = pt.sub("branches")
        branches = {b: bt.get(b, str) for b in list(bt.data)}
        bt.done()
        if not branches:
            raise ProfileError(f"{bt.where}: at least one branch")
        clash = (set(branches) & city_branches) | (set(branches) & seen_branches)
        if clash:
            raise ProfileError(f"{bt.where}: branch codes already used: {sorted(clash)}")
        seen_branches |= set(branches)
        p = Partner(
            code=code, name=pt.get("name", str), branches=branches,
            eligible_branches=pt.words("eligible_branches"),
            eligible_locations=pt.words("eligible_locations", default=[]),
            eligible_materials=pt.words("eligible_materials", MATERIAL_TYPES),
            excluded_materials=pt.words("excluded_materials", MATERIAL_TYPES, []),
            exclude_on_loan_or_held=pt.get("exclude_on_loan_or_held", bool),
            channels=pt.words("channels", PARTNER_CHANNELS),
            lend_at_request_counter=pt.get("lend_at_request_counter", bool))
        pt.done()
        if not p.eligible_branches or not p.eligible_branches <= set(branches):
            raise ProfileError(f"{pt.where}.eligible_branches: expected some of {sorted(branches)}")
        if not p.channels:
            raise ProfileError(f"{pt.where}.channels: at least one channel")
        out[code] = p
    t.done()
    return out


def parse_profile(data: dict, where: str = "profile") -> Profile:
    top = _Table(data, where)
    system = top.get("system", str)
    name = top.get("name", str)
    seed = top.get("seed", str)
    timezone = _zone_name(top)

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
                                        rt.get("only_when_on_loan", bool, False),
                                        _opt_int(rt, "limit")))
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
    delivery = _delivery(top.sub("delivery")) if "delivery" in top.data else None
    proxy = _proxy(top.sub("proxy")) if "proxy" in top.data else Proxy("not_offered")
    cards = _cards(top, where, loans)
    mobile = _mobile(top.sub("mobile"), loans, set(branches)) if "mobile" in top.data else None
    reading_sets = (_reading_sets(top.sub("reading_sets"), loans, set(branches))
                    if "reading_sets" in top.data else None)
    partners = _partners(top.sub("partners"), system, set(branches)) if "partners" in top.data else {}
    kiosk = Kiosk()
    if "kiosk" in top.data:
        kt = top.sub("kiosk")
        kiosk = Kiosk(kt.words("branches_without", set(branches), []),
                      kt.words("excluded_materials", MATERIAL_TYPES, []))
        kt.done()
    top.done()

    known = set(branches)
    for rule in placing.branch_material_rules:
        if rule.branch not in known:
            raise ProfileError(f"{where}.placing.branch_material_rules: unknown branch {rule.branch!r}")
    if not any(b.branch.pickup for b in branches.values()):
        raise ProfileError(f"{where}.branches: no pickup branch")
    if delivery is not None and (delivery.dispatch_branch not in known
                                 or not branches[delivery.dispatch_branch].branch.pickup):
        raise ProfileError(f"{where}.delivery.dispatch_branch: not a pickup branch of this profile: "
                           f"{delivery.dispatch_branch!r}")
    return Profile(system, name, seed, elig, placing, loans, renewal, shelf, cancel, returns,
                   login, walk_in_first, branches, notice_rules, delivery=delivery, proxy=proxy,
                   cards=cards, mobile=mobile, reading_sets=reading_sets, partners=partners,
                   kiosk=kiosk, timezone=timezone)


def _zone_name(top: _Table) -> str:
    if "timezone" not in top.data:
        raise ProfileError(f"{top.where}.timezone: missing (the system's time zone, an IANA name "
                           "such as \"Asia/Tokyo\")")
    name = top.get("timezone", str)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ProfileError(f"{top.where}.timezone: {name!r} is not a time zone name "
                           "(an IANA name such as \"Asia/Tokyo\")") from None
    return name


def network_zone(profiles: Mapping[str, Profile]) -> ZoneInfo:
    """The time zone of a network: the one zone all its profiles name. One network runs
    in one zone (its dates, deadlines and the times it shows); profiles that disagree
    raise :class:`ProfileError` naming each system's zone."""
    zones = {p.timezone for p in profiles.values()}
    if len(zones) == 1:
        return ZoneInfo(zones.pop())
    if not zones:
        raise ProfileError("no policy profile: a network needs at least one (config/profiles/*.toml)")
    named = ", ".join(f"{code}: {p.timezone}" for code, p in sorted(profiles.items()))
    raise ProfileError(f"the profiles name different time zones ({named}); one network runs in one "
                       "time zone: give every profile the same timezone")


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
        path = locate(f"profiles/{name_or_path}.toml")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: {e}") from None
    return parse_profile(data, str(path.name))


def load_all() -> dict[str, Profile]:
    return {p.stem: load_profile(p) for p in sorted(locate("profiles").glob("*.toml"))}
