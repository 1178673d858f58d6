"""Plain frozen records the policies read.  No behaviour beyond small helpers.

Times are naive local (Japan) datetimes; dates are ``datetime.date``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from .table import State

# Material types used by the profiles (the seeds' vocabulary).
MATERIAL_TYPES = frozenset({
    "book", "magazine", "av", "ebook", "audiobook", "reference", "manga", "kamishibai",
    # university partners' kinds (連携貸出 exclusions: 大型図書, 教科書, 貴重書, 学位論文)
    "oversized", "textbook", "rare", "thesis",
})
CONTACT_METHODS = frozenset({"email", "phone", "fax", "postcard", "none"})
CHANNELS = frozenset({"web", "opac", "counter", "phone", "fax", "form"})
RETURN_POINT_KINDS = frozenset({"counter", "return_machine", "book_drop", "drop_point", "post", "mobile"})


@dataclass(frozen=True)
class Loan:
    item_barcode: str
    patron_card: str
    branch: str                      # the counter / branch it was lent from
    lent_at: datetime
    due: date
    renewals: int = 0
    renewed_via: str | None = None   # channel of the last renewal ("web", "counter", ...)
    partner: str | None = None       # university partner code for 連携貸出 items
    ill: bool = False                # borrowed from another library system
    material_type: str = "book"
    delivery: bool = False           # lent by shipping it (有料図書宅配, loans.channel "delivery")


@dataclass(frozen=True)
class Request:
    id: str
    patron_card: str
    title_id: str                    # the union record (bib) id; the queue is per title
    kind: str = "reservation"        # "reservation" (予約, owned) or "request" (リクエスト, not owned)
    material_type: str = "book"
    pickup_branch: str = ""
    contact_method: str = "none"
    channel: str = "web"
    placed_at: datetime = datetime(2000, 1, 1)
    state: State = State.NEW
    submitted_at_branch: str | None = None   # counter where a paper form was handed in
    publication_date: date | None = None     # requests for announced new books
    set_id: str | None = None                # セット予約 (優先順)
    set_position: int = 0
    group_id: str | None = None              # グループ予約 (any one will do)
    memo: str = ""                           # 予約メモ, shown to staff once secured
    rule_branch: str | None = None           # owning branch whose branch material rule admitted it (Komae AV)
    ready_at: datetime | None = None         # allocated / captured for the patron (割当日)
    contacted_at: datetime | None = None     # patron was told it is ready (連絡日)
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    cancel_channel: str | None = None
    delivery: bool = False                   # to be shipped to the patron (有料図書宅配)


@dataclass(frozen=True)
class Patron:
    card_number: str
    home_municipality: str
    work_or_school_municipality: str | None = None
    category: str = "individual"
    email: str | None = None
    phone: str | None = None
    fax: str | None = None
    minor: bool = False                      # 未就学児・小中学生 (guardian's consent for some services)
    delivery_registered: bool = False        # 有料図書宅配サービス registration in force
    card_expires: date | None = None         # last day the card is valid (団体貸出: 1 year); None: no expiry
    # snapshot the policies count against (the store fills these)
    loans: tuple[Loan, ...] = ()
    active_requests: tuple[Request, ...] = ()


@dataclass(frozen=True)
class Item:
    barcode: str
    title_id: str
    owner_library: str               # the system that owns the copy ("iizuka", "hiroshima-u"...)
    owning_branch: str = ""
    current_branch: str = ""
    material_type: str = "book"
    circulating: bool = True         # False: 貸出禁止 / 館内閲覧のみ
    newest_issue: bool = False       # magazines: 最新号
    lending_release: date | None = None   # magazines: 貸出解禁日
    partner: str | None = None       # university partner (連携貸出) code
    ill: bool = False
    on_loan: bool = False
    location: str = ""               # shelving location (配架場所), e.g. a partner's "図書館3F"
    held: bool = False               # someone's request already waits for this very copy
    set_code: str | None = None      # 読書会用図書: the reading-group set the copy belongs to


@dataclass(frozen=True)
class Branch:
    code: str
    name: str
    pickup: bool = True              # a service point where holds can be collected
    kind: str = "library"            # library, reading_room, mobile, community_centre


@dataclass(frozen=True)
class ReturnPoint:
    """Where an item was handed back: a branch's counter, its book drop, an
    external drop point (公民館, shop, university), the post, the mobile library."""
    kind: str
    branch: str = ""                 # branch that processes returns from here
    name: str = ""


@dataclass(frozen=True)
class Decision:
    """Outcome of a rule: allowed or not, a stable machine-readable code, messages."""
    allowed: bool
    code: str = "ok"
    message_ja: str = ""
    message_en: str = ""
    details: dict = field(default_factory=dict, compare=False)

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def of(cls, reasons: dict[str, tuple[str, str]], code: str, allowed: frozenset[str] | set[str],
           /, **details) -> "Decision":
        """The decision for ``code`` from a table of (Japanese, English) messages;
        allowed when the code is one of ``allowed``."""
        ja, en = reasons[code]
        return cls(code in allowed, code, ja, en, details)
